"""Failure groups' occurrences per UTC day, rolled up once the day is over.

The list page's 14-day sparklines summed up to 16 counter shards per hour
of ``failure_group_hourly``: about 85,000 rows for 50 groups at 1,000,000
jobs, 60-130 ms of SQL (docs/benchmarks.md, "Failure-group pages"). A closed
day is summed once into ``failure_group_daily`` (one row per group and day),
so 14 days of 50 groups read at most 700 rows; today is still read from the
hours.

Nothing is added to the recorder's hot path: the recorder only ever writes
the hour of its own clock (``recorded_at`` is the server's ``now``), which
is always after :func:`closed_through`. The days are rolled up by
:func:`roll_up_closed_days`, run once a day by the bulk worker's periodic
task (:func:`app.services.bulk_queue.roll_up_days`, PostgreSQL) and by
``flask groups roll-up-days``; the pages only read. ``failure_group_daily_state.rolled_through`` says which days
are in the table; the reads take later days from the hours, so they are
exact whatever the roll-up's lag. The backfill (``flask groups
backfill|regroup``), which adds to hours in the past, adds to the closed
days' rows in the same transaction (:func:`add_to_closed_days`).

Concurrency on PostgreSQL: the roll-up holds the state row ``FOR UPDATE``
and the backfill ``FOR SHARE`` while it writes, so a day is never summed
while a backfill transaction still adds to its hours unseen. SQLite has one
writer at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models.failure_group import FailureGroupDaily, FailureGroupDailyState, FailureGroupHourly
from app.services.failure_groups.write_statements import dialect_insert
from app.unit_of_work import require_write_transaction, write_transaction

DAY = timedelta(days=1)
#: How long after midnight (UTC) a day is taken as closed: a recorder's
#: transaction that read its clock before midnight has long committed by
#: then (its ``recorded_at`` is the transaction's ``now``).
CLOSE_AFTER = timedelta(hours=1)
#: The state table's one row.
_STATE_ID = 1


def day_of(at: datetime) -> datetime:
    """The UTC midnight starting the day of ``at`` (aware, UTC)."""
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def closed_through(now: datetime) -> datetime:
    """The UTC midnight before which every day is closed at ``now``."""
    return day_of(now - CLOSE_AFTER)


def rolled_through(*, lock: bool = False) -> datetime | None:
    """The UTC midnight before which the days are in ``failure_group_daily``
    (``None``: none are). ``lock`` holds the state row ``FOR SHARE`` until
    the transaction ends (PostgreSQL; SQLite's writer holds the database)."""
    statement = sa.select(FailureGroupDailyState.rolled_through).where(FailureGroupDailyState.id == _STATE_ID)
    if lock:
        statement = statement.with_for_update(read=True)
    return db.session.scalar(statement)


def roll_up_closed_days(now: datetime) -> int:
    """Sum the hours of every closed day not rolled up yet into
    ``failure_group_daily`` and move ``rolled_through`` to
    :func:`closed_through` of ``now``; one transaction. Returns the days
    summed (0 when there were none: safe to call at any time, by several
    processes at once)."""
    target = closed_through(now)
    with write_transaction():
        first = _first_hourly_day()
        start = target if first is None else min(first, target)
        # The row exists from migration 0016; a schema built without it
        # (create_all) gets it here, from the oldest hour on.
        db.session.execute(
            dialect_insert(FailureGroupDailyState.__table__)
            .values(id=_STATE_ID, rolled_through=start)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        through = db.session.scalar(
            sa.select(FailureGroupDailyState.rolled_through)
            .where(FailureGroupDailyState.id == _STATE_ID)
            .with_for_update()
        )
        if through >= target:
            return 0
        days = _sum_days(through, target)
        db.session.execute(
            sa.update(FailureGroupDailyState).where(FailureGroupDailyState.id == _STATE_ID).values(rolled_through=target)
        )
    return days


def rebuild_closed_days() -> int:
    """Sum again every day already rolled up, from the hours (for scripts
    that rewrite the hourly rows' times, such as demo/seed_history.py).
    Returns the days summed."""
    with write_transaction():
        through = db.session.scalar(
            sa.select(FailureGroupDailyState.rolled_through)
            .where(FailureGroupDailyState.id == _STATE_ID)
            .with_for_update()
        )
        if through is None:
            return 0
        starts = [day for day in (_first_hourly_day(), db.session.scalar(sa.select(sa.func.min(FailureGroupDaily.day))))
                  if day is not None]
        return _sum_days(min(starts), through) if starts else 0


def add_to_closed_days(hourly: Mapping[tuple[int, datetime], int]) -> None:
    """Add occurrences just added to hours of closed, rolled-up days to
    those days' rows (``hourly``: ``(group_id, hour) -> occurrences``; hours
    of later days are left to the roll-up). Inside the writer's
    transaction, which it keeps from racing a roll-up (module doc).

    Raises:
        RuntimeError: outside a write transaction.
    """
    require_write_transaction()
    through = rolled_through(lock=True)
    if through is None:
        return
    days: dict[tuple[int, datetime], int] = defaultdict(int)
    for (group_id, hour), count in hourly.items():
        if hour < through:
            days[(group_id, day_of(hour))] += count
    if not days:
        return
    table = FailureGroupDaily.__table__
    statement = dialect_insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["group_id", "day"],
        set_={"occurrences": table.c.occurrences + statement.excluded.occurrences},
    )
    # In key order: writers lock the rows in the same order.
    db.session.connection().execute(statement, [
        {"group_id": group_id, "day": day, "occurrences": count} for (group_id, day), count in sorted(days.items())
    ])


def _first_hourly_day() -> datetime | None:
    first = db.session.scalar(sa.select(sa.func.min(FailureGroupHourly.hour)))
    return None if first is None else day_of(first)


def _sum_days(start: datetime, end: datetime) -> int:
    """Replace the daily rows of the days from ``start`` to ``end``
    (exclusive) by the sums of their hours, one statement a day (bounds as
    parameters: no date arithmetic in SQL, the same on both databases)."""
    daily = FailureGroupDaily.__table__
    hourly = FailureGroupHourly.__table__
    db.session.execute(sa.delete(daily).where(daily.c.day >= start, daily.c.day < end))
    day = start
    count = 0
    while day < end:
        db.session.execute(
            sa.insert(daily).from_select(
                ["group_id", "day", "occurrences"],
                sa.select(hourly.c.group_id, sa.literal(day, daily.c.day.type), sa.func.sum(hourly.c.occurrences))
                .where(hourly.c.hour >= day, hourly.c.hour < day + DAY)
                .group_by(hourly.c.group_id),
            )
        )
        day += DAY
        count += 1
    return count
