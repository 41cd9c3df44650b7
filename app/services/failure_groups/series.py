"""Failure groups' occurrences over time, from the hourly rollups.

``failure_group_hourly`` holds, per group, hour (UTC) and counter shard, the
occurrences recorded in that hour, written in the recorder's transaction
(:mod:`app.services.failure_groups.write_statements`): these reads are exact
and never scan occurrences. Hours are whole UTC hours; series are oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models.failure_group import FailureGroupHourly


def hourly_occurrences(group_ids: Sequence[int], since: datetime, until: datetime) -> dict[int, list[int]]:
    """Occurrences per hour, for each group: one count per hour from
    ``since`` (floored to the hour, UTC) up to ``until`` (exclusive)."""
    start = since.replace(minute=0, second=0, microsecond=0)
    hours = max(0, int((until - start).total_seconds() // 3600) + (1 if (until - start).total_seconds() % 3600 else 0))
    series = {group_id: [0] * hours for group_id in group_ids}
    if not series or not hours:
        return series
    # The hour comes back as Unix seconds, not a datetime: a page of 50 big
    # groups reads about 17,000 (group, hour) rows, and converting each hour
    # to an aware datetime cost more than the query (docs/benchmarks.md,
    # "Failure-group pages").
    epoch = sa.cast(sa.extract("epoch", FailureGroupHourly.hour), sa.BigInteger)
    rows = db.session.execute(
        sa.select(FailureGroupHourly.group_id, epoch, sa.func.sum(FailureGroupHourly.occurrences))
        .where(
            FailureGroupHourly.group_id.in_(list(series)),
            FailureGroupHourly.hour >= start,
            FailureGroupHourly.hour < until,
        )
        .group_by(FailureGroupHourly.group_id, FailureGroupHourly.hour)
    )
    start_seconds = int(start.timestamp())
    for group_id, seconds, count in rows:
        index = (int(seconds) - start_seconds) // 3600
        if 0 <= index < hours:
            series[group_id][index] = int(count)
    return series


def sparkline_series(group_ids: Sequence[int], now: datetime, *, days: int = 14) -> dict[int, tuple[list[int], list[int]]]:
    """For each group, ``(hourly, daily)``: occurrences in each of the last
    24 hours (oldest first, the current hour last) and in each of the last
    ``days`` 24-hour periods ending with the current hour (oldest first).

    The same figures as :func:`hourly_occurrences` over ``days * 24`` hours
    cut into the last 24 and into days, but summed by the database: a page
    of 50 big groups gets about 1,900 rows instead of 17,000
    (docs/benchmarks.md, "Failure-group pages").
    """
    hours = days * 24
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    series = {group_id: ([0] * 24, [0] * days) for group_id in group_ids}
    if not series:
        return series
    # First the shards of each hour (in index order: no sort), then the
    # hours into buckets: the bucket's arithmetic runs once per hour, not
    # once per shard row.
    per_hour = (
        sa.select(
            FailureGroupHourly.group_id,
            FailureGroupHourly.hour,
            sa.func.sum(FailureGroupHourly.occurrences).label("occurrences"),
        )
        .where(
            FailureGroupHourly.group_id.in_(list(series)),
            FailureGroupHourly.hour >= start,
            FailureGroupHourly.hour < now,
        )
        .group_by(FailureGroupHourly.group_id, FailureGroupHourly.hour)
        .subquery("per_hour")
    )
    index = (sa.cast(sa.extract("epoch", per_hour.c.hour), sa.BigInteger) - int(start.timestamp())) // 3600
    # The last 24 hours by hour (n >= 0), older ones by day (-1 - day).
    bucket = sa.case((index >= hours - 24, index), else_=-1 - index // 24)
    rows = db.session.execute(
        sa.select(per_hour.c.group_id, bucket, sa.func.sum(per_hour.c.occurrences)).group_by(per_hour.c.group_id, bucket)
    )
    for group_id, raw, count in rows:
        hourly, daily = series[group_id]
        position = int(raw)
        if position >= 0:
            hourly[position - (hours - 24)] += int(count)
            daily[-1] += int(count)
        else:
            daily[-1 - position] += int(count)
    return series
