"""The /jobs summary read in one snapshot (app/read_snapshot.py): a partial
hour counted as its whole hour's rollup rows less the rest of the hour is
still exact, on SQLite and PostgreSQL; and the snapshot is one."""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from app.extensions import POSTGRESQL_READ_AUTOCOMMIT, db
from app.models import FailureOccurrence, ProcessingJob
from app.models.job_rollup import Grain
from app.read_snapshot import read_snapshot, reads_one_snapshot
from app.services import summary_ranges
from app.services.processing_jobs.job_filter import JobFilter
from app.services.summary_counts import rollup_covers
from app.services.summary_ranges import bucket_number, bucket_start, plan_range
from tests.integration.test_summary_rollups import (
    T0,
    _as_a_get_request,
    _check_summary,
    _fail_waiting_jobs,
    _random_filter,
    _random_operations,
)



def test_plan_range_takes_a_long_partial_hour_as_its_hour_less_the_rest_only_in_one_snapshot(monkeypatch):
    at = lambda h, m=0: T0 + timedelta(hours=h, minutes=m)  # noqa: E731
    hour = int(T0.timestamp()) // 3600
    # Outside a snapshot: split_range's parts and edges, each added.
    assert plan_range(at(1, 10), at(5, 50)) == (
        [((Grain.HOUR, hour + 2, hour + 5), 1)], [((at(1, 10), at(2)), 1), ((at(5), at(5, 50)), 1)])
    monkeypatch.setattr(summary_ranges, "reads_one_snapshot", lambda: True)
    # 50 minutes: the hour less its first 10; 50 minutes: the hour less its
    # last 10 (the hours joined: one condition).
    assert plan_range(at(1, 10), at(5, 50)) == (
        [((Grain.HOUR, hour + 1, hour + 6), 1)], [((at(1), at(1, 10)), -1), ((at(5, 50), at(6)), -1)])
    # Half an hour or less is read as it is.
    assert plan_range(at(1, 30), at(5, 30)) == (
        [((Grain.HOUR, hour + 2, hour + 5), 1)], [((at(1, 30), at(2)), 1), ((at(5), at(5, 30)), 1)])
    # Inside one hour, both sides are taken away.
    assert plan_range(at(1, 10), at(1, 55)) == ([((Grain.HOUR, hour + 1, hour + 2), 1)],
                                               [((at(1), at(1, 10)), -1), ((at(1, 55), at(2)), -1)])
    # No whole hour inside, across a boundary: each hour on its own.
    assert plan_range(at(1, 5), at(2, 20)) == (
        [((Grain.HOUR, hour + 1, hour + 2), 1)], [((at(1), at(1, 5)), -1), ((at(2), at(2, 20)), 1)])
    # A bound to the microsecond: the rest starts there.
    tick = at(3, 59) + timedelta(seconds=59, microseconds=999_999)
    assert plan_range(at(3, 20), tick) == (
        [((Grain.HOUR, hour + 3, hour + 4), 1)], [((at(3), at(3, 20)), -1), ((tick, at(4)), -1)])
    # Whole hours and the open-ended ranges have no edge.
    assert plan_range(None, None) == ([((Grain.ALL, None, None), 1)], [])
    assert plan_range(at(0), at(6)) == ([((Grain.HOUR, hour, hour + 6), 1)], [])


