"""Aggregates for the dashboard: counts per status, top error codes, failures over time.

Each aggregate describes the *filter*, not the page: none of them looks at
``cursor`` or ``limit``. Each is exact at any scale for every filter built
from status, time range, job type, acknowledged, and error code or group
(docs/summary-counts.md):

* without a document, document-prefix or search condition, from the
  write-time rollups (:mod:`app.services.summary_counts`); except which
  codes the jobs of an error-code or group filter have in all (the top
  codes of those filters): that reads at most :data:`CODES_SCAN_LIMIT` jobs;
* with a document, document-prefix or search (``q``) condition, or both a
  group and an error code
  (:func:`~app.services.summary_counts.rollup_covers`), over at most a
  fixed number of the newest matching jobs (in the listing's order, through
  the same indexes), saying when it stopped there (``capped``): exact below
  that number, a lower bound above, and the page says so.

* :func:`status_counts` -- ``GROUP BY status`` over the filter **without its
  status condition** (the counts are there to choose statuses).
* :func:`top_error_codes` -- in how many jobs each error-details item
  ``code`` appears (a job counts once per code), as an error and as a
  warning apart, and how many codes there are in all;
  ``jsonb_array_elements`` on PostgreSQL and ``json_each`` on SQLite.
* :func:`failures_over_time` -- failures (the filter's statuses that are
  failure statuses) per hour or per day of the filter's time field, in UTC,
  in the buckets of :mod:`app.services.chart_buckets`.

Times are aware UTC. Read-only: the functions commit nothing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from app.extensions import db
from app.models import JobStatus, ProcessingJob
from app.models.job_rollup import Grain
from app.models.job_status import FAILURE_STATUSES
from app.models.types import utcnow
from app.services.chart_buckets import (
    FAILURES_SHOWN,
    LABEL_FORMATS,
    Bucket,
    BucketSize,
    Timeline,
    bucket_label,
    chart_window,
    floor_to_bucket,
)
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.pagination import newest_first
from app.services.summary_counts import code_rows, rollup_covers, status_rows, time_rows

#: Most jobs :func:`status_counts` and :func:`failures_over_time` read
#: for a filter with a document, document-prefix or search condition (or
#: a group and an error code); the others are counted exactly from the rollups.
#: Measured at 1,000,000 jobs (docs/benchmarks.md): 100,000 cost ~63 ms a
#: page view, 20,000 ~10-22 ms; the page says when a count stopped here.
COUNT_SCAN_LIMIT = 10_000
#: Most jobs :func:`top_error_codes` reads for a filter with a search, a
#: group or an error code (it unpacks each one's JSON:
#: 23-32 ms for 5,000 at 1,000,000 jobs). 2,000 jobs rank the common codes
#: the same; the page says the table covers the newest N.
CODES_SCAN_LIMIT = 2_000
#: Most filters whose summaries are kept by :func:`summarize`'s cache.
CACHE_ENTRIES = 256
#: Rows of the top-codes table.
TOP_CODES = 10


@dataclass(frozen=True)
class StatusCounts:
    """Jobs per status for a filter without its status condition.

    Attributes:
        counts: every :class:`JobStatus`, in declaration order, to its count
            (0 included).
        scanned: jobs counted.
        capped: ``scanned`` reached the scan limit: older jobs were not
            counted, so the counts are lower bounds. Never for a filter
            the rollups cover.
    """

    counts: dict[JobStatus, int]
    scanned: int
    capped: bool


@dataclass(frozen=True)
class CodeCount:
    """One row of the top-codes table: ``code`` appears in ``jobs`` jobs.

    Attributes:
        code: the items' ``code``.
        jobs: jobs with at least one item of this code, whatever its severity.
        errors: jobs with an item of this code that is an error: severity
            ``fatal``, ``error`` or none (the rule of the job page's count,
            :class:`app.dashboard.jinja_filters.ErrorCount`).
        warnings: jobs with an item of this code of severity ``warning``.
            A job with both counts in both; ``information`` items in neither.
    """

    code: str
    jobs: int
    errors: int = 0
    warnings: int = 0


@dataclass(frozen=True)
class TopCodes:
    """The most frequent error codes, most jobs first (ties by code, code-point order).

    Attributes:
        codes: at most :data:`TOP_CODES` rows.
        scanned: jobs read (newest first) by a bounded scan; 0 when the
            codes come from the rollups.
        capped: the scan limit was reached; older jobs were not read.
        distinct: how many codes the jobs read have in all (``len(codes)``
            or more).
    """

    codes: list[CodeCount]
    scanned: int
    capped: bool
    distinct: int = 0

    @property
    def more(self) -> int:
        """Codes found but not in :attr:`codes` (the page's "+N more")."""
        return max(self.distinct - len(self.codes), 0)


@dataclass(frozen=True)
class DashboardStats:
    """Everything :func:`summarize` computes for one filter."""

    status_counts: StatusCounts
    top_codes: TopCodes
    timeline: Timeline


_cache: OrderedDict[tuple[str, JobFilter], tuple[float, DashboardStats]] = OrderedDict()
_cache_lock = threading.Lock()


def summarize(
    job_filter: JobFilter, *, now: datetime | None = None, ttl: float = 0, refresh: bool = False
) -> DashboardStats:
    """The three aggregates of the dashboard for ``job_filter``.

    Args:
        job_filter: the page's filter (its cursor and limit do not matter).
        now: the current time (aware); default :func:`~app.models.types.utcnow`.
        ttl: seconds a summary may be reused for the same filter and
            database (0: always computed). Paging through a filter then costs
            the list query only; the figures are at most ``ttl`` old.
        refresh: compute even when a summary is cached, and cache the new one
            (an operator who has just acted, app/dashboard/views.py).
    """
    key = (str(db.engine.url), job_filter)
    if ttl > 0 and not refresh:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < ttl:
                _cache.move_to_end(key)
                return hit[1]
    stats = DashboardStats(
        status_counts=status_counts(job_filter),
        top_codes=top_error_codes(job_filter),
        timeline=failures_over_time(job_filter, now=now),
    )
    if ttl > 0:
        with _cache_lock:
            _cache[key] = (time.monotonic(), stats)
            _cache.move_to_end(key)
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    return stats


def forget_summaries() -> None:
    """Drop every summary :func:`summarize` keeps (this process's cache).

    Called after an operator's own action, so the page they are sent back
    to counts it; other changes (workers' reports, other processes' actions)
    show within the TTL.
    """
    with _cache_lock:
        _cache.clear()


def _newest(
    job_filter: JobFilter, columns: list[Any], scan_limit: int | None, *extra: Any, code_index: bool = True
) -> sa.Subquery:
    """The newest ``scan_limit`` jobs of the filter (all of them for
    ``None``), in listing order, as a subquery (``code_index``: see
    :meth:`JobFilter.where`)."""
    statement = sa.select(*columns).where(*job_filter.where(code_index=code_index), *extra)
    if scan_limit is not None:
        statement = statement.order_by(*newest_first(job_filter)).limit(scan_limit)
    return statement.subquery("newest")


def status_counts(job_filter: JobFilter, *, scan_limit: int = COUNT_SCAN_LIMIT) -> StatusCounts:
    """Count jobs per status: the filter without its statuses, ``GROUP BY status``.

    Exact from the rollups, except with a document, document-prefix or
    search condition, or a group and an error code: then reads at most
    ``scan_limit`` of the newest matching jobs. Ignores the cursor
    (describes the filter, not the page).
    """
    broad = job_filter.without_statuses()
    if rollup_covers(broad):
        found = status_rows(broad)
        limit: int | None = None
    else:
        limit = scan_limit
        newest = _newest(broad, [ProcessingJob.status], limit)
        rows = db.session.execute(
            sa.select(newest.c.status, sa.func.count()).group_by(newest.c.status)
        ).all()
        found = {status: count for status, count in rows}
    counts = {status: found.get(status.value, 0) for status in JobStatus}
    scanned = sum(found.values())
    return StatusCounts(counts=counts, scanned=scanned, capped=limit is not None and scanned >= limit)


def top_error_codes(
    job_filter: JobFilter, *, limit: int = TOP_CODES, scan_limit: int = CODES_SCAN_LIMIT
) -> TopCodes:
    """The error codes found in the most jobs of the filter.

    A code counts once per job however many of its items carry it, and once
    more per severity kind in ``errors`` and ``warnings``
    (:class:`CodeCount`). Only string ``code`` values of object items of an
    ``errors`` array count (the error-details v1 envelope; free-form details
    that happen to have that shape count too). ``distinct`` counts every
    code found, shown or not. Exact from the rollups for a filter without a
    search, document, group or error code; for those, reads at most
    ``scan_limit`` of the newest matching jobs. Ignores the cursor.
    """
    totals: dict[str, list[int]] = {}

    def add(rows: list[tuple[str, int, int, int]]) -> None:
        for code, jobs, errors, warnings in rows:
            total = totals.setdefault(code, [0, 0, 0])
            total[0] += jobs
            total[1] += errors
            total[2] += warnings

    scanned = 0
    capped = False
    if rollup_covers(job_filter) and job_filter.error_code is None and job_filter.group_id is None:
        rollup, edges = code_rows(job_filter)
        add(rollup)
        for edge in edges:  # an hour at most each
            add(_scanned_code_rows(edge, None)[0])
    else:
        rows, scanned = _scanned_code_rows(job_filter, scan_limit)
        add(rows)
        capped = scanned >= scan_limit
    # Most jobs first, ties in code-point order (Python's str order).
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    return TopCodes(
        codes=[CodeCount(code=code, jobs=j, errors=e, warnings=w) for code, (j, e, w) in ranked[:limit]],
        scanned=scanned,
        capped=capped,
        distinct=len(ranked),
    )


def _scanned_code_rows(job_filter: JobFilter, scan_limit: int | None) -> tuple[list[tuple[str, int, int, int]], int]:
    """``(code, jobs, errors, warnings)`` of every code in the newest
    ``scan_limit`` jobs of the filter (all for ``None``), read from their
    details; and how many jobs were read."""
    dialect = db.session.get_bind().dialect.name
    details = (
        sa.type_coerce(ProcessingJob.error_details, JSONB) if dialect == "postgresql" else ProcessingJob.error_details
    )
    newest = _newest(
        job_filter,
        [ProcessingJob.id.label("job_id"), details.label("details")],
        scan_limit,
    )
    scanned = db.session.execute(sa.select(sa.func.count()).select_from(newest)).scalar_one()
    if dialect == "postgresql":
        errors = newest.c.details.op("->")("errors")
        # jsonb_array_elements() raises on anything but an array.
        array = sa.case(
            (sa.func.jsonb_typeof(errors) == "array", errors), else_=sa.cast(sa.literal("[]"), JSONB)
        )
        item = sa.func.jsonb_array_elements(array).table_valued("value").lateral("item")
        code = item.c.value.op("->>")("code")
        severity: Any = item.c.value.op("->>")("severity")
        is_code = sa.func.jsonb_typeof(item.c.value.op("->")("code")) == "string"
        source = newest.join(item, sa.true())
    else:
        item = sa.func.json_each(newest.c.details, "$.errors").table_valued("value", "type").alias("item")
        # Nested CASE: json_type() raises on an item that is not JSON text,
        # and only CASE fixes the order of evaluation in SQLite.
        code = sa.case(
            (item.c.type == "object",
             sa.case((sa.func.json_type(item.c.value, "$.code") == "text",
                      sa.func.json_extract(item.c.value, "$.code")))),
        )
        is_code = sa.and_(sa.func.json_type(newest.c.details, "$.errors") == "array", code.is_not(None))
        severity = sa.case((item.c.type == "object", sa.func.json_extract(item.c.value, "$.severity")))
        source = newest.join(item, sa.true())
    # One row per job, code and kind of severity: each counts a job once.
    kind = sa.case((severity == "warning", "warning"), (severity == "information", "information"), else_="error")
    triples = (
        sa.select(newest.c.job_id, code.label("code"), kind.label("kind"))
        .select_from(source)
        .where(is_code)
        .distinct()
        .subquery("triples")
    )
    jobs = sa.func.count(sa.distinct(triples.c.job_id)).label("jobs")
    errors = sa.func.count(sa.case((triples.c.kind == "error", 1))).label("errors")
    warnings = sa.func.count(sa.case((triples.c.kind == "warning", 1))).label("warnings")
    rows = db.session.execute(
        sa.select(triples.c.code, jobs, errors, warnings).group_by(triples.c.code)
    ).all()
    return [(row.code, row.jobs, row.errors, row.warnings) for row in rows], scanned


def failures_over_time(
    job_filter: JobFilter, *, now: datetime | None = None, scan_limit: int = COUNT_SCAN_LIMIT
) -> Timeline:
    """Failures of the filter per hour or day of its time field (UTC).

    Counts the filter's jobs in a failure status (its statuses that are
    failures; with no status condition, every failure status) whose time
    falls in the window of :func:`chart_window`. Exact from the rollups,
    except with a document, document-prefix or search condition, or a
    group and an error code: then reads at most ``scan_limit`` of the newest such jobs.
    Ignores the cursor.
    """
    now = now or utcnow()
    size, start, end, clipped = chart_window(job_filter, now)
    statuses = tuple(s for s in (job_filter.statuses or FAILURES_SHOWN) if s in FAILURE_STATUSES)
    keys = []
    moment = start
    while moment < end:
        keys.append(moment)
        moment += size.width
    if not keys or not statuses:
        return Timeline(size, start, end, [Bucket(k, 0) for k in keys], clipped=clipped, statuses=statuses)
    if rollup_covers(job_filter):
        found: dict[str, int] = {}
        coarsest = Grain.DAY if size is BucketSize.DAY else Grain.HOUR
        for moment, count in time_rows(job_filter, statuses, start, end, coarsest=coarsest).items():
            label = bucket_label(floor_to_bucket(moment, size), size)
            found[label] = found.get(label, 0) + count
        buckets = [Bucket(k, found.get(bucket_label(k, size), 0)) for k in keys]
        return Timeline(size, start, end, buckets, clipped=clipped, statuses=statuses)
    limit = scan_limit
    dialect = db.session.get_bind().dialect.name
    column = job_filter.time_column
    newest = _newest(
        job_filter,
        [column.label("at")],
        limit,
        ProcessingJob.status.in_([s.value for s in statuses]),
        column >= start,
        column < end,
        code_index=False,  # the window is the narrow part: a common code's GIN bitmap cost 42 ms here
    )
    label_format = LABEL_FORMATS[dialect][size]
    if dialect == "postgresql":
        label = sa.func.to_char(sa.func.timezone("UTC", newest.c.at), label_format)
    else:
        label = sa.func.strftime(label_format, newest.c.at)
    rows = db.session.execute(sa.select(label.label("bucket"), sa.func.count()).group_by(label)).all()
    found = {bucket: count for bucket, count in rows}
    buckets = [Bucket(k, found.get(bucket_label(k, size), 0)) for k in keys]
    scanned = sum(found.values())
    return Timeline(
        size, start, end, buckets, clipped=clipped, capped=limit is not None and scanned >= limit, statuses=statuses
    )
