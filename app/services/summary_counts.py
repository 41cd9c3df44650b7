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
is its whole less the rest instead (:func:`plan_range`).
docs/summary-counts.md explains the design and what it costs.

:func:`rollup_covers` says whether a filter can be counted so. Times are
aware UTC; read-only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import JobStatus, ProcessingJob
from app.models.job_rollup import (
    COARSE_TO_FINE,
    NOT_FINISHED,
    Grain,
    JobCodePairRollup,
    JobCodeRollup,
    JobCountRollup,
    JobGroupCodeRollup,
    JobGroupRollup,
)
from app.read_snapshot import reads_one_snapshot
from app.services.processing_jobs.job_filter import FILTERS, AcknowledgedFilter, JobFilter, TimeField

#: A span of time: ``[start, end)``, either side ``None`` for unbounded.
Span = tuple[datetime | None, datetime | None]


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


#: Whole buckets ``[first, end)`` at a grain, either side ``None`` for unbounded.
Part = tuple[Grain, int | None, int | None]


def bucket_number(moment: datetime, grain: Grain) -> int:
    """Whole days or hours from 1970-01-01T00:00Z to the one holding
    ``moment`` (the rollups' ``created_bucket``/``finished_bucket``)."""
    return int(moment.astimezone(timezone.utc).timestamp()) // grain.seconds


def bucket_start(number: int, grain: Grain) -> datetime:
    """The start (aware UTC) of the day or hour :func:`bucket_number` numbers ``number``."""
    return datetime.fromtimestamp(number * grain.seconds, timezone.utc)


def _on_boundary(moment: datetime, grain: Grain) -> bool:
    return int(moment.timestamp()) % grain.seconds == 0 and moment.microsecond == 0


def _whole(time_from: datetime | None, time_to: datetime | None, grain: Grain) -> tuple[Part | None, list[Span]]:
    first = None if time_from is None else bucket_number(time_from, grain) + (not _on_boundary(time_from, grain))
    end = None if time_to is None else bucket_number(time_to, grain)
    if first is not None and end is not None and first >= end:
        return None, [(time_from, time_to)]
    rest: list[Span] = []
    if time_from is not None and not _on_boundary(time_from, grain):
        rest.append((time_from, bucket_start(first, grain)))  # type: ignore[arg-type]
    if time_to is not None and not _on_boundary(time_to, grain):
        rest.append((bucket_start(end, grain), time_to))  # type: ignore[arg-type]
    return (grain, first, end), rest


def split_range(
    time_from: datetime | None, time_to: datetime | None, *, coarsest: Grain = Grain.DAY
) -> tuple[list[Part], list[Span]]:
    """Split ``[time_from, time_to)`` into rollup parts and partial-hour edges.

    No bound at all is the all-time part. Otherwise the whole weeks inside
    (``coarsest=Grain.WEEK``; only the code rollup has them), the whole
    days of what they leave (``coarsest=Grain.DAY`` or coarser), the whole
    hours of what those leave, and the edges: at most two spans, each
    within one hour, to count from the jobs.

    Returns:
        ``(parts, edges)``.
    """
    if time_from is None and time_to is None:
        return [(Grain.ALL, None, None)], []
    parts: list[Part] = []
    spans: list[Span] = [(time_from, time_to)]
    for grain in COARSE_TO_FINE[COARSE_TO_FINE.index(coarsest):]:
        left: list[Span] = []
        for start, end in spans:
            part, rest = _whole(start, end, grain)
            if part is not None:
                parts.append(part)
            left.extend(rest)
        spans = left
    return parts, spans


#: Jobs to count from ``processing_jobs``: those of a span (both bounds
#: set), added (``1``) or taken away (``-1``).
Edge = tuple[Span, int]

#: Rollup rows of a part, added (``1``) or taken away (``-1``).
SignedPart = tuple[Part, int]

