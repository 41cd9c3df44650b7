"""What one worker report costs the database: statements, transactions, checkouts.

Not a timing test: it pins the round trips of the hot path so a change that
adds one (a reload after commit, a second transaction) shows up here, and
bench/load.py measures what they cost. On PostgreSQL the bearer-token lookup
and the report share one transaction and one pooled connection; the answer
is rendered before the commit, so nothing is read back afterwards. SQLite
must start its write transaction with BEGIN IMMEDIATE, so there the token
read is a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup
from app.models.types import utcnow
from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import create_job

REPORT = {
    "error_message": "2 entities failed validation",
    "error_details": {"errors": [{"code": "schema.required", "severity": "error", "message": "m", "pointer": "/a"}]},
}


TABLES = {
    "worker_tokens", "processing_jobs", "job_failures", "idempotency_records",
    "failure_groups", "failure_occurrences", "failure_group_counts", "failure_group_hourly",
    "failure_group_events",
}


@pytest.fixture
def database_events(app) -> Iterator[list[str]]:
    """Statements (first word, table), BEGIN/COMMIT/ROLLBACK and pool checkouts, in order."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def statement(conn, cursor, text, parameters, context, executemany):  # noqa: ANN001
        words = text.split()
        if words[0].upper() == "BEGIN":
            return  # SQLite's own BEGIN [IMMEDIATE] (app.extensions): the "begin" event records it
        table = next((w for w in words if w in TABLES), "")
        seen.append(f"{words[0].upper()} {table}".strip())

    listeners = [
        (engine, "before_cursor_execute", statement),
        (engine, "begin", lambda conn: seen.append("BEGIN")),
        (engine, "commit", lambda conn: seen.append("COMMIT")),
        (engine, "rollback", lambda conn: seen.append("ROLLBACK")),
        (engine.pool, "checkout", lambda *args: seen.append("CHECKOUT")),
    ]
    for target, name, function in listeners:
        sa.event.listen(target, name, function)
    yield seen
    for target, name, function in listeners:
        sa.event.remove(target, name, function)


def _warm(app, client, auth_headers) -> str:  # noqa: ANN001
    """A new job, after one request has noted the token's use (written at
    most once a minute, in a transaction of its own), and with the report's
    failure group already made by another job and seen within the last
    second (``last_seen`` ahead), as on a busy system: the hot path."""
    with app.app_context():
        other = create_job("doc-0").id
        get_failure_recorder().record_validation_failure(other, REPORT["error_message"], REPORT["error_details"])
        db.session.execute(sa.update(FailureGroup).values(last_seen=utcnow() + timedelta(hours=1)))
        db.session.commit()
        job_id = str(create_job("doc-1").id)
    assert client.get(f"/api/v1/processing-jobs/{job_id}", headers=auth_headers).status_code == 200
    return job_id


#: What grouping the failure adds, in the recorder's transaction, for a job
#: that was not failed before (so it has no current occurrence to end): on
#: PostgreSQL one statement that reads the groups and writes the occurrences,
#: the sharded counters and the hourly rollups (CTEs), however many groups
#: the report hits; on SQLite (in-process,
#: no round trip) a SELECT of the group, a check for an earlier occurrence
#: of the job and three writes. The group row itself is not written: it was
#: seen less than a second ago.
GROUPING = {
    "postgresql": ["WITH failure_groups"],  # WITH found AS (SELECT ... FROM failure_groups ...), INSERT ...
    "sqlite": [
        "SELECT failure_groups", "SELECT failure_occurrences", "INSERT failure_occurrences",
        "INSERT failure_group_counts", "INSERT failure_group_hourly",
    ],
}


def test_a_report_is_one_transaction_on_one_connection(app, backend, client, auth_headers, database_events):
    job_id = _warm(app, client, auth_headers)
    database_events.clear()
    response = client.post(f"/api/v1/processing-jobs/{job_id}/validation-failure", json=REPORT,
                           headers=auth_headers)
    assert response.status_code == 200
    if backend == "postgresql":
        assert database_events == [
            "CHECKOUT", "BEGIN", "SELECT worker_tokens",
            "SELECT processing_jobs",  # ... FOR UPDATE, in the same transaction
            # The job's UPDATE is a Core statement sent at once; the history
            # row is flushed after it, then the failure's groups are written.
            "UPDATE processing_jobs", "INSERT job_failures", *GROUPING[backend],
            "COMMIT",
        ]
    else:
        assert database_events == [
            "CHECKOUT", "BEGIN", "SELECT worker_tokens", "ROLLBACK",
            "CHECKOUT", "BEGIN", "SELECT processing_jobs",
            "UPDATE processing_jobs", "INSERT job_failures", *GROUPING[backend],
            "COMMIT",
        ]
    # Rendered before the commit, from the flushed values: what a later read returns.
    again = client.get(f"/api/v1/processing-jobs/{job_id}", headers=auth_headers).get_json()
    assert response.get_json() == again


