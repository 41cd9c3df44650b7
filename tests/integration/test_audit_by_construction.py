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
    """Every audit row but those of pages seen (``seen.*``, tested apart)."""
    with app.app_context():
        events = list(db.session.scalars(
            sa.select(AuditEvent).where(~AuditEvent.action.like("seen.%")).order_by(AuditEvent.occurred_at)))
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
        path = (
            rule.rule.replace("<job_id>", job_id)
            .replace("<group_id>", "1")
            .replace("<path:filename>", "style.css")
            .replace("<name>", "entity-document.v1.schema.json")
            .replace("<slug>", "invalid-fields")
            .replace("<bulk_id>", "00000000-0000-4000-8000-000000000000")
            .replace("<token>", "no-such-question")
        )
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
            # A program reads these (the probes too: a trial found their 400 an HTML page).
            if path.startswith("/api/") or path in ("/metrics", "/healthz", "/readyz") or path.endswith(".json"):
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
        assert event.filter["document_id"] == ["doc-audit"]  # the filter as applied (with its defaults)
        assert event.row_count is None
        body = b"".join(response.response)
    finally:
        response.close()
    assert body
    (event,) = _events(app)
    expected = 0 if path.endswith("entities.csv") else 1
    assert event.row_count == expected
    assert "ended" not in event.filter  # read to its end: not marked


@pytest.mark.parametrize("path", ["/exports/job-errors.csv", "/exports/job-errors.ndjson"])
def test_an_export_cut_short_says_so_in_its_audit_row(app, client, path):
    """A trial: a download closed after 4 KB showed "2000" rows in the log
    like a complete one, so a partial file read as the whole."""
    _failed_job(app)
    response = client.get(f"{path}?document_id=doc-audit", buffered=False)
    try:
        first = next(iter(response.response))  # the header and the first batch; the client goes away
    finally:
        response.close()
    assert first
    (event,) = _events(app)
    assert event.row_count == 1
    assert event.filter["ended"] == list(access.CUT_SHORT_FACT[1])
    assert event.filter["document_id"] == ["doc-audit"]  # the facts from before are kept
    page = client.get("/admin/audit?views=hide").get_data(as_text=True)
    assert "before its last row: the download stopped" in page


@pytest.mark.parametrize("path", ["/exports/job-errors.csv", "/exports/job-errors.ndjson", "/exports/entities.csv"])
def test_a_head_request_on_an_export_sends_no_rows_and_writes_no_audit_row(app, client, path):
    # HEAD used to write an audit row whose count stayed empty forever: an
    # export that never happened, recorded as if it had.
    _failed_job(app)
    response = client.head(f"{path}?document_id=doc-audit")
    assert response.status_code == 200
    assert response.get_data() == b""
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert _events(app) == []


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
    form = {"csrf_token": token, "op": f"requeue:{scope}", "job_id": job_ids, "status": "Failed"}
    if scope == "filter":
        # Frozen and asked about first (nothing audited, nothing changed);
        # its "Yes" audits before the first change.
        question = client.post("/jobs/bulk/confirm", data=form)
        assert question.status_code == 303
        monkeypatch.setattr("app.services.bulk_actions.add_audit_event", _unavailable)
        response = client.post(question.headers["Location"] + "/run", data={"csrf_token": token})
    else:
        monkeypatch.setattr("app.dashboard.actions.record_audit_event", _unavailable)
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
    assert client.post("/jobs/bulk/confirm", data=form).status_code == 303
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


def test_acknowledging_acknowledged_jobs_again_counts_nothing(app, client):
    job_ids = [_failed_job(app, f"doc-again-{i}") for i in range(2)]
    token = _csrf(client)
    form = {"csrf_token": token, "op": "acknowledge:selected", "job_id": job_ids}
    assert client.post("/jobs/bulk/confirm", data=form).status_code == 303
    again = client.post("/jobs/bulk/confirm", data=form, follow_redirects=True).get_data(as_text=True)
    assert "Acknowledged 0 jobs; skipped 2 that changed after the question or no longer applied." in again
    counts = [e.row_count for e in _events(app) if e.action == "jobs.acknowledge"]
    assert counts == [2, 0]


