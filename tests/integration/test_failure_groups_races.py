"""Concurrent failures on one new failure group, over real HTTP and separate
connections (one server thread and database connection per request, as
with several worker processes): one group, exact counts, on both databases."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.types import utcnow
from app.models import FailureGroup, FailureGroupCount, FailureGroupEvent, JobGroupRollup, JobStatus
from app.services import dashboard_stats, top_codes
from app.services.processing_jobs.job_filter import JobFilter
from app.services.failure_groups.queries import get_group
from app.services.failure_groups.recording import rebuild_counts_check
from app.services.failure_groups.write_statements import job_shard
from app.services.top_codes import CodeCount
from app.services.processing_jobs.lifecycle import create_job, start_job
from tests.integration.test_races import _fire
from tests.live_server import serve

WORKERS = 20


def _assert_group_rollup(group_id: int, current: int, codes: tuple[str, ...] = ("unit.not_ucum",)) -> None:
    """The group filter's summary rollups (migrations 0019 and 0022) hold
    ``current`` jobs at every grain, no row below zero, and the summary
    reads them."""
    for grain in JobGroupRollup.grains:
        total = db.session.scalar(sa.select(sa.func.sum(JobGroupRollup.jobs)).where(
            JobGroupRollup.group_id == group_id, JobGroupRollup.grain == int(grain)))
        assert total == current, grain
    assert db.session.scalar(sa.select(sa.func.min(JobGroupRollup.jobs))) >= 0
    counts = dashboard_stats.status_counts(JobFilter(group_id=group_id), scan_limit=1)
    assert counts.counts[JobStatus.VALIDATION_FAILED] == current and not counts.capped
    # The codes those jobs carry (migration 0022), exact with a scan of one job.
    top = top_codes.top_error_codes(JobFilter(group_id=group_id), scan_limit=1)
    expected = [CodeCount(code, current, current, 0) for code in sorted(codes)] if current else []
    assert top.codes == expected and not top.capped and top.scanned == 0


def _report(i: int) -> dict:
    # Different jobs, indices, messages and versions: one fingerprint.
    return {
        "status": "validation_failed",
        "error_message": f"failure {i}",
        "error_details": {
            "errors": [
                {"code": "unit.not_ucum", "severity": "error", "message": f"unit {i} is not UCUM",
                 "pointer": f"/entities/{i}/value/unit"},
                {"code": "unit.not_ucum", "severity": "fatal", "message": "again",
                 "pointer": f"/entities/{i + 1}/value/unit"},
            ]
        },
        "worker": {"name": f"worker-{i % 3}", "version": f"1.{i % 2}.0"},
    }


def test_concurrent_failures_create_one_group_with_exact_counts(app, auth_headers):
    with app.app_context():
        jobs = [str(create_job(f"doc-{i}").id) for i in range(WORKERS)]
        for job in jobs:
            start_job(job)
    requests_to_send = [
        (f"/api/v1/processing-jobs/{job}/result", _report(i), auth_headers) for i, job in enumerate(jobs)
    ]
    with serve(app) as base_url:
        answers = _fire(base_url, requests_to_send)
    assert [status for status, _, _ in answers] == [200] * WORKERS

    with app.app_context():
        (group,) = db.session.scalars(sa.select(FailureGroup)).all()
        assert group.title == "unit.not_ucum at /entities/*/value/unit"
        assert group.severity == "fatal"
        view = get_group(group.id)
        assert (view.job_count, view.current_job_count, view.occurrence_count) == (WORKERS, WORKERS, WORKERS)
        assert sorted(view.worker_versions) == ["1.0.0", "1.1.0"]
        assert rebuild_counts_check([group.id])[group.id] == {
            "occurrences": WORKERS, "jobs": WORKERS, "current_jobs": WORKERS
        }
        events = db.session.scalars(sa.select(FailureGroupEvent.reason)).all()
        assert events == ["created"]
        _assert_group_rollup(group.id, WORKERS)


def _refailure(i: int, run: int) -> dict:
    return {
        "error_message": f"failure {i}, run {run}",
        "error_details": {
            "errors": [{"code": "unit.not_ucum", "severity": "error", "message": f"unit {i} run {run}",
                        "pointer": f"/entities/{i}/value/unit"}]
        },
    }


def test_concurrent_refailures_of_failed_jobs_on_one_group_all_succeed_with_exact_counts(app, auth_headers):
    # Each request ends its job's current occurrence in the group and adds
    # a new one there: it lowers and raises the group's counters. Twenty at
    # once must neither deadlock on the counter shards nor drift.
    with app.app_context():
        jobs = [str(create_job(f"doc-{i}").id) for i in range(WORKERS)]
    first = [(f"/api/v1/processing-jobs/{job}/validation-failure", _refailure(i, 1), auth_headers)
             for i, job in enumerate(jobs)]
    again = [(f"/api/v1/processing-jobs/{job}/validation-failure", _refailure(i, 2), auth_headers)
             for i, job in enumerate(jobs)]
    with serve(app) as base_url:
        assert [status for status, _, _ in _fire(base_url, first)] == [200] * WORKERS
        assert [status for status, _, _ in _fire(base_url, again)] == [200] * WORKERS

    with app.app_context():
        (group,) = db.session.scalars(sa.select(FailureGroup)).all()
        view = get_group(group.id)
        assert (view.job_count, view.current_job_count, view.occurrence_count) == (WORKERS, WORKERS, 2 * WORKERS)
        assert rebuild_counts_check([group.id])[group.id] == {
            "occurrences": 2 * WORKERS, "jobs": WORKERS, "current_jobs": WORKERS
        }
        # A job's re-failure lowered and raised the same counter row (its
        # own shard): no shard row went below zero.
        lowest = db.session.scalar(
            sa.select(sa.func.min(FailureGroupCount.current_jobs)).where(FailureGroupCount.group_id == group.id)
        )
        assert lowest >= 0
        expected_shards = {job_shard(uuid.UUID(job)) for job in jobs}
        shards = set(db.session.scalars(
            sa.select(FailureGroupCount.shard).where(FailureGroupCount.group_id == group.id)
        ).all())
        assert shards == expected_shards
        _assert_group_rollup(group.id, WORKERS)


def _three_groups(i: int, run: int) -> dict:
    items = [
        {"code": code, "severity": "error", "message": f"{code} {i} run {run}", "pointer": f"/entities/{i}/{code}"}
        for code in ("unit.not_ucum", "code.unknown", "value.missing")
    ]
    # Each report lists its items in another order: the statement must lock
    # the groups' rows in one order whatever the report's order is.
    return {"error_message": f"failure {i}, run {run}",
            "error_details": {"errors": items[i % 3:] + items[:i % 3]}}


def test_concurrent_reports_on_three_shared_groups_all_succeed_with_exact_counts(app, auth_headers):
    # One statement writes a report's three groups (PostgreSQL): twenty
    # reports at once, first creating the groups, then re-failing (ending
    # the previous occurrences in the same statement), must neither
    # deadlock nor drift.
    with app.app_context():
        jobs = [str(create_job(f"doc-{i}").id) for i in range(WORKERS)]
    with serve(app) as base_url:
        for run in (1, 2):
            sent = [(f"/api/v1/processing-jobs/{job}/validation-failure", _three_groups(i, run), auth_headers)
                    for i, job in enumerate(jobs)]
            assert [status for status, _, _ in _fire(base_url, sent)] == [200] * WORKERS

    with app.app_context():
        groups = db.session.scalars(sa.select(FailureGroup.id)).all()
        assert len(groups) == 3
        for group_id in groups:
            view = get_group(group_id)
            assert (view.job_count, view.current_job_count, view.occurrence_count) == (
                WORKERS, WORKERS, 2 * WORKERS
            )
            assert rebuild_counts_check([group_id])[group_id] == {
                "occurrences": 2 * WORKERS, "jobs": WORKERS, "current_jobs": WORKERS
            }
            _assert_group_rollup(group_id, WORKERS, ("unit.not_ucum", "code.unknown", "value.missing"))
        assert db.session.scalars(sa.select(FailureGroupEvent.reason)).all() == ["created"] * 3


def _old_worker_failure(i: int) -> dict:
    return {
        "status": "validation_failed", "error_message": f"old worker {i}",
        "error_details": {"errors": [{"code": "unit.not_ucum", "severity": "error", "message": f"unit {i}",
                                      "pointer": f"/entities/{i}/value/unit"}]},
        "worker": {"name": "w", "version": "1.0.0"},
    }


def _started_jobs(count: int, prefix: str) -> list[str]:
    jobs = [str(create_job(f"{prefix}-{i}").id) for i in range(count)]
    for job in jobs:
        start_job(job)
    return jobs


@pytest.mark.parametrize("lifecycle_change", ["resolved in 2.0.0", "ignored until 1000 more"])
def test_concurrent_failures_on_a_group_whose_state_they_must_check_all_succeed(app, auth_headers, lifecycle_change):
    # A trial, on PostgreSQL: each report held its occurrence's key share on
    # the group row and then asked FOR UPDATE to check the state: two such
    # reports deadlocked, and 37 of 40 concurrent ones answered 503.
    from app.services.failure_groups import lifecycle

    with app.app_context():
        (first,) = _started_jobs(1, "first")
    with serve(app) as base_url:
        first_report = (f"/api/v1/processing-jobs/{first}/result", _old_worker_failure(0), auth_headers)
        assert _fire(base_url, [first_report])[0][0] == 200
        with app.app_context():
            group_id = db.session.scalar(sa.select(FailureGroup.id))
            if lifecycle_change.startswith("resolved"):
                lifecycle.resolve_group(group_id, "op", in_version="2.0.0", in_worker="w")
            else:
                lifecycle.ignore_group(group_id, "op", occurrences=1000)
            jobs = _started_jobs(WORKERS, "old")
        answers = _fire(base_url, [(f"/api/v1/processing-jobs/{job}/result", _old_worker_failure(i + 1), auth_headers)
                                   for i, job in enumerate(jobs)])
    assert [status for status, _, _ in answers] == [200] * WORKERS
    with app.app_context():
        group = db.session.get(FailureGroup, group_id)
        assert group.state == ("resolved" if lifecycle_change.startswith("resolved") else "ignored")
        view = get_group(group_id)
        assert (view.job_count, view.current_job_count, view.occurrence_count) == (WORKERS + 1,) * 3


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_report_waiting_on_a_resolve_in_progress_sees_it_and_reopens_the_group(app, auth_headers):
    # A trial: a report read the group's state when its statement began,
    # waited on the resolve's row lock in its foreign-key check, went on
    # with "unresolved" and committed after the resolve without reopening
    # it. Here the resolve is held open until the report waits on it.
    with app.app_context():
        first, second = _started_jobs(2, "held")
    with serve(app) as base_url:
        first_report = (f"/api/v1/processing-jobs/{first}/result", _old_worker_failure(0), auth_headers)
        assert _fire(base_url, [first_report])[0][0] == 200
        with app.app_context():
            group_id = db.session.scalar(sa.select(FailureGroup.id))
            with db.engine.connect() as resolving:
                resolving.execute(sa.text("SELECT id FROM failure_groups WHERE id = :g FOR UPDATE"), {"g": group_id})
                resolving.execute(sa.text(
                    "UPDATE failure_groups SET state = 'resolved', substate = NULL, resolved_by = 'op', "
                    "resolved_at = now() - interval '1 hour', state_changed_at = now() - interval '1 hour' "
                    "WHERE id = :g"), {"g": group_id})
                with ThreadPoolExecutor(max_workers=1) as pool:
                    report = pool.submit(_fire, base_url, [
                        (f"/api/v1/processing-jobs/{second}/result", _old_worker_failure(1), auth_headers)])
                    waiting = ("SELECT count(*) FROM pg_stat_activity "
                               "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
                    deadline = time.monotonic() + 120
                    with db.engine.connect() as watcher:
                        def report_waits() -> bool:
                            # Each look in a transaction of its own: PostgreSQL keeps
                            # one snapshot of pg_stat_activity per transaction.
                            with watcher.begin():
                                return bool(watcher.execute(sa.text(waiting)).scalar())

                        while not report_waits() and not report.done():
                            assert time.monotonic() < deadline, "the report never waited on the resolve"
                            time.sleep(0.01)  # polling, with a deadline
                    resolving.commit()
                    assert report.result()[0][0] == 200
        with app.app_context():
            group = db.session.get(FailureGroup, group_id)
            assert (group.state, group.substate) == ("unresolved", "regressed")
            reasons = db.session.scalars(
                sa.select(FailureGroupEvent.reason).where(FailureGroupEvent.group_id == group_id)
                .order_by(FailureGroupEvent.id)).all()
            assert reasons[-1] == "regressed"


def test_an_occurrence_from_before_an_ignore_until_n_does_not_count_towards_n(app, auth_headers):
    # A trial: reports timed before an ignore but read after it were not in
    # its base and still counted, and woke a group after 5 of its 10.
    with app.app_context():
        jobs = _started_jobs(4, "limbo")
    path = "/api/v1/processing-jobs/{}/result"
    with serve(app) as base_url:
        def report(i: int) -> None:
            assert _fire(base_url, [(path.format(jobs[i]), _old_worker_failure(i), auth_headers)])[0][0] == 200

        def ignored_since(moment: datetime, **base: int) -> None:
            with app.app_context():
                db.session.execute(sa.update(FailureGroup).where(FailureGroup.id == group_id).values(
                    state="ignored", substate=None, ignore_mode="until_occurrences", ignore_until_occurrences=2,
                    state_changed_at=moment, **base))
                db.session.commit()

        report(0)
        with app.app_context():
            group_id = db.session.scalar(sa.select(FailureGroup.id))
        # An ignore until 2 more, stamped after the next report's time: that
        # report is from before it (its base was 1).
        ignored_since(utcnow() + timedelta(hours=1), ignore_base_occurrences=1)
        report(1)
        with app.app_context():
            group = db.session.get(FailureGroup, group_id)
            assert (group.state, group.ignore_base_occurrences) == ("ignored", 2)
        ignored_since(utcnow() - timedelta(seconds=1))
        report(2)  # the first after the ignore
        with app.app_context():
            assert db.session.get(FailureGroup, group_id).state == "ignored"
        report(3)  # the second: wakes it
        with app.app_context():
            assert db.session.get(FailureGroup, group_id).state == "unresolved"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_older_version_failing_on_a_group_resolved_in_a_version_takes_no_group_lock(app, auth_headers):
    # A trial: such reports each took the group's lock in turn, and an
    # operator's reopen waited behind them past the statement timeout.
    from app.services.failure_groups import lifecycle

    with app.app_context():
        first, second = _started_jobs(2, "unlocked")
    path = "/api/v1/processing-jobs/{}/result"
    with serve(app) as base_url:
        assert _fire(base_url, [(path.format(first), _old_worker_failure(0), auth_headers)])[0][0] == 200
        with app.app_context():
            group_id = db.session.scalar(sa.select(FailureGroup.id))
            lifecycle.resolve_group(group_id, "op", in_version="2.0.0", in_worker="w")
            with db.engine.connect() as holder:  # another report's state check, held
                holder.execute(sa.text("SELECT id FROM failure_groups WHERE id = :g FOR NO KEY UPDATE"),
                               {"g": group_id})
                assert _fire(base_url, [(path.format(second), _old_worker_failure(1), auth_headers)])[0][0] == 200
                holder.rollback()
    with app.app_context():
        assert db.session.get(FailureGroup, group_id).state == "resolved"
        assert get_group(group_id).occurrence_count == 2
