"""Database faults: a PostgreSQL restart under load, and statement/lock timeouts.

The restart test stops and starts the run's throwaway PostgreSQL (the one
scripts/with-postgres started, found through ``PG_BIN`` and
``PG_TEST_DATA``) while worker threads post reports to a live server. It
leaves the server running: later tests and the session fixtures reconnect
through new engines (and the pool's check of a connection at checkout).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.web.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE
from app.extensions import db
from app.models import ExtractedEntity, IdempotencyRecord, JobFailure, ProcessingJob
from app.services import worker_tokens

POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

DETAILS = {
    "errors": [{"code": "schema.required", "severity": "error", "message": "missing", "pointer": "/a"}]
}
ENTITY = {
    "entity_type": "Condition",
    "text": "asthma",
    "code": "J45.909",
    "code_system": "http://hl7.org/fhir/sid/icd-10-cm",
    "confidence": 0.9,
    "span": {"start": 0, "end": 6},
}


def _pg_ctl(*args: str) -> None:
    """Run ``pg_ctl`` on the test cluster (as ``postgres`` when we are root)."""
    pg_bin, data = os.environ.get("PG_BIN"), os.environ.get("PG_TEST_DATA")
    if not pg_bin or not data:
        pytest.fail("PG_BIN/PG_TEST_DATA are not set: run the tests through scripts/with-postgres")
    command = [str(Path(pg_bin) / "pg_ctl"), "-D", data, *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def _ensure_postgres_running() -> None:
    data = os.environ["PG_TEST_DATA"]
    # restart also starts a stopped server, with the options it was first
    # started with (postmaster.opts).
    if not (Path(data) / "postmaster.pid").exists():
        _pg_ctl("-w", "-t", "60", "-l", str(Path(data).parent / "postgres.log"), "restart")


@dataclass
class Report:
    """One keyed request a worker sends, and what it got back."""

    job_id: uuid.UUID
    kind: str  # "failure" or "completed"
    key: str
    status: int | None = None
    retry_after: str | None = None
    problem_type: str | None = None

    @property
    def path(self) -> str:
        suffix = "validation-failure" if self.kind == "failure" else "result"
        return f"/api/v1/processing-jobs/{self.job_id}/{suffix}"

    @property
    def body(self) -> dict[str, Any]:
        if self.kind == "failure":
            return {"error_message": f"Entity validation failed ({self.key})", "error_details": DETAILS}
        return {"status": "completed", "entities": [ENTITY]}

    def send(self, session: requests.Session, base: str) -> int | None:
        """POST the report; ``status`` is ``None`` when no answer came back."""
        self.status = self.retry_after = self.problem_type = None
        try:
            response = session.post(
                base + self.path, json=self.body, headers={"Idempotency-Key": self.key}, timeout=30
            )
        except requests.RequestException:
            return None  # as a worker sees a dropped connection: retry later
        self.status = response.status_code
        self.retry_after = response.headers.get("Retry-After")
        if response.headers.get("Content-Type", "").startswith(PROBLEM_MEDIA_TYPE):
            self.problem_type = response.json()["type"]
        return response.status_code


@POSTGRESQL_ONLY
def test_reports_across_a_database_restart_are_stored_exactly_once(app, live_server, auth_headers):
    job_count = 400
    with app.app_context():
        jobs = [ProcessingJob(document_id=f"doc-{n}") for n in range(job_count)]
        db.session.add_all(jobs)
        db.session.commit()
        job_ids = [job.id for job in jobs]
    reports = [
        Report(job_id, "failure" if n % 2 == 0 else "completed", f"restart-{n}-{uuid.uuid4().hex[:8]}")
        for n, job_id in enumerate(job_ids)
    ]
    queue = iter(reports)
    queue_lock = threading.Lock()
    sent: list[Report] = []
    stop = threading.Event()
    # Milestones instead of fixed sleeps: on a busy machine a sleep may be
    # over before a single request met the outage, or the recovery.
    warmed_up, met_outage, restarted, recovered = (threading.Event() for _ in range(4))

    def worker() -> None:
        with requests.Session() as session:
            session.headers.update(auth_headers)  # the worker's bearer token
            while not stop.is_set():
                with queue_lock:
                    report = next(queue, None)
                    if report is not None:
                        sent.append(report)  # before sending: the server may act on it
                if report is None:
                    return
                after_restart = restarted.is_set()
                status = report.send(session, live_server)
                if status is not None and 200 <= status < 300:
                    if len(sent) >= 20:
                        warmed_up.set()
                    if after_restart:
                        recovered.set()
                else:
                    met_outage.set()
                time.sleep(0.02)

    def wait_for(milestone: threading.Event) -> None:
        # Unmet after the deadline or with every report sent, the asserts
        # below say what is missing.
        deadline = time.monotonic() + 120
        while not milestone.wait(timeout=0.1) and time.monotonic() < deadline:
            if not any(thread.is_alive() for thread in threads):
                return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(warmed_up)
        _pg_ctl("-m", "fast", "-w", "-t", "60", "stop")  # aborts open transactions
        wait_for(met_outage)
        restarted.set()
        _pg_ctl(
            "-w", "-t", "60", "-l", str(Path(os.environ["PG_TEST_DATA"]).parent / "postgres.log"), "restart"
        )
        wait_for(recovered)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        _ensure_postgres_running()

    answered_ok = [r for r in sent if r.status is not None and 200 <= r.status < 300]
    refused = [r for r in sent if r not in answered_ok]
    assert refused, "no request met the outage: the test proved nothing"
    assert answered_ok, "no request succeeded around the outage"
    # Not a single 500 or stack trace: the outage is answered as such.
    for report in refused:
        if report.status is None:
            continue  # the connection dropped; retried below like the 503s
        assert report.status == 503, report
        assert report.retry_after is not None
        assert report.problem_type == PROBLEM_TYPE_BASE + "service-unavailable"

    # The workers retry what was refused, with the same key and body.
    with requests.Session() as session:
        session.headers.update(auth_headers)
        deadline = time.monotonic() + 120
        for report in refused:
            while report.send(session, live_server) != 200 and time.monotonic() < deadline:
                time.sleep(0.25)
            assert report.status == 200, report

    with app.app_context():
        for report in sent:
            job = db.session.get(ProcessingJob, report.job_id)
            failures = db.session.scalar(
                sa.select(sa.func.count()).select_from(JobFailure).where(JobFailure.job_id == report.job_id)
            )
            entities = db.session.scalar(
                sa.select(sa.func.count())
                .select_from(ExtractedEntity)
                .where(ExtractedEntity.job_id == report.job_id)
            )
            if report.kind == "failure":
                assert (job.status, failures, entities) == ("Validation_Failed", 1, 0), report
                assert job.error_message == report.body["error_message"]
            else:
                assert (job.status, failures, entities) == ("Completed", 0, 1), report
        keys = set(db.session.scalars(sa.select(IdempotencyRecord.key)))
        assert {r.key for r in sent} <= keys
        untouched = db.session.scalar(
            sa.select(sa.func.count()).select_from(ProcessingJob).where(ProcessingJob.status == "Pending")
        )
        assert untouched == job_count - len(sent)


@pytest.fixture
def impatient_app(postgresql_url: str, database_url: str) -> Iterator[Flask]:
    """The app on the test PostgreSQL with a 200 ms lock and statement timeout."""
    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": postgresql_url,
            "DB_LOCK_TIMEOUT_MS": 200,
            "DB_STATEMENT_TIMEOUT_MS": 300,
        }
    )
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@POSTGRESQL_ONLY
def test_a_held_row_lock_gives_a_quick_503_not_a_hung_worker(impatient_app):
    with impatient_app.app_context():
        token, _ = worker_tokens.create_worker_token("lock-test-worker")
    client = impatient_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    job_id = client.post("/api/v1/processing-jobs", json={"document_id": "doc-lock"}).json["id"]
    with impatient_app.app_context():
        blocker = db.engine.connect()
    try:
        transaction = blocker.begin()
        blocker.execute(sa.text("SELECT id FROM processing_jobs WHERE id = :id FOR UPDATE"), {"id": job_id})
        started = time.monotonic()
        response = client.post(
            f"/api/v1/processing-jobs/{job_id}/validation-failure",
            json={"error_message": "Entity validation failed", "error_details": DETAILS},
        )
        elapsed = time.monotonic() - started
        transaction.rollback()
    finally:
        blocker.close()
    assert response.status_code == 503
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    assert response.headers["Retry-After"]
    # Said as what it was: the database is up, a wait ran out (a trial read "unavailable").
    assert response.json["detail"].startswith("The request waited longer than the database allows")
    # Without a lock timeout the request would wait for this very thread,
    # forever. The bound only has to be below gunicorn's 30 s worker timeout;
    # the 200 ms setting itself is checked by the next test.
    assert elapsed < 20
    # Once the lock is gone the same report goes through.
    retry = client.post(
        f"/api/v1/processing-jobs/{job_id}/validation-failure",
        json={"error_message": "Entity validation failed", "error_details": DETAILS},
    )
    assert retry.status_code == 200


@POSTGRESQL_ONLY
def test_a_retry_while_the_first_request_holds_its_key_is_a_quick_409_in_progress(impatient_app):
    """draft-ietf-httpapi-idempotency-key-header: a retry that arrives while
    the request with its key is still running is 409, not a wait past
    lock_timeout and not a conflict of its own."""
    with impatient_app.app_context():
        token, record = worker_tokens.create_worker_token("in-progress-worker")
        token_id = record.id
    client = impatient_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    job_id = client.post("/api/v1/processing-jobs", json={"document_id": "doc-held-key"}).json["id"]
    path = f"/api/v1/processing-jobs/{job_id}/start"
    with impatient_app.app_context():
        first = db.engine.connect()  # the first request, between its claim and its commit
    try:
        transaction = first.begin()
        first.execute(
            sa.insert(IdempotencyRecord.__table__).values(
                token_id=token_id, key="held-key", fingerprint="0" * 64, method="POST", path=path
            )
        )
        started = time.monotonic()
        response = client.post(path, headers={"Idempotency-Key": "held-key"})
        elapsed = time.monotonic() - started
        transaction.rollback()  # the first request failed: the key is free again
    finally:
        first.close()
    assert response.status_code == 409
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    assert response.json["type"] == PROBLEM_TYPE_BASE + "idempotency-key-in-progress"
    assert int(response.headers["Retry-After"]) > 0
    assert elapsed < 3
    assert client.get(f"/api/v1/processing-jobs/{job_id}").json["status"] == "Pending"  # nothing changed
    retry = client.post(path, headers={"Idempotency-Key": "held-key"})
    assert (retry.status_code, retry.json["status"]) == (200, "Processing")


@POSTGRESQL_ONLY
def test_statement_timeout_is_set_on_every_connection(impatient_app):
    with impatient_app.app_context(), db.engine.connect() as connection:
        assert connection.execute(sa.text("SHOW statement_timeout")).scalar() == "300ms"
        assert connection.execute(sa.text("SHOW lock_timeout")).scalar() == "200ms"
        # No JIT compiling: tens of milliseconds on a dashboard statement at 10M jobs.
        assert connection.execute(sa.text("SHOW jit")).scalar() == "off"
        # No parallel workers: a parallel scan of a whole partition beat its index in the planner's eyes.
        assert connection.execute(sa.text("SHOW max_parallel_workers_per_gather")).scalar() == "0"
        with pytest.raises(sa.exc.OperationalError):
            connection.execute(sa.text("SELECT pg_sleep(2)"))


def test_a_database_that_dies_mid_request_does_not_turn_the_answer_into_a_500(app, client, monkeypatch):
    """The teardown's ROLLBACK failing (the server went away after the view
    answered) must not replace the answer: the session is invalidated instead."""
    import sqlalchemy as sa

    from app.extensions import db

    failing = {"armed": False}
    real_close = sa.orm.Session.close

    def close(self):
        if failing["armed"]:
            failing["armed"] = False
            raise sa.exc.OperationalError("ROLLBACK", {}, Exception("terminating connection"))
        return real_close(self)

    monkeypatch.setattr(sa.orm.Session, "close", close)

    @app.after_request
    def arm(response):
        failing["armed"] = True
        return response

    response = client.get("/api/v1/processing-jobs")
    assert response.status_code == 200
    with app.app_context():
        assert db.session.execute(sa.text("SELECT 1")).scalar() == 1  # the app still works
