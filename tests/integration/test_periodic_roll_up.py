"""The daily roll-up as procrastinate's periodic task (app/services/bulk_queue.py,
PostgreSQL): a worker defers it when due, or late when it starts after the
scheduled time, the periodic deferrer lets one defer per scheduled time
through however many workers try, and a run rolls up once (a second run
changes nothing)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from procrastinate.periodic import PeriodicDeferrer

from app.extensions import db
from app.models.failure_group import FailureGroupCount
from app.models.types import utcnow
from app.services import bulk_queue
from app.services.failure_groups import daily
from tests.helpers import counter_sums
from tests.integration.test_bulk_queue import _wait_for, queue_app, start_worker  # noqa: F401 (fixtures)
from tests.integration.test_failure_groups_daily import _age_hours, _assert_agrees, _record_some_failures, _set_mark

postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _roll_up_jobs(app) -> list[dict]:
    with app.app_context():
        rows = db.session.execute(sa.text(
            "SELECT id, status::text AS status, lock, queueing_lock, queue_name FROM procrastinate_jobs "
            "WHERE task_name = 'roll_up_closed_days' ORDER BY id")).mappings()
        return [dict(row) for row in rows]


def _defers(app) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(sa.text(
            "SELECT defer_timestamp FROM procrastinate_periodic_defers WHERE task_name = 'roll_up_closed_days' "
            "ORDER BY defer_timestamp")))


def _defer_as_workers(app, timestamp: int, workers: int) -> None:
    """What ``workers`` workers' periodic deferrers do at ``timestamp`` (Unix seconds)."""
    connector = bulk_queue.procrastinate.PsycopgConnector(
        conninfo=bulk_queue.conninfo(app.config["SQLALCHEMY_DATABASE_URI"]))

    async def defer() -> None:
        with bulk_queue.queue_app.replace_connector(connector) as worker_app:
            async with worker_app.open_async():
                periodic = worker_app.periodic_registry.periodic_tasks[("roll_up_closed_days", "daily")]
                for _ in range(workers):
                    await PeriodicDeferrer(registry=worker_app.periodic_registry).defer_jobs([(periodic, timestamp)])

    asyncio.run(defer())


def test_the_roll_up_is_scheduled_daily_after_the_day_closes():
    periodic = bulk_queue.queue_app.periodic_registry.periodic_tasks[("roll_up_closed_days", "daily")]
    assert periodic.cron == bulk_queue.ROLL_UP_CRON == "5 1 * * *"
    assert (periodic.task.lock, periodic.task.queueing_lock) == (bulk_queue.ROLL_UP_LOCK,) * 2
    assert periodic.task.queue in bulk_queue.QUEUES
    assert bulk_queue.queue_app.periodic_defaults["max_delay"] >= 24 * 3600 - 5 * 60


def _counter_rows() -> tuple[dict[tuple, int], int]:
    """The counters' occurrences per key, and how many rows are off shard 0."""
    table = FailureGroupCount.__table__
    sums = {key: values[0] for key, values in counter_sums().items()}
    off = db.session.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.shard != 0))
    db.session.rollback()
    return sums, off


def _spread_a_counter() -> dict[tuple, list[int]]:
    """Move one occurrence of a counter key to a shard of its own (as a
    second writer would leave it), so there is something to fold; returns
    the occurrences per key, per row."""
    table = FailureGroupCount.__table__
    first = db.session.execute(sa.select(table).where(table.c.occurrences > 1).limit(1)).mappings().one()
    key = {name: first[name] for name in ("group_id", "job_type", "worker_version")}
    used = set(db.session.scalars(sa.select(table.c.shard).where(*(table.c[n] == v for n, v in key.items()))))
    db.session.execute(sa.update(table).where(*(table.c[n] == v for n, v in key.items()),
                                              table.c.shard == first["shard"])
                       .values(occurrences=table.c.occurrences - 1))
    db.session.execute(sa.insert(table).values(**key, shard=max(set(range(1, 16)) - used), occurrences=1, jobs=0,
                                               current_jobs=0))
    db.session.commit()
    rows: dict[tuple, list[int]] = {}
    for row in db.session.execute(sa.select(table)).mappings():
        rows.setdefault((row["group_id"], row["job_type"], row["worker_version"]), []).append(row["occurrences"])
    db.session.rollback()
    assert _counter_rows()[1] >= 1
    return rows


@postgresql_only
def test_two_workers_defer_one_roll_up_that_runs_once(queue_app, app_ctx):
    _record_some_failures()
    _age_hours(timedelta(days=2))
    _set_mark(daily.day_of(utcnow()) - timedelta(days=4))
    counters = _spread_a_counter()
    scheduled = int(daily.closed_through(utcnow()).timestamp()) + 5 * 60
    _defer_as_workers(queue_app, scheduled, workers=2)
    jobs = _roll_up_jobs(queue_app)
    assert [(j["status"], j["lock"], j["queue_name"]) for j in jobs] == [
        ("todo", bulk_queue.ROLL_UP_LOCK, bulk_queue.MAINTENANCE_QUEUE)]
    assert _defers(queue_app) == [scheduled]

    before = utcnow()
    bulk_queue.run_worker(queue_app, wait=False, heartbeat=0.5)
    assert _roll_up_jobs(queue_app) == []  # done, and deleted as every successful task
    db.session.rollback()
    # At the worker's clock, between before and now (two values when 01:00 falls in between).
    assert daily.rolled_through() in {daily.closed_through(before), daily.closed_through(utcnow())}
    rows = _assert_agrees()
    assert sum(rows.values()) == 6
    # The same run folded the groups' counter shards: the sums as they were, on shard 0.
    assert _counter_rows() == ({key: sum(values) for key, values in counters.items()}, 0)

    # The next day's run finds nothing to do and changes nothing.
    _defer_as_workers(queue_app, scheduled + 24 * 3600, workers=1)
    bulk_queue.run_worker(queue_app, wait=False, heartbeat=0.5)
    assert _roll_up_jobs(queue_app) == []
    db.session.rollback()
    assert _assert_agrees() == rows


@postgresql_only
def test_a_worker_started_after_the_scheduled_time_rolls_up(queue_app, app_ctx, start_worker):  # noqa: F811
    _record_some_failures()
    _age_hours(timedelta(days=2))
    _set_mark(daily.day_of(utcnow()) - timedelta(days=4))
    started = utcnow()
    worker = start_worker()

    def rolled_up() -> bool:
        # At the worker's clock, after `started` (two values when 01:00 falls in between).
        db.session.rollback()
        return daily.rolled_through() in {daily.closed_through(started), daily.closed_through(utcnow())}

    _wait_for(rolled_up, "daily roll-up", worker)
    assert sum(_assert_agrees().values()) == 6
    # The last scheduled time before the start, and one more if 01:05 came meanwhile.
    assert len(_defers(queue_app)) == 1 + _scheduled_times_between(started, utcnow())


def _scheduled_times_between(since: datetime, until: datetime) -> int:
    """How many times the roll-up's schedule (01:05 UTC, ROLL_UP_CRON) falls in (since, until]."""
    at = daily.day_of(since) + timedelta(hours=1, minutes=5)
    at += timedelta(days=1) if at <= since else timedelta(0)
    count = 0
    while at <= until:
        count, at = count + 1, at + timedelta(days=1)
    return count
