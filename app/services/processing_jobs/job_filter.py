"""The one job filter (:class:`JobFilter`), a table of filters and the SQL they become.

:class:`JobFilter` feeds the dashboard, the exports, the JSON list, the
stats and the bulk actions. Each of its fields is one filter, declared with
:func:`filter_field`: its query-string parameter, the kind of value it
takes (which :mod:`app.web.query` reads for every blueprint), and its SQL
condition. Adding a filter is adding one field; :meth:`JobFilter.where`
and the query-string readers go through the table. The SQL is
backend-neutral (the ``error_code`` condition compiles per backend).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import Enum, StrEnum
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


class job_text_matches(FunctionElement[bool]):  # noqa: N801 (named like the SQL it stands for)
    """SQL condition: a job's searchable text holds a LIKE pattern, case-insensitively.

    Built as ``job_text_matches(document_id, error_message, error_details,
    pattern)`` with ``pattern`` a LIKE pattern escaped with ``\\``. The
    searchable text is the document id, the error message and, in each
    error item (the listing rule of
    :func:`app.services.error_details.listed_errors`: an object's ``errors``
    array, or a bare array), the string ``message``, ``code``, ``pointer``,
    ``entity.type`` and ``entity.code`` (:data:`SEARCHED_ITEM_FIELDS`). A
    match never spans two of them. Compiled per backend:

    * PostgreSQL: ``search_text LIKE lower(pattern)``, the stored generated
      column of migration 0008 (``lower(job_search_text(document_id,
      error_message, error_details))``: the fields joined by U+001F, which
      no search term holds), served by its trigram GIN index
      ``ix_processing_jobs_search_text``;
    * SQLite: the same fields tested one by one, the items through
      ``json_each`` -- a scan. ``lower()`` folds ASCII letters only there.
    """

    type = sa.Boolean()
    name = "job_text_matches"
    inherit_cache = True


#: The string fields of an error item the search reads (``entity.type`` is
#: the ``type`` of the item's ``entity`` object). Keep migration 0008's
#: ``job_search_text`` in step.
SEARCHED_ITEM_FIELDS = ("message", "code", "pointer", "entity.type", "entity.code")


@compiles(job_text_matches, "postgresql")
def _text_matches_postgresql(element: job_text_matches, compiler: SQLCompiler, **kw: Any) -> str:
    document_id, _message, _details, pattern = element.clauses
    # The stored text of migration 0008, a column of the same table (or alias)
    # as document_id; not in the model, which SQLite shares.
    search_text = sa.sql.expression.ColumnClause("search_text", sa.Text, _selectable=document_id.table)
    # The column is stored lower-cased: LIKE lower(pattern) is ILIKE, without
    # lower-casing every candidate row again.
    return "(" + compiler.process(search_text.like(sa.func.lower(pattern), escape="\\"), **kw) + ")"


@compiles(job_text_matches, "sqlite")
def _text_matches_sqlite(element: job_text_matches, compiler: SQLCompiler, **kw: Any) -> str:
    document_id, message, details, pattern = element.clauses
    # The listing rule; CASE, not AND: SQLite does not promise to evaluate
    # AND left to right, and json_extract() raises on text that is no JSON object.
    items_json = sa.case(
        (sa.func.json_type(details) == "array", details),
        (sa.func.json_type(details) == "object",
         sa.case((sa.func.json_type(details, "$.errors") == "array", sa.func.json_extract(details, "$.errors")))),
    )
    item = sa.func.json_each(items_json).table_valued("value", "type").alias("search_item")

    def field(path: str) -> sa.ColumnElement[Any]:
        json_path = "$." + path
        return sa.case(
            (item.c.type == "object",
             sa.case((sa.func.json_type(item.c.value, json_path) == "text", sa.func.json_extract(item.c.value, json_path)))),
        )

    condition = sa.or_(
        document_id.ilike(pattern, escape="\\"),
        message.ilike(pattern, escape="\\"),
        sa.exists().select_from(item).where(
            sa.or_(*(field(path).ilike(pattern, escape="\\") for path in SEARCHED_ITEM_FIELDS))
        ),
    )
    # Parenthesised: SQLite's compiler may append "= 1" to a boolean function.
    return "(" + compiler.process(condition, **kw) + ")"


#: Fewest hex digits of a job id prefix the search treats as an id.
ID_PREFIX_MIN_DIGITS = 8
_ID_LIKE = re.compile(r"[0-9a-fA-F-]+\Z")


def id_prefix_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The ids a search term names when it is a job id or its prefix.

    ``text`` (hex digits and hyphens only, any case) with at least
    :data:`ID_PREFIX_MIN_DIGITS` and at most 32 hex digits, hyphens ignored
    -> the smallest and largest UUID starting with those digits; else
    ``None``. A range of the primary key, which both backends' indexes
    serve (PostgreSQL compares ``uuid`` bytes, SQLite the lower-case hex
    text: the same order).
    """
    if not _ID_LIKE.match(text):
        return None
    digits = text.replace("-", "").lower()
    if not ID_PREFIX_MIN_DIGITS <= len(digits) <= 32:
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape ``%``, ``_`` and the escape character for a LIKE pattern."""
    return (
        text.replace(escape, escape + escape).replace("%", escape + "%").replace("_", escape + "_")
    )


class ValueKind(Enum):
    """How a filter's query-string values are read (:mod:`app.web.query` has one reader per kind)."""

    #: Status names or worker words, repeatable or comma-separated; ``all``: every status.
    STATUSES = "statuses"
    #: One value of the field's :class:`~enum.StrEnum` (the type of its default).
    CHOICE = "choice"
    #: An RFC 3339 date-time with an offset, as aware UTC.
    TIME = "time"
    #: Text compared exactly (NUL and lone surrogates as stored: U+FFFD).
    EXACT = "exact"
    #: Text to look for, trimmed, at most ``MAX_SEARCH_LENGTH`` characters.
    SEARCH = "search"
    #: A failure-group id: ASCII digits, 1 to ``MAX_GROUP_ID``.
    GROUP_ID = "group_id"