#: In one snapshot, how much of a week, day or hour a partial one must
#: cover (more than this share) to be counted as its whole less the rest:
#: reading the rest is then cheaper than reading what it covers. At
#: 10,000,000 jobs a week of the code rollup is about 4,900 rows, a day
#: 1,850 and an hour 390 (docs/benchmarks.md): a day less its rest reads
#: fewer rows than its hours from about 15 hours on, a week less its rest
#: fewer than its days from about 5 days on. An hour's rest is jobs, about
#: 12 times as many as its rows: half of it was chosen so no edge reads
#: more than half an hour of jobs.
WHOLE_LESS_REST_SHARE = {Grain.WEEK: 2 / 3, Grain.DAY: 2 / 3, Grain.HOUR: 1 / 2}


def plan_range(
    time_from: datetime | None, time_to: datetime | None, *, coarsest: Grain = Grain.DAY
) -> tuple[list[SignedPart], list[Edge]]:
    """:func:`split_range`, with each partial week, day or hour counted the cheaper way.

    Inside :func:`~app.read_snapshot.read_snapshot` (every read sees the
    same state), a partial week, day or hour covering more than its
    :data:`WHOLE_LESS_REST_SHARE` is its whole rollup rows less the rest of
    it (the rest planned the same way, its signs turned), so no edge reads
    more than half an hour of jobs. Outside one, each read sees the commits
    made before it: a whole and its rest could disagree about a job that
    changed in between, so every part is added and the partial hours are
    read as they are.

    Returns:
        ``(parts, edges)``, each with its sign. No two parts share a
        rollup row (the rest of a partial bucket is read at finer grains).
    """
    if not reads_one_snapshot() or (time_from is None and time_to is None):
        parts, spans = split_range(time_from, time_to, coarsest=coarsest)
        return [(part, 1) for part in parts], [(span, 1) for span in spans]
    signed_parts: list[SignedPart] = []
    edges: list[Edge] = []
    _plan_signed(time_from, time_to, COARSE_TO_FINE[COARSE_TO_FINE.index(coarsest):], 1, signed_parts, edges)
    return signed_parts, edges


def _plan_signed(
    time_from: datetime | None, time_to: datetime | None, grains: tuple[Grain, ...], sign: int,
    parts: list[SignedPart], edges: list[Edge],
) -> None:
    """Add ``[time_from, time_to)``'s parts and edges, signed ``sign``, to
    ``parts`` and ``edges``: its whole buckets of ``grains[0]``, then each
    partial one as its whole less the rest or as its finer grains."""
    if not grains:
        edges.append(((time_from, time_to), sign))
        return
    grain, finer = grains[0], grains[1:]
    part, rest = _whole(time_from, time_to, grain)
    if part is not None:
        parts.append((part, sign))
    for start, end in _within_buckets(rest, grain):
        number = bucket_number(start, grain)
        bucket_from, bucket_to = bucket_start(number, grain), bucket_start(number + 1, grain)
        if end - start <= (bucket_to - bucket_from) * WHOLE_LESS_REST_SHARE[grain]:
            _plan_signed(start, end, finer, sign, parts, edges)
            continue
        parts.append(((grain, number, number + 1), sign))
        for a, b in ((bucket_from, start), (end, bucket_to)):
            if a < b:
                _plan_signed(a, b, finer, -sign, parts, edges)


def _within_buckets(spans: list[Span], grain: Grain) -> list[tuple[datetime, datetime]]:
    """``spans`` (bounded, as :func:`_whole` leaves them) cut at every
    boundary of ``grain``: a span with no whole bucket inside may cross one."""
    pieces: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        assert start is not None and end is not None
        while start < end:
            boundary = min(end, bucket_start(bucket_number(start, grain) + 1, grain))
            pieces.append((start, boundary))
            start = boundary
    return pieces


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


def _edge_filters(job_filter: JobFilter, edges: list[Edge]) -> list[tuple[JobFilter, int]]:
    return [(replace(job_filter, time_from=start, time_to=end), sign) for (start, end), sign in edges]


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
    jobs' details (:func:`plan_range`).

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
    return found, _edge_filters(job_filter, edges)
