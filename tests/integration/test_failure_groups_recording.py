"""The failure-group write path: every recorded failure's items join groups in
the recorder's transaction, with exact counts (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup, FailureGroupEvent, FailureOccurrence, JobFailure
from app.registry import get_failure_recorder
from app.services import retention
from app.services.failure_groups.group_details import current_job_ids
from app.services.failure_groups.queries import get_group, group_counts
from app.services.failure_groups.series import hourly_occurrences, sparkline_series
from app.services.failure_groups.recording import rebuild_counts_check
from app.services.processing_jobs import InvalidFailurePayloadError
from app.services.processing_jobs.lifecycle import create_job, requeue_job, start_job
from app.unit_of_work import write_transaction

UCUM = {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/1/value/unit"}
ICD = {"code": "code.unknown_icd10cm", "severity": "warning", "message": "unknown code", "pointer": "/entities/0/code"}


def _details(*items):
    return {"errors": [dict(item) for item in items]}


def _groups() -> dict[str, FailureGroup]:
    return {g.title: g for g in db.session.scalars(sa.select(FailureGroup))}


def _assert_counts_match_occurrences():
    ids = [g.id for g in db.session.scalars(sa.select(FailureGroup))]
    counted = group_counts(ids)
    rebuilt = rebuild_counts_check(ids)
    for group_id in ids:
        assert (counted[group_id].occurrence_count, counted[group_id].job_count, counted[group_id].current_job_count) == (
            rebuilt[group_id]["occurrences"], rebuilt[group_id]["jobs"], rebuilt[group_id]["current_jobs"]
        )


def _fail(job_id, *items, worker=None, message="invalid entities"):
    return get_failure_recorder().record_validation_failure(job_id, message, _details(*items), worker=worker)


def test_every_item_joins_a_group_with_exact_counts(app_ctx):
    job = create_job("doc-1").id
    _fail(job, UCUM, {**UCUM, "pointer": "/entities/4/value/unit"}, ICD, worker={"name": "extractor", "version": "1.4.0"})

    groups = _groups()
    assert set(groups) == {"unit.not_ucum at /entities/*/value/unit", "code.unknown_icd10cm at /entities/*/code"}
    ucum = groups["unit.not_ucum at /entities/*/value/unit"]
    assert (ucum.state, ucum.substate, ucum.severity, ucum.code, ucum.pointer_pattern) == (
        "unresolved", "new", "error", "unit.not_ucum", "/entities/*/value/unit"
    )
    occurrences = list(db.session.scalars(sa.select(FailureOccurrence).order_by(FailureOccurrence.item_count)))
    assert [(o.item_count, o.is_current, o.worker_version, o.worker_name) for o in occurrences] == [
        (1, True, "1.4.0", "extractor"), (2, True, "1.4.0", "extractor")
    ]
    view = get_group(ucum.id)
    assert (view.job_count, view.current_job_count, view.occurrence_count) == (1, 1, 1)
    assert view.worker_versions == ["1.4.0"]
    assert [e.reason for e in db.session.scalars(sa.select(FailureGroupEvent))] == ["created", "created"]
    failure = db.session.scalars(sa.select(JobFailure)).one()
    assert (failure.worker_name, failure.worker_version) == ("extractor", "1.4.0")
    assert db.session.scalars(current_job_ids(ucum.id)).all() == [job]
    _assert_counts_match_occurrences()


def test_a_newer_failure_ends_the_current_link_and_counts_jobs_once(app_ctx):
    job = create_job("doc-1").id
    other = create_job("doc-2").id
    _fail(job, UCUM)
    _fail(job, ICD)  # the job's current failure is now ICD only
    _fail(job, UCUM, ICD)  # and now both again
    _fail(other, UCUM)

    groups = _groups()
    ucum = get_group(groups["unit.not_ucum at /entities/*/value/unit"].id)
    icd = get_group(groups["code.unknown_icd10cm at /entities/*/code"].id)
    assert (ucum.job_count, ucum.current_job_count, ucum.occurrence_count) == (2, 2, 3)
    assert (icd.job_count, icd.current_job_count, icd.occurrence_count) == (1, 1, 2)
    # severity is the highest seen; warning items do not lower it
    assert icd.group.severity == "warning"
    _assert_counts_match_occurrences()


def test_requeue_ends_currently_failing_but_keeps_history(app_ctx):
    job = create_job("doc-1").id
    _fail(job, UCUM)
    group_id = next(iter(_groups().values())).id
    requeue_job(job)
    view = get_group(group_id)
    assert (view.job_count, view.current_job_count, view.occurrence_count) == (1, 0, 1)
    assert db.session.scalars(current_job_ids(group_id)).all() == []
    # It fails again on the same group: still one job ever, current again.
    start_job(job)
    _fail(job, UCUM)
    view = get_group(group_id)
    assert (view.job_count, view.current_job_count, view.occurrence_count) == (1, 1, 2)
    _assert_counts_match_occurrences()


def test_failed_with_a_message_only_groups_by_the_parameterised_message(app_ctx):
    recorder = get_failure_recorder()
    recorder.record_failure(create_job("doc-1").id, "worker timed out after 30 s")
    recorder.record_failure(create_job("doc-2").id, "worker timed out after 45 s", {"trace": "free form"})
    (group,) = _groups().values()
    assert group.title == "worker timed out after <num> s" and group.code is None
    assert get_group(group.id).occurrence_count == 2


def test_an_identical_report_is_a_no_op_and_adds_no_occurrence(app_ctx):
    job = create_job("doc-1").id
    _fail(job, UCUM)
    _fail(job, UCUM)
    (group,) = _groups().values()
    assert get_group(group.id).occurrence_count == 1


def test_the_same_failure_from_a_newer_worker_is_a_new_occurrence_that_can_regress(app_ctx):
    # A trial found the report dropped as a retry when only the worker
    # differed, so a group resolved in 1.0.0 stayed resolved after 1.0.1 failed.
    from app.services.failure_groups.lifecycle import resolve_group

    job = create_job("doc-1").id
    _fail(job, UCUM, worker={"name": "extractor", "version": "1.0.0"})
    (group,) = _groups().values()
    with write_transaction():
        resolve_group(group.id, "alice", in_version="1.0.0", in_worker="extractor")
    _fail(job, UCUM, worker={"name": "extractor", "version": "1.0.0"})  # a retry: nothing new
    assert get_group(group.id).occurrence_count == 1
    _fail(job, UCUM, worker={"name": "extractor", "version": "1.0.1"})
    view = get_group(group.id)
    assert (view.occurrence_count, view.group.state, view.substate) == (2, "unresolved", "regressed")
    history = db.session.execute(
        sa.select(JobFailure.worker_version).where(JobFailure.job_id == job).order_by(JobFailure.recorded_at)
    ).scalars().all()
    assert history == ["1.0.0", "1.0.1"]
    _fail(job, UCUM)  # the same failure with no worker named differs too
    assert get_group(group.id).occurrence_count == 3


def test_an_explicit_fingerprint_groups_items_together(app_ctx):
    _fail(create_job("doc-1").id, {**UCUM, "fingerprint": "ucum-service"})
    _fail(create_job("doc-2").id, {**ICD, "fingerprint": "ucum-service"})
    (group,) = _groups().values()
    assert group.title == "ucum-service"
    assert get_group(group.id).job_count == 2


def test_the_hourly_rollup_counts_occurrences(app_ctx):
    for i in range(3):
        _fail(create_job(f"doc-{i}").id, UCUM)
    (group,) = _groups().values()
    now = datetime.now(timezone.utc)
    series = hourly_occurrences([group.id], now - timedelta(hours=23), now)[group.id]
    # Each failure in the hour of its recorded_at: all three in the last hour
    # (now's), unless an hour began between a failure and now (then the
    # earlier ones are in the hour before).
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    recorded = list(db.session.scalars(sa.select(JobFailure.recorded_at)))
    in_this_hour = sum(1 for at in recorded if at >= this_hour)
    assert len(recorded) == 3 and sum(series) == 3
    assert series[-1] == in_this_hour and series[-2] == 3 - in_this_hour


def test_the_sparkline_series_sum_the_hourly_rollup_by_hour_and_by_utc_day(app_ctx):
    from app.models.failure_group import FailureGroupDailyState, FailureGroupHourly
    from app.services.failure_groups.daily import day_of, rebuild_closed_days

    _fail(create_job("doc-1").id, UCUM)
    (group,) = _groups().values()
    now = datetime.now(timezone.utc).replace(hour=12, minute=30, second=0, microsecond=0)
    this_hour = now.replace(minute=0)
    with write_transaction():  # the recorder's row, on a random shard, is replaced by known ones
        db.session.execute(sa.delete(FailureGroupHourly))
    # Shards of one hour add up; 14 days ago and later than now are outside.
    for back, shard, count in [(0, 0, 1), (0, 1, 2), (0, 2, 3), (5, 0, 1), (12, 0, 4), (13, 0, 7), (23, 0, 8),
                               (24, 3, 1), (13 * 24 + 12, 0, 6), (13 * 24 + 13, 0, 100), (-1, 0, 100)]:
        with write_transaction():
            db.session.add(FailureGroupHourly(group_id=group.id, hour=this_hour - timedelta(hours=back),
                                              shard=shard, occurrences=count))
    rebuild_closed_days()  # the hours were written into days already rolled up
    series = hourly_occurrences([group.id], day_of(now) - timedelta(days=13), now)[group.id]
    expected_daily = [sum(series[d * 24:(d + 1) * 24]) for d in range(14)]
    hourly, daily = sparkline_series([group.id], now)[group.id]
    assert hourly == series[-24:]
    assert daily == expected_daily
    assert hourly[-1] == 1 + 2 + 3 and hourly[-6] == 1 and hourly[0] == 8
    assert daily[-1] == 6 + 1 + 4 and daily[-2] == 7 + 8 + 1 and daily[0] == 6 and sum(daily) == 6 + 1 + 4 + 16 + 6
    # Read from the hours alone (no day rolled up), the figures are the same.
    with write_transaction():
        db.session.execute(sa.delete(FailureGroupDailyState))
    assert sparkline_series([group.id], now)[group.id] == (hourly, daily)


@pytest.mark.parametrize(
    ("worker", "pointer"),
    [
        ({"name": "x", "version": ""}, "#/worker/version"),
        ({"name": "x\x00y"}, "#/worker/name"),
        ({"name": " x"}, "#/worker/name"),
        # A trial: U+2028 in a name was stored (a line break in every log line and CSV viewer).
        ({"name": "ex\u2028tractor"}, "#/worker/name"),
        ({"name": "x", "version": "1.0\u2029"}, "#/worker/version"),
        ({"version": "1" * 101}, "#/worker/version"),
        ({"name": "x", "extra": 1}, "#/worker"),
        ("worker-1", "#/worker"),
    ],
)
def test_a_bad_worker_is_refused_and_nothing_is_stored(app_ctx, worker, pointer):
    job = create_job("doc-1").id
    with pytest.raises(InvalidFailurePayloadError) as caught:
        _fail(job, UCUM, worker=worker)
    assert [e["pointer"] for e in caught.value.errors] == [pointer]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FailureGroup)) == 0


@pytest.mark.parametrize("value", ["1.0.0\u001f", "\u001c1.0.0", "1.0.0\u0085", "1.0.0\u2028"])
@pytest.mark.parametrize("key", ["name", "version"])
def test_an_unseen_character_at_an_end_of_the_worker_is_named_as_such(client, key, value):
    # A trial: str.strip() takes these off the ends, so they were told "without surrounding spaces".
    job = client.post("/api/v1/processing-jobs", json={"document_id": "doc-w"}).get_json()["id"]
    response = client.post(f"/api/v1/processing-jobs/{job}/validation-failure",
                           json={"error_message": "x", "error_details": None, "worker": {key: value}})
    assert response.status_code == 422
    (error,) = response.get_json()["errors"]
    assert error["pointer"] == f"#/worker/{key}"
    assert "control, format or line-separator" in error["detail"]


def test_the_api_takes_the_worker_and_item_fingerprints(client):
    job = client.post("/api/v1/processing-jobs", json={"document_id": "doc-api"}).get_json()["id"]
    response = client.post(
        f"/api/v1/processing-jobs/{job}/result",
        json={
            "status": "validation_failed",
            "error_message": "invalid",
            "error_details": _details({**UCUM, "fingerprint": "custom"}),
            "worker": {"name": "extractor", "version": "2.0.0"},
        },
    )
    assert response.status_code == 200, response.get_json()
    failures = client.get(f"/api/v1/processing-jobs/{job}/failures").get_json()["items"]
    assert failures[0]["worker"] == {"name": "extractor", "version": "2.0.0"}
    assert failures[0]["error_details"]["errors"][0]["fingerprint"] == "custom"
    bad = client.post(
        f"/api/v1/processing-jobs/{job}/validation-failure",
        json={"error_message": "x", "error_details": {}, "worker": {"name": 5}},
    )
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"


def test_the_retention_purge_ends_current_counts(app_ctx):
    job = create_job("doc-1").id
    _fail(job, UCUM)
    (group,) = _groups().values()
    retention.purge_finished_jobs(datetime.now(timezone.utc) + timedelta(days=1))
    view = get_group(group.id)
    assert (view.job_count, view.current_job_count, view.occurrence_count) == (1, 0, 1)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FailureOccurrence)) == 0


def test_a_rolled_back_failure_leaves_no_group(app_ctx):
    job = create_job("doc-1").id

    # The recorder joins the caller's transaction; what fails after it in
    # that transaction takes the failure and its group back with it.
    with pytest.raises(RuntimeError), write_transaction():
        get_failure_recorder().record_validation_failure(job, "x", _details(UCUM))
        raise RuntimeError("stop")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FailureGroup)) == 0
    assert uuid.UUID(str(job))


def test_metrics_count_created_groups_and_occurrences_once_committed(app_ctx):
    from app.observability import metrics

    created = metrics.GROUPS_CREATED._value.get()
    unresolved = metrics.GROUP_OCCURRENCES.labels(state="unresolved")._value.get()
    _fail(create_job("doc-1").id, UCUM, ICD)
    _fail(create_job("doc-2").id, UCUM)
    assert metrics.GROUPS_CREATED._value.get() == created + 2
    assert metrics.GROUP_OCCURRENCES.labels(state="unresolved")._value.get() == unresolved + 3

    job = create_job("doc-3").id
    with pytest.raises(RuntimeError), write_transaction():
        get_failure_recorder().record_validation_failure(job, "x", _details({**UCUM, "code": "brand.new"}))
        raise RuntimeError("stop")
    assert metrics.GROUPS_CREATED._value.get() == created + 2  # a rolled-back group counts nothing
    text = metrics.render_metrics()[0].decode()
    for name in ("failure_groups_created_total", "failure_groups_regressed_total", "failure_groups_woken_total",
                 'failure_group_occurrences_total{state="unresolved"}'):
        assert name in text


def test_ending_current_occurrences_reads_the_jobs_partial_index(app_ctx, backend):
    # A re-failure and a requeue end the job's current occurrences. The
    # condition must be the partial index's own (``WHERE is_current``):
    # PostgreSQL 15 does not prove ``is_current IS true`` implies it, and
    # scanned every occurrence of every job on each re-failure.
    job = create_job("doc-1").id
    _fail(job, UCUM)
    engine = db.session.get_bind()
    ending: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if "UPDATE failure_occurrences" in statement:
            ending.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        _fail(job, ICD)  # a re-failure: PostgreSQL ends inside the group statement
        requeue_job(job)  # end_current_occurrences on its own
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert len(ending) == 2  # the re-failure's and the requeue's
    if backend == "postgresql":  # on a tiny table a scan is cheaper: make the index win whenever it can be used
        db.session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    explain = "EXPLAIN " if backend == "postgresql" else "EXPLAIN QUERY PLAN "
    connection = db.session.connection()
    for statement, parameters in ending:
        plan = "\n".join(str(row[-1]) for row in connection.exec_driver_sql(explain + statement, parameters))
        assert "ix_failure_occurrences_current_job_id" in plan, plan
    db.session.rollback()


def test_the_group_statement_finds_a_reports_groups_by_their_unique_index(app_ctx, backend):
    # A report's groups are read by (grouping_version, fingerprint); among
    # thousands of groups that must stay an index lookup per hit, not a scan
    # of every group (PostgreSQL: the hits come from jsonb_to_recordset,
    # which the planner guesses at 100 rows).
    now = datetime.now(timezone.utc)
    db.session.execute(sa.insert(FailureGroup.__table__), [
        {"grouping_version": 1, "fingerprint": f"{i:064x}", "title": f"t{i}", "code": f"c{i}", "sample_message": "m",
         "severity": "error", "state": "unresolved", "substate": "ongoing", "first_seen": now, "last_seen": now,
         "state_changed_at": now}
        for i in range(5_000)
    ])
    # Committed before ANALYZE, so an autovacuum's ANALYZE of the table sees
    # the same rows as ours: with statistics of a near-empty table every
    # index costs alike and the planner may take any (CI saw that once).
    db.session.commit()
    db.session.execute(sa.text("ANALYZE failure_groups" if backend == "postgresql" else "ANALYZE"))
    db.session.commit()
    if backend == "postgresql":
        estimate = "\n".join(db.session.execute(sa.text(
            "EXPLAIN SELECT id FROM failure_groups WHERE grouping_version = 1")).scalars())
        rows = re.search(r"rows=(\d+)", estimate)
        assert rows and int(rows[1]) >= 4_000, estimate  # the planner knows the table's size
    _fail(create_job("doc-0").id, UCUM, ICD)  # the report's two groups exist
    engine = db.session.get_bind()
    reads: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if "FROM failure_groups" in statement:
            reads.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        _fail(create_job("doc-1").id, UCUM, ICD)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    # PostgreSQL: one statement for both groups; SQLite: one SELECT per group.
    assert len(reads) == (1 if backend == "postgresql" else 2)
    explain = "EXPLAIN " if backend == "postgresql" else "EXPLAIN QUERY PLAN "
    connection = db.session.connection()
    for statement, parameters in reads:
        plan = "\n".join(str(row[-1]) for row in connection.exec_driver_sql(explain + statement, parameters))
        if backend == "postgresql":
            assert "uq_failure_groups_version_fingerprint" in plan, plan
            assert "Seq Scan on failure_groups" not in plan, plan
        else:
            assert "SEARCH failure_groups USING INDEX" in plan, plan
    db.session.rollback()


def test_a_re_failure_on_the_same_group_keeps_one_current_occurrence_and_the_old_one_in_history(app_ctx, backend):
    # The job fails on UCUM and ICD, then on UCUM (now a warning, twice) and
    # a new code: UCUM's current occurrence takes the new failure's contents,
    # the first failure's UCUM occurrence stays in the history as it was,
    # ICD's ends, the new code's starts.
    job = create_job("doc-1").id
    _fail(job, UCUM, ICD, worker={"name": "extractor", "version": "1.0.0"})
    first, = db.session.scalars(sa.select(JobFailure.id)).all()
    groups = _groups()
    ucum = groups["unit.not_ucum at /entities/*/value/unit"].id
    icd = groups["code.unknown_icd10cm at /entities/*/code"].id
    was_current = db.session.scalar(sa.select(FailureOccurrence.id).where(FailureOccurrence.group_id == ucum))
    new_code = {"code": "value.range", "severity": "error", "message": "out of range", "pointer": "/entities/0/value"}
    warning = {**UCUM, "severity": "warning"}
    _fail(job, warning, {**warning, "pointer": "/entities/3/value/unit"}, new_code,
          worker={"name": "extractor", "version": "1.1.0"})
    second = db.session.scalar(sa.select(JobFailure.id).where(JobFailure.id != first))

    rows = db.session.execute(
        sa.select(FailureOccurrence.id, FailureOccurrence.group_id, FailureOccurrence.failure_id,
                  FailureOccurrence.is_current, FailureOccurrence.severity, FailureOccurrence.item_count,
                  FailureOccurrence.item_positions, FailureOccurrence.worker_version)
        .where(FailureOccurrence.job_id == job)
    ).all()
    by_failure_group = {(r.failure_id, r.group_id): r for r in rows}
    assert len(rows) == 4 and len(by_failure_group) == 4
    old, now = by_failure_group[(first, ucum)], by_failure_group[(second, ucum)]
    assert (old.is_current, old.severity, old.item_count, old.item_positions, old.worker_version) == (
        False, "error", 1, [0], "1.0.0")
    assert (now.is_current, now.severity, now.item_count, now.item_positions, now.worker_version) == (
        True, "warning", 2, [0, 1], "1.1.0")
    assert by_failure_group[(first, icd)].is_current is False
    new_group = _groups()["value.range at /entities/*/value"].id
    assert by_failure_group[(second, new_group)].is_current is True
    if backend == "postgresql":
        # The current row itself took the new contents (no flag flipped, so
        # the rollup triggers had nothing to count); SQLite ends and inserts.
        assert now.id == was_current
    ucum_view, icd_view = get_group(ucum), get_group(icd)
    assert (ucum_view.job_count, ucum_view.current_job_count, ucum_view.occurrence_count) == (1, 1, 2)
    assert (icd_view.job_count, icd_view.current_job_count, icd_view.occurrence_count) == (1, 0, 1)
    assert set(db.session.scalars(current_job_ids(ucum))) == {job}
    assert list(db.session.scalars(current_job_ids(icd))) == []
    _assert_counts_match_occurrences()


def test_the_group_statement_probes_the_group_job_index_for_a_job_seen_before(app_ctx, backend):
    # "Was this job in this group before?" must be one (group, job) index
    # probe per group hit. As an EXISTS, PostgreSQL hashed all the job's
    # occurrences instead, found by scanning the whole (group_id, job_id)
    # index on job_id alone: a cost that grew with the hot group.
    if backend != "postgresql":
        return  # SQLite runs a SELECT per group (add_occurrence)
    jobs = [create_job(f"doc-{n}").id for n in range(300)]
    for job in jobs:
        _fail(job, UCUM)
    # With statistics, as any table in use has them (autovacuum), so the
    # planner knows the (group, job) index is the one to probe.
    db.session.commit()
    db.session.execute(sa.text("ANALYZE failure_occurrences"))
    db.session.commit()
    engine = db.session.get_bind()
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.startswith("WITH found"):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        _fail(jobs[0], UCUM, message="invalid again")  # a re-failure (the ending inside the statement)
        _fail(create_job("doc-new").id, UCUM)  # a first failure
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert len(statements) == 2
    connection = db.session.connection()
    for statement, parameters in statements:
        plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
        probe = re.search(r"ix_failure_occurrences_group_id_job_id[^\n]*\n\s*Index Cond: \(([^\n]*)", plan)
        assert probe and "group_id = " in probe[1] and "job_id = " in probe[1], plan
    db.session.rollback()


def test_a_second_current_occurrence_in_one_group_is_ended_not_given_the_new_failure(app_ctx, backend):
    # None should exist, but if a job had two current occurrences in one
    # group, the re-failure keeps the newest and ends the other: giving both
    # the new failure would break the unique (failure_id, group_id) on every
    # later report of the job.
    job = create_job("doc-1").id
    _fail(job, UCUM)
    _fail(job, ICD)  # an earlier failure of the job, to hang a stray occurrence on
    earlier = db.session.scalar(sa.select(JobFailure.id).order_by(JobFailure.recorded_at).limit(1))
    _fail(job, UCUM, message="third")
    ucum = _groups()["unit.not_ucum at /entities/*/value/unit"].id
    # The first failure's UCUM occurrence, made current again by hand.
    db.session.execute(sa.update(FailureOccurrence).where(
        FailureOccurrence.group_id == ucum, FailureOccurrence.failure_id == earlier).values(is_current=True))
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).where(
        FailureOccurrence.group_id == ucum, FailureOccurrence.is_current)) == 2

    _fail(job, UCUM, message="fourth")

    current = db.session.execute(sa.select(FailureOccurrence.failure_id).where(
        FailureOccurrence.group_id == ucum, FailureOccurrence.is_current)).scalars().all()
    newest = db.session.scalar(sa.select(JobFailure.id).order_by(JobFailure.recorded_at.desc()).limit(1))
    assert current == [newest]
    _fail(job, UCUM, message="fifth")  # and the job's next report goes through too
    assert db.session.scalar(sa.select(sa.func.count()).where(
        FailureOccurrence.group_id == ucum, FailureOccurrence.is_current)) == 1


def test_the_retention_purge_takes_a_group_s_text_with_its_last_failure(app_ctx):
    """A support trial: the purge deleted the jobs, but the groups still
    showed the patient text of their messages to every viewer."""
    from app.models.failure_group import PURGED_SAMPLE, PURGED_TITLE

    # A failure without items groups by its message.
    get_failure_recorder().record_failure(create_job("doc-crashed").id, "patient Jane Doe crashed the worker")
    _fail(create_job("doc-old").id, {**UCUM, "message": "Jane Doe: unit is not UCUM"})
    kept = create_job("doc-kept").id
    _fail(kept, ICD, message="Jane Doe again")
    requeue_job(kept)  # Pending: never purged, so its group keeps an occurrence
    before = {g.fingerprint: (g.title, g.sample_message) for g in _groups().values()}
    counts = retention.purge_finished_jobs(datetime.now(timezone.utc) + timedelta(days=1))
    assert counts.groups_redacted == 2
    db.session.expire_all()
    after = {g.fingerprint: g for g in db.session.scalars(sa.select(FailureGroup))}
    by_code = {g.code: g for g in after.values()}
    message_group, ucum_group, icd_group = by_code[None], by_code["unit.not_ucum"], by_code["code.unknown_icd10cm"]
    assert message_group.title == f"{PURGED_TITLE} ({message_group.fingerprint[:12]})"
    assert message_group.sample_message == ucum_group.sample_message == PURGED_SAMPLE
    assert ucum_group.title == before[ucum_group.fingerprint][0]  # a code's title holds no message
    assert (icd_group.title, icd_group.sample_message) == before[icd_group.fingerprint]  # still has a failure
    assert get_group(message_group.id).occurrence_count == 1  # counts and state stay
    # Its next failure brings the text back. A purged group was last seen
    # before the purge's cutoff, an hour ago at least; here a moment ago.
    db.session.execute(sa.update(FailureGroup).values(last_seen=datetime.now(timezone.utc) - timedelta(hours=1)))
    db.session.commit()
    get_failure_recorder().record_failure(create_job("doc-again").id, "patient Jane Doe crashed the worker")
    db.session.expire_all()
    back = db.session.get(FailureGroup, message_group.id)
    assert (back.title, back.sample_message) == before[message_group.fingerprint]
    assert retention.purge_finished_jobs(datetime.now(timezone.utc) - timedelta(days=1)).groups_redacted == 0


def test_a_group_that_keeps_failures_takes_its_sample_from_one_it_kept(app_ctx):
    """An SRE trial: the purge deleted the job whose message was the group's
    sample, and /groups still showed it, because the group kept another failure."""
    kept = create_job("doc-kept").id
    _fail(kept, {**UCUM, "message": "unit is not UCUM (kept)"})
    requeue_job(kept)  # Pending: never purged; its failure stays in the history
    db.session.execute(sa.update(FailureGroup).values(last_seen=datetime.now(timezone.utc) - timedelta(hours=1)))
    db.session.commit()
    _fail(create_job("doc-purged").id, {**UCUM, "message": "PurgeMe Omega"})
    (group,) = _groups().values()
    assert group.sample_message == "PurgeMe Omega"
    counts = retention.purge_finished_jobs(datetime.now(timezone.utc) + timedelta(days=1))
    assert (counts.processing_jobs, counts.groups_redacted, counts.groups_resampled) == (1, 0, 1)
    db.session.expire_all()
    assert db.session.get(FailureGroup, group.id).sample_message == "unit is not UCUM (kept)"
    again = retention.purge_finished_jobs(datetime.now(timezone.utc) + timedelta(days=1))
    assert (again.processing_jobs, again.groups_resampled) == (0, 0)