#: A filter's SQL: ``(value, the whole filter, code_index)`` -> a condition,
#: or ``None`` for none. Called only for a value that is not ``None`` or ``()``.
Condition = Callable[[Any, "JobFilter", bool], "sa.ColumnElement[bool] | None"]


@dataclass(frozen=True)
class FilterSpec:
    """One filter: its query-string parameter, the kind of its value, its SQL."""

    parameter: str
    kind: ValueKind
    where: Condition


_SPEC = "job_filter"


def filter_field(parameter: str, kind: ValueKind, where: Condition, default: Any = None) -> Any:
    """Declare one :class:`JobFilter` field as a filter (a dataclass field with its :class:`FilterSpec`).

    Args:
        parameter: its name in query strings and forms (``q``, ``from``, ...).
        kind: how those values are read.
        where: its SQL condition.
        default: the value that filters nothing (``None``, ``()``, or the
            neutral member of a :class:`~enum.StrEnum`).
    """
    return field(default=default, metadata={_SPEC: FilterSpec(parameter, kind, where)})


def _equals(column: Any) -> Condition:
    return lambda value, _filter, _code_index: column == value


def _status_in(
    statuses: tuple[JobStatus, ...], _filter: JobFilter, _code_index: bool
) -> sa.ColumnElement[bool]:
    return ProcessingJob.status.in_([s.value for s in statuses])


def _finished_if_completed(
    time_field: TimeField, _filter: JobFilter, _code_index: bool
) -> sa.ColumnElement[bool] | None:
    return ProcessingJob.completed_at.is_not(None) if time_field is TimeField.COMPLETED else None


def _acknowledged(
    choice: AcknowledgedFilter, _filter: JobFilter, _code_index: bool
) -> sa.ColumnElement[bool] | None:
    if choice is AcknowledgedFilter.EXCLUDE:
        return ProcessingJob.acknowledged_at.is_(None)
    if choice is AcknowledgedFilter.ONLY:
        return ProcessingJob.acknowledged_at.is_not(None)
    return None


def _at_or_after(moment: datetime, job_filter: JobFilter, _code_index: bool) -> sa.ColumnElement[bool]:
    return job_filter.time_column >= moment


def _before(moment: datetime, job_filter: JobFilter, _code_index: bool) -> sa.ColumnElement[bool]:
    return job_filter.time_column < moment


def _has_error_code(code: str, _filter: JobFilter, code_index: bool) -> sa.ColumnElement[bool]:
    has_code = error_details_has_code if code_index else error_details_has_code_scanned
    probe = {"errors": [{"code": code}]}
    return has_code(ProcessingJob.error_details, sa.literal(code, sa.String), sa.literal(probe, JSONDocument))


def _search(_text: str, job_filter: JobFilter, _code_index: bool) -> sa.ColumnElement[bool]:
    return job_filter.text_condition()


