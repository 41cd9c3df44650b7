"""The dashboard chart's buckets: hour or day buckets over a window, in UTC.

Pure time arithmetic (no database): which window a job filter's chart
covers, how wide its buckets are, and how a bucket is labelled, the same way
on both backends. :func:`app.services.dashboard_stats.failures_over_time`
fills the buckets; the chart templates draw them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from app.models import JobStatus
from app.models.types import iso_date
from app.models.job_status import FAILURE_STATUSES
from app.services.processing_jobs.job_filter import JobFilter

#: Chart window when the filter has no ``from``: this long before its end.
DEFAULT_CHART_WINDOW = timedelta(hours=24)
#: Longest window drawn with hourly buckets; longer ones are drawn per day.
HOURLY_UP_TO = timedelta(hours=48)
#: Most daily buckets; a longer range is drawn for its last this-many days.
MAX_DAILY_BUCKETS = 92

#: Failure statuses in the order they are shown.
FAILURES_SHOWN = tuple(s for s in JobStatus if s in FAILURE_STATUSES)


class BucketSize(StrEnum):
    """Width of one chart bucket."""

    HOUR = "hour"
    DAY = "day"

    @property
    def width(self) -> timedelta:
        """The bucket's length."""
        return timedelta(hours=1) if self is BucketSize.HOUR else timedelta(days=1)


@dataclass(frozen=True)
class Bucket:
    """Failures whose time falls in ``[start, start + size)`` (UTC)."""

    start: datetime
    count: int


@dataclass(frozen=True)
class Timeline:
    """Failures per bucket over a window, oldest bucket first.

    Attributes:
        size: hour or day buckets.
        start: the first bucket's start (UTC, on a bucket boundary).
        end: the last bucket's end (exclusive).
        buckets: one per bucket in the window, zeros included.
        clipped: the filter's range was longer than the chart draws; only
            its last :data:`MAX_DAILY_BUCKETS` days are shown.
        capped: more failures match than the scan limit; older ones were not counted.
        statuses: the failure statuses counted (empty: the filter selects no
            failure status, and every bucket is 0).
    """

    size: BucketSize
    start: datetime
    end: datetime
    buckets: list[Bucket]
    clipped: bool = False
    capped: bool = False
    statuses: tuple[JobStatus, ...] = field(default=FAILURES_SHOWN)

    @property
    def total(self) -> int:
        """Failures in the window."""
        return sum(b.count for b in self.buckets)


def chart_window(job_filter: JobFilter, now: datetime) -> tuple[BucketSize, datetime, datetime, bool]:
    """Choose the chart's buckets and window for a filter.

    The window is ``[from, to)`` of the filter, with a missing ``to`` (or
    one in the future) read as ``now`` and a missing ``from`` as
    :data:`DEFAULT_CHART_WINDOW` before the end. Up to :data:`HOURLY_UP_TO`
    long it is drawn per hour, else per day, at most
    :data:`MAX_DAILY_BUCKETS` days (the last ones). Edges are widened to
    bucket boundaries (UTC).

    Returns:
        ``(size, start, end, clipped)``; ``start == end`` when the range
        lies wholly in the future.
    """
    end = min(job_filter.time_to, now) if job_filter.time_to is not None else now
    start = job_filter.time_from if job_filter.time_from is not None else end - DEFAULT_CHART_WINDOW
    if start >= end:
        return BucketSize.HOUR, start, start, False
    size = BucketSize.HOUR if end - start <= HOURLY_UP_TO else BucketSize.DAY
    start, end = floor_to_bucket(start, size), ceil_to_bucket(end, size)
    clipped = False
    if size is BucketSize.DAY and end - start > timedelta(days=MAX_DAILY_BUCKETS):
        start, clipped = end - timedelta(days=MAX_DAILY_BUCKETS), True
    return size, start, end, clipped


def floor_to_bucket(moment: datetime, size: BucketSize) -> datetime:
    """The start (UTC) of the hour or day bucket holding ``moment``."""
    moment = moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if size is BucketSize.DAY else moment


def ceil_to_bucket(moment: datetime, size: BucketSize) -> datetime:
    """The first bucket boundary (UTC) at or after ``moment``."""
    floor = floor_to_bucket(moment, size)
    return floor if floor == moment else floor + size.width


#: Text label of a bucket, the same on both backends (UTC).
LABEL_FORMATS = {
    "postgresql": {BucketSize.HOUR: 'YYYY-MM-DD"T"HH24', BucketSize.DAY: "YYYY-MM-DD"},
    "sqlite": {BucketSize.HOUR: "%Y-%m-%dT%H", BucketSize.DAY: "%Y-%m-%d"},
}


def bucket_label(moment: datetime, size: BucketSize) -> str:
    """The bucket's text label, as :data:`LABEL_FORMATS` makes it in SQL (UTC)."""
    # The format's %Y by hand: glibc's strftime does not pad years before 1000.
    return f"{iso_date(moment)}T{moment:%H}" if size is BucketSize.HOUR else iso_date(moment)
