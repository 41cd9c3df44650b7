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

from dataclasses import replace
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


def _bucket_range(bucket: Any, part: Part) -> Any:
    """The rows of one part of its grain: its buckets of the filter's time field."""
    _grain, first, end = part
    bounds = []
    if first is not None:
        bounds.append(bucket >= first)
    if end is not None:
        bounds.append(bucket < end)
    return sa.and_(*bounds) if bounds else sa.true()


def _filter_conditions(model: Any, job_filter: JobFilter) -> list[Any]:
    """Conditions on a rollup model's table for the filter's non-time
    fields. A code filter applies to the table's ``error_code_column``
    (the pair rollup's ``filter_code``; elsewhere ``code``)."""
    columns = model.__table__.c  # Core columns: the ORM's cost more to build conditions with
    conditions: list[Any] = []
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


def _rollup_rows(model: Any, job_filter: JobFilter, parts: list[SignedPart], *names: str) -> Any:
    """The rows of ``parts`` that meet the filter's other conditions, as a
    subquery of the columns ``names`` (``"bucket"``: the filter's time
    field's) and ``jobs``, negated in the parts taken away.

    One branch per grain and sign, joined by ``UNION ALL``: each reads one
    partition (PostgreSQL) with only its own bucket ranges to test, and
    signs no row. One ``OR`` of every part's ranges, with the sign a
    ``CASE`` over the parts taken away, made PostgreSQL test every range
    and the ``CASE`` on each row of each partition: at 10,000,000 jobs
    the 28-day top codes took 25 ms instead of 15 (docs/benchmarks.md,
    session 23). One statement still, one round trip."""
    columns = model.__table__.c
    bucket = _bucket_column(columns, job_filter)
    keys = [bucket.label("bucket") if name == "bucket" else columns[name] for name in names]
    filters = _filter_conditions(model, job_filter)
    branches = []
    for grain, sign in dict.fromkeys((part[0], sign) for part, sign in parts):
        ranges = [_bucket_range(bucket, part) for part, other in parts if part[0] is grain and other == sign]
        jobs = columns.jobs if sign > 0 else -columns.jobs
        branches.append(
            sa.select(*keys, jobs.label("jobs")).where(columns.grain == int(grain), sa.or_(*ranges), *filters)
        )
    return (branches[0] if len(branches) == 1 else sa.union_all(*branches)).subquery("parts")


def _table(job_filter: JobFilter) -> Any:
    # A job appears once per code in the code rollup, and once per current
    # group in the group rollup: only with that condition is it one row per job.
    if job_filter.group_id is not None:
        return JobGroupRollup
    return JobCodeRollup if job_filter.error_code is not None else JobCountRollup


def _edge_filters(job_filter: JobFilter, edges: list[Edge]) -> list[tuple[JobFilter, int]]:
    # One statement per edge: at 10,000,000 jobs a card's edges read in one
    # statement (their spans joined by OR, each job signed) took longer than
    # two, each an index range scan (docs/benchmarks.md, session 23).
    return [(replace(job_filter, time_from=start, time_to=end), sign) for (start, end), sign in edges]


def status_rows(job_filter: JobFilter) -> dict[str, int]:
    """Exact jobs per status (stored status text -> count) for a filter
    :func:`rollup_covers`; its statuses apply (pass ``without_statuses()``
    for the summary's counts)."""
    parts, edges = plan_range(job_filter.time_from, job_filter.time_to)
    found: dict[str, int] = {}
    model = _table(job_filter)
    if parts:
        rows_read = _rollup_rows(model, job_filter, parts, "status")
        rows = read_rows(sa.select(rows_read.c.status, _sum(rows_read.c.jobs)).group_by(rows_read.c.status))
        for status, count in rows:
            found[status] = found.get(status, 0) + int(count)
    for edge, sign in _edge_filters(job_filter, edges):
        rows = read_rows(
            sa.select(ProcessingJob.status, sa.func.count())
            .where(*edge.where(code_index=False))  # an hour at most (half in a snapshot): the time index is narrower
            .group_by(ProcessingJob.status)
        )
        for status, count in rows:
            found[status] = found.get(status, 0) + sign * int(count)
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
    if parts:
        rows_read = _rollup_rows(model, narrowed, parts, "grain", "bucket")
        rows = read_rows(
            sa.select(rows_read.c.grain, rows_read.c.bucket, _sum(rows_read.c.jobs))
            .group_by(rows_read.c.grain, rows_read.c.bucket)
        )
        for grain, number, count in rows:
            key = bucket_start(number, Grain(grain))
            found[key] = found.get(key, 0) + int(count)
    for edge, sign in _edge_filters(narrowed, edges):
        assert edge.time_from is not None
        count = read_rows(sa.select(sa.func.count()).select_from(ProcessingJob).where(*edge.where(code_index=False)))[0][0]
        if count:
            key = edge.time_from.replace(minute=0, second=0, microsecond=0)
            found[key] = found.get(key, 0) + sign * count
    return {key: count for key, count in found.items() if count}


def code_rows(job_filter: JobFilter) -> tuple[list[tuple[str, int, int, int]], list[tuple[JobFilter, int]]]:
    """Exact ``(code, jobs, errors, warnings)`` of every code from the
    rollups' whole weeks, days and hours (or all time), for a filter
    :func:`rollup_covers`; and the edge filters whose jobs the caller must
    add (sign ``1``) or take away (``-1``): their codes are read from the
    jobs' details (:func:`~app.services.summary_ranges.plan_range`).

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
        rows_read = _rollup_rows(model, job_filter, parts, "code", "has_error", "has_warning")
        jobs = _sum(rows_read.c.jobs)
        errors = _sum(sa.case((rows_read.c.has_error.is_(True), rows_read.c.jobs), else_=0))
        warnings = _sum(sa.case((rows_read.c.has_warning.is_(True), rows_read.c.jobs), else_=0))
        # The tables list different codes (the pair rollup never the filter's own): no code twice.
        found.extend(read_rows(
            sa.select(rows_read.c.code, jobs, errors, warnings).group_by(rows_read.c.code).having(jobs > 0)
        ))
    return found, _edge_filters(job_filter, edges)
