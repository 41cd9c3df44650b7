"""Concurrent failures on one new failure group, over real HTTP and separate
connections (one server thread and database connection per request, as
with several worker processes): one group, exact counts, on both databases."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from app.extensions import db
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
