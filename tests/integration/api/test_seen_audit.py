"""Who read clinical data through the API: ``seen.api.*`` audit rows.

A support trial: a worker token paged through every failed job's error
details and nothing was audited, while the dashboard's pages and the
exports were. Each row is written before the answer, and names the jobs.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import psycopg
import sqlalchemy as sa

from app.extensions import db
from app.models.access import AuditEvent
from tests.integration.api.helpers import API, assert_problem, create_job, job_url, post_ok

ENTITY = {
    "entity_type": "Condition", "text": "chest pain", "code": "R07.9",
    "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.9, "span": {"start": 0, "end": 10},
}


def _seen(app) -> list[tuple[str, str, list[str]]]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action.like("seen.%")).order_by(AuditEvent.occurred_at)
        ).all()
        return [(row.actor, row.action, row.filter["job_ids"]) for row in rows]


def _failed(client, document_id: str) -> dict[str, Any]:
    job = create_job(client, document_id)
    return post_ok(client, job_url(job["id"], "validation-failure"),
                   {"error_message": "Code R07.9XZZZ is not in ICD-10-CM", "error_details": None})


def test_reads_that_show_error_details_are_audited_with_their_jobs(app, client):
    failed = _failed(client, "doc-seen-1")
    pending = create_job(client, "doc-seen-2")
    assert _seen(app) == []  # writing a failure shows the worker nothing it did not send
    client.get(API + "?status=Pending")  # a poll for work: no error text, no row
    client.get(job_url(pending["id"]))
    assert _seen(app) == []
    client.get(API)
    client.get(job_url(failed["id"]))
    client.get(job_url(failed["id"], "failures"))
    assert _seen(app) == [
        ("test-worker", "seen.api.jobs", [failed["id"]]),
        ("test-worker", "seen.api.jobs", [failed["id"]]),
        ("test-worker", "seen.api.failures", [failed["id"]]),
    ]


def test_reading_a_jobs_entities_is_audited(app, client):
    job = create_job(client, "doc-seen-entities")
    post_ok(client, job_url(job["id"], "start"))
    post_ok(client, job_url(job["id"], "result"), {"status": "completed", "entities": [ENTITY]})
    assert client.get(job_url(job["id"], "entities")).get_json()["items"]
    empty = create_job(client, "doc-seen-none")
    assert client.get(job_url(empty["id"], "entities")).get_json()["items"] == []
    assert _seen(app) == [("test-worker", "seen.api.entities", [job["id"]])]


def test_no_answer_without_its_audit_row(app, client):
    failed = _failed(client, "doc-seen-refused")

    def refuse(*_args, **_kwargs):
        raise sa.exc.OperationalError("INSERT INTO audit_events", {}, psycopg.OperationalError("refused"))

    with mock.patch("app.api.views.record_audit_event", refuse):
        response = client.get(job_url(failed["id"]))
    problem = assert_problem(response, 503, "service-unavailable")
    assert "R07.9XZZZ" not in response.get_data(as_text=True) and "error_message" not in problem


def test_reading_failure_groups_is_audited_with_their_ids(app, client):
    # A re-check: a group's sample_message is a worker's message as sent.
    _failed(client, "doc-seen-group")
    [group] = client.get("/api/v1/failure-groups").get_json()["items"]
    client.get(f"/api/v1/failure-groups/{group['id']}")
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "seen.api.groups").order_by(AuditEvent.occurred_at)
        ).all()
        assert [(row.actor, row.filter) for row in rows] == [("test-worker", {"group_ids": [str(group["id"])]})] * 2


def test_a_group_action_s_answer_is_audited_as_a_read_too(app, client):
    # A trial: resolve and reopen answer with the sample message and title,
    # and only the state change had its row. A replay (same key) shows them again.
    _failed(client, "doc-seen-group-action")
    [group] = client.get("/api/v1/failure-groups").get_json()["items"]
    url = f"/api/v1/failure-groups/{group['id']}"
    keyed = {"Idempotency-Key": "resolve-seen-1"}
    assert client.post(url + "/resolve", json={}, headers=keyed).status_code == 200
    replay = client.post(url + "/resolve", json={}, headers=keyed)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert client.post(url + "/reopen").status_code == 200
    assert client.post(url + "/reopen").status_code == 409  # no group shown: no row
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action.in_(["seen.api.groups", "groups.resolved",
                                                                "groups.reopened"]))
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        ).all()
        assert [row.action for row in rows] == [
            "seen.api.groups",  # the list above
            "groups.resolved", "seen.api.groups", "seen.api.groups", "groups.reopened", "seen.api.groups",
        ]
        assert all(row.filter == {"group_ids": [str(group["id"])]} for row in rows if row.action.startswith("seen"))
