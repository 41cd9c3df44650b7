"""Bulk actions on procrastinate (PostgreSQL): confirming queues exactly one
task in the transaction of the claim and the audit row, a real worker
(``flask bulk-worker``, started here as a subprocess) works the whole
selection through, and a worker killed half-way is replaced by one that
finishes with the exact count."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.config import ROOT, ConfigError, load_config
from app.extensions import db
from app.models import BulkAction, FailureGroup, ProcessingJob
from app.models.access import AuditEvent
from app.services import bulk_queue
from app.services.failure_groups import queries
from app.unit_of_work import write_transaction
from tests.integration.test_dashboard_actions import _csrf, _failed_job, _row

#: Audit rows other than the views (``seen.*``) the pages write before they show error text.
NOT_VIEWS = AuditEvent.action.not_like("seen.%")

JOBS = 3_000
ITEM = {"code": "unit.not_ucum", "severity": "error", "message": "not UCUM", "pointer": "/entities/0/value/unit"}
#: Longest wait for a worker to get somewhere, in seconds.
DEADLINE = 90.0

postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _load(app, client, jobs: int) -> int:
    """One failure through the API makes the group; ``jobs`` more are loaded
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
        ]
        for statement in statements:
            db.session.execute(sa.text(statement), {"jobs": jobs, "group_id": group_id})
        db.session.commit()
    return group_id


@pytest.fixture
def queue_app(app, database_url: str) -> Iterator:
    """``app`` running bulk actions on procrastinate; its queue emptied afterwards
    (the suite's TRUNCATE knows only the app's own tables)."""
    app.config["BULK_ACTION_RUNNER"] = "procrastinate"
    yield app
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE procrastinate_jobs, procrastinate_workers CASCADE"))
    engine.dispose()