def test_concurrent_bulk_acknowledges_count_each_job_once(app, client):
    import threading

    job_ids = [_failed_job(app, f"doc-race-{i}") for i in range(6)]
    token = _csrf(client)
    form = {"csrf_token": token, "op": "acknowledge:selected", "job_id": job_ids}
    # Two operators' bulk actions over the same jobs, interleaved job by job.
    real = job_actions.apply_action
    barrier = threading.Barrier(2, timeout=120)

    def in_step(action, job_id, actor, **kwargs):
        barrier.wait()
        return real(action, job_id, actor, **kwargs)

    monkey = pytest.MonkeyPatch()
    monkey.setattr(job_actions, "apply_action", in_step)
    codes = []

    def act() -> None:
        with app.test_client() as other:
            with client.session_transaction() as theirs, other.session_transaction() as mine:
                mine.update(dict(theirs))
            codes.append(other.post("/jobs/bulk/confirm", data=form).status_code)

    try:
        threads = [threading.Thread(target=act) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        monkey.undo()
    assert codes == [303, 303]
    counts = [e.row_count for e in _events(app) if e.action == "jobs.acknowledge"]
    assert len(counts) == 2 and sum(counts) == len(job_ids)


def test_a_refused_sign_in_form_is_audited_and_says_why(app, anonymous_client):
    token = _login_token(anonymous_client)
    too_long = "n" * 151
    response = anonymous_client.post("/login", data={"username": too_long, "password": "x" * 12, "csrf_token": token})
    assert response.status_code == 400
    assert "The sign-in form was not accepted" in response.get_data(as_text=True)
    # Without a CSRF token (a script, or a page left open past the session's
    # idle time) CSRFProtect refuses the POST before the view: a failed
    # sign-in all the same, which left no trace (a trial).
    no_csrf = anonymous_client.post("/login", data={"username": "someone", "password": "y" * 12})
    assert no_csrf.status_code == 400
    events = [e for e in _events(app) if e.action == "auth.sign_in"]
    assert [(e.actor, e.filter["outcome"], e.filter["reason"]) for e in events] == [
        (too_long, "failure", "form refused"),
        ("someone", "failure", "form token missing or invalid (CSRF)"),
    ]
    assert events[1].filter["address"] == "127.0.0.1"
    assert "x" * 12 not in repr([e.filter for e in events]) and "y" * 12 not in repr([e.filter for e in events])


def test_an_expired_sign_in_form_is_served_again_and_then_signs_in(app, anonymous_client):
    """A sign-in page left open past the session's idle time: its token no
    longer matches. The answer was the generic "form has expired" error page,
    and no audit row; now the sign-in page again, with a new token."""
    from tests.conftest import make_user

    make_user(app, "Late.Operator", "operator", password="the right password here")
    _login_token(anonymous_client)
    sent = {"username": "Late.Operator", "password": "the right password here", "csrf_token": "stale-token"}
    response = anonymous_client.post("/login", data=sent)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "This sign-in form had expired" in html
    assert 'value="Late.Operator"' in html and "the right password here" not in html
    fresh = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    signed_in = anonymous_client.post("/login", data={**sent, "csrf_token": fresh})
    assert signed_in.status_code == 302
    events = [e for e in _events(app) if e.action == "auth.sign_in"]
    assert sorted(e.filter.get("reason", e.filter["outcome"]) for e in events) == [
        "form token missing or invalid (CSRF)", "success",
    ]


@pytest.mark.parametrize(
    "path",
    ["/jobs", "/jobs/summary", "/admin/audit", "/jobs/{job_id}", "/jobs/{job_id}/job.json",
     "/api/v1/processing-jobs/{job_id}", "/login"],
)
def test_pages_and_answers_with_data_are_never_cached(app, client, path):
    job_id = _failed_job(app)
    response = client.get(path.format(job_id=job_id))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_control_characters_in_parameters_are_a_400_but_tab_and_newlines_are_not(app, client):
    for query in ("q=a%01b", "document_id=%1b[31m", "q=%7f", "x%1b=1"):
        response = client.get(f"/jobs?{query}")
        assert response.status_code == 400, query
        assert "control character" in response.get_data(as_text=True)
    assert client.get("/api/v1/processing-jobs?document_id=%1b").status_code == 400
    assert client.get("/jobs?q=a%09b%0d%0ac").status_code == 200


def test_a_control_character_in_next_refuses_the_sign_in_itself(app, anonymous_client):
    from tests.conftest import make_user

    make_user(app, "next-user", "viewer", password="a long enough password")
    token = _login_token(anonymous_client)
    response = anonymous_client.post(
        "/login?next=/jobs%7f", data={"username": "next-user", "password": "a long enough password", "csrf_token": token}
    )
    assert response.status_code == 400
    assert anonymous_client.get("/jobs").status_code == 302  # not signed in: nothing happened


def test_user_names_refuse_control_and_bidi_characters(app):
    from app.errors import InvalidFieldsError

    with app.app_context():
        for name in ("evil\u202eadmin", "ctl\x1bname", "zero\u200bwidth", "line\u2028break", "lone\ud800surrogate"):
            with pytest.raises(InvalidFieldsError):
                access.create_user(name, "a long enough password", "viewer")
        access.create_user("Zoë Müller", "a long enough password", "viewer")


@pytest.mark.parametrize("token", [None, "garbage"], ids=["missing", "invalid"])
def test_a_form_refused_for_its_csrf_token_says_nothing_changed_and_links_back_to_its_page(app, client, token):
    """CSRFProtect refuses the form before its view: the page says so in an
    operator's words and offers the page the form was on (a path of this
    site only, never the Referer's other hosts), and the job is unchanged."""
    job_id = _failed_job(app)
    data = {} if token is None else {"csrf_token": token}
    page = f"/jobs/{job_id}?tab=history"
    response = client.post(f"/jobs/{job_id}/acknowledge", data=data, headers={"Referer": f"http://localhost{page}"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "The form has expired" in html
    assert "Nothing was changed" in html and "CSRF" not in html
    assert f'<a class="retry" href="{page}">Load the page again</a>' in html
    elsewhere = client.post(f"/jobs/{job_id}/acknowledge", data=data, headers={"Referer": "http://evil.example/x"})
    assert elsewhere.status_code == 400 and "evil.example" not in elsewhere.get_data(as_text=True)
    with app.app_context():
        assert stored_job_row(job_id)["acknowledged_at"] is None
    # Each refusal is audited as the user's (a trial found no trace of a
    # possible forgery): the path, never the Referer or the query.
    assert [(e.actor, e.action, e.filter) for e in _events(app)] == [
        ("test-admin", "access.denied", {"method": ["POST"], "path": [f"/jobs/{job_id}/acknowledge"],
                                         "reason": ["form token missing or invalid (CSRF)"]}),
    ] * 2


def test_a_form_left_open_for_hours_still_acts_while_its_session_lives(app, client, monkeypatch):
    """The token lives as long as its session (WTF_CSRF_TIME_LIMIT None), not
    Flask-WTF's default hour: an on-call page clicked hours after it loaded."""
    import itsdangerous.timed

    job_id = _failed_job(app)
    token = _csrf(client, f"/jobs/{job_id}")
    later = itsdangerous.timed.TimestampSigner.get_timestamp(None) + 5 * 3600  # type: ignore[arg-type]
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later)
    response = client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)
    with app.app_context():
        assert stored_job_row(job_id)["acknowledged_at"] is not None


def test_who_saw_a_jobs_error_details_is_audited_before_the_page(app, client):
    # A trial: a viewer could read every job's details, and the audit log
    # showed only their sign-in ("audit who saw it").
    job_id = _failed_job(app)
    for path, shown_as in ((f"/jobs/{job_id}", "page"), (f"/jobs/{job_id}/job.json", "json")):
        assert client.get(path).status_code == 200
        with app.app_context():
            event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "seen.job")
                                       .order_by(AuditEvent.occurred_at.desc())).first()
            assert (event.actor, event.filter) == ("test-admin", {"job_ids": [job_id], "as": shown_as})
    # A HEAD shows nothing: no row.
    with app.app_context():
        seen = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "seen.job"))
    client.head(f"/jobs/{job_id}")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "seen.job")) == seen


