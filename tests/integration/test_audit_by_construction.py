"""No export or action without its audit row; NUL in any parameter is a 400.

Each test runs on SQLite and PostgreSQL (``app`` fixture). On PostgreSQL a NUL
used to reach ``jsonb`` in the audit insert *after* an export had streamed,
and a bulk action's jobs changed before its audit failed.
"""

from __future__ import annotations

import re

import psycopg
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.access import AuditEvent
from app.registry import get_failure_recorder
from app.services import access
from app.services.processing_jobs import actions as job_actions
from app.services.processing_jobs.lifecycle import create_job
from tests.helpers import stored_job_row

NUL = "\x00"


def _failed_job(app, document_id: str = "doc-audit") -> str:
    with app.app_context():
        job = create_job(document_id)
        get_failure_recorder().record_failure(job.id, "crashed")
        return str(job.id)


def _csrf(client, path: str = "/jobs") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _events(app) -> list[AuditEvent]:
    with app.app_context():
        events = list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.occurred_at)))
        db.session.expunge_all()
        return events


def _unavailable(*_args, **_kwargs):
    """What a database refusing the audit insert raises (a 503 condition)."""
    raise sa.exc.OperationalError("INSERT INTO audit_events", {}, psycopg.OperationalError("refused"))


# -- NUL anywhere in a query string or form: 400 on every route ------------------------


