"""The daily rollup (app/services/failure_groups/daily.py) agrees with the
hourly rows whatever wrote them: the recorder, the backfill, a regroup, a
retention purge; and the sparklines read the same figures from it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import template_rendered

from app.extensions import db
from app.models import (
    FailureGroup,
    FailureGroupCount,
    FailureGroupDaily,
    FailureGroupDailyState,
    FailureGroupEvent,
    FailureGroupHourly,
    FailureOccurrence,
)
from app.models.types import utcnow
from app.registry import get_failure_recorder
from app.services import retention
from app.services.failure_groups import daily
from app.services.failure_groups.series import sparkline_series
from app.services.processing_jobs.lifecycle import create_job, requeue_job
from app.unit_of_work import write_transaction

UCUM = {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/1/value/unit"}
ICD = {"code": "code.unknown_icd10cm", "severity": "fatal", "message": "unknown", "pointer": "/entities/0/code"}


def _record_some_failures() -> None:
    recorder = get_failure_recorder()
    jobs = [create_job(f"doc-{i}").id for i in range(4)]
    recorder.record_validation_failure(jobs[0], "x", {"errors": [UCUM]})
    recorder.record_validation_failure(jobs[0], "y", {"errors": [ICD, UCUM]})
    recorder.record_validation_failure(jobs[1], "x", {"errors": [UCUM, UCUM]})
    recorder.record_failure(jobs[2], "timed out after 30 s")
    recorder.record_validation_failure(jobs[3], "x", {"errors": [ICD]})
    requeue_job(jobs[3])


def _daily_rows() -> dict[tuple[int, datetime], int]:
    db.session.rollback()
    return {(g, d): n for g, d, n in db.session.execute(
        sa.select(FailureGroupDaily.group_id, FailureGroupDaily.day, FailureGroupDaily.occurrences))}


def _hourly_by_day(before: datetime) -> dict[tuple[int, datetime], int]:
    sums: dict[tuple[int, datetime], int] = defaultdict(int)
    for group_id, hour, count in db.session.execute(
        sa.select(FailureGroupHourly.group_id, FailureGroupHourly.hour, FailureGroupHourly.occurrences)
        .where(FailureGroupHourly.hour < before)
    ):
        sums[(group_id, daily.day_of(hour))] += count
    return dict(sums)


def _assert_agrees() -> dict[tuple[int, datetime], int]:
    """Every closed day's row is the sum of its hours, and there is no other row."""
    rows = _daily_rows()
    through = daily.rolled_through()
    assert through is not None
    assert rows == _hourly_by_day(through)
    return rows


def _close_today() -> datetime:
    """Roll up as if it were two days later, when today and tomorrow are
    closed (whatever the time of day: at 00:12 "now + 2 days" would close
    only today)."""
    later = daily.day_of(utcnow()) + timedelta(days=2) + daily.CLOSE_AFTER
    assert daily.roll_up_closed_days(later) >= 2
    assert daily.rolled_through() == daily.closed_through(later)
    return later


def _set_mark(rolled_through: datetime) -> None:
    """As if the last roll-up had stopped at ``rolled_through`` (the row is
    written, not updated: PostgreSQL's tests start from truncated tables)."""
    with write_transaction():
        db.session.execute(sa.delete(FailureGroupDailyState))
        db.session.add(FailureGroupDailyState(id=1, rolled_through=rolled_through))


def _forget_groups() -> None:
    with write_transaction():
        for model in (FailureOccurrence, FailureGroupCount, FailureGroupHourly, FailureGroupDaily, FailureGroupEvent,
                      FailureGroup):
            db.session.execute(sa.delete(model))


def test_the_roll_up_sums_the_recorders_hours_once(app_ctx):
    today = daily.day_of(utcnow())  # read before recording: at 23:59:59.9 "after" is tomorrow
    _record_some_failures()
    later = _close_today()
    rows = _assert_agrees()
    # Today's, or (recorded across midnight) today's and tomorrow's.
    assert rows and {day for _, day in rows} <= {today, today + daily.DAY} and sum(rows.values()) == 6
    # Again at the same time: nothing to do, nothing changes.
    assert daily.roll_up_closed_days(later) == 0
    assert _assert_agrees() == rows