def test_plan_range_takes_a_mostly_covered_day_or_week_as_its_whole_less_the_rest(monkeypatch):
    at = lambda h, m=0: T0 + timedelta(hours=h, minutes=m)  # noqa: E731
    hour, day = int(T0.timestamp()) // 3600, int(T0.timestamp()) // 86_400
    week = day // 7  # T0 is a Saturday: the third day of its week (Thursday to Wednesday)
    assert bucket_start(week, Grain.WEEK) == T0 - timedelta(days=2)
    # Outside a snapshot, a day's 20 hours are its hours.
    assert plan_range(at(4), at(24)) == ([((Grain.HOUR, hour + 4, hour + 24), 1)], [])
    monkeypatch.setattr(summary_ranges, "reads_one_snapshot", lambda: True)
    # 20 hours of a day (more than two thirds): the day less its first 4 hours.
    assert plan_range(at(4), at(24)) == (
        [((Grain.DAY, day, day + 1), 1), ((Grain.HOUR, hour, hour + 4), -1)], [])
    # 16 hours (two thirds, not more): its hours.
    assert plan_range(at(8), at(24)) == ([((Grain.HOUR, hour + 8, hour + 24), 1)], [])
    # The day less its first 3 h 50 min: less 4 hours, the fourth's last 10
    # minutes then added back.
    assert plan_range(at(3, 50), at(24)) == (
        [((Grain.DAY, day, day + 1), 1), ((Grain.HOUR, hour, hour + 4), -1)], [((at(3, 50), at(4)), 1)])
    # The top codes' weeks: from Friday 10:17 to the week's end covers 5 days
    # and 13 h 43 min of it (more than two thirds): the week less its
    # Thursday and Friday's first 10 h 17 min.
    assert plan_range(at(-14, 17), at(5 * 24), coarsest=Grain.WEEK) == (
        [((Grain.WEEK, week, week + 1), 1), ((Grain.DAY, day - 2, day - 1), -1),
         ((Grain.HOUR, hour - 24, hour - 14), -1)],
        [((at(-14), at(-14, 17)), -1)])
    # From Saturday 10:17 (4 days and 13 h 43 min, less than two thirds):
    # its days, and its Saturday's hours from 10:00 less 17 minutes.
    assert plan_range(at(10, 17), at(5 * 24), coarsest=Grain.WEEK) == (
        [((Grain.DAY, day + 1, day + 5), 1), ((Grain.HOUR, hour + 10, hour + 24), 1)], [((at(10), at(10, 17)), -1)])
    # Whole weeks, then a day of 23 hours: the day less its last hour.
    assert plan_range(at(-48), at(19 * 24 + 23), coarsest=Grain.WEEK) == (
        [((Grain.WEEK, week, week + 3), 1), ((Grain.DAY, day + 19, day + 20), 1),
         ((Grain.HOUR, hour + 19 * 24 + 23, hour + 20 * 24), -1)],
        [])
    # Open at one end: the weeks up to and with the partial one (6 days and
    # a half), less its last 12 hours.
    assert plan_range(None, at(4 * 24 + 12), coarsest=Grain.WEEK) == (
        [((Grain.WEEK, None, week + 1), 1), ((Grain.HOUR, hour + 108, hour + 120), -1)], [])


def test_bucket_numbers_are_exact_to_the_microsecond_before_1970_and_after_2300(monkeypatch):
    # A trial: a float timestamp put 2600-01-01T00:59:59.999999 in hour 1,
    # and int() put 1969-12-31T22:59:59.000001 in hour -1.
    tick = timedelta(microseconds=1)
    for year, month, day, hour in ((2600, 1, 1, 1), (9998, 12, 1, 23), (1969, 12, 31, 23), (1970, 1, 1, 0)):
        boundary = datetime(year, month, day, hour, tzinfo=timezone.utc)
        number = bucket_number(boundary, Grain.HOUR)
        assert bucket_start(number, Grain.HOUR) == boundary
        assert bucket_number(boundary - tick, Grain.HOUR) == number - 1
        assert bucket_number(boundary - timedelta(seconds=1) + tick, Grain.HOUR) == number - 1
    monkeypatch.setattr(summary_ranges, "reads_one_snapshot", lambda: True)
    start = datetime(9998, 12, 1, 23, tzinfo=timezone.utc) - tick
    hour = bucket_number(start, Grain.HOUR)
    assert plan_range(start, start + timedelta(hours=2) + tick) == (
        [((Grain.HOUR, hour + 1, hour + 3), 1)], [((start, start + tick), 1)])


