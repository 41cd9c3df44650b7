"""Requeue every job of a failure group at 100,000 jobs on PostgreSQL: the
confirmation counts them exactly, the action runs 1,000 jobs per
transaction (in the requests, or on the procrastinate worker), and the
audit row, the action's progress and the group's "failing now" counter
agree at the end."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import BulkAction, FailureGroup, ProcessingJob
from app.models.access import AuditEvent
from app.services.failure_groups import queries
from tests.integration.test_bulk_queue import queue_app, start_worker  # noqa: F401  (fixtures)

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

JOBS = 100_000
ITEM = {"code": "unit.not_ucum", "severity": "error", "message": "not UCUM", "pointer": "/entities/0/value/unit"}


def _load(app, client) -> int:
    """One failure through the API makes the group; 100,000 more are loaded
    with INSERT ... SELECT, occurrences and counters as the recorder writes them."""
    job = client.post("/api/v1/processing-jobs", json={"document_id": "doc-seed"}).get_json()
    client.post(f"/api/v1/processing-jobs/{job['id']}/validation-failure",
                json={"error_message": "failed", "error_details": {"errors": [ITEM]}})
    with app.app_context():
        group_id = db.session.scalar(sa.select(FailureGroup.id).where(FailureGroup.code == "unit.not_ucum"))
        statements = [
            """CREATE TEMP TABLE bulk_seed ON COMMIT DROP AS
               SELECT gen_random_uuid() AS job_id, gen_random_uuid() AS failure_id, n
               FROM generate_series(1, :jobs) AS n""",
            """INSERT INTO processing_jobs (id, document_id, job_type, status, error_message, created_at, updated_at, completed_at)
               SELECT job_id, 'doc-' || n, 'entity_extraction', 'Validation_Failed', 'failed', now(), now(), now() FROM bulk_seed""",
            """INSERT INTO job_failures (id, job_id, status, error_message, recorded_at)
               SELECT failure_id, job_id, 'Validation_Failed', 'failed', now() FROM bulk_seed""",
            """INSERT INTO failure_occurrences (group_id, failure_id, job_id, occurred_at, job_type, severity, item_count,
                                                item_positions, is_current)
               SELECT :group_id, failure_id, job_id, now(), 'entity_extraction', 'error', 1, '[]', true FROM bulk_seed""",
            """INSERT INTO failure_group_counts (group_id, job_type, worker_version, shard, occurrences, jobs, current_jobs)
               VALUES (:group_id, 'entity_extraction', '', 0, :jobs, :jobs, :jobs)
               ON CONFLICT (group_id, job_type, worker_version, shard) DO UPDATE SET
                 occurrences = failure_group_counts.occurrences + :jobs, jobs = failure_group_counts.jobs + :jobs,
                 current_jobs = failure_group_counts.current_jobs + :jobs""",
            "ANALYZE",
        ]
        # The seed is set-up, not the code under test: on a busy shared CI
        # machine its 100,000-row inserts (with the rollup triggers) can pass
        # the app's 15 s statement_timeout. The actions below keep it.
        db.session.execute(sa.text("SET LOCAL statement_timeout = 0"))
        for statement in statements:
            db.session.execute(sa.text(statement), {"jobs": JOBS, "group_id": group_id})
        db.session.commit()
    return group_id


def test_requeue_a_group_of_100000_jobs_in_batches(app, client):
    """The inline runner: requests of at most 20 s and Continue."""
    group_id = _load(app, client)
    path = f"/groups/{group_id}"
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)

    started = time.monotonic()
    html = client.post(path + "/jobs", data={"csrf_token": token, "op": "requeue"}, follow_redirects=True).get_data(as_text=True)
    frozen = time.monotonic() - started
    assert "Requeue 100,001 jobs?" in html
    run_path = re.search(r'action="(/bulk-actions/[^"]+/run)"', html).group(1)

    # Each request works for at most BULK_ACTION_REQUEST_SECONDS (20 s) and
    # pauses; the operator's "Continue" resumes it.
    started = time.monotonic()
    requests = 0
    while True:
        response = client.post(run_path, data={"csrf_token": token})
        requests += 1
        assert response.status_code == 303
        with app.app_context():
            if db.session.scalars(sa.select(BulkAction.state)).one() == "done":
                break
        assert requests < 50
    ran = time.monotonic() - started
    print(f"\nfroze 100,001 jobs in {frozen:.2f} s; requeued them in {ran:.1f} s over {requests} request(s)")

    with app.app_context():
        bulk = db.session.scalars(sa.select(BulkAction)).one()
        assert (bulk.state, bulk.total, bulk.changed, bulk.skipped) == ("done", JOBS + 1, JOBS + 1, 0)
        audit = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "jobs.requeue")).one()
        assert audit.row_count == JOBS + 1 and audit.filter["group_id"] == group_id
        pending = db.session.scalar(sa.select(sa.func.count()).where(ProcessingJob.status == "Pending"))
        assert pending == JOBS + 1
        view = queries.get_group(group_id)
        assert view.current_job_count == 0 and view.job_count == JOBS + 1
    # A second submit changes nothing.
    client.post(run_path, data={"csrf_token": token})
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "jobs.requeue")) == 1


def test_requeue_a_group_of_100000_jobs_on_the_worker(queue_app, client, start_worker):
    """The procrastinate runner: one request queues the task, one worker runs it to the end."""
    app = queue_app
    group_id = _load(app, client)
    path = f"/groups/{group_id}"
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)
    html = client.post(path + "/jobs", data={"csrf_token": token, "op": "requeue"}, follow_redirects=True).get_data(as_text=True)
    assert "Requeue 100,001 jobs?" in html
    run_path = re.search(r'action="(/bulk-actions/[^"]+/run)"', html).group(1)

    worker = start_worker()
    started = time.monotonic()
    assert client.post(run_path, data={"csrf_token": token}).status_code == 303
    answered = time.monotonic() - started
    deadline = started + 300
    while True:
        with app.app_context():
            state = db.session.scalars(sa.select(BulkAction.state)).one()
            db.session.rollback()
        if state == "done":
            break
        assert worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "not done within 300 s"
        time.sleep(0.1)
    ran = time.monotonic() - started
    print(f"\nqueued in {answered:.2f} s; the worker requeued 100,001 jobs in {ran:.1f} s")

    with app.app_context():
        bulk = db.session.scalars(sa.select(BulkAction)).one()
        assert (bulk.state, bulk.total, bulk.changed, bulk.skipped) == ("done", JOBS + 1, JOBS + 1, 0)
        audit = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "jobs.requeue")).one()
        assert audit.row_count == JOBS + 1 and audit.filter["group_id"] == group_id
        assert db.session.scalar(sa.select(sa.func.count()).where(ProcessingJob.status == "Pending")) == JOBS + 1
        assert queries.get_group(group_id).current_job_count == 0