@pytest.fixture
def start_worker(database_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``flask bulk-worker`` on the test database (a subprocess, so it
    can be killed); every worker still running at the end is stopped."""
    started: list[subprocess.Popen] = []
    logs = []

    def start(*options: str, lock_timeout_ms: int = 120_000) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": database_url, "DB_LOCK_TIMEOUT_MS": str(lock_timeout_ms),
               "DB_STATEMENT_TIMEOUT_MS": "120000", "PYTHONDONTWRITEBYTECODE": "1"}
        log = (tmp_path / f"worker-{len(started)}.log").open("w")
        logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "bulk-worker", "--heartbeat", "0.5", *options],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    for log in logs:
        log.close()


def _wait_for(condition: Callable[[], bool], what: str, worker: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if worker is not None and worker.poll() is not None:
            pytest.fail(f"the worker exited ({worker.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {DEADLINE} s")
        time.sleep(0.05)


def _bulk(app) -> BulkAction:
    with app.app_context():
        bulk = db.session.scalars(sa.select(BulkAction)).one()
        db.session.expunge(bulk)
        return bulk


def _queued(app, bulk_id) -> list[dict]:
    with app.app_context():
        rows = bulk_queue.queued(bulk_id)
        db.session.rollback()
        return rows


def _confirm(client, group_id: int) -> tuple[str, str]:
    path = f"/groups/{group_id}"
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)
    html = client.post(path + "/jobs", data={"csrf_token": token, "op": "requeue"}, follow_redirects=True).get_data(as_text=True)
    assert f"Requeue {JOBS + 1:,} jobs?" in html
    return token, re.search(r'action="(/bulk-actions/[^"]+/run)"', html).group(1)


def _assert_finished(app, group_id: int) -> None:
    with app.app_context():
        bulk = db.session.scalars(sa.select(BulkAction)).one()
        assert (bulk.state, bulk.total, bulk.changed, bulk.skipped, bulk.next_position) == (
            "done", JOBS + 1, JOBS + 1, 0, JOBS + 1)
        audit = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS).where(AuditEvent.action == "jobs.requeue")).one()
        assert audit.row_count == JOBS + 1 and audit.filter["group_id"] == group_id
        assert db.session.scalar(sa.select(sa.func.count()).where(ProcessingJob.status == "Pending")) == JOBS + 1
        view = queries.get_group(group_id)
        assert view.current_job_count == 0 and view.job_count == JOBS + 1


@postgresql_only
def test_a_group_requeue_is_audited_queued_once_and_run_by_the_worker(queue_app, client, start_worker):
    app = queue_app
    group_id = _load(app, client, JOBS)
    token, run_path = _confirm(client, group_id)

    # Confirming commits the claim, the audit row and one queued task
    # together; no job has changed yet (no worker runs).
    response = client.post(run_path, data={"csrf_token": token})
    assert response.status_code == 303
    bulk = _bulk(app)
    assert bulk.state == "running" and bulk.changed == 0
    with app.app_context():
        audit = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS).where(AuditEvent.action == "jobs.requeue")).one()
        assert audit.row_count == 0 and audit.filter["selected"] == JOBS + 1
        assert audit.filter["bulk_action_id"] == str(bulk.id)
        assert db.session.scalar(sa.select(sa.func.count()).where(ProcessingJob.status == "Pending")) == 0
    assert [(row["status"], row["attempts"]) for row in _queued(app, bulk.id)] == [("todo", 0)]
    page = client.get(f"/bulk-actions/{bulk.id}").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="3">' in page and "Running in the background" in page

    # A double submit queues nothing more, and neither does a second deferral
    # while the first waits (procrastinate's queueing lock).
    client.post(run_path, data={"csrf_token": token})
    with app.app_context():
        with write_transaction():
            assert bulk_queue.defer_run(bulk.id) is False
    assert len(_queued(app, bulk.id)) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(NOT_VIEWS)
                                 .where(AuditEvent.action == "jobs.requeue")) == 1

    worker = start_worker("--batch-size", "500")
    _wait_for(lambda: _bulk(app).state == "done", "finished bulk action", worker)
    _assert_finished(app, group_id)
    # The finished task is deleted from the queue; the page stops reloading.
    _wait_for(lambda: _queued(app, bulk.id) == [], "empty queue", worker)
    page = client.get(f"/bulk-actions/{bulk.id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page and f"{JOBS + 1:,}" in page


def _hold_job_at(engine: sa.Engine, bulk_id, position: int) -> sa.Connection:
    """A connection holding the row lock of the selection's job at ``position``."""
    holder = engine.connect()
    holder.execute(sa.text(
        "SELECT 1 FROM processing_jobs WHERE id = (SELECT job_id FROM bulk_action_jobs "
        "WHERE bulk_action_id = :bulk AND position = :position) FOR UPDATE"), {"bulk": bulk_id, "position": position})
    return holder


def _waiting_on_a_lock(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return bool(connection.scalar(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")))


@postgresql_only
def test_a_failed_batch_leaves_exact_counts_and_the_retry_continues(queue_app, client, start_worker, database_url):
    app = queue_app
    group_id = _load(app, client, JOBS)
    token, run_path = _confirm(client, group_id)
    client.post(run_path, data={"csrf_token": token})
    bulk = _bulk(app)

    # The batch of positions 1,500-1,999 cannot lock the job at 1,600 within
    # the worker's lock_timeout: it rolls back, the action is "failed" with
    # what the first three batches did, and procrastinate schedules a retry.
    engine = sa.create_engine(database_url)
    holder = _hold_job_at(engine, bulk.id, 1_600)
    try:
        worker = start_worker("--batch-size", "500", lock_timeout_ms=300)
        _wait_for(lambda: _bulk(app).state == "failed", "failed bulk action", worker)
        failed = _bulk(app)
        assert (failed.next_position, failed.changed) == (1_500, 1_500)
        with app.app_context():
            assert db.session.scalar(
                sa.select(AuditEvent.row_count).where(AuditEvent.action == "jobs.requeue")) == 1_500
            assert db.session.scalar(sa.select(sa.func.count()).where(ProcessingJob.status == "Pending")) == 1_500
        page = client.get(f"/bulk-actions/{bulk.id}").get_data(as_text=True)
        assert "Stopped after 1,500 of 3,001" in page and 'http-equiv="refresh"' not in page
    finally:
        holder.rollback()
        holder.close()
    # The retry (procrastinate's RetryStrategy) continues from position 1,500.
    _wait_for(lambda: _bulk(app).state == "done", "finished bulk action", worker)
    _assert_finished(app, group_id)
    engine.dispose()


@postgresql_only
@pytest.mark.parametrize("queued_meanwhile", [False, True], ids=["alone", "with-a-newer-run-queued"])
def test_a_worker_killed_half_way_is_replaced_and_the_count_is_exact(
        queue_app, client, start_worker, database_url, queued_meanwhile):
    app = queue_app
    group_id = _load(app, client, JOBS)
    token, run_path = _confirm(client, group_id)
    client.post(run_path, data={"csrf_token": token})
    bulk = _bulk(app)

    # Hold a lock on the job at position 1,600: the worker commits the
    # batches of positions 0-1,499 and waits in the next one, where it is killed.
    engine = sa.create_engine(database_url)
    holder = _hold_job_at(engine, bulk.id, 1_600)
    try:
        worker = start_worker("--batch-size", "500", "--stalled-after", "2")
        _wait_for(lambda: _bulk(app).next_position == 1_500 and _waiting_on_a_lock(engine), "blocked batch", worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        holder.rollback()
        holder.close()

    # Exactly the three committed batches took effect, and say so.
    half = _bulk(app)
    assert (half.state, half.next_position, half.changed) == ("running", 1_500, 1_500)
    with app.app_context():
        assert db.session.scalar(sa.select(AuditEvent.row_count).where(AuditEvent.action == "jobs.requeue")) == 1_500
        assert db.session.scalar(sa.select(sa.func.count()).where(ProcessingJob.status == "Pending")) == 1_500
    assert [row["status"] for row in _queued(app, bulk.id)] == ["doing"]
    if queued_meanwhile:
        # A newer run queued beside the dead one's (a trial: an operator's
        # Continue on a stale action): retrying the dead one broke the
        # queueing lock's unique index, ended the worker's retry loop, and
        # the newer run waited behind the dead one's lock for good.
        with app.app_context(), write_transaction():
            assert bulk_queue.defer_run(bulk.id)

    # A new worker finds the dead one's task (no heartbeat for 2 s), retries
    # it (or, with a newer run queued, ends it so that run can start), and
    # the action continues from position 1,500.
    replacement = start_worker("--batch-size", "500", "--stalled-after", "2")
    _wait_for(lambda: _bulk(app).state == "done", "finished bulk action", replacement)
    _assert_finished(app, group_id)
    # A run that succeeds is deleted; the dead one's task, ended, stays as failed.
    assert [row["status"] for row in _queued(app, bulk.id)] == (["failed"] if queued_meanwhile else [])
    engine.dispose()


@postgresql_only
def test_a_stopped_worker_pauses_after_its_batch_and_the_next_one_continues(
        queue_app, client, start_worker, database_url):
    app = queue_app
    group_id = _load(app, client, JOBS)
    token, run_path = _confirm(client, group_id)
    client.post(run_path, data={"csrf_token": token})
    bulk = _bulk(app)

    engine = sa.create_engine(database_url)
    holder = _hold_job_at(engine, bulk.id, 1_600)
    try:
        worker = start_worker("--batch-size", "500")
        _wait_for(lambda: _bulk(app).next_position == 1_500 and _waiting_on_a_lock(engine), "blocked batch", worker)
        worker.send_signal(signal.SIGTERM)  # while the fourth batch waits for the lock
    finally:
        holder.rollback()
        holder.close()
    # The batch in progress commits, then the action pauses and the worker exits.
    assert worker.wait(timeout=DEADLINE) == 0
    paused = _bulk(app)
    assert (paused.state, paused.next_position, paused.changed) == ("paused", 2_000, 2_000)
    # Queued again as a new task, not a retry: a stop must not use up the
    # retry attempts (a trial: six deploys left the action paused, its task failed).
    assert [(row["status"], row["attempts"]) for row in _queued(app, bulk.id)] == [("todo", 0)]

    start_worker("--batch-size", "500")
    _wait_for(lambda: _bulk(app).state == "done", "finished bulk action")
    _assert_finished(app, group_id)
    engine.dispose()


@postgresql_only
def test_a_filter_acknowledge_runs_on_a_worker_that_stops_when_the_queue_is_empty(queue_app, client, start_worker):
    app = queue_app
    ids = [_failed_job(app, f"doc-filter-{i}", message="timeout") for i in range(4)]
    other = _failed_job(app, "doc-other", message="crashed")
    form = {"csrf_token": _csrf(client), "op": "acknowledge:filter", "q": "timeout"}
    html = client.post("/jobs/bulk", data=form, follow_redirects=True).get_data(as_text=True)
    assert "Acknowledge 4 jobs?" in html
    run_path = re.search(r'action="(/bulk-actions/[^"]+/run)"', html).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    page = client.get(client.post(run_path, data={"csrf_token": token}).headers["Location"]).get_data(as_text=True)
    assert "in the background" in page and all(_row(app, i)["acknowledged_at"] is None for i in ids)

    assert start_worker("--once").wait(timeout=DEADLINE) == 0
    bulk = _bulk(app)
    assert (bulk.state, bulk.changed, bulk.skipped) == ("done", 4, 0)
    assert all(_row(app, i)["acknowledged_at"] is not None for i in ids)
    assert _row(app, other)["acknowledged_at"] is None
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS)).one()
    assert event.filter["scope"] == "filter" and event.filter["query"] == {"q": ["timeout"]}
    assert event.filter["selected"] == 4 and event.row_count == 4


@postgresql_only
def test_a_worker_that_loses_its_database_starts_again_and_runs_the_next_action(
    queue_app, client, start_worker, database_url, tmp_path
):
    # A trial restarted PostgreSQL: procrastinate stopped its worker when its
    # LISTEN connection could not come back, and the process exited 0, so no
    # supervisor started it again and confirmed actions waited for ever.
    app = queue_app
    group_id = _load(app, client, JOBS)
    worker = start_worker()
    log = tmp_path / "worker-0.log"
    engine = sa.create_engine(database_url)
    listening = "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
    try:
        _wait_for(lambda: _scalars(engine, listening) != [], "LISTEN connection", worker)
        name = engine.url.database
        # From the maintenance database: the test database refuses every new
        # connection and loses its old ones, as in a restart.
        admin = sa.create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as holder:
            holder.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            try:
                holder.execute(sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name "
                    "AND backend_type = 'client backend'"), {"name": name})
                _wait_for(lambda: worker.poll() is not None or "bulk worker stopped" in log.read_text(),
                          "the worker to notice")
            finally:
                holder.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        assert worker.poll() is None, f"the worker exited ({worker.returncode}) when its database went away"
        _wait_for(lambda: _scalars(engine, listening) != [], "a new LISTEN connection", worker)
    finally:
        engine.dispose()
    token, run_path = _confirm(client, group_id)
    assert client.post(run_path, data={"csrf_token": token}).status_code == 303
    _wait_for(lambda: _bulk(app).state == "done", "finished bulk action", worker)
    _assert_finished(app, group_id)
    assert worker.poll() is None


def _scalars(engine: sa.Engine, query: str) -> list:
    with engine.connect() as connection:
        return list(connection.scalars(sa.text(query)))


def test_the_runner_follows_the_database(monkeypatch):
    monkeypatch.delenv("BULK_ACTION_RUNNER", raising=False)
    postgresql = "postgresql+psycopg://u@h/db"
    assert load_config({"SQLALCHEMY_DATABASE_URI": postgresql})["BULK_ACTION_RUNNER"] == "procrastinate"
    assert load_config({"SQLALCHEMY_DATABASE_URI": "sqlite:///x.db"})["BULK_ACTION_RUNNER"] == "inline"
    monkeypatch.setenv("BULK_ACTION_RUNNER", "inline")
    assert load_config({"SQLALCHEMY_DATABASE_URI": postgresql})["BULK_ACTION_RUNNER"] == "inline"
    monkeypatch.setenv("BULK_ACTION_RUNNER", "procrastinate")
    with pytest.raises(ConfigError, match="needs a PostgreSQL"):
        load_config({"SQLALCHEMY_DATABASE_URI": "sqlite:///x.db"})
    monkeypatch.setenv("BULK_ACTION_RUNNER", "thread")
    with pytest.raises(ConfigError, match="BULK_ACTION_RUNNER"):
        load_config({"SQLALCHEMY_DATABASE_URI": postgresql})
    assert bulk_queue.conninfo("postgresql+psycopg://u:p%40w@h:5433/db") == "postgresql://u:p%40w@h:5433/db"