def test_the_summary_in_one_snapshot_equals_a_brute_force_count_after_random_operations(app_ctx):
    rng = random.Random(20261205)
    _random_operations(rng, 220)
    _fail_waiting_jobs(rng)
    _random_operations(rng, 40)
    group_ids = sorted(db.session.scalars(sa.select(FailureOccurrence.group_id).distinct()))
    checked = Counter()
    for _ in range(130):
        job_filter = _random_filter(rng, group_ids)
        with _as_a_get_request():
            _check_summary(job_filter)
            parts, edges = plan_range(job_filter.time_from, job_filter.time_to, coarsest=Grain.WEEK)
        checked["hour less the rest"] += rollup_covers(job_filter) and any(sign < 0 for _span, sign in edges)
        # The rest of a week or day less its rest is read at finer grains.
        covered = rollup_covers(job_filter)
        taken = {grain for (grain, _first, _end), sign in parts if sign < 0} if covered else set()
        checked["day or week less the rest"] += Grain.HOUR in taken
        # (Only the top codes without a code or group filter read weeks.)
        top_codes_by_week = job_filter.error_code is None and job_filter.group_id is None
        checked["week less the rest"] += Grain.DAY in taken and top_codes_by_week
    # (The draws give about 20 of each and 10 weeks: far from the bounds, whatever the job ids.)
    assert checked["hour less the rest"] > 10 and checked["day or week less the rest"] > 10, checked
    assert checked["week less the rest"] > 3, checked
    # A window whose first partial hour is long (43 min) and last one short (5 min).
    window = JobFilter(time_from=T0 + timedelta(hours=20, minutes=17),
                       time_to=T0 + timedelta(days=2, hours=3, minutes=5))
    with _as_a_get_request():
        assert _check_summary(window) > 0


def _add_job(connection: sa.Connection, created_at: datetime) -> None:
    connection.execute(sa.insert(ProcessingJob).values(
        id=uuid.uuid4(), document_id=f"late-{uuid.uuid4().hex[:8]}", job_type="ocr", status="Failed",
        error_message="late", created_at=created_at, updated_at=created_at, completed_at=created_at,
    ))


def test_a_snapshot_sees_no_commit_made_after_its_first_read(app_ctx):
    count = sa.select(sa.func.count()).select_from(ProcessingJob)
    with app_ctx.app_context():  # another session, as another request or a worker would be
        with db.engine.begin() as other:
            _add_job(other, T0)
    with _as_a_get_request():
        before = db.session.scalar(count)
        with db.engine.begin() as other:
            _add_job(other, T0 + timedelta(minutes=1))
        assert db.session.scalar(count) == before  # the snapshot's state, not the newest
    assert db.session.scalar(count) == before + 1


def test_inside_a_write_transaction_on_postgresql_the_reads_stay_read_committed(app_ctx, backend):
    db.session.rollback()
    db.session.connection(execution_options={POSTGRESQL_READ_AUTOCOMMIT: False})
    db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))  # the transaction has begun
    with read_snapshot() as one:
        assert one is (backend == "sqlite") and reads_one_snapshot() is one
    assert not reads_one_snapshot()
    db.session.rollback()


def test_the_summary_page_counts_a_long_partial_hour_exactly(client, app):
    with app.app_context():
        with db.engine.begin() as connection:
            for minute in (3, 12, 25, 44, 58):
                _add_job(connection, datetime(2026, 1, 5, 9, minute, tzinfo=timezone.utc))
    # 9:10 to 10:00: the hour (5 jobs) less 9:00-9:10 (1); and none after.
    page = client.get("/jobs/summary?from=2026-01-05T09:10:00Z&to=2026-01-05T11:00:00Z&status=all")
    assert page.status_code == 200
    failed = re.search(r'status-failed">[^<]*</span></a> <span class="count">(\d+)<', page.get_data(as_text=True))
    assert failed is not None and failed.group(1) == "4"
