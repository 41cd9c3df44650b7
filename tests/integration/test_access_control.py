"""Access control: every route refuses the wrong people and programs."""

from __future__ import annotations

import logging
import re
import uuid
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from flask import Flask

from app.auth.guards import PUBLIC_ENDPOINTS
from app.extensions import db
from app.models.access import AuditEvent, Permission, Role, WorkerToken
from app.registry import get_failure_recorder
from app.services import access, worker_tokens
from app.services.processing_jobs.lifecycle import complete_job, create_job, start_job
from tests.conftest import make_user, sign_in

SENTINEL = "PATIENT-SENTINEL-7Q4Z Jane Roe"


def _concrete_path(rule: str, job_id: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: job_id if m.group(1) == "job_id" else "x", rule)


def _routes(app: Flask):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _is_refusal(response) -> bool:
    if response.status_code in (401, 403):
        return True
    # A GET is sent to the sign-in (302); so is a sign-out while signed out
    # (303), which changes nothing.
    return response.status_code in (302, 303) and "/login" in response.headers.get("Location", "")


def test_every_route_refuses_anonymous_requests(app, anonymous_client):
    with app.app_context():
        job_id = str(create_job("doc-route").id)
    checked = 0
    for rule, method in _routes(app):
        response = anonymous_client.open(_concrete_path(rule.rule, job_id), method=method, json={})
        assert _is_refusal(response), (method, rule.rule, response.status_code)
        checked += 1
    assert checked >= 20


def test_every_route_refuses_the_wrong_kind_of_credential(app, worker_token):
    with app.app_context():
        job_id = str(create_job("doc-route").id)
    worker = app.test_client()
    worker.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {worker_token}"
    operator = sign_in(app.test_client(), make_user(app, "admin-only-session", "admin"))
    for rule, method in _routes(app):
        path = _concrete_path(rule.rule, job_id)
        bearer_side = rule.rule.startswith("/api/") or rule.endpoint == "ops.metrics"
        # The API with only a session cookie; the dashboard with only a worker token.
        wrong = operator if bearer_side else worker
        response = wrong.open(path, method=method, json={})
        assert _is_refusal(response), (method, rule.rule, response.status_code)


def test_api_refusals_are_401_problems_with_a_bearer_challenge(anonymous_client):
    response = anonymous_client.get("/api/v1/processing-jobs")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer ", "Bearer cit_not-a-real-token", "Basic dXNlcjpwYXNz", "cit_abc"])
def test_bad_tokens_are_refused(anonymous_client, header):
    response = anonymous_client.get("/api/v1/processing-jobs", headers={"Authorization": header})
    assert response.status_code == 401


def test_revoked_token_stops_working_at_once(app, anonymous_client):
    with app.app_context():
        token, _ = worker_tokens.create_worker_token("soon-revoked")
    headers = {"Authorization": f"Bearer {token}"}
    assert anonymous_client.get("/api/v1/processing-jobs", headers=headers).status_code == 200
    with app.app_context():
        worker_tokens.revoke_worker_token("soon-revoked")
    assert anonymous_client.get("/api/v1/processing-jobs", headers=headers).status_code == 401


def test_tokens_are_not_recoverable_from_the_database(app):
    with app.app_context():
        token, _ = worker_tokens.create_worker_token("hashed")
        rows = db.session.execute(sa.select(WorkerToken.__table__)).mappings().all()
    dumped = repr([dict(r) for r in rows])
    assert token not in dumped and token[10:] not in dumped
    assert rows[0]["token_hash"] == worker_tokens.hash_token(token)


def test_passwords_are_stored_as_a_standard_kdf_hash(app):
    with app.app_context():
        access.create_user("hash-check", "correct horse battery", "viewer")
        stored = db.session.scalar(sa.text("SELECT password_hash FROM users WHERE username = 'hash-check'"))
    assert "correct horse battery" not in stored
    assert stored.startswith(("scrypt:", "pbkdf2:"))


# -- signing in --------------------------------------------------------------

def _csrf(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', html).group(1) or ""


def _login_token(client) -> str:
    html = client.get("/login").get_data(as_text=True)
    match = re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html)
    return match.group(1)


