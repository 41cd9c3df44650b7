"""The one job filter (:class:`JobFilter`) and the SQL it becomes.

:class:`JobFilter` feeds the dashboard, the exports, the JSON list, the
stats and the bulk actions; :meth:`JobFilter.where` is its only translation
to SQL, backend-neutral (the ``error_code`` condition compiles per backend).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.models import FailureOccurrence, JobStatus, ProcessingJob
from app.models.types import JSONDocument


class TimeField(StrEnum):
    """Which timestamp ``from``/``to`` bound and the listing is ordered by."""

    CREATED = "created"
    COMPLETED = "completed"


class AcknowledgedFilter(StrEnum):
    """What to do with acknowledged failures (``acknowledged_at IS NOT NULL``)."""

    EXCLUDE = "exclude"
    INCLUDE = "include"
    ONLY = "only"


class error_details_has_code(FunctionElement[bool]):  # noqa: N801 (named like the SQL function it stands for)
    """SQL condition: ``error_details`` is an envelope whose ``errors`` array
    holds an object with ``code`` equal to a string.

    Built as ``error_details_has_code(column, code, probe)`` where ``probe``
    is the containment document ``{"errors": [{"code": code}]}``. One
    construct with one meaning, compiled per backend so that
    :meth:`JobFilter.where` stays backend-neutral:

    * PostgreSQL: ``error_details @> probe``, which the GIN ``jsonb_path_ops``
      index ``ix_processing_jobs_error_details`` (migration 0004) serves;
    * SQLite: ``json_type(error_details, '$.errors') = 'array' AND EXISTS
      (SELECT 1 FROM json_each(error_details, '$.errors') WHERE
      json_extract(value, '$.code') = code)`` -- a scan; SQLite has no JSON
      index.

    Both match only a string ``code`` in an object item of an ``errors``
    array, wherever the item is in the array.
    """

    type = sa.Boolean()
    name = "error_details_has_code"
    inherit_cache = True


@compiles(error_details_has_code, "postgresql")
def _has_code_postgresql(element: error_details_has_code, compiler: SQLCompiler, **kw: Any) -> str:
    details, _code, probe = element.clauses
    return compiler.process(sa.type_coerce(details, JSONB).op("@>")(probe), **kw)


class error_details_has_code_scanned(error_details_has_code):  # noqa: N801
    """:class:`error_details_has_code`, written so that PostgreSQL tests it
    row by row instead of through the GIN index.

    For queries already narrowed by a time range: the index returns a bitmap
    of *every* job with the code (half the table for a common one: 42 ms at
    1,000,000 jobs, docs/benchmarks.md), where testing the few thousand
    rows in the range costs a few ms. The planner underrates that bitmap.
    """

    name = "error_details_has_code_scanned"
    inherit_cache = True


@compiles(error_details_has_code_scanned, "postgresql")
def _has_code_scanned_postgresql(
    element: error_details_has_code_scanned, compiler: SQLCompiler, **kw: Any
) -> str:
    details, _code, probe = element.clauses
    # coalesce() hides the column from the index; NULL details match nothing either way.
    document = sa.func.coalesce(sa.type_coerce(details, JSONB), sa.cast(sa.literal("null"), JSONB))
    return compiler.process(document.op("@>")(probe), **kw)


@compiles(error_details_has_code, "sqlite")
@compiles(error_details_has_code_scanned, "sqlite")
def _has_code_sqlite(element: error_details_has_code, compiler: SQLCompiler, **kw: Any) -> str:
    details, code, _probe = element.clauses
    item = sa.func.json_each(details, "$.errors").table_valued("value", "type").alias("error_item")
    # CASE, not AND: SQLite does not promise to evaluate AND left to right,
    # and json_extract() raises on an item that is a bare string.
    item_code = sa.case((item.c.type == "object", sa.func.json_extract(item.c.value, "$.code")))
    condition = sa.and_(
        sa.func.json_type(details, "$.errors") == "array",
        sa.exists().select_from(item).where(item_code == code),
    )
    return compiler.process(condition, **kw)


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape ``%``, ``_`` and the escape character for a LIKE pattern."""
    return (
        text.replace(escape, escape + escape).replace("%", escape + "%").replace("_", escape + "_")
    )