def test_the_backfill_and_a_regroup_add_to_the_closed_days(app_ctx):
    _record_some_failures()
    _close_today()
    recorded = _assert_agrees()
    _forget_groups()
    assert _daily_rows() == {}
    result = app_ctx.test_cli_runner().invoke(args=["groups", "backfill", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    backfilled = _assert_agrees()
    assert sorted(backfilled.values()) == sorted(recorded.values())
    _forget_groups()
    result = app_ctx.test_cli_runner().invoke(args=["groups", "regroup", "--version", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(_assert_agrees().values()) == sorted(recorded.values())


def test_a_retention_purge_leaves_the_days_as_the_hours(app_ctx):
    _record_some_failures()
    _close_today()
    rows = _assert_agrees()
    counts = retention.purge_finished_jobs(utcnow() + timedelta(days=1))
    assert counts.job_failures > 0
    assert _assert_agrees() == rows


def test_a_day_closes_an_hour_after_midnight(app_ctx):
    midnight = datetime(2026, 12, 3, tzinfo=timezone.utc)
    assert daily.closed_through(midnight + timedelta(minutes=59)) == midnight - timedelta(days=1)
    assert daily.closed_through(midnight + timedelta(hours=1)) == midnight


def test_the_sparklines_are_the_same_before_and_after_the_roll_up(app_ctx):
    _record_some_failures()
    ids = list(db.session.scalars(sa.select(FailureGroup.id)))
    later = utcnow() + timedelta(days=2)
    with write_transaction():  # nothing rolled up: every figure from the hours
        db.session.execute(sa.delete(FailureGroupDailyState))
        db.session.execute(sa.delete(FailureGroupDaily))
    from_hours = sparkline_series(ids, later)
    assert sum(sum(d) for _, d in from_hours.values()) == 6
    assert daily.roll_up_closed_days(later) >= 1
    assert sparkline_series(ids, later) == from_hours
    _assert_agrees()


@contextmanager
def _writes() -> Iterator[list[str]]:
    """The INSERT, UPDATE and DELETE statements sent on the app's engine
    meanwhile, but the session store's (each signed-in request renews its
    session's expiry: that is the sign-in's bookkeeping, not the page's) and
    the audit log's (the page's ``seen.groups`` row: who saw the messages)."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        if (statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE", "MERGE"}
                and "server_sessions" not in statement and "audit_events" not in statement):
            seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", note)


@contextmanager
def _rendered_rows(app) -> Iterator[list]:
    """The ``rows`` handed to the /groups template meanwhile (one list per render)."""
    renders: list = []

    def note(sender, template, context, **extra) -> None:
        if template.name == "groups/list.html":
            renders.append(context["rows"])

    template_rendered.connect(note, app)
    try:
        yield renders
    finally:
        template_rendered.disconnect(note, app)


def _age_hours(by: timedelta) -> None:
    """Move every hourly row ``by`` into the past, as if recorded then."""
    # Rewritten in Python: interval arithmetic differs between the databases.
    with write_transaction():
        table = FailureGroupHourly.__table__
        rows = [dict(row._mapping) for row in db.session.execute(sa.select(table))]
        db.session.execute(sa.delete(table))
        db.session.execute(sa.insert(table), [{**row, "hour": row["hour"] - by} for row in rows])


def test_the_groups_page_only_reads_however_late_the_roll_up(app_ctx, client):
    _record_some_failures()
    mark = daily.day_of(utcnow()) - timedelta(days=2)  # the last roll-up two days ago
    _set_mark(mark)
    with _writes() as writes:
        response = client.get("/groups")
    assert response.status_code == 200
    assert writes == []
    db.session.rollback()
    # The mark itself, not "two days before today" again: that moves at midnight.
    assert daily.rolled_through() == mark


def test_the_sparklines_are_exact_while_the_roll_up_lags(app_ctx, client):
    _record_some_failures()
    _age_hours(timedelta(days=3))  # recorded three days ago: a closed day
    _set_mark(daily.day_of(utcnow()) - timedelta(days=5))  # not rolled up yet
    with _rendered_rows(app_ctx) as renders:
        assert client.get("/groups?state=all").status_code == 200
        # From five days back through the last closed day: yesterday, or before 01:00 the day before.
        assert daily.roll_up_closed_days(utcnow()) in (4, 5)
        _assert_agrees()
        assert client.get("/groups?state=all").status_code == 200
    lagging, rolled = ({row.view.group.id: (row.hourly, row.daily) for row in rows} for rows in renders)
    assert lagging == rolled
    assert sum(sum(d) for _, d in lagging.values()) == 6
    # All on the day three days ago: d[-4], or d[-5] when midnight came between recording and the render.
    assert all(sum(d) in (d[-4], d[-5]) for _, d in lagging.values())
    assert all(sum(h) == 0 for h, _ in lagging.values())  # nothing in the last 24 hours


def test_the_roll_up_command_rolls_up_the_closed_days(app_ctx):
    _record_some_failures()
    mark = daily.day_of(utcnow()) - timedelta(days=3)
    _set_mark(mark)
    before = utcnow()
    result = app_ctx.test_cli_runner().invoke(args=["groups", "roll-up-days"])
    after = utcnow()
    assert result.exit_code == 0, result.output
    rolled = int(result.stdout.split()[0])
    assert rolled in (2, 3)  # 3 days back, up to the last closed one (yesterday, or the day before before 01:00)
    # Closed through the command's clock, read between before and after (two
    # values when 01:00 falls in between: one day more from then on).
    assert daily.rolled_through() in {daily.closed_through(before), daily.closed_through(after)}
    assert daily.rolled_through() == mark + timedelta(days=rolled)
    _assert_agrees()
    first = daily.rolled_through()
    again = app_ctx.test_cli_runner().invoke(args=["groups", "roll-up-days"])
    # Nothing left to do, unless 01:00 came after the first run: then that one day.
    possible = {(daily.closed_through(at) - first).days for at in (after, utcnow())}
    count, unit = again.stdout.split()[:2]
    assert again.exit_code == 0 and unit == "day(s)" and int(count) in possible, again.output