def test_sign_in_with_the_exact_user_name_only(app, anonymous_client):
    make_user(app, "Operator.One", "operator", password="a long enough password")
    for wrong in ("operator.one", "Operator", "Operator.On", "Operator .One", ".*"):
        response = anonymous_client.post(
            "/login", data={"username": wrong, "password": "a long enough password", "csrf_token": _login_token(anonymous_client)}
        )
        assert response.status_code == 401, wrong
    response = anonymous_client.post(
        "/login?next=/jobs", data={"username": "Operator.One", "password": "a long enough password", "csrf_token": _login_token(anonymous_client)}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/jobs"
    assert anonymous_client.get("/jobs").status_code == 200


def test_a_user_name_is_one_name_in_either_unicode_form(app, anonymous_client):
    """RFC 8265 (PRECIS): names are stored and compared in NFC. "Zoë" made
    of "o" and U+0308 and "Zoë" of U+00EB looked the same in the audit log
    but were two accounts (a trial); an older account stored otherwise
    still signs in with its name as it was made."""
    from app.auth.guards import typed_user_name_key
    from app.models.access import User

    composed, decomposed = "Zo\u00eb.Admin", "Zoe\u0308.Admin"
    make_user(app, decomposed, "operator", password="a long enough password")
    with app.app_context():
        assert db.session.scalars(sa.select(User.username).where(User.username.like("Zo%"))).all() == [composed]
        with pytest.raises(access.AccountExistsError):
            access.create_user(composed, "a long enough password", "viewer")
    for typed in (composed, decomposed):
        client = app.test_client()
        response = client.post("/login", data={"username": typed, "password": "a long enough password",
                                               "csrf_token": _login_token(client)})
        assert response.status_code == 302, typed
    with app.app_context():  # each success under the account's own name (a re-check saw the typed form)
        assert db.session.scalars(sa.select(AuditEvent.actor).where(
            AuditEvent.action == "auth.sign_in", AuditEvent.filter["outcome"].as_string() == "success")).all() == [
            composed, composed]
    # One counter for both forms: alternating them does not double the guesses.
    keys = set()
    for typed in (composed, decomposed):
        with app.test_request_context("/login", method="POST", data={"username": typed}):
            keys.add(typed_user_name_key())
    assert len(keys) == 1
    make_user(app, "Legacy.Rene\u0301", "viewer")  # stored as given, as before the rule
    with app.app_context():
        db.session.execute(sa.update(User).where(User.username == "Legacy.Rene\u0301").values(
            password_hash=access.generate_password_hash("a long enough password")))
        db.session.commit()
    response = anonymous_client.post("/login", data={"username": "Legacy.Rene\u0301", "password": "a long enough "
                                                     "password", "csrf_token": _login_token(anonymous_client)})
    assert response.status_code == 302


@pytest.mark.parametrize("order", ["blank first", "name first"])
def test_a_sign_in_field_given_two_values_is_refused_whatever_their_order(app, anonymous_client, order):
    # A trial: username=%20&username=x was refused and the other order signed in.
    from werkzeug.datastructures import MultiDict

    make_user(app, "Operator.Twice", "operator", password="a long enough password")
    names = [" ", "Operator.Twice"] if order == "blank first" else ["Operator.Twice", " "]
    response = anonymous_client.post("/login", data=MultiDict(
        [("username", n) for n in names] + [("password", "a long enough password"),
                                            ("csrf_token", _login_token(anonymous_client))]))
    assert response.status_code == 400
    assert "gives a field two different values" in response.get_data(as_text=True)
    assert anonymous_client.get("/jobs").status_code != 200
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "auth.sign_in")
                                   .order_by(AuditEvent.occurred_at.desc())).first()
    assert event.filter["outcome"] == "failure" and event.filter["reason"] == "a field given two values"


@pytest.mark.parametrize("typed", ["Operator.Two ", " Operator.Two", "\tOperator.Two \n"])
def test_surrounding_whitespace_in_the_user_name_is_dropped_at_sign_in(app, typed):
    make_user(app, "Operator.Two", "operator", password="a long enough password")
    client = app.test_client()
    response = client.post("/login", data={"username": typed, "password": "a long enough password",
                                           "csrf_token": _login_token(client)})
    assert response.status_code == 302
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "auth.sign_in")).one()
    assert (event.actor, event.filter["outcome"]) == ("Operator.Two", "success")