@dataclass(frozen=True)
class JobFilter:
    """Which jobs to list, count or export.

    Attributes:
        statuses: keep jobs in any of these statuses; empty means all.
        document_id: exact document id, or ``None``.
        job_type: exact job type, or ``None``.
        time_field: the timestamp ``time_from``/``time_to`` bound and that
            listings are ordered by. ``completed`` keeps only jobs that have
            finished (``completed_at`` set).
        time_from: keep jobs whose time is at or after this (aware UTC), or ``None``.
        time_to: keep jobs whose time is before this (exclusive), or ``None``.
        error_code: keep jobs whose error-details envelope has an item with
            this ``code`` (any position in ``errors``), or ``None``.
        text: case-insensitive substring of ``error_message`` (the ``q``
            parameter), or ``None``. Matched literally: ``%``, ``_`` and
            ``\\`` are not wildcards. PostgreSQL folds case with ``ILIKE``
            (Unicode); SQLite's ``lower()`` folds ASCII letters only.
        acknowledged: leave out, keep, or keep only acknowledged jobs.
        group_id: keep jobs whose current failure is in this failure group
            (``failure_occurrences.is_current``), or ``None``. A requeued
            or completed job is no longer failing on its groups.
    """

    statuses: tuple[JobStatus, ...] = ()
    document_id: str | None = None
    job_type: str | None = None
    time_field: TimeField = TimeField.CREATED
    time_from: datetime | None = None
    time_to: datetime | None = None
    error_code: str | None = None
    text: str | None = None
    acknowledged: AcknowledgedFilter = AcknowledgedFilter.INCLUDE
    group_id: int | None = None

    @property
    def time_column(self) -> sa.orm.InstrumentedAttribute[Any]:
        """The column :attr:`time_field` names (``created_at`` or ``completed_at``)."""
        if self.time_field is TimeField.COMPLETED:
            return ProcessingJob.completed_at
        return ProcessingJob.created_at

    def without_statuses(self) -> JobFilter:
        """This filter with every status allowed (for per-status counts)."""
        return replace(self, statuses=())

    def where(self, *, code_index: bool = True) -> list[sa.ColumnElement[bool]]:
        """SQL conditions for this filter (backend-neutral expressions).

        ``code_index=False`` writes the ``error_code`` condition so that
        PostgreSQL does not use its GIN index
        (:class:`error_details_has_code_scanned`), for statements a time range
        already narrows.
        """
        conditions: list[sa.ColumnElement[bool]] = []
        if self.statuses:
            conditions.append(ProcessingJob.status.in_([s.value for s in self.statuses]))
        if self.document_id is not None:
            conditions.append(ProcessingJob.document_id == self.document_id)
        if self.job_type is not None:
            conditions.append(ProcessingJob.job_type == self.job_type)
        if self.time_field is TimeField.COMPLETED:
            conditions.append(ProcessingJob.completed_at.is_not(None))
        if self.time_from is not None:
            conditions.append(self.time_column >= self.time_from)
        if self.time_to is not None:
            conditions.append(self.time_column < self.time_to)
        if self.error_code is not None:
            probe = {"errors": [{"code": self.error_code}]}
            has_code = error_details_has_code if code_index else error_details_has_code_scanned
            conditions.append(has_code(
                ProcessingJob.error_details,
                sa.literal(self.error_code, sa.String),
                sa.literal(probe, JSONDocument),
            ))
        if self.text is not None:
            conditions.append(
                ProcessingJob.error_message.ilike(f"%{escape_like(self.text)}%", escape="\\")
            )
        if self.group_id is not None:
            # Served by the partial index (group_id, job_id) WHERE is_current.
            current = sa.select(FailureOccurrence.job_id).where(
                FailureOccurrence.group_id == self.group_id, FailureOccurrence.is_current.is_(True)
            )
            conditions.append(ProcessingJob.id.in_(current))
        if self.acknowledged is AcknowledgedFilter.EXCLUDE:
            conditions.append(ProcessingJob.acknowledged_at.is_(None))
        elif self.acknowledged is AcknowledgedFilter.ONLY:
            conditions.append(ProcessingJob.acknowledged_at.is_not(None))
        return conditions
