"""Failure groups' occurrences over time, from the hourly and daily rollups.

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
from app.models.failure_group import FailureGroupDaily, FailureGroupHourly
from app.services.failure_groups.daily import day_of, rolled_through


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


def sparkline_series(
    group_ids: Sequence[int], now: datetime, *, days: int = 14, through: datetime | None = None
) -> dict[int, tuple[list[int], list[int]]]:
    """For each group, ``(hourly, daily)``: occurrences in each of the last
    24 hours (oldest first, the current hour last) and in each of the last
    ``days`` UTC days (oldest first, today so far last).

    The same figures as :func:`hourly_occurrences` summed by hour and by UTC
    day, but the closed days come from ``failure_group_daily`` (one row per
    group and day, :mod:`app.services.failure_groups.daily`) and only the
    hours of the last 24 hours and of days not rolled up yet from the
    sharded hourly rows: a page of 50 big groups reads at most 700 daily
    rows and about 1,200 (group, hour) sums instead of 85,000 shard rows
    (docs/benchmarks.md, "Failure-group pages"). ``through``: the
    caller's read of :func:`app.services.failure_groups.daily.rolled_through`
    (read here when not given).
    """
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first_hour = this_hour - timedelta(hours=23)
    first_day = day_of(now) - timedelta(days=days - 1)
    series = {group_id: ([0] * 24, [0] * days) for group_id in group_ids}
    if not series:
        return series
    ids = list(series)
    # Days before `through` are rolled up; later ones are summed from hours.
    through = min(max(through or rolled_through() or first_day, first_day), day_of(now) + timedelta(days=1))
    first_day_s, first_hour_s, through_s = (int(at.timestamp()) for at in (first_day, first_hour, through))
    if through > first_day:
        rows = db.session.execute(
            sa.select(FailureGroupDaily.group_id, _epoch(FailureGroupDaily.day), FailureGroupDaily.occurrences).where(
                FailureGroupDaily.group_id.in_(ids), FailureGroupDaily.day >= first_day, FailureGroupDaily.day < through
            )
        )
        for group_id, seconds, count in rows:
            series[group_id][1][(int(seconds) - first_day_s) // 86400] += int(count)
    rows = db.session.execute(
        sa.select(FailureGroupHourly.group_id, _epoch(FailureGroupHourly.hour), sa.func.sum(FailureGroupHourly.occurrences))
        .where(
            FailureGroupHourly.group_id.in_(ids),
            FailureGroupHourly.hour >= min(first_hour, through),
            FailureGroupHourly.hour < now,
        )
        .group_by(FailureGroupHourly.group_id, FailureGroupHourly.hour)
    )
    for group_id, raw, count in rows:
        hourly, daily = series[group_id]
        seconds = int(raw)
        if seconds >= first_hour_s:
            hourly[(seconds - first_hour_s) // 3600] += int(count)
        if seconds >= through_s:
            daily[(seconds - first_day_s) // 86400] += int(count)
    return series


def _epoch(column: sa.ColumnElement[datetime]) -> sa.ColumnElement[int]:
    """Unix seconds of a timestamp column (cheaper to read back than an aware datetime)."""
    return sa.cast(sa.extract("epoch", column), sa.BigInteger)