def _every_route(app, job_id: str) -> list[tuple[str, str]]:
    """(method, path) of every rule in the URL map, with a real job id."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<job_id>", job_id).replace("<path:filename>", "style.css")
        assert "<" not in path, f"add a sample value for {rule.rule}"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


def test_a_nul_in_any_query_parameter_is_a_400_on_every_route(app, client):
    job_id = _failed_job(app)
    with app.app_context():
        before = stored_job_row(job_id)
    routes = _every_route(app, job_id)
    assert len(routes) > 15
    for method, path in routes:
        for query in ("x=%00", "status=Failed%00", "%00=1", "next=/jobs%00"):
            response = client.open(f"{path}?{query}", method=method)
            assert response.status_code == 400, (method, path, query, response.status_code)
            if path.startswith("/api/") or path == "/metrics":
                assert response.mimetype == "application/problem+json"
                assert response.json["type"].endswith("/invalid-query")
            else:
                assert response.mimetype == "text/html"
                assert "NUL" in response.get_data(as_text=True)
    with app.app_context():
        assert stored_job_row(job_id) == before
    assert _events(app) == []


def test_a_nul_in_an_export_parameter_is_refused_before_any_byte_or_audit(app, client):
    _failed_job(app)
    for path in ("/exports/job-errors.csv", "/exports/job-errors.ndjson", "/exports/entities.csv"):
        response = client.get(f"{path}?x=%00")
        assert response.status_code == 400
        assert response.mimetype == "text/html"
        assert "Content-Disposition" not in response.headers
    assert _events(app) == []


def test_a_nul_in_a_bulk_action_form_changes_nothing(app, client):
    job_id = _failed_job(app)
    token = _csrf(client)
    for field, value in (("status", "Failed" + NUL), ("job_id", job_id + NUL), ("next", "/jobs" + NUL), ("z" + NUL, "1")):
        form = {"csrf_token": token, "op": "requeue:selected", "job_id": job_id, field: value}
        response = client.post("/jobs/bulk/confirm", data=form)
        assert response.status_code == 400, field
    with app.app_context():
        assert stored_job_row(job_id)["status"] == "Failed"
    assert _events(app) == []


def test_the_nul_rule_also_holds_for_audit_text_written_by_a_service(app):
    with app.app_context():
        access.record_audit_event("who" + NUL, "jobs.requeue", {"q" + NUL: ["a" + NUL]}, 1)
    (event,) = _events(app)
    assert event.actor == "who\ufffd"
    assert event.filter == {"q\ufffd": ["a\ufffd"]}


# -- exports: the audit row exists before the first byte -----------------------------


@pytest.mark.parametrize("path", ["/exports/job-errors.csv", "/exports/job-errors.ndjson", "/exports/entities.csv"])
def test_an_export_is_audited_before_its_first_byte(app, client, path):
    _failed_job(app)
    response = client.get(f"{path}?document_id=doc-audit", buffered=False)
    try:
        # Not one chunk read yet: the row is already committed.
        (event,) = _events(app)
        assert event.action == "export." + path.rsplit("/", 1)[1].replace("-", "_")
        assert event.actor == "test-admin"
        assert event.filter == {"document_id": ["doc-audit"]}
        assert event.row_count is None
        body = b"".join(response.response)
    finally:
        response.close()
    assert body
    (event,) = _events(app)
    expected = 0 if path.endswith("entities.csv") else 1
    assert event.row_count == expected


def test_an_export_whose_audit_cannot_be_written_is_refused(app, client, monkeypatch):
    _failed_job(app)
    monkeypatch.setattr("app.exports.views.record_audit_event", _unavailable)
    response = client.get("/exports/job-errors.csv")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    assert b"doc-audit" not in response.data


# -- actions: the change and its audit row commit together -----------------------------


@pytest.mark.parametrize("action", ["requeue", "acknowledge"])
def test_a_one_job_action_whose_audit_fails_changes_nothing(app, client, monkeypatch, action):
    job_id = _failed_job(app)
    token = _csrf(client, f"/jobs/{job_id}")
    monkeypatch.setattr("app.dashboard.actions.add_audit_event", _unavailable)
    response = client.post(f"/jobs/{job_id}/{action}", data={"csrf_token": token})
    assert response.status_code == 503
    with app.app_context():
        row = stored_job_row(job_id)
    assert row["status"] == "Failed" and row["acknowledged_at"] is None
    assert _events(app) == []


@pytest.mark.parametrize("scope", ["selected", "filter"])
def test_a_bulk_action_whose_audit_fails_changes_nothing(app, client, monkeypatch, scope):
    job_ids = [_failed_job(app, f"doc-bulk-{i}") for i in range(3)]
    token = _csrf(client)
    monkeypatch.setattr("app.dashboard.actions.record_audit_event", _unavailable)
    form = {"csrf_token": token, "op": f"requeue:{scope}", "job_id": job_ids, "status": "Failed"}
    response = client.post("/jobs/bulk/confirm", data=form)
    assert response.status_code == 503
    with app.app_context():
        assert [stored_job_row(j)["status"] for j in job_ids] == ["Failed"] * 3


def test_a_bulk_action_stopped_half_way_is_audited_with_what_it_changed(app, client, monkeypatch):
    job_ids = [_failed_job(app, f"doc-half-{i}") for i in range(3)]
    token = _csrf(client)
    real = job_actions.apply_action
    calls = []

    def fail_on_the_second(action, job_id, actor, **kwargs):
        calls.append(job_id)
        if len(calls) == 2:
            raise _unavailable()
        return real(action, job_id, actor, **kwargs)

    monkeypatch.setattr(job_actions, "apply_action", fail_on_the_second)
    form = {"csrf_token": token, "op": "requeue:selected", "job_id": job_ids}
    response = client.post("/jobs/bulk/confirm", data=form)
    assert response.status_code == 503
    with app.app_context():
        statuses = [stored_job_row(j)["status"] for j in job_ids]
    assert statuses == ["Pending", "Failed", "Failed"]
    (event,) = _events(app)
    assert (event.action, event.row_count, event.filter["job_ids"]) == ("jobs.requeue", 1, job_ids)


def test_a_bulk_action_counts_only_the_jobs_it_changed(app, client):
    changed = [_failed_job(app, f"doc-count-{i}") for i in range(2)]
    with app.app_context():
        done = str(create_job("doc-done").id)
    token = _csrf(client)
    form = {"csrf_token": token, "op": "acknowledge:selected", "job_id": changed + [done]}
    assert client.post("/jobs/bulk/confirm", data=form).status_code == 302
    (event,) = _events(app)
    assert (event.action, event.row_count) == ("jobs.acknowledge", 2)


# -- the API's requeue ------------------------------------------------------------------


def test_an_api_requeue_is_audited_with_the_token_name_once_per_change(app, client):
    job_id = _failed_job(app)
    headers = {"Idempotency-Key": "requeue-audit-1"}
    first = client.post(f"/api/v1/processing-jobs/{job_id}/requeue", headers=headers)
    replay = client.post(f"/api/v1/processing-jobs/{job_id}/requeue", headers=headers)
    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.headers["Idempotent-Replayed"] == "true"
    (event,) = _events(app)
    assert event.actor == "test-worker"
    assert event.action == "jobs.requeue"
    assert event.filter == {"scope": "job", "job_ids": [job_id], "via": "api"}
    assert event.row_count == 1


def test_an_api_requeue_whose_audit_fails_changes_nothing(app, client, monkeypatch):
    job_id = _failed_job(app)
    monkeypatch.setattr("app.api.views.add_audit_event", _unavailable)
    response = client.post(f"/api/v1/processing-jobs/{job_id}/requeue")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    with app.app_context():
        assert stored_job_row(job_id)["status"] == "Failed"


# -- sign-ins ---------------------------------------------------------------------------


def _login_token(client) -> str:
    html = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_sign_ins_are_audited_with_name_address_and_outcome_never_the_password(app, anonymous_client):
    from tests.conftest import make_user

    make_user(app, "Audited.User", "viewer", password="the right password here")
    attempts = [("Audited.User", "a wrong password here"), ("nobody-by-this-name", "x" * 12), ("Audited.User", "the right password here")]
    codes = []
    for username, password in attempts:
        response = anonymous_client.post(
            "/login", data={"username": username, "password": password, "csrf_token": _login_token(anonymous_client)}
        )
        codes.append(response.status_code)
    assert codes == [401, 401, 302]
    events = [e for e in _events(app) if e.action == "auth.sign_in"]
    assert [(e.actor, e.filter["outcome"]) for e in events] == [
        ("Audited.User", "failure"), ("nobody-by-this-name", "failure"), ("Audited.User", "success"),
    ]
    assert {e.filter["address"] for e in events} == {"127.0.0.1"}
    stored = repr([(e.actor, e.filter) for e in _events(app)])
    assert "password here" not in stored and "x" * 12 not in stored


def test_a_sign_in_whose_audit_cannot_be_written_does_not_sign_in(app, anonymous_client, monkeypatch):
    from tests.conftest import make_user

    make_user(app, "Unaudited", "viewer", password="the right password here")
    token = _login_token(anonymous_client)
    monkeypatch.setattr("app.services.access.add_audit_event", _unavailable)
    response = anonymous_client.post(
        "/login", data={"username": "Unaudited", "password": "the right password here", "csrf_token": token}
    )
    assert response.status_code == 503
    monkeypatch.undo()
    assert anonymous_client.get("/jobs").status_code == 302  # still signed out
