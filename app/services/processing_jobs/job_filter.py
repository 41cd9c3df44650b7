"""The one job filter (:class:`JobFilter`), a table of filters and the SQL they become.

:class:`JobFilter` feeds the dashboard, the exports, the JSON list, the
stats and the bulk actions. Each of its fields is one filter, declared with
:func:`filter_field`: its query-string parameter, the kind of value it
takes (which :mod:`app.web.query` reads for every blueprint), and its SQL
condition. Adding a filter is adding one field; :meth:`JobFilter.where`
and the query-string readers go through the table. The SQL is
backend-neutral (the ``error_code`` and search conditions compile per
backend: :mod:`app.services.processing_jobs.filter_sql`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from enum import Enum, StrEnum
from typing import Any

import sqlalchemy as sa

from app.models import FailureOccurrence, JobStatus, ProcessingJob
from app.models.types import JSONDocument
from app.services.processing_jobs.filter_sql import (
    error_details_has_code,
    error_details_has_code_scanned,
    escape_like,
    id_prefix_range,
    job_text_matches,
    text_starts_with,
)


class TimeField(StrEnum):
    """Which timestamp ``from``/``to`` bound and the listing is ordered by."""

    CREATED = "created"
    COMPLETED = "completed"


class AcknowledgedFilter(StrEnum):
    """What to do with acknowledged failures (``acknowledged_at IS NOT NULL``)."""

    EXCLUDE = "exclude"
    INCLUDE = "include"
    ONLY = "only"


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


def _starts_with(column: Any) -> Condition:
    return lambda value, _filter, _code_index: text_starts_with(
        column, sa.literal(value, sa.Text), sa.literal(escape_like(value) + "%", sa.Text)
    )


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
        FailureOccurrence.group_id == group_id, FailureOccurrence.is_current
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
        document_prefix (``document_id_prefix``): keep jobs whose document
            id starts with this (case-sensitive, literal: ``%`` and ``_``
            are not wildcards; :class:`text_starts_with`), or ``None``.
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
    # Exact, not trimmed: a code is compared as stored, so the top-codes
    # card's link of a code sent with spaces around it finds its jobs.
    error_code: str | None = filter_field("error_code", ValueKind.EXACT, _has_error_code)
    text: str | None = filter_field("q", ValueKind.SEARCH, _search)
    document_id: str | None = filter_field("document_id", ValueKind.EXACT, _equals(ProcessingJob.document_id))
    document_prefix: str | None = filter_field("document_id_prefix", ValueKind.EXACT, _starts_with(ProcessingJob.document_id))
    job_type: str | None = filter_field("job_type", ValueKind.EXACT, _equals(ProcessingJob.job_type))
    group_id: int | None = filter_field("group", ValueKind.GROUP_ID, _failing_on_group)

    @property
    def time_column(self) -> sa.orm.InstrumentedAttribute[Any]:
        """The column :attr:`time_field` names (``created_at`` or ``completed_at``)."""
        if self.time_field is TimeField.COMPLETED:
            return ProcessingJob.completed_at
        return ProcessingJob.created_at

    def applied(self) -> dict[str, list[str]]:
        """What this filter applies, as query parameters (the
        :class:`JobFilter` attributes' names) with canonical values: the
        statuses by name (``["all"]`` for none), ``acknowledged`` always,
        ``time_field`` when it changes something (``completed``, or a time
        bound), times as RFC 3339 UTC (``...Z``), the rest as given; unset
        filters left out. An export's audit row records this, not the raw
        query, so it lists the defaults applied and never a value the
        filter dropped (an empty or blank ``q``, a repeat)."""
        applied: dict[str, list[str]] = {}
        bounded = self.time_from is not None or self.time_to is not None
        for name, spec, default in FILTERS:
            value = getattr(self, name)
            if spec.kind is ValueKind.STATUSES:
                applied[spec.parameter] = [status.value for status in value] or ["all"]
            elif value is None or (name == "time_field" and value == default and not bounded):
                continue
            elif spec.kind is ValueKind.TIME:
                applied[spec.parameter] = [value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")]
            else:
                applied[spec.parameter] = [str(value.value if isinstance(value, Enum) else value)]
        return applied

    def failure_only_parameters(self) -> list[str]:
        """The query parameters set here that only a failed job can match:
        ``error_code`` and ``group`` (a completed job has no current
        failure) and ``acknowledged=only`` (a completed job is never
        acknowledged). With any of them a list of completed jobs, such as
        the entities export, is always empty."""
        failure_only = (
            ("error_code", self.error_code is not None),
            ("group", self.group_id is not None),
            ("acknowledged", self.acknowledged is AcknowledgedFilter.ONLY),
        )
        return [parameter for parameter, given in failure_only if given]

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
            ProcessingJob.id,
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
