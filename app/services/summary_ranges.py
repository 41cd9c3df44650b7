"""The time of a /jobs summary range, split into what the rollups count and what the jobs do.

A range ``[from, to)`` of the filter's time field is counted as whole
buckets of the rollups (weeks, days, hours, or all time) and at most a few
partial hours ("edges") read from ``processing_jobs``; in one snapshot a
mostly covered partial week, day or hour is its whole less the rest
(:func:`plan_range`). Bucket numbers count whole weeks, days or hours since
1970-01-01T00:00Z, as the rollups' ``created_bucket``/``finished_bucket``
do. Times are aware UTC. docs/summary-counts.md explains the design.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.models.job_rollup import COARSE_TO_FINE, Grain
from app.read_snapshot import reads_one_snapshot

#: A span of time: ``[start, end)``, either side ``None`` for unbounded.
Span = tuple[datetime | None, datetime | None]


#: Whole buckets ``[first, end)`` at a grain, either side ``None`` for unbounded.
Part = tuple[Grain, int | None, int | None]


#: Where the rollups' buckets are counted from.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def bucket_number(moment: datetime, grain: Grain) -> int:
    """Whole weeks, days or hours from 1970-01-01T00:00Z to the one holding
    ``moment`` (the rollups' ``created_bucket``/``finished_bucket``).

    Exact to the microsecond and floored (a moment before 1970 is in a
    negative bucket), in integer arithmetic: a float timestamp loses the
    microseconds of dates after about 2300, and ``int()`` of a negative one
    rounds toward zero."""
    return (moment - EPOCH) // timedelta(seconds=grain.seconds)


def bucket_start(number: int, grain: Grain) -> datetime:
    """The start (aware UTC) of the bucket :func:`bucket_number` numbers ``number``."""
    return EPOCH + timedelta(seconds=number * grain.seconds)


def _on_boundary(moment: datetime, grain: Grain) -> bool:
    return (moment - EPOCH) % timedelta(seconds=grain.seconds) == timedelta(0)


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
    return _joined(signed_parts), edges


def _joined(parts: list[SignedPart]) -> list[SignedPart]:
    """``parts`` with each part that starts where an earlier one of its
    grain and sign ends (or ends where one starts) joined to it: fewer
    conditions to build and for the database to test, the same rows."""
    joined: list[SignedPart] = []
    for (grain, first, end), sign in parts:
        for index, ((other_grain, other_first, other_end), other_sign) in enumerate(joined):
            if other_grain is not grain or other_sign != sign:
                continue
            if first is not None and other_end == first:
                joined[index] = ((grain, other_first, end), sign)
                break
            if end is not None and other_first == end:
                joined[index] = ((grain, first, other_end), sign)
                break
        else:
            joined.append(((grain, first, end), sign))
    return joined


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