def test_a_failed_sign_in_says_so_in_the_form_without_saying_whether_the_user_exists(app, anonymous_client):
    make_user(app, "Operator.Three", "operator", password="a long enough password")
    answers = []
    for name, password in (("Operator.Three", "not the password at all"), ("Nobody.At.All", "a long enough password")):
        response = anonymous_client.post("/login", data={"username": name, "password": password,
                                                         "csrf_token": _login_token(anonymous_client)})
        assert response.status_code == 401
        html = response.get_data(as_text=True)
        error = re.search(r'<p class="form-error" id="sign-in-error" role="alert">([^<]+)</p>', html).group(1)
        assert "Sign-in failed" in error and "wrong" in error
        assert 'aria-invalid="true"' in html and 'aria-describedby="sign-in-error"' in html
        answers.append(re.sub(r'value="[^"]*"', "", html))  # the typed name and the CSRF token aside
    assert answers[0] == answers[1]  # word for word the same page


def test_sign_in_without_csrf_token_is_refused(app, anonymous_client):
    make_user(app, "csrf-user", "viewer", password="a long enough password")
    response = anonymous_client.post("/login", data={"username": "csrf-user", "password": "a long enough password"})
    assert response.status_code != 302
    assert anonymous_client.get("/jobs").status_code == 302


def test_sign_in_refuses_open_redirects(app, anonymous_client):
    make_user(app, "redirect-user", "viewer", password="a long enough password")
    response = anonymous_client.post(
        "/login?next=//evil.example/x",
        data={"username": "redirect-user", "password": "a long enough password", "csrf_token": _login_token(anonymous_client)},
    )
    assert response.headers["Location"] == "/groups"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/jobs\r\nSet-Cookie: x=1", id="crlf"),
        pytest.param("/\t/evil.example", id="tab"),
        pytest.param("/\\evil.example", id="backslash"),
        pytest.param("/jobs\u202e", id="bidi-override"),
    ],
)
def test_sign_in_with_an_unsafe_next_goes_to_the_landing_page(app, anonymous_client, target):
    # A control character in Location used to raise after login_user: a 500
    # for a sign-in that had happened.
    make_user(app, "redirect-user", "viewer", password="a long enough password")
    response = anonymous_client.post(
        "/login?" + urlencode({"next": target}),
        data={"username": "redirect-user", "password": "a long enough password", "csrf_token": _login_token(anonymous_client)},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/groups"
    assert anonymous_client.get("/jobs").status_code == 200


def test_login_attempts_are_rate_limited(database_url):
    from app import create_app

    limited = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False})
    client = limited.test_client()
    responses = [client.post("/login", data={"username": "x", "password": "y"}) for _ in range(12)]
    with limited.app_context():
        db.engine.dispose()
    codes = [response.status_code for response in responses]
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    # Retry-After only on the refusals (a trial saw it on every 401); the
    # limit's own headers on all of them.
    assert [("Retry-After" in r.headers) for r in responses] == [False] * 10 + [True, True]
    assert all(int(r.headers["X-RateLimit-Limit"]) > 0 for r in responses)


@pytest.mark.parametrize(("first", "then"), [("get", "get"), ("head", "get"), ("get", "head")])
def test_sign_in_page_loads_are_limited_per_address(database_url, first, then):
    # Each anonymous GET writes a server-side session row (the form's CSRF
    # token): an SRE trial grew the table with cookie-less GETs. HEAD runs
    # the same view, and wrote a row each time with no limit (a trial: 300
    # HEADs, 300 rows): both share one count.
    from app import create_app
    from app.auth.views import LOGIN_PAGE_LIMIT
    from app.models.access import ServerSession

    limited = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    allowed = int(LOGIN_PAGE_LIMIT.split()[0])
    codes = [getattr(limited.test_client(), first)("/login").status_code for _ in range(allowed)]
    codes += [getattr(limited.test_client(), then)("/login").status_code for _ in range(2)]
    with limited.app_context():
        rows = db.session.scalar(sa.select(sa.func.count()).select_from(ServerSession))
        db.session.remove()
        db.engine.dispose()
    assert codes == [200] * allowed + [429, 429]
    assert rows == allowed


