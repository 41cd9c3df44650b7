"""Folding the summary rollups' past shards, and the groups' counter
shards: fewer rows, the same sums.

Shards are spread by hand (a key's jobs split over several shards, and rows
at 0), as eight writers would leave them, since one test connection writes
to one shard only. Then :func:`compact_rollups` must leave one row per key
with jobs, the same sum per key, the same summary, and the current hour's
and day's rows as they were. On PostgreSQL a writer holding a row makes the
fold give up that bucket quickly, and a later run folds it.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.models.failure_group import FailureGroupCount
from app.models.job_rollup import Grain, JobCodeRollup, JobCountRollup, JobGroupCodeRollup, JobGroupRollup
from app.models.types import utcnow
from app.registry import get_failure_recorder
from app.services import dashboard_stats
from app.services.processing_jobs.job_filter import AcknowledgedFilter, JobFilter
from app.services import rollup_compaction
from app.services.failure_groups.queries import MAX_PAGE_SIZE, GroupFilter, list_groups
from app.services.failure_groups.recording import rebuild_counts_check
from app.services.failure_groups.write_statements import job_shard
from app.services.rollup_compaction import COUNTER_VALUES, ROLLUPS, compact_counters, compact_rollups
from app.services.summary_ranges import bucket_number
from tests.helpers import COUNTER_KEY, counter_sums
from tests.integration.test_dashboard_filters import item, make_job

NOW = utcnow()
PAST = (NOW - timedelta(days=5)).replace(hour=9, minute=30, second=0, microsecond=0)


def _sums(model) -> dict[tuple, int]:  # noqa: ANN001 (a rollup model)
    table = model.__table__
    keys = [c for c in table.primary_key.columns if c.name != "shard"]
    rows = db.session.execute(sa.select(*keys, sa.func.sum(table.c.jobs)).group_by(*keys)).all()
    return {tuple(row[:-1]): int(row[-1]) for row in rows if row[-1] != 0}


def _rows(model, *where) -> list[tuple]:  # noqa: ANN001
    table = model.__table__
    return [tuple(r) for r in db.session.execute(sa.select(table).where(*where).order_by(*table.primary_key.columns))]


def _scatter(model) -> None:  # noqa: ANN001
    """Spread every key's jobs over shards 3 and 5, with a row at 0 on shard 6
    (whatever shard the test's own connection wrote): the sums stay, each
    key is three rows."""
    table = model.__table__
    keys = [c.name for c in table.primary_key.columns if c.name != "shard"]
    sums = _sums(model)
    db.session.execute(sa.delete(table))
    for key, jobs in sums.items():
        values = dict(zip(keys, key))
        for shard, part in ((3, jobs + 2), (5, -2), (6, 0)):
            db.session.execute(sa.insert(table).values({**values, "shard": shard, "jobs": part}))
    db.session.commit()


def _summary() -> list:
    filters = [
        JobFilter(acknowledged=AcknowledgedFilter.INCLUDE, time_from=PAST - timedelta(days=1), time_to=NOW),
        JobFilter(acknowledged=AcknowledgedFilter.INCLUDE, error_code="code.a", time_from=PAST - timedelta(hours=3)),
        # Whole weeks of the code rollup's.
        JobFilter(acknowledged=AcknowledgedFilter.INCLUDE, time_from=NOW - timedelta(days=20, minutes=7), time_to=NOW),
    ]
    found = []
    for job_filter in filters:
        stats = dashboard_stats.summarize(job_filter, now=NOW, ttl=0, refresh=True)
        found.append((stats.status_counts.counts, [(c.code, c.jobs) for c in stats.top_codes.codes],
                      [b.count for b in stats.timeline.buckets]))
    return found


@pytest.fixture
def scattered(app_ctx) -> None:
    for n in range(4):
        make_job(f"doc-past-{n}", codes=("code.a", "code.b"), created=PAST + timedelta(minutes=n))
    make_job("doc-past-failed", "Failed", codes=("code.a",), created=PAST - timedelta(days=1))
    make_job("doc-weeks-ago", codes=("code.b",), created=NOW - timedelta(days=15))  # a settled week
    make_job("doc-now", codes=("code.a",))  # this hour: never folded
    for model in ROLLUPS:
        _scatter(model)


def test_the_fold_keeps_every_sum_and_leaves_one_row_per_key(app_ctx, scattered):
    sums = {model: _sums(model) for model in ROLLUPS}
    summary = _summary()
    current_hour = bucket_number(NOW, Grain.HOUR)
    current_day = bucket_number(NOW, Grain.DAY)
    current_week = bucket_number(NOW, Grain.WEEK)

    def unsettled(model):
        # The last two hours, today (at 01:00, yesterday too) and this week
        # (on Thursday at 01:00, last week too).
        return (_rows(model, model.grain == int(Grain.HOUR), model.created_bucket >= current_hour - 1)
                + _rows(model, model.grain == int(Grain.DAY), model.created_bucket >= current_day)
                + _rows(model, model.grain == int(Grain.WEEK), model.created_bucket >= current_week))

    recent = {model: unsettled(model) for model in ROLLUPS}
    before = sum(len(_rows(model)) for model in ROLLUPS)

    result = compact_rollups(NOW)

    assert result.skipped == [] and result.buckets > 0
    assert {model: _sums(model) for model in ROLLUPS} == sums
    assert _summary() == summary
    for model in ROLLUPS:
        past = _rows(model, sa.or_(model.grain == int(Grain.ALL),
                                   sa.and_(model.grain == int(Grain.HOUR), model.created_bucket < current_hour - 2),
                                   sa.and_(model.grain == int(Grain.DAY), model.created_bucket < current_day - 1),
                                   sa.and_(model.grain == int(Grain.WEEK), model.created_bucket < current_week - 1)))
        assert past and all(row[-2] == 0 and row[-1] != 0 for row in past), model  # shard 0, jobs not 0
        assert any(row[list(model.__table__.c.keys()).index("grain")] == int(Grain.ALL) for row in past), model
        # The past's keys and the all-time ones are each one row now.
        assert len(past) == len({row[:-2] for row in past})
        # The current hour, day and week were left to their writers.
        assert unsettled(model) == recent[model]
    # The code rollup's past weeks were folded too (the job of 15 days ago's week).
    weeks = _rows(JobCodeRollup, JobCodeRollup.grain == int(Grain.WEEK), JobCodeRollup.created_bucket < current_week - 1)
    assert weeks and all(row[-2] == 0 for row in weeks)
    assert result.rows_before > result.rows_after
    assert sum(len(_rows(model)) for model in ROLLUPS) == before - (result.rows_before - result.rows_after)
    # A second run finds nothing to fold.
    again = compact_rollups(NOW)
    assert (again.buckets, again.skipped) == (0, [])


def test_the_fold_gives_way_to_a_writer_and_folds_later(app_ctx, scattered, backend):
    if backend != "postgresql":
        # One writer at a time: nothing can hold a row while the fold runs.
        assert compact_rollups(NOW).skipped == []
        return
    sums = _sums(JobCountRollup)
    day = bucket_number(PAST, Grain.DAY)
    table = JobCountRollup.__table__
    held = sa.and_(table.c.grain == int(Grain.DAY), table.c.created_bucket == day, table.c.shard == 3)
    with db.engine.connect() as writer:
        # Another transaction changes a row of that past day and has not committed yet.
        writer.execute(sa.update(table).where(held).values(jobs=table.c.jobs + 1))
        began = datetime.now(timezone.utc)
        result = compact_rollups(NOW)
        waited = datetime.now(timezone.utc) - began
        assert ("job_count_rollups", int(Grain.DAY), day) in result.skipped
        assert waited < timedelta(seconds=30)  # it gave up instead of waiting for the writer
        # The other tables' past days were folded meanwhile.
        past_days = (JobCodeRollup.grain == int(Grain.DAY),
                     JobCodeRollup.created_bucket < bucket_number(NOW, Grain.DAY) - 1)
        assert all(row[-2] == 0 for row in _rows(JobCodeRollup, *past_days))
        writer.commit()
    with_writer = _sums(JobCountRollup)
    assert sum(with_writer.values()) > sum(sums.values())  # the writer's +1 on each row it held
    result = compact_rollups(NOW)
    assert ("job_count_rollups", int(Grain.DAY), day) not in result.skipped and result.buckets >= 1
    # Folded now, with the writer's change in: nothing lost or counted twice.
    assert _sums(JobCountRollup) == with_writer
    assert all(row[-2] == 0 for row in _rows(JobCountRollup, *held.clauses[:2]))


def _untidy(table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.or_(table.c.jobs == 0, table.c.shard != 0)


def test_the_all_time_rows_fold_in_ranges_of_rows_a_value_with_more_split_by_code(app_ctx, scattered, monkeypatch):
    """Each all-time set is a transaction of its own, of about
    ALL_TIME_FOLD_ROWS rows: with room for all, one range; with room for
    one row, each code alone, and each group split by its jobs' codes."""
    sets = rollup_compaction._all_time_sets  # noqa: SLF001
    codes = JobCodeRollup.__table__
    group_codes = JobGroupCodeRollup.__table__
    assert [(where, name) for where, _, name in sets(codes, ("code",), _untidy(codes))] == [
        ("grain = 0 AND code BETWEEN :first AND :last", ("job_code_rollups", "code.a", "code.b"))]
    count_table = JobCountRollup.__table__
    assert [name for _, _, name in sets(count_table, (), _untidy(count_table))] == [("job_count_rollups", None, None)]

    monkeypatch.setattr(rollup_compaction, "ALL_TIME_FOLD_ROWS", 1)
    assert [name for _, _, name in sets(codes, ("code",), _untidy(codes))] == [
        ("job_code_rollups", code, code) for code in ("code.a", "code.b")]
    pairs = db.session.execute(
        sa.select(group_codes.c.group_id, group_codes.c.code).distinct()
        .where(group_codes.c.grain == int(Grain.ALL)).order_by(group_codes.c.group_id, group_codes.c.code)).all()
    assert len(pairs) > len({group_id for group_id, _ in pairs})  # a group with two codes: split
    split = sets(group_codes, ("group_id", "code"), _untidy(group_codes))
    assert [(where, parameters, name) for where, parameters, name in split] == [
        ("grain = 0 AND group_id = :value AND code BETWEEN :first AND :last",
         {"value": group_id, "first": code, "last": code},
         ("job_group_code_rollups", (group_id, code), (group_id, code)))
        for group_id, code in pairs]

    sums = {model: _sums(model) for model in ROLLUPS}
    assert compact_rollups(NOW).skipped == []
    assert {model: _sums(model) for model in ROLLUPS} == sums
    for model in ROLLUPS:
        assert all(row[-2] == 0 for row in _rows(model, model.grain == int(Grain.ALL))), model
    assert sets(codes, ("code",), _untidy(codes)) == [] and sets(group_codes, ("group_id", "code"),
                                                                 _untidy(group_codes)) == []
    # A writer's next delta lands in an all-time row again; the sums stay exact.
    code_b = (codes.c.grain == int(Grain.ALL), codes.c.code == "code.b")
    jobs_with_b = db.session.scalar(sa.select(sa.func.sum(codes.c.jobs)).where(*code_b))
    make_job("doc-after-the-fold", codes=("code.b",))
    assert db.session.scalar(sa.select(sa.func.sum(codes.c.jobs)).where(*code_b)) == jobs_with_b + 1


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8, 13, 10_000])
def test_the_all_time_sets_cover_every_row_once_within_the_limit(app_ctx, scattered, monkeypatch, limit):
    """Whatever the limit: every all-time row of each table is in exactly
    one set, and a set holds more than the limit only when it is one value
    that cannot be split further."""
    monkeypatch.setattr(rollup_compaction, "ALL_TIME_FOLD_ROWS", limit)
    for model in ROLLUPS:
        table = model.__table__
        columns = rollup_compaction.ALL_TIME_CHUNK_COLUMNS[table.name]
        keys = list(table.primary_key.columns)
        every = set(db.session.execute(sa.select(*keys).where(table.c.grain == int(Grain.ALL))).all())
        seen: list[tuple] = []
        for where, parameters, (_, first, last) in rollup_compaction._all_time_sets(  # noqa: SLF001
                table, columns, _untidy(table)):
            rows = db.session.execute(sa.select(*keys).where(sa.text(where)), parameters).all()
            assert len(rows) <= limit or first == last, (table.name, first, last, len(rows))
            seen.extend(rows)
        assert len(seen) == len(set(seen)) and set(seen) == every, table.name


