"""Exact counts for the /jobs summary from the write-time rollups.

The rollups (:mod:`app.models.job_rollup`, kept by triggers) hold jobs per
grain (all time, week, day, hour), bucket of creation and of completion,
status, job type, acknowledged, and error code or failure group. A filter
made of those (``status``, ``time_field`` with ``from``/``to``,
``job_type``, ``acknowledged``, and ``error_code`` or ``group``) is counted
here exactly at any scale: no range from the all-time rows; a range's whole
weeks from the code rollup's week rows (the top codes without a code or
group filter), its whole days from the day rows, the whole hours of what
they leave from the hour rows, and the partial hours at either edge (at
most one hour each) from ``processing_jobs`` through its time indexes,
added together; in one snapshot a mostly covered partial week, day or hour
is its whole less the rest instead (:mod:`app.services.summary_ranges`
plans a range so). docs/summary-counts.md explains the design and what it costs.

:func:`rollup_covers` says whether a filter can be counted so. Times are
aware UTC; read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import JobStatus, ProcessingJob
from app.models.job_rollup import (
    NOT_FINISHED,
    Grain,
    JobCodePairRollup,
    JobCodeRollup,
    JobCountRollup,
    JobGroupCodeRollup,
    JobGroupRollup,
)
from app.services.processing_jobs.job_filter import FILTERS, AcknowledgedFilter, JobFilter, TimeField
from app.services.summary_ranges import Edge, Part, SignedPart, bucket_start, plan_range


#: The :class:`JobFilter` fields the rollups' keys hold. Any other field set
#: (a search, a document, a document prefix, or one added later) means the
#: rollups cannot count the filter: it is scanned, and the page says so.
ROLLUP_FIELDS = frozenset(
    {"statuses", "time_field", "acknowledged", "time_from", "time_to", "error_code", "job_type", "group_id"}
)


def rollup_covers(job_filter: JobFilter) -> bool:
    """Whether :func:`status_rows`, :func:`time_rows` and :func:`code_rows`
    can count ``job_filter`` exactly: it sets no field outside
    :data:`ROLLUP_FIELDS`, and not both a group and an error code (no
    rollup is keyed by both)."""
    for name, _spec, default in FILTERS:
        if name not in ROLLUP_FIELDS and getattr(job_filter, name) != default:
            return False
    return job_filter.group_id is None or job_filter.error_code is None


def read_rows(statement: Any) -> list[Any]:
    """The rows (Core ``Row`` tuples) of a read of the summary, through the
    session's connection (its snapshot) but not the ORM: at 10,000,000 jobs
    the code rollup's 2,000 rows a request cost 8 ms in the ORM's row
    loading alone."""
    return db.session.connection().execute(statement).all()


def _sum(column: Any) -> Any:
    # bigint, not PostgreSQL's numeric sum(bigint): psycopg makes a Decimal of each.
    return sa.cast(sa.func.sum(column), sa.BigInteger)


def _bucket_column(columns: Any, job_filter: JobFilter) -> Any:
    return columns.finished_bucket if job_filter.time_field is TimeField.COMPLETED else columns.created_bucket


def _part_condition(columns: Any, job_filter: JobFilter, part: Part) -> Any:
    """The rows of one part: its grain's, in its buckets of the filter's time field."""
    grain, first, end = part
    bucket = _bucket_column(columns, job_filter)
    bounds = [columns.grain == int(grain)]
    if first is not None:
        bounds.append(bucket >= first)
    if end is not None:
        bounds.append(bucket < end)
    return sa.and_(*bounds)


def _signed(columns: Any, job_filter: JobFilter, parts: list[SignedPart], value: Any) -> Any:
    """``value``, negated in the rows of the parts taken away (:func:`plan_range`)."""
    taken = [_part_condition(columns, job_filter, part) for part, sign in parts if sign < 0]
    return sa.case((sa.or_(*taken), -value), else_=value) if taken else value


def _rollup_where(model: Any, job_filter: JobFilter, parts: list[SignedPart]) -> list[Any]:
    """Conditions on a rollup model's table for the filter's non-time fields and any of ``parts``.

    One statement reads every part (their conditions joined by ``OR``;
    PostgreSQL still reads only the grains' partitions named): one round
    trip, and the sums come back added (with :func:`_signed`, the parts
    taken away subtracted). A code filter applies to the table's
    ``error_code_column`` (the pair rollup's ``filter_code``; elsewhere
    ``code``)."""
    columns = model.__table__.c  # Core columns: the ORM's cost more to build conditions with
    ranges = [_part_condition(columns, job_filter, part) for part, _sign in parts]
    conditions: list[Any] = [sa.or_(*ranges)]
    if job_filter.time_field is TimeField.COMPLETED:
        conditions.append(columns.finished_bucket != NOT_FINISHED)
    if job_filter.statuses:
        conditions.append(columns.status.in_([s.value for s in job_filter.statuses]))
    if job_filter.job_type is not None:
        conditions.append(columns.job_type == job_filter.job_type)
    if job_filter.acknowledged is AcknowledgedFilter.EXCLUDE:
        conditions.append(columns.acknowledged.is_(False))
    elif job_filter.acknowledged is AcknowledgedFilter.ONLY:
        conditions.append(columns.acknowledged.is_(True))
    if job_filter.error_code is not None:
        conditions.append(columns[model.error_code_column] == job_filter.error_code)
    if job_filter.group_id is not None:
        conditions.append(columns.group_id == job_filter.group_id)
    return conditions


def _table(job_filter: JobFilter) -> Any:
    # A job appears once per code in the code rollup, and once per current
    # group in the group rollup: only with that condition is it one row per job.
    if job_filter.group_id is not None:
        return JobGroupRollup
    return JobCodeRollup if job_filter.error_code is not None else JobCountRollup


@dataclass(frozen=True)
class EdgeScan:
    """The jobs of a range's edges (:func:`plan_range`), read in one statement.

    Attributes:
        job_filter: the filter without its time bounds; its conditions
            apply (with ``code_index=False``: an edge is half an hour at
            most, so the time index is the narrower).
        spans: one condition per edge, in order: the job's time in its span.
            The spans do not overlap.
        signs: each edge's sign, ``1`` (added) or ``-1`` (taken away).
    """

    job_filter: JobFilter
    spans: tuple[Any, ...]
    signs: tuple[int, ...]

    @property
    def within(self) -> Any:
        """The condition that a job is in one of the edges."""
        return sa.or_(*self.spans)

    @property
    def sign(self) -> Any:
        """A job's sign (an SQL integer), by the edge it is in; 0 outside them."""
        cases = ((span, sa.literal(sign)) for span, sign in zip(self.spans, self.signs))
        return sa.case(*cases, else_=sa.literal(0))

    def where(self) -> list[Any]:
        """The filter's conditions and :attr:`within`."""
        return [*self.job_filter.where(code_index=False), self.within]


def edge_scan(job_filter: JobFilter, edges: list[Edge]) -> EdgeScan | None:
    """The :class:`EdgeScan` of ``job_filter``'s ``edges``; ``None`` without any."""
    if not edges:
        return None
    column = job_filter.time_column
    return EdgeScan(
        job_filter=replace(job_filter, time_from=None, time_to=None),
        spans=tuple(sa.and_(column >= start, column < end) for (start, end), _sign in edges),
        signs=tuple(sign for _span, sign in edges),
    )


def status_rows(job_filter: JobFilter) -> dict[str, int]:
    """Exact jobs per status (stored status text -> count) for a filter
    :func:`rollup_covers`; its statuses apply (pass ``without_statuses()``
    for the summary's counts)."""
    parts, edges = plan_range(job_filter.time_from, job_filter.time_to)
    found: dict[str, int] = {}
    model = _table(job_filter)
    columns = model.__table__.c
    if parts:
        rows = read_rows(
            sa.select(columns.status, _sum(_signed(columns, job_filter, parts, columns.jobs)))
            .where(*_rollup_where(model, job_filter, parts))
            .group_by(columns.status)
        )
        for status, count in rows:
            found[status] = found.get(status, 0) + int(count)
    scan = edge_scan(job_filter, edges)
    if scan is not None:
        rows = read_rows(
            sa.select(ProcessingJob.status, sa.func.sum(scan.sign))
            .where(*scan.where())
            .group_by(ProcessingJob.status)
        )
        for status, count in rows:
            found[status] = found.get(status, 0) + int(count)
    return {status: count for status, count in found.items() if count}


def time_rows(
    job_filter: JobFilter, statuses: tuple[JobStatus, ...], start: datetime, end: datetime, *, coarsest: Grain
) -> dict[datetime, int]:
    """Exact jobs of ``statuses`` per day or hour of the filter's time field,
    in ``[start, end)`` and the filter's own range: the start (aware UTC)
    of a day (only with ``coarsest=Grain.DAY``) or an hour -> count, none
    with 0. For a filter :func:`rollup_covers`; the caller puts them in its
    buckets (no bucket narrower than ``coarsest``)."""
    time_from = max(start, job_filter.time_from) if job_filter.time_from is not None else start
    time_to = min(end, job_filter.time_to) if job_filter.time_to is not None else end
    narrowed = replace(job_filter, statuses=statuses, time_from=time_from, time_to=time_to)
    found: dict[datetime, int] = {}
    if time_from >= time_to:
        return found
    parts, edges = plan_range(time_from, time_to, coarsest=coarsest)
    model = _table(narrowed)
    columns = model.__table__.c
    bucket = _bucket_column(columns, narrowed)
    if parts:
        rows = read_rows(
            sa.select(columns.grain, bucket, _sum(_signed(columns, narrowed, parts, columns.jobs)))
            .where(*_rollup_where(model, narrowed, parts))
            .group_by(columns.grain, bucket)
        )
        for grain, number, count in rows:
            key = bucket_start(number, Grain(grain))
            found[key] = found.get(key, 0) + int(count)
    scan = edge_scan(narrowed, edges)
    if scan is not None:
        # One count per edge, each put in the hour it starts in.
        counts = read_rows(
            sa.select(*(sa.func.count(sa.case((span, 1))) for span in scan.spans))
            .select_from(ProcessingJob)
            .where(*scan.where())
        )[0]
        for ((start, _end), sign), count in zip(edges, counts):
            if count:
                key = start.replace(minute=0, second=0, microsecond=0)
                found[key] = found.get(key, 0) + sign * count
    return {key: count for key, count in found.items() if count}


def code_rows(job_filter: JobFilter) -> tuple[list[tuple[str, int, int, int]], EdgeScan | None]:
    """Exact ``(code, jobs, errors, warnings)`` of every code from the
    rollups' whole weeks, days and hours (or all time), for a filter
    :func:`rollup_covers`; and the :class:`EdgeScan` of the jobs whose
    codes the caller must add or take away, read from their details
    (:func:`plan_range`), or ``None``.

    The other codes of the jobs of an ``error_code`` come from the pair
    rollup and that code's own count from the code rollup; the codes of the
    jobs currently failing on a ``group`` from the group-code rollup; the
    others from the code rollup (migrations 0015 and 0022).
    """
    assert rollup_covers(job_filter)
    tables: tuple[Any, ...]
    if job_filter.group_id is not None:
        tables = (JobGroupCodeRollup,)
    elif job_filter.error_code is not None:
        # The other codes of the code's jobs, and the code itself (the pair
        # rollup holds no pair of a code with itself).
        tables = (JobCodePairRollup, JobCodeRollup)
    else:
        tables = (JobCodeRollup,)
    # Only the code rollup has weeks: without a code or a group filter, a
    # range's every code of every day is the most any summary reads.
    coarsest = Grain.WEEK if all(Grain.WEEK in table.grains for table in tables) else Grain.DAY
    parts, edges = plan_range(job_filter.time_from, job_filter.time_to, coarsest=coarsest)
    found: list[tuple[str, int, int, int]] = []
    for model in tables if parts else ():
        columns = model.__table__.c
        signed = _signed(columns, job_filter, parts, columns.jobs)
        jobs = _sum(signed)
        errors = _sum(sa.case((columns.has_error.is_(True), signed), else_=0))
        warnings = _sum(sa.case((columns.has_warning.is_(True), signed), else_=0))
        # The tables list different codes (the pair rollup never the filter's own): no code twice.
        found.extend(read_rows(
            sa.select(columns.code, jobs, errors, warnings)
            .where(*_rollup_where(model, job_filter, parts))
            .group_by(columns.code)
            .having(jobs > 0)
        ))
    return found, edge_scan(job_filter, edges)