def test_sign_in_posts_without_their_form_token_count_against_the_limit(database_url):
    # CSRFProtect refused them before the limiter looked: a script posting
    # without a token was answered 400 for ever, never 429, and left no audit row.
    from app import create_app
    from app.models.access import AuditEvent

    limited = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    client = limited.test_client()
    codes = [client.post("/login", data={"username": f"flood{n}", "password": "x"}).status_code for n in range(12)]
    with limited.app_context():
        events = db.session.execute(
            sa.select(AuditEvent.actor, AuditEvent.filter).where(AuditEvent.action == "auth.sign_in")
        ).all()
        db.session.remove()
        db.engine.dispose()
    assert codes == [400] * 10 + [429, 429]
    # Audited with the name as typed, the refusals past the limit too (ids are UUIDs: compared unordered).
    assert sorted((actor, f["reason"]) for actor, f in events) == sorted(
        [(f"flood{n}", "form token missing or invalid (CSRF)") for n in range(10)]
        + [(f"flood{n}", "rate limited") for n in (10, 11)]
    )


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://elsewhere.example"},
                                     {"Origin": "null"}])
def test_another_sites_token_less_sign_in_posts_spend_no_ones_limit(database_url, headers):
    # A re-check: a page on another site posted 11 token-less sign-ins from
    # the victim's browser; the operator's own sign-in was then refused (429).
    from app import create_app
    from app.models.access import AuditEvent
    from app.services import access

    limited = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    with limited.app_context():
        access.create_user("victim", "a long enough password", "operator")
    forged = [limited.test_client().post("/login", data={"username": "victim", "password": "x"}, headers=headers)
              for _ in range(12)]
    assert [response.status_code for response in forged] == [400] * 12
    assert "This sign-in form had expired" in forged[0].get_data(as_text=True)
    client = limited.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    own = client.post("/login", data={"username": "victim", "password": "a long enough password", "csrf_token": token})
    assert own.status_code == 302
    with limited.app_context():
        reasons = db.session.scalars(sa.select(AuditEvent.filter).where(AuditEvent.action == "auth.sign_in")).all()
        db.session.remove()
        db.engine.dispose()
    assert [r["outcome"] for r in reasons] == ["success"]  # the forged posts were no one's attempt


def test_a_signed_in_users_second_sign_in_post_goes_on_to_the_page(database_url):
    # An older sign-in tab sent after signing in, or a double submit: it was
    # the "form had expired" page, counted as a failed sign-in.
    from app import create_app
    from app.services import access

    limited = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    with limited.app_context():
        access.create_user("twice", "a long enough password", "viewer")
    client = limited.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    sent = {"username": "twice", "password": "a long enough password", "csrf_token": token}
    assert client.post("/login?next=/jobs", data=sent).status_code == 302
    again = client.post("/login?next=/jobs", data=sent)  # the token was replaced at sign-in
    with limited.app_context():
        db.session.remove()
        db.engine.dispose()
    assert again.status_code == 303 and again.headers["Location"].endswith("/jobs")


def test_a_refused_sign_in_page_puts_the_cursor_in_the_password(anonymous_client):
    # Served again with the name typed: the focus stayed on the filled name field (a re-check).
    html = anonymous_client.post("/login", data={"username": "someone", "password": "x"}).get_data(as_text=True)
    assert re.search(r'<input[^>]*autofocus[^>]*id="password"|<input[^>]*id="password"[^>]*autofocus', html), html
    assert not re.search(r'<input[^>]*autofocus[^>]*id="username"|<input[^>]*id="username"[^>]*autofocus', html)
    fresh = anonymous_client.get("/login").get_data(as_text=True)
    assert re.search(r'<input[^>]*id="username"[^>]*autofocus|<input[^>]*autofocus[^>]*id="username"', fresh)