def test_the_all_time_fold_gives_way_to_a_writer_and_folds_later(app_ctx, scattered, backend, monkeypatch):
    monkeypatch.setattr(rollup_compaction, "ALL_TIME_FOLD_ROWS", 1)
    if backend != "postgresql":
        assert compact_rollups(NOW).skipped == []  # one writer at a time: nothing holds a row
        return
    table = JobCodeRollup.__table__
    held = sa.and_(table.c.grain == int(Grain.ALL), table.c.code == "code.a", table.c.shard == 3)
    with db.engine.connect() as writer:
        # Another transaction adds a job with code.a and has not committed yet.
        writer.execute(sa.update(table).where(held).values(jobs=table.c.jobs + 1))
        began = datetime.now(timezone.utc)
        result = compact_rollups(NOW)
        assert datetime.now(timezone.utc) - began < timedelta(seconds=30)  # it gave up instead of waiting
        assert ("job_code_rollups", "code.a", "code.a") in result.skipped
        # The other code's all-time rows were folded meanwhile.
        assert all(row[-2] == 0 for row in _rows(JobCodeRollup, table.c.grain == int(Grain.ALL),
                                                 table.c.code == "code.b"))
        writer.commit()
    with_writer = _sums(JobCodeRollup)
    result = compact_rollups(NOW)
    assert result.skipped == []
    assert _sums(JobCodeRollup) == with_writer  # the writer's +1 kept, nothing counted twice
    assert all(row[-2] == 0 for row in _rows(JobCodeRollup, table.c.grain == int(Grain.ALL)))