def test_a_keyed_report_stores_its_answer_in_the_same_transaction(app, backend, client, auth_headers,
                                                                   database_events):
    job_id = _warm(app, client, auth_headers)
    database_events.clear()
    headers = {**auth_headers, "Idempotency-Key": "report-1"}
    response = client.post(f"/api/v1/processing-jobs/{job_id}/validation-failure", json=REPORT, headers=headers)
    assert response.status_code == 200
    # The key is claimed first (INSERT ... ON CONFLICT DO NOTHING), so a
    # concurrent duplicate waits for this transaction instead of racing it;
    # the answer fills the claimed row before the commit. As many statements
    # as a lookup then an INSERT of the answer, which raced.
    write = ["INSERT idempotency_records", "SELECT processing_jobs", "UPDATE processing_jobs",
             "INSERT job_failures", *GROUPING[backend], "UPDATE idempotency_records", "COMMIT"]
    if backend == "postgresql":  # the token lookup, then the claim and the write, in one transaction
        assert database_events == ["CHECKOUT", "BEGIN", "SELECT worker_tokens", *write]
    else:  # the claim is part of the BEGIN IMMEDIATE transaction
        assert database_events == ["CHECKOUT", "BEGIN", "SELECT worker_tokens", "ROLLBACK",
                                   "CHECKOUT", "BEGIN", *write]
    database_events.clear()
    replay = client.post(f"/api/v1/processing-jobs/{job_id}/validation-failure", json=REPORT, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == response.get_json()
    # A retry finds the key taken, reads the stored answer and changes nothing.
    replayed = ["INSERT idempotency_records", "SELECT idempotency_records", "ROLLBACK"]
    if backend == "postgresql":
        assert database_events == ["CHECKOUT", "BEGIN", "SELECT worker_tokens", *replayed]
    else:
        assert database_events == ["CHECKOUT", "BEGIN", "SELECT worker_tokens", "ROLLBACK",
                                   "CHECKOUT", "BEGIN", *replayed]


def test_a_revoked_token_is_refused_even_inside_a_reused_transaction(app, client, auth_headers):
    """The token read that a report may continue is still checked first."""
    from app.services import worker_tokens

    with app.app_context():
        job_id = str(create_job("doc-1").id)
        worker_tokens.revoke_worker_token("test-worker")
    response = client.post(f"/api/v1/processing-jobs/{job_id}/validation-failure", json=REPORT,
                           headers=auth_headers)
    assert response.status_code == 401
    with app.app_context():
        assert db.session.execute(sa.text("SELECT count(*) FROM job_failures")).scalar_one() == 0


def test_a_report_on_a_failing_job_ends_its_current_occurrence_in_the_same_statement(
    app, backend, client, auth_headers, database_events
):
    job_id = _warm(app, client, auth_headers)
    first = client.post(f"/api/v1/processing-jobs/{job_id}/validation-failure", json=REPORT, headers=auth_headers)
    assert first.status_code == 200
    again = {**REPORT, "error_message": REPORT["error_message"] + " (again)"}
    database_events.clear()
    response = client.post(f"/api/v1/processing-jobs/{job_id}/validation-failure", json=again, headers=auth_headers)
    assert response.status_code == 200
    # PostgreSQL: the job's previous occurrence ends (and its counter goes
    # down) inside the statement that records the new one: no extra round
    # trip. SQLite (in-process): the ending's UPDATE and counter upsert first.
    expected = {
        # One statement: its first CTE reads the groups, the next ones hand
        # the job's current occurrence over or end it (hits_statement).
        "postgresql": ["WITH failure_groups"],
        "sqlite": ["UPDATE failure_occurrences", "INSERT failure_group_counts", *GROUPING["sqlite"]],
    }
    assert database_events[-len(expected[backend]) - 3:] == [
        "UPDATE processing_jobs", "INSERT job_failures", *expected[backend], "COMMIT",
    ]
    with app.app_context():
        current = db.session.execute(sa.text(
            "SELECT count(*) FROM failure_occurrences WHERE job_id = :job AND is_current"
        ), {"job": job_id if backend == "postgresql" else job_id.replace("-", "")}).scalar_one()
        assert current == 1


def test_a_report_hitting_two_groups_writes_them_in_one_statement(
    app, backend, client, auth_headers, database_events
):
    two = {"error_message": "2 entities failed validation", "error_details": {"errors": [
        {"code": "schema.required", "severity": "error", "message": "m", "pointer": "/a"},
        {"code": "schema.type", "severity": "warning", "message": "n", "pointer": "/b/0"},
    ]}}
    with app.app_context():
        other = create_job("doc-0").id
        get_failure_recorder().record_validation_failure(other, two["error_message"], two["error_details"])
        db.session.execute(sa.update(FailureGroup).values(last_seen=utcnow() + timedelta(hours=1)))
        db.session.commit()
        job_id = str(create_job("doc-1").id)
    database_events.clear()
    response = client.post(f"/api/v1/processing-jobs/{job_id}/validation-failure", json=two, headers=auth_headers)
    assert response.status_code == 200
    # PostgreSQL: one statement for both groups (SQLite: the same writes per group).
    per_report = GROUPING[backend] if backend == "postgresql" else GROUPING[backend] * 2
    assert database_events[-len(per_report) - 3:] == [
        "UPDATE processing_jobs", "INSERT job_failures", *per_report, "COMMIT",
    ]
    with app.app_context():
        rows = db.session.execute(sa.text(
            "SELECT g.severity, o.item_count, o.item_positions, o.is_current FROM failure_occurrences o"
            " JOIN failure_groups g ON g.id = o.group_id WHERE o.job_id = :job ORDER BY g.severity"
        ), {"job": job_id if backend == "postgresql" else job_id.replace("-", "")}).all()
        assert [(row[0], row[1], json_list(row[2]), bool(row[3])) for row in rows] == [
            ("error", 1, [0], True), ("warning", 1, [1], True),
        ]
        counted = db.session.execute(sa.text(
            "SELECT group_id, sum(occurrences), sum(jobs), sum(current_jobs) FROM failure_group_counts"
            " GROUP BY group_id ORDER BY group_id"
        )).all()
        assert [tuple(int(v) for v in row[1:]) for row in counted] == [(2, 2, 2), (2, 2, 2)]


def json_list(value):  # noqa: ANN001, ANN201
    """A JSON column's value as read by a text query: decoded on PostgreSQL, a string on SQLite."""
    import json

    return json.loads(value) if isinstance(value, str) else value