def test_refused_sign_ins_are_audited_and_successes_do_not_count(database_url):
    from app import create_app
    from app.services import access

    limited = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False})
    with limited.app_context():
        access.create_user("often", "a long enough password", "viewer")
    client = limited.test_client()
    # Twelve successful sign-ins (an operator coming back all night): none refused.
    good = {"username": "often", "password": "a long enough password"}
    assert [client.post("/login", data=good).status_code for _ in range(12)] == [302] * 12
    # Then twelve guesses: the limit counts failures only; the two refused are audited too.
    codes = [client.post("/login?next=/groups", data={"username": "guess", "password": "y"}).status_code
             for _ in range(12)]
    page = client.post("/login?next=/groups", data={"username": "guess", "password": "y"}).get_data(as_text=True)
    with limited.app_context():
        reasons = [(e.actor, e.filter.get("outcome"), e.filter.get("reason")) for e in db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "auth.sign_in").order_by(AuditEvent.occurred_at))]
        db.session.remove()  # its connection back to the pool, which dispose() then closes
        db.engine.dispose()
    assert codes == [401] * 10 + [429, 429]
    assert reasons.count(("guess", "failure", "rate limited")) == 3 and len(reasons) == 12 + 13
    assert [r for r in reasons if r[0] == "often"] == [("often", "success", None)] * 12
    # The refusal leads back to the form it refused, not to the jobs.
    assert '<a href="/login?next=/groups">Back to the sign-in form</a>' in page


def test_login_attempts_on_one_user_name_are_limited_from_any_address(database_url):
    from app import create_app

    limited = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False})
    client = limited.test_client()

    def attempt(username: str, address: str) -> int:
        data = {"username": username, "password": "guess"}
        return client.post("/login", data=data, environ_base={"REMOTE_ADDR": address}).status_code

    # Ten addresses (a botnet), one guess each at the same name.
    codes = [attempt("alice", f"198.51.100.{n}") for n in range(1, 11)]
    fresh_address = "203.0.113.7"
    codes += [attempt("alice", fresh_address), attempt("bob", fresh_address)]
    with limited.app_context():
        db.engine.dispose()
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 401]  # the name is blocked, not the new address


def test_sign_in_fails_closed_with_a_503_when_the_limit_store_is_unreachable(database_url):
    # Redis down used to answer POST /login with a 500. The limit is a
    # security control, so sign-in is refused (retryable), never let through.
    from app import create_app
    from tests.live_server import free_port

    unreachable = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    limited = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                          "RATELIMIT_STORAGE_URI": unreachable, "WTF_CSRF_ENABLED": False})
    make_user(limited, "store-down-user", "viewer", password="a long enough password")
    client = limited.test_client()
    # The page's loads are counted too (each writes a session row): it says
    # at once that sign-in is unavailable, before a password is typed.
    page = client.get("/login")
    assert page.status_code == 503 and "Sign-in is unavailable" in page.get_data(as_text=True)
    response = client.post("/login", data={"username": "store-down-user", "password": "a long enough password"})
    signed_in = client.get("/jobs").status_code
    with limited.app_context():
        db.engine.dispose()
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert int(response.headers["Retry-After"]) > 0
    assert "Sign-in is unavailable" in response.get_data(as_text=True)
    assert signed_in == 302  # still anonymous: sent to the sign-in page


# -- roles -----------------------------------------------------------------------

ROLE_CASES = [
    ("GET", "/jobs", Permission.VIEW_JOBS),
    ("GET", "/jobs/{job_id}", Permission.VIEW_JOBS),
    ("GET", "/groups", Permission.VIEW_JOBS),
    ("GET", "/exports/job-errors.csv", Permission.EXPORT),
    ("GET", "/exports/job-errors.ndjson", Permission.EXPORT),
    ("GET", "/exports/entities.csv", Permission.EXPORT),
    ("GET", "/admin/audit", Permission.ADMINISTER),
]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("method", "path", "permission"), ROLE_CASES)
def test_roles_grant_exactly_their_permissions(app, role, method, path, permission):
    with app.app_context():
        job_id = str(create_job("doc-role").id)
    client = sign_in(app.test_client(), make_user(app, f"user-{role.value}", role.value))
    response = client.open(path.format(job_id=job_id), method=method)
    allowed = permission in access_permissions(role)
    assert response.status_code == (200 if allowed else 403), (role, path, response.status_code)


def access_permissions(role: Role):
    from app.models.access import ROLE_PERMISSIONS

    return ROLE_PERMISSIONS[role]


@pytest.mark.parametrize("role", list(Role))
def test_only_operators_and_admins_may_requeue(app, role):
    with app.app_context():
        job = create_job("doc-requeue-role")
        get_failure_recorder().record_failure(job.id, "crashed")
        job_id = str(job.id)
    client = sign_in(app.test_client(), make_user(app, f"act-{role.value}", role.value))
    token = _page_csrf(client, f"/jobs/{job_id}")
    response = client.post(f"/jobs/{job_id}/requeue", data={"csrf_token": token})
    allowed = role in (Role.OPERATOR, Role.ADMIN)
    assert response.status_code == (303 if allowed else 403)