def test_the_daily_command_folds_the_rollups_too(app_ctx, scattered):
    result = app_ctx.test_cli_runner().invoke(args=["groups", "roll-up-days"])
    assert result.exit_code == 0, result.output
    line = result.stdout.splitlines()[1]
    assert line.startswith("Summary rollups: ") and "set(s) of rows folded (past days and hours, all-time ranges)" in line and "0 left" in line
    assert all(row[-2] == 0 for model in (JobGroupRollup,)
               for row in _rows(model, model.grain == int(Grain.DAY),
                                model.created_bucket < bucket_number(NOW, Grain.DAY) - 1))


# -- The groups' counters ----------------------------------------------------

def _per_group(sums: dict[tuple, tuple[int, int, int]]) -> dict[int, dict[str, int]]:
    groups: dict[int, dict[str, int]] = {}
    for (group_id, _, _), values in sums.items():
        totals = groups.setdefault(group_id, {"occurrences": 0, "jobs": 0, "current_jobs": 0})
        for name, value in zip(COUNTER_VALUES, values):
            totals[name] += value
    return groups


def _by_job_count() -> list[tuple[int, int, int, int]]:
    page = list_groups(GroupFilter(), sort="job_count", limit=MAX_PAGE_SIZE)
    return [(view.group.id, view.job_count, view.current_job_count, view.occurrence_count) for view in page.items]