def test_a_job_page_whose_audit_cannot_be_written_is_not_shown(app, client, monkeypatch):
    job_id = _failed_job(app)
    monkeypatch.setattr("app.dashboard.seen.record_audit_event", _unavailable)
    response = client.get(f"/jobs/{job_id}")
    text = response.get_data(as_text=True)
    assert response.status_code == 503 and "crashed" not in text and "doc-audit" not in text



def test_every_action_the_code_writes_is_one_the_audit_page_knows(app):
    """The audit page offers :data:`KNOWN_ACTIONS` as choices and suggests a
    family for an action outside them: an action written but missing there
    (``seen.jobs`` and ``seen.groups`` were) could be filtered but read as
    a typo. Every action literal in ``app/`` (the endpoints' names left out)
    must be known."""
    from pathlib import Path

    from app.services.audit_log import KNOWN_ACTIONS

    families = "|".join(sorted({known.split(".")[0] for known in KNOWN_ACTIONS}))
    literal = re.compile(rf'"((?:{families})\.[a-z_.]+)"')
    written = {
        found
        for source in Path(app.root_path).rglob("*.py")
        for found in literal.findall(source.read_text(encoding="utf-8"))
    } - set(app.view_functions)
    assert {"seen.jobs", "seen.groups", "auth.sign_in"} <= written
    assert sorted(written - set(KNOWN_ACTIONS)) == []
