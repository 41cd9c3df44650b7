"""Concurrent failures on one new failure group, over real HTTP and separate
connections (one server thread and database connection per request, as
with several worker processes): one group, exact counts, on both databases."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup, FailureGroupEvent
from app.services.failure_groups.queries import get_group
from app.services.failure_groups.recording import rebuild_counts_check
from app.services.processing_jobs.lifecycle import create_job, start_job
from tests.integration.test_races import _fire
from tests.live_server import serve

WORKERS = 20


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