@pytest.fixture
def scattered_counters(app_ctx) -> None:
    """Jobs failing on three groups (one job re-failed, so a shard row holds
    an ending), then every counter key spread over shards 3, 5 and 6 as
    concurrent writers leave them: the sums stay, each key is three rows."""
    for n in range(5):
        make_job(f"doc-counted-{n}", codes=("code.a", "code.b") if n % 2 else ("code.a",))
    job = uuid.UUID(make_job("doc-refailed", codes=("code.c",)))
    get_failure_recorder().record_validation_failure(job, "failed again", {"errors": [item("code.c")]})
    table = FailureGroupCount.__table__
    sums = counter_sums()
    db.session.execute(sa.delete(table))
    for key, (occurrences, jobs, current) in sums.items():
        for shard, part in ((3, (occurrences + 2, jobs, current + 1)), (5, (-2, 0, -1)), (6, (0, 0, 0))):
            db.session.execute(sa.insert(table).values(
                {**dict(zip(COUNTER_KEY, key)), "shard": shard, **dict(zip(COUNTER_VALUES, part))}))
    db.session.commit()


def test_the_counter_fold_keeps_every_sum_and_the_job_count_order(app_ctx, scattered_counters, monkeypatch):
    monkeypatch.setattr(rollup_compaction, "COUNTER_FOLD_GROUPS", 2)  # three groups: two ranges
    table = FailureGroupCount.__table__
    sums, order = counter_sums(), _by_job_count()
    assert len(sums) == 3 and len(order) == 3
    assert _per_group(sums) == rebuild_counts_check(_per_group(sums))  # exact before the fold

    result = compact_counters()

    assert (result.buckets, result.skipped) == (2, [])
    assert (result.rows_before, result.rows_after) == (9, 3)
    assert counter_sums() == sums and _by_job_count() == order
    rows = db.session.execute(sa.select(table.c.shard, table.c.occurrences)).all()
    assert len(rows) == 3 and all(shard == 0 and occurrences > 0 for shard, occurrences in rows)
    again = compact_counters()
    assert (again.buckets, again.rows_before, again.skipped) == (0, 0, [])
    # A job's next failure writes its own shard's row again; the sums stay exact.
    job = db.session.scalar(sa.select(ProcessingJob.id).where(ProcessingJob.document_id == "doc-counted-1"))
    get_failure_recorder().record_validation_failure(job, "failed again", {"errors": [item("code.b")]})
    after = _per_group(counter_sums())
    assert after == rebuild_counts_check(after)
    # In its own shard's row (shard 0 for one job in 16: then the folded row itself).
    assert db.session.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.shard == job_shard(job))) >= 1