def _failing_on_group(group_id: int, _filter: JobFilter, _code_index: bool) -> sa.ColumnElement[bool]:
    # Served by the partial index (group_id, job_id) WHERE is_current.
    current = sa.select(FailureOccurrence.job_id).where(
        FailureOccurrence.group_id == group_id, FailureOccurrence.is_current.is_(True)
    )
    return ProcessingJob.id.in_(current)


@dataclass(frozen=True)
class JobFilter:
    """Which jobs to list, count or export: one field per filter.

    Attributes (query-string parameter in brackets):
        statuses (``status``): keep jobs in any of these statuses; empty means all.
        time_field (``time_field``): the timestamp ``time_from``/``time_to``
            bound and that listings are ordered by. ``completed`` keeps only
            jobs that have finished (``completed_at`` set).
        acknowledged (``acknowledged``): leave out, keep, or keep only
            acknowledged jobs.
        time_from (``from``): keep jobs whose time is at or after this (aware UTC), or ``None``.
        time_to (``to``): keep jobs whose time is before this (exclusive), or ``None``.
        error_code (``error_code``): keep jobs whose error-details envelope
            has an item with this ``code`` (any position in ``errors``), or ``None``.
        text (``q``): the search, or ``None``: keep jobs whose id starts
            with it (:func:`id_prefix_range`: 8 to 32 hex digits) or whose
            searchable text holds it (:class:`job_text_matches`: document
            id, error message, and each error item's message, code, pointer
            and entity type and code), case-insensitively. Matched
            literally: ``%``, ``_`` and ``\\`` are not wildcards.
        document_id (``document_id``): exact document id, or ``None``.
        job_type (``job_type``): exact job type, or ``None``.
        group_id (``group``): keep jobs whose current failure is in this
            failure group (``failure_occurrences.is_current``), or ``None``.
            A requeued or completed job is no longer failing on its groups.

    The fields' order is the order the query is read in (a 400 names the bad
    parameters in it) and the order of the conditions.
    """

    statuses: tuple[JobStatus, ...] = filter_field("status", ValueKind.STATUSES, _status_in, ())
    time_field: TimeField = filter_field(
        "time_field", ValueKind.CHOICE, _finished_if_completed, TimeField.CREATED
    )
    acknowledged: AcknowledgedFilter = filter_field(
        "acknowledged", ValueKind.CHOICE, _acknowledged, AcknowledgedFilter.INCLUDE
    )
    time_from: datetime | None = filter_field("from", ValueKind.TIME, _at_or_after)
    time_to: datetime | None = filter_field("to", ValueKind.TIME, _before)
    error_code: str | None = filter_field("error_code", ValueKind.SEARCH, _has_error_code)
    text: str | None = filter_field("q", ValueKind.SEARCH, _search)
    document_id: str | None = filter_field("document_id", ValueKind.EXACT, _equals(ProcessingJob.document_id))
    job_type: str | None = filter_field("job_type", ValueKind.EXACT, _equals(ProcessingJob.job_type))
    group_id: int | None = filter_field("group", ValueKind.GROUP_ID, _failing_on_group)

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
        """SQL conditions for this filter (backend-neutral expressions), one per set filter.

        ``code_index=False`` writes the ``error_code`` condition so that
        PostgreSQL does not use its GIN index
        (:class:`error_details_has_code_scanned`), for statements a time range
        already narrows.
        """
        conditions: list[sa.ColumnElement[bool]] = []
        for name, spec, _default in FILTERS:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            condition = spec.where(value, self, code_index)
            if condition is not None:
                conditions.append(condition)
        return conditions

    def text_condition(self) -> sa.ColumnElement[bool]:
        """The SQL condition of :attr:`text` (see there); requires it to be set."""
        assert self.text is not None
        matches: sa.ColumnElement[bool] = job_text_matches(
            ProcessingJob.document_id,
            ProcessingJob.error_message,
            ProcessingJob.error_details,
            sa.literal(f"%{escape_like(self.text)}%", sa.Text),
        )
        ids = id_prefix_range(self.text)
        if ids is not None:
            matches = sa.or_(ProcessingJob.id.between(*ids), matches)
        return matches


#: Every filter of :class:`JobFilter`, in order: ``(field name, spec, default)``.
FILTERS: tuple[tuple[str, FilterSpec, Any], ...] = tuple(
    (f.name, f.metadata[_SPEC], f.default) for f in fields(JobFilter)
)