def _page_csrf(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    return match.group(1)


# -- audit -------------------------------------------------------------------------

def test_exports_are_audited_with_the_filter_and_row_count(app, client):
    with app.app_context():
        for i in range(3):
            job = create_job(f"doc-audit-{i}")
            get_failure_recorder().record_failure(job.id, "crashed")
    body = client.get("/exports/job-errors.ndjson?status=Failed&rows=jobs").get_data(as_text=True)
    assert len(body.splitlines()) == 3
    with app.app_context():
        events = db.session.scalars(sa.select(AuditEvent)).all()
    assert [(e.actor, e.action, e.row_count) for e in events] == [("test-admin", "export.job_errors.ndjson", 3)]
    # The filter as applied: the default it added (acknowledged hidden) too.
    assert events[0].filter == {"status": ["Failed"], "acknowledged": ["exclude"], "rows": ["jobs"]}


@pytest.mark.parametrize(("query", "applied"), [
    # The form with no status box ticked: every status, as /jobs shows it.
    ("status=&rows=jobs", {"status": ["all"], "acknowledged": ["exclude"], "rows": ["jobs"]}),
    # No query: the dashboard's defaults, named (the audit page read "—").
    ("", {"status": ["Validation_Failed", "Failed"], "acknowledged": ["exclude"], "rows": ["items"],
          "items": ["matching"]}),
    # A blank search is none: not listed as one the file did not apply.
    ("q=%20&rows=jobs&status=failed&status=Failed",
     {"status": ["Failed"], "acknowledged": ["exclude"], "rows": ["jobs"]}),
    ("from=2026-01-01T01:00:00%2B01:00&rows=jobs&acknowledged=include",
     {"status": ["Validation_Failed", "Failed"], "time_field": ["created"], "acknowledged": ["include"],
      "from": ["2026-01-01T00:00:00Z"], "rows": ["jobs"]}),
])
def test_an_exports_audit_row_names_the_filter_it_applied(app, client, query, applied):
    # A trial: the row kept the raw query, which listed a blank q the file
    # ignored, and "status = " for a file of only the failures.
    with app.app_context():
        for status in ("crashed", None):
            job = create_job(f"doc-applied-{status}")
            if status:
                get_failure_recorder().record_failure(job.id, status)
            else:
                start_job(job.id)
                complete_job(job.id)
    lines = client.get(f"/exports/job-errors.ndjson?{query}").get_data(as_text=True).splitlines()
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent)).one()
    assert event.filter == applied
    assert len(lines) == event.row_count == (2 if applied["status"] == ["all"] else 1)


def test_entities_export_audit_names_the_filter_it_applied(app, client):
    client.get("/exports/entities.csv?job_type=ocr").get_data()
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent)).one()
    # The statuses the file applies: Completed alone (a trial found "all" and "Completed, Pending").
    assert event.filter == {"status": ["Completed"], "acknowledged": ["exclude"], "job_type": ["ocr"]}


@pytest.mark.parametrize(("role", "path", "permission"), [
    (Role.VIEWER, "/exports/job-errors.csv?q=secret-name", "export"),
    (Role.OPERATOR, "/exports/entities.csv", "export"),
    (Role.SUPPORT, "/admin/audit", "administer"),
])
def test_a_refusal_by_role_is_audited_and_says_what_is_needed(app, role, path, permission):
    # A trial: a viewer probing the exports left no trace.
    client = sign_in(app.test_client(), make_user(app, f"denied-{role.value}", role.value))
    response = client.get(path)
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert f"Your role ({role.value}) does not allow this: it needs the permission to {permission}" in html
    with app.app_context():
        events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "access.denied")).all()
    assert [(e.actor, e.filter) for e in events] == [
        (f"denied-{role.value}", {"method": ["GET"], "path": [path.split("?")[0]], "permission": [permission]})]