def test_the_counter_fold_gives_way_to_a_writer_and_folds_later(app_ctx, scattered_counters, backend, monkeypatch):
    monkeypatch.setattr(rollup_compaction, "COUNTER_FOLD_GROUPS", 1)
    if backend != "postgresql":
        assert compact_counters().skipped == []  # one writer at a time: nothing holds a row
        return
    table = FailureGroupCount.__table__
    held_group = min(group_id for group_id, _, _ in counter_sums())
    held = sa.and_(table.c.group_id == held_group, table.c.shard == 5)
    with db.engine.connect() as writer:
        # Another transaction adds an occurrence on that group and has not committed yet.
        writer.execute(sa.update(table).where(held).values(occurrences=table.c.occurrences + 1))
        began = datetime.now(timezone.utc)
        result = compact_counters()
        assert datetime.now(timezone.utc) - began < timedelta(seconds=30)  # it gave up instead of waiting
        assert result.skipped == [("failure_group_counts", held_group, held_group)]
        assert result.buckets == 2  # the other two groups were folded meanwhile
        writer.commit()
    with_writer = counter_sums()
    result = compact_counters()
    assert (result.buckets, result.skipped) == (1, [])
    assert counter_sums() == with_writer  # the writer's +1 kept, nothing counted twice
    assert db.session.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.shard != 0)) == 0


def test_a_fold_another_run_made_first_is_not_reported_twice(app_ctx, scattered_counters, backend, monkeypatch):
    # An SRE trial ran three `flask groups roll-up-days` at once: two printed
    # the same fold, counted before the first one's locks.
    monkeypatch.setattr(rollup_compaction, "COUNTER_FOLD_GROUPS", 10)  # the three groups: one set
    if backend != "postgresql":  # one writer at a time: the second run finds nothing
        assert compact_counters().buckets == 1 and compact_counters().buckets == 0
        return
    original, others, started = rollup_compaction._fold_sql, [], threading.Event()

    def fold_sql_after_another_run(*args, **kwargs):
        if not started.is_set():  # this run has counted its rows; another one folds them now
            started.set()

            def other_run():
                with app_ctx.app_context():
                    others.append(compact_counters())
                    db.session.remove()
            thread = threading.Thread(target=other_run)
            thread.start()
            thread.join(timeout=120)
            assert not thread.is_alive()
        return original(*args, **kwargs)

    monkeypatch.setattr(rollup_compaction, "_fold_sql", fold_sql_after_another_run)
    sums = counter_sums()
    mine = compact_counters()
    assert (others[0].buckets, others[0].rows_before, others[0].rows_after) == (1, 9, 3)
    assert (mine.buckets, mine.rows_before, mine.rows_after, mine.skipped) == (0, 0, 0, [])
    assert counter_sums() == sums


def test_the_daily_command_folds_the_counters_too(app_ctx, scattered_counters):
    sums = counter_sums()
    result = app_ctx.test_cli_runner().invoke(args=["groups", "roll-up-days"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2] == (
        "Group counters: 1 range(s) of groups folded, 9 rows to 3; 0 left for the next run."
    )
    assert counter_sums() == sums
