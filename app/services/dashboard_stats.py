"""Aggregates for the dashboard: counts per status, top error codes, failures over time.

Each aggregate describes the *filter*, not the page: none of them looks at
``cursor`` or ``limit``. Each is exact at any scale for every filter built
from status, time range, job type, acknowledged, and error code or group
(docs/summary-counts.md):

* without a document, document-prefix or search condition, from the
  write-time rollups (:mod:`app.services.summary_counts`); except which
  codes the jobs of an error-code or group filter have in all (the top
  codes of those filters): that reads at most
  :data:`~app.services.top_codes.CODES_SCAN_LIMIT` jobs;
* with a document, document-prefix or search (``q``) condition, or both a
  group and an error code
  (:func:`~app.services.summary_counts.rollup_covers`), over at most a
  fixed number of the newest matching jobs (in the listing's order, through
  the same indexes, :mod:`app.services.bounded_scan`), saying when more
  jobs match than it read (``capped``): exact up to that number, a lower
  bound above, and the page says so.

* :func:`status_counts` -- ``GROUP BY status`` over the filter **without its
  status condition** (the counts are there to choose statuses).
* :func:`~app.services.top_codes.top_error_codes` -- in how many jobs each
  error-details item ``code`` appears (:mod:`app.services.top_codes`).
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

import sqlalchemy as sa

from app.extensions import db
from app.models import JobStatus, ProcessingJob
from app.models.job_rollup import Grain
from app.models.job_status import FAILURE_STATUSES
from app.models.types import utcnow
from app.read_snapshot import read_snapshot
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
from app.services.bounded_scan import bounded_scan
from app.services.processing_jobs.job_filter import JobFilter
from app.services.summary_counts import rollup_covers, status_rows, time_rows
from app.services.top_codes import TopCodes, top_error_codes

#: Most jobs :func:`status_counts` and :func:`failures_over_time` read
#: for a filter with a document, document-prefix or search condition (or
#: a group and an error code); the others are counted exactly from the rollups.
#: Measured at 1,000,000 jobs (docs/benchmarks.md): 100,000 cost ~63 ms a
#: page view, 20,000 ~10-22 ms; the page says when a count stopped here.
COUNT_SCAN_LIMIT = 10_000
#: Most filters whose summaries are kept by :func:`summarize`'s cache.
CACHE_ENTRIES = 256


@dataclass(frozen=True)
class StatusCounts:
    """Jobs per status for a filter without its status condition.

    Attributes:
        counts: every :class:`JobStatus`, in declaration order, to its count
            (0 included).
        scanned: jobs counted.
        capped: more jobs match than the scan limit: older jobs were not
            counted, so the counts are lower bounds. Never for a filter
            the rollups cover.
    """

    counts: dict[JobStatus, int]
    scanned: int
    capped: bool


@dataclass(frozen=True)
class DashboardStats:
    """Everything :func:`summarize` computes for one filter.

    Attributes:
        counted_at: when it was computed (aware UTC): a cached summary is
            as old as this says, and the page shows it.
    """

    status_counts: StatusCounts
    top_codes: TopCodes
    timeline: Timeline
    counted_at: datetime


_cache: OrderedDict[tuple[str, JobFilter], tuple[float, DashboardStats]] = OrderedDict()
_cache_lock = threading.Lock()


def summarize(
    job_filter: JobFilter, *, now: datetime | None = None, ttl: float = 0, refresh: bool = False
) -> DashboardStats:
    """The three aggregates of the dashboard for ``job_filter``.

    Read inside :func:`~app.read_snapshot.read_snapshot`: in a GET request
    (and always on SQLite) the three count one state of the data.

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
    now = now or utcnow()
    # One snapshot where it can be had: the three cards then count the same
    # jobs, and a partial hour may be counted as its hour less the rest.
    with read_snapshot():
        stats = DashboardStats(
            status_counts=status_counts(job_filter),
            top_codes=top_error_codes(job_filter),
            timeline=failures_over_time(job_filter, now=now),
            counted_at=now,
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


def status_counts(job_filter: JobFilter, *, scan_limit: int = COUNT_SCAN_LIMIT) -> StatusCounts:
    """Count jobs per status: the filter without its statuses, ``GROUP BY status``.

    Exact from the rollups, except with a document, document-prefix or
    search condition, or a group and an error code: then reads at most
    ``scan_limit`` of the newest matching jobs. Ignores the cursor
    (describes the filter, not the page).
    """
    broad = job_filter.without_statuses()
    capped = False
    if rollup_covers(broad):
        found = status_rows(broad)
    else:
        scan = bounded_scan(broad, [ProcessingJob.status], scan_limit)
        rows = db.session.execute(
            sa.select(scan.jobs.c.status, sa.func.count(), scan.seen).group_by(scan.jobs.c.status)
        ).all()
        found = {status: count for status, count, _seen in rows}
        capped = scan.capped_in(rows)
    counts = {status: found.get(status.value, 0) for status in JobStatus}
    return StatusCounts(counts=counts, scanned=sum(found.values()), capped=capped)


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
    window = (ProcessingJob.status.in_([s.value for s in statuses]), column >= start, column < end)
    # code_index=False: the window is the narrow part; a common code's GIN bitmap cost 42 ms here.
    scan = bounded_scan(job_filter, [column.label("at")], limit, *window, code_index=False)
    label_format = LABEL_FORMATS[dialect][size]
    if dialect == "postgresql":
        label = sa.func.to_char(sa.func.timezone("UTC", scan.jobs.c.at), label_format)
    else:
        label = sa.func.strftime(label_format, scan.jobs.c.at)
    rows = db.session.execute(sa.select(label.label("bucket"), sa.func.count(), scan.seen).group_by(label)).all()
    found = {bucket: count for bucket, count, _seen in rows}
    buckets = [Bucket(k, found.get(bucket_label(k, size), 0)) for k in keys]
    return Timeline(size, start, end, buckets, clipped=clipped, statuses=statuses, capped=scan.capped_in(rows))