def test_a_refused_token_gets_rfc_6750_invalid_token(anonymous_client):
    response = anonymous_client.get("/api/v1/processing-jobs", headers={"Authorization": "Bearer cit_nope"})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="clinical-intelligence-api", error="invalid_token"'), challenge
    # No token at all: only the realm (RFC 6750 section 3.1: no error code).
    assert anonymous_client.get("/api/v1/processing-jobs").headers["WWW-Authenticate"] == (
        'Bearer realm="clinical-intelligence-api"')


@pytest.mark.parametrize("header", [
    "Bearer {token},Bearer {token}",  # the field sent twice, as a server joins it (RFC 9110 section 5.3)
    "Bearer {token}, Bearer {token}",
    "Bearer {token} extra",
    "Bearer {token}\u00e9",
    # A re-check: another scheme first, a tab or a no-break space after the scheme.
    "Basic dXNlcjpwYXNz, Bearer {token}",
    "Bearer {token}, Basic dXNlcjpwYXNz",
    "Bearer\t{token}",
    "Bearer\u00a0{token}",
])
def test_a_malformed_bearer_credential_is_a_400_naming_the_header_not_a_revoked_token(
    anonymous_client, worker_token, header
):
    response = anonymous_client.get(
        "/api/v1/processing-jobs", headers={"Authorization": header.format(token=worker_token)}
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "/problems/invalid-authorization"
    assert [e["header"] for e in problem["errors"]] == ["Authorization"]
    assert worker_token not in response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer realm="clinical-intelligence-api", error="invalid_request"')
    # The same token, once, still works; RFC 6750's b64token may end in '='.
    good = anonymous_client.get("/api/v1/processing-jobs", headers={"Authorization": f"Bearer {worker_token}"})
    assert good.status_code == 200
    padded = anonymous_client.get("/api/v1/processing-jobs", headers={"Authorization": "Bearer cit_nope=="})
    assert padded.status_code == 401


def test_audit_log_page_is_for_admins(app, client):
    with app.app_context():
        access.record_audit_event("someone", "jobs.requeue", {"scope": "selected"}, 2)
    html = client.get("/admin/audit").get_data(as_text=True)
    assert "jobs.requeue" in html and "someone" in html


# -- security headers and the log ------------------------------------------------------

def test_security_headers_forbid_inline_scripts_and_framing(client):
    response = client.get("/jobs")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_error_text_never_reaches_the_application_log(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    job_id = client.post("/api/v1/processing-jobs", json={"document_id": "doc-log"}).get_json()["id"]
    client.post(
        f"/api/v1/processing-jobs/{job_id}/validation-failure",
        json={"error_message": SENTINEL, "error_details": {"note": SENTINEL}},
    )
    client.post(
        f"/api/v1/processing-jobs/{job_id}/validation-failure",
        json={"error_message": "", "error_details": {"note": SENTINEL}},
    )
    client.get("/jobs")
    client.get(f"/jobs/{job_id}")
    client.get("/exports/job-errors.csv")
    client.get(f"/api/v1/processing-jobs/{uuid.uuid4()}")
    assert caplog.records, "the app logged nothing at all: the check would be empty"
    assert SENTINEL not in caplog.text


def test_every_rate_limited_view_is_in_the_limiter_filter(app):
    # The limiter skips every endpoint outside RATE_LIMITED_ENDPOINTS (a
    # fixed cost saved on each request): a @limiter.limit put on another
    # view would silently never be checked.
    from flask_limiter.util import get_qualified_name

    from app.auth.guards import RATE_LIMITED_ENDPOINTS, limiter

    with app.test_request_context():
        limited = {
            endpoint
            for endpoint, view in app.view_functions.items()
            if limiter.limit_manager.decorated_limits(get_qualified_name(view))
        }
    assert limited == RATE_LIMITED_ENDPOINTS


def test_the_audit_logs_403_leads_to_the_lists_not_back_to_itself(app):
    # A trial: its one link, "Back to the audit log", was the same 403.
    client = sign_in(app.test_client(), make_user(app, "viewer-403", Role.VIEWER.value))
    response = client.get("/admin/audit")
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert 'href="/admin/audit"' not in html and 'href="/jobs"' in html
    # Both lists, as a refused POST offers (a trial: a GET offered the jobs only).
    assert '<a href="/groups">Back to failure groups</a>' in html


@pytest.mark.parametrize("target", ["/logout", "/jobs/bulk", "/api/v1/processing-jobs", "/metrics"])
def test_sign_in_next_to_no_page_lands_on_the_groups(app, anonymous_client, target):
    # A trial: next=/logout ended on a 405 page; /jobs/bulk (its own 405 page) and the API (a 401 problem) too.
    make_user(app, "next-logout", Role.OPERATOR.value, password="a long enough password")
    response = anonymous_client.post(f"/login?next={target}", data={
        "username": "next-logout", "password": "a long enough password", "csrf_token": _login_token(anonymous_client)})
    assert response.status_code == 302 and response.headers["Location"] == "/groups"


def test_an_unknown_api_path_needs_a_token_before_it_is_a_404(anonymous_client, client):
    # A trial: /api/v1/nope answered 404 to anyone, so paths could be probed.
    response = anonymous_client.get("/api/v1/nope")
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert client.get("/api/v1/nope").status_code == 404  # with the token: the path is unknown


def test_a_worker_token_on_an_export_is_a_401_that_says_what_the_dashboard_takes(anonymous_client, worker_token):
    # A trial: a script sent its token and saved the sign-in page (a redirect followed) as the file.
    response = anonymous_client.get("/exports/job-errors.csv", headers={"Authorization": f"Bearer {worker_token}"})
    assert response.status_code == 401
    assert "take a signed-in session, not a worker token" in response.get_data(as_text=True)


def test_every_dashboard_401_names_the_sign_in_form_as_its_challenge(app, anonymous_client, worker_token):
    # RFC 9110 section 15.5.2: a 401 carries a challenge; the pages' is the sign-in form, not a bearer token.
    expected = 'Cookie realm="clinical-intelligence-dashboard", form-action="/login"'
    answers = [
        anonymous_client.get("/jobs", headers={"Authorization": f"Bearer {worker_token}"}),
        anonymous_client.get("/jobs/summary"),  # the framed summary, signed out
        anonymous_client.post("/login", data={"username": "nobody", "password": "wrong",
                                              "csrf_token": _login_token(anonymous_client)}),
    ]
    assert [(r.status_code, r.headers.get("WWW-Authenticate")) for r in answers] == [(401, expected)] * 3
    # The API's challenge is still the bearer one.
    assert anonymous_client.get("/api/v1/processing-jobs").headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("path", ["/exports/job-errors.csv", "/exports/job-errors.ndjson", "/exports/entities.csv"])
def test_an_export_another_sites_link_started_asks_first_and_records_nothing(app, client, path):
    # A trial: the session cookie (SameSite=Lax) came with a link from any
    # site, which made an audited export in the user's name.
    with app.app_context():
        get_failure_recorder().record_failure(create_job("doc-cross-site").id, "crashed")
    # A sibling subdomain's link is "same-site", and gets the cookie too (a re-check).
    for site in ("cross-site", "same-site"):
        response = client.get(f"{path}?job_type=entity_extraction",
                              headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate"})
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and response.mimetype == "text/html", html
        assert "Download this export?" in html and "Content-Disposition" not in response.headers
        assert f'href="{path}?job_type=entity_extraction" download' in html
    with app.app_context():
        assert db.session.scalars(sa.select(AuditEvent)).all() == []
    # The link clicked on that page is same-origin: the export, audited.
    response = client.get(f"{path}?job_type=entity_extraction", headers={"Sec-Fetch-Site": "same-origin"})
    assert response.headers["Content-Disposition"].startswith("attachment;")
    response.get_data()
    with app.app_context():
        assert [e.action for e in db.session.scalars(sa.select(AuditEvent))] == [
            "export." + path.rsplit("/", 1)[1].replace("-", "_")]
    # A typed address or a bookmark ("none") exports at once, as before.
    assert client.get(path, headers={"Sec-Fetch-Site": "none"}).headers["Content-Disposition"]


def test_a_signed_out_export_link_signs_in_to_the_list_it_exports(app, anonymous_client):
    # A re-check: signed in, the browser went on to the export itself (a
    # same-origin request), so another site's link exported unasked.
    response = anonymous_client.get("/exports/job-errors.csv?job_type=ocr&rows=jobs&status=Failed",
                                    headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=" + quote("/jobs?job_type=ocr&status=Failed", safe="/?")
