"""Server-side dashboard sessions: sign-out, disable, new password and idle time
end them for good; an unchanged session's row is rewritten at most once a
minute (app/auth/sessions.py). Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa

from app.auth.sessions import DatabaseSessionInterface, refresh_interval
from app.extensions import db
from app.models.access import AuditEvent, ServerSession, User
from app.models.types import utcnow
from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import create_job
from tests.conftest import make_user

PASSWORD = "a long enough password"


def _sign_in(client, username: str, password: str = PASSWORD) -> None:
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.status_code


def _cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _signed_in(client) -> bool:
    response = client.get("/jobs")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def _copy(app, cookie: str):
    """A second browser that holds a saved copy of ``cookie``."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def _logout(client) -> None:
    html = client.get("/jobs").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def test_a_cookie_saved_before_sign_out_opens_nothing_afterwards(app):
    make_user(app, "leaver", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "leaver")
    saved = _cookie(browser)
    assert _signed_in(_copy(app, saved))
    _logout(browser)
    assert not _signed_in(browser)
    assert not _signed_in(_copy(app, saved))
    with app.app_context():
        actions = list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.occurred_at)))
    assert actions == ["auth.sign_in", "auth.sign_out"]


def test_sign_out_ends_only_that_session(app):
    make_user(app, "two-devices", "viewer", password=PASSWORD)
    laptop, phone = app.test_client(), app.test_client()
    _sign_in(laptop, "two-devices")
    _sign_in(phone, "two-devices")
    _logout(phone)
    assert _signed_in(laptop)
    assert not _signed_in(phone)


def test_signing_in_starts_a_new_session_id(app):
    make_user(app, "fixated", "viewer", password=PASSWORD)
    browser = app.test_client()
    browser.get("/login")
    before = _cookie(browser)
    _sign_in(browser, "fixated")
    assert _cookie(browser) != before
    assert not _signed_in(_copy(app, before))


def test_a_csrf_token_from_before_the_sign_in_is_refused_after_it(app):
    # A trial: the token of the anonymous sign-in page stayed valid for the
    # signed-in session's forms.
    make_user(app, "early-token", "operator", password=PASSWORD)
    browser = app.test_client()
    html = browser.get("/login").get_data(as_text=True)
    early = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    response = browser.post("/login", data={"username": "early-token", "password": PASSWORD, "csrf_token": early})
    assert response.status_code == 302
    with app.app_context():
        job_id = str(create_job("doc-early-token").id)
    assert browser.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": early}).status_code == 400
    fresh = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"',
                      browser.get("/jobs").get_data(as_text=True)).group(1)
    assert fresh != early


def test_the_table_holds_digests_not_session_ids(app):
    make_user(app, "digested", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "digested")
    cookie = _cookie(browser)
    with app.app_context():
        keys = list(db.session.scalars(sa.select(ServerSession.session_key)))
    assert keys and cookie not in keys
    assert all(re.fullmatch("[0-9a-f]{64}", key) for key in keys)


def test_an_idle_session_needs_a_new_sign_in(app):
    make_user(app, "idler", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "idler")
    with app.app_context():
        (expires_at,) = db.session.scalars(sa.select(ServerSession.expires_at))
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    assert app.config["SESSION_IDLE_MINUTES"] == 30
    assert abs(expires_at - (utcnow() + idle)) < timedelta(minutes=1)
    # Each request moves the end forward; leave it alone past the end instead.
    with app.app_context():
        db.session.execute(sa.update(ServerSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert not _signed_in(browser)
    response = browser.get("/jobs")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_each_request_extends_the_idle_deadline(app):
    make_user(app, "active-one", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "active-one")
    soon = utcnow() + timedelta(minutes=1)
    with app.app_context():
        db.session.execute(sa.update(ServerSession).values(expires_at=soon))
        db.session.commit()
    assert _signed_in(browser)
    with app.app_context():
        (expires_at,) = db.session.scalars(sa.select(ServerSession.expires_at))
    assert expires_at > soon + timedelta(minutes=20)


def test_disabling_a_user_ends_every_session_and_enabling_lets_them_sign_in(app, runner):
    make_user(app, "disabled-one", "operator", password=PASSWORD)
    laptop, phone = app.test_client(), app.test_client()
    _sign_in(laptop, "disabled-one")
    _sign_in(phone, "disabled-one")
    result = runner.invoke(args=["users", "disable", "disabled-one"])
    assert result.exit_code == 0, result.output
    assert "disabled user disabled-one" in result.output
    assert not _signed_in(laptop) and not _signed_in(phone)
    html = laptop.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    refused = laptop.post("/login", data={"username": "disabled-one", "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 401
    assert runner.invoke(args=["users", "enable", "disabled-one"]).exit_code == 0
    _sign_in(laptop, "disabled-one")
    assert _signed_in(laptop)
    assert not _signed_in(phone)  # an ended session stays ended
    with app.app_context():
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {"users.disable", "users.enable"} <= actions


def _end_sessions(app) -> None:
    with app.app_context():
        db.session.execute(sa.update(ServerSession).values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()


def test_a_form_sent_after_the_session_ended_links_to_the_sign_in_and_back(app):
    # A trial (session 27): the 401 page had no way to sign in, nor back to
    # the page the form was on.
    make_user(app, "idle-one", "operator", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "idle-one")
    _end_sessions(app)
    refused = browser.post("/groups/3/resolve", data={"in_version": "1.2.0"},
                           headers={"Referer": "http://localhost/groups/3?sort=first_seen"})
    assert refused.status_code == 401
    html = refused.get_data(as_text=True)
    assert "nothing was changed" in html
    assert 'href="/login?next=/groups/3?sort%3Dfirst_seen">Sign in</a>' in html
    # Another site's page is never where the sign-in leads.
    elsewhere = browser.post("/groups/3/resolve", headers={"Referer": "https://evil.example/groups/3"})
    assert 'href="/login">Sign in</a>' in elsewhere.get_data(as_text=True)


def test_signing_out_after_the_session_ended_leads_to_the_sign_in(app):
    make_user(app, "idle-two", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "idle-two")
    _end_sessions(app)
    answer = browser.post("/logout")
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"
    with app.app_context():
        assert not db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                     .where(AuditEvent.action == "auth.sign_out"))


def test_enabling_an_active_user_keeps_their_sessions_and_audits_nothing(app, runner):
    make_user(app, "already-on", "operator", password=PASSWORD)
    laptop = app.test_client()
    _sign_in(laptop, "already-on")
    result = runner.invoke(args=["users", "enable", "already-on"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "user already-on was already enabled; nothing changed"
    assert _signed_in(laptop)
    assert runner.invoke(args=["users", "disable", "already-on"]).exit_code == 0
    again = runner.invoke(args=["users", "disable", "already-on"])
    assert again.output.strip() == "user already-on was already disabled; nothing changed"
    with app.app_context():
        actions = list(db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.action.like("users.%able"))))
    assert actions == ["users.disable"]


def test_a_new_password_ends_every_session(app, runner):
    make_user(app, "rotator", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "rotator")
    result = runner.invoke(args=["users", "set-password", "rotator", "--password-stdin"], input="a brand new password\n")
    assert result.exit_code == 0, result.output
    assert not _signed_in(browser)
    html = browser.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    old = browser.post("/login", data={"username": "rotator", "password": PASSWORD, "csrf_token": token})
    assert old.status_code == 401
    _sign_in(browser, "rotator", "a brand new password")
    assert _signed_in(browser)


def test_user_commands_refuse_unknown_names_and_short_passwords(app, runner):
    make_user(app, "someone", "viewer", password=PASSWORD)
    for args in (["users", "disable", "nobody"], ["users", "enable", "nobody"]):
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and "No user is named 'nobody'" in result.output
    short = runner.invoke(args=["users", "set-password", "someone", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    browser = app.test_client()
    _sign_in(browser, "someone")  # the old password still works


def test_the_session_store_unreachable_is_a_503_not_a_500(app, monkeypatch):
    make_user(app, "unlucky", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "unlucky")
    import psycopg

    def unavailable(*_args, **_kwargs):
        raise sa.exc.OperationalError("SELECT", {}, psycopg.OperationalError("gone"))

    monkeypatch.setattr(app.session_interface, "_retrieve_session_data", unavailable)
    response = browser.get("/jobs")
    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_account_and_token_commands_are_audited(app, runner):
    created = runner.invoke(
        args=["users", "create", "--username", "new-op", "--role", "operator", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert created.exit_code == 0, created.output
    token = runner.invoke(args=["tokens", "create", "--name", "ingest-7"])
    assert token.exit_code == 0, token.output
    assert runner.invoke(args=["tokens", "revoke", "ingest-7"]).exit_code == 0
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.occurred_at))
        events = [(e.actor, e.action, e.filter) for e in rows]
    secret = token.stdout.strip().splitlines()[0]
    import getpass

    from app.cli_checks import cli_actor

    cli = cli_actor()  # who ran it, as the OS names them (and sudo's caller, if any)
    assert cli.startswith(f"cli:{getpass.getuser()}")
    assert [(actor, action) for actor, action, _ in events] == [
        (cli, "users.create"), (cli, "tokens.create"), (cli, "tokens.revoke"),
    ]
    assert events[0][2] == {"username": "new-op", "role": "operator"}
    assert secret.startswith("cit_") and secret not in repr(events) and PASSWORD not in repr(events)


@contextmanager
def _session_writes(app) -> Iterator[list[str]]:
    """The statements that write ``server_sessions`` while the block runs."""
    writes: list[str] = []
    with app.app_context():
        engine = db.engine

    def seen(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        words = statement.split()
        if words[0].upper() in {"INSERT", "UPDATE", "DELETE"} and "server_sessions" in words[:4]:
            writes.append(words[0].upper())

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield writes
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def _stored_expiry(app):
    with app.app_context():
        (expires_at,) = db.session.scalars(sa.select(ServerSession.expires_at))
    return expires_at


def test_an_unchanged_session_is_rewritten_at_most_once_per_refresh_interval(app):
    make_user(app, "steady", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "steady")
    assert _signed_in(browser)  # the first page may add to the session (its CSRF token)
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    assert refresh_interval(idle) == timedelta(minutes=1)  # 30 minutes idle: the one-minute cap
    with _session_writes(app) as writes:
        assert _signed_in(browser)
        assert _signed_in(browser)
    assert writes == []  # read twice, unchanged, extended less than a minute ago
    # A minute and a bit later (the stored expiry moved back instead): two
    # requests in a row write the row once, and the deadline is a full idle time again.
    with app.app_context():
        db.session.execute(sa.update(ServerSession).values(expires_at=utcnow() + idle - timedelta(seconds=61)))
        db.session.commit()
    with _session_writes(app) as writes:
        assert _signed_in(browser)
        assert _signed_in(browser)
    assert writes == ["INSERT"]  # INSERT ... ON CONFLICT DO UPDATE
    assert abs(_stored_expiry(app) - (utcnow() + idle)) < timedelta(seconds=30)


def test_a_changed_session_is_written_at_once(app):
    make_user(app, "acting", "operator", password=PASSWORD)
    with app.app_context():
        job_id = str(create_job("doc-changed-session").id)
        get_failure_recorder().record_failure(job_id, "the worker crashed")
    browser = app.test_client()
    _sign_in(browser, "acting")
    html = browser.get("/jobs").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
    with _session_writes(app) as writes:
        # The action flashes its outcome into the session: new content, so written
        # although the expiry was moved a moment ago.
        assert browser.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": token}).status_code == 303
    assert writes == ["INSERT"]
    with _session_writes(app) as writes:
        shown = browser.get(f"/jobs/{job_id}").get_data(as_text=True)  # showing the flash removes it
    assert "Acknowledged the failure of document" in shown
    assert writes == ["INSERT"]


def test_idle_sign_out_still_ends_a_session_that_was_not_rewritten(app):
    make_user(app, "quiet", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "quiet")
    assert _signed_in(browser)
    with _session_writes(app) as writes:
        assert _signed_in(browser)
    assert writes == []
    # Idle past the stored deadline: throttled writes do not keep it alive.
    with app.app_context():
        db.session.execute(sa.update(ServerSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = browser.get("/jobs")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_session_read_brings_its_user_in_the_same_statement(app):
    user_id = make_user(app, "reader", "viewer", password=PASSWORD)
    make_user(app, "someone-else", "viewer", password=PASSWORD)
    browser = app.test_client()
    _sign_in(browser, "reader")
    assert _signed_in(browser)
    with app.app_context():
        assert db.session.scalar(sa.select(ServerSession.user_id)) == user_id
        engine = db.engine
    statements: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        assert _signed_in(browser)
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    from_users = [s for s in statements if "FROM users" in s]
    assert len(from_users) == 0 and any("JOIN users" in s for s in statements)
    # A hint that names another user is only a hint: the data's user is
    # loaded (by its own query), and a stale generation still signs out.
    with app.app_context():
        other = db.session.scalar(sa.select(User.id).where(User.username == "someone-else"))
        db.session.execute(sa.update(ServerSession).values(user_id=other))
        db.session.commit()
    assert "reader" in browser.get("/jobs").get_data(as_text=True)
    with app.app_context():
        db.session.execute(sa.update(ServerSession).values(user_id=other))
        db.session.execute(sa.update(User).where(User.id == user_id).values(
            session_generation=User.session_generation + 1))
        db.session.commit()
    assert not _signed_in(browser)


def _token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def _at_once(app, monkeypatch, *requests):
    """Run ``requests`` (callables) in threads, each writing its session only
    once all have read theirs and done their work: the interleaving of two
    tabs whose forms were sent at the same moment."""
    barrier = threading.Barrier(len(requests), timeout=60)
    original = DatabaseSessionInterface._upsert_session

    def upsert_together(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        barrier.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DatabaseSessionInterface, "_upsert_session", upsert_together)
    with ThreadPoolExecutor(len(requests)) as pool:
        statuses = [future.result() for future in [pool.submit(request) for request in requests]]
    monkeypatch.setattr(DatabaseSessionInterface, "_upsert_session", original)
    return statuses


def _failed_jobs(app, *names: str) -> list[str]:
    with app.app_context():
        ids = [str(create_job(name).id) for name in names]
        for job_id in ids:
            get_failure_recorder().record_failure(job_id, "the worker crashed")
    return ids


def test_two_forms_sent_at_once_from_two_tabs_keep_both_messages(app, monkeypatch):
    """A trial: each request wrote its session whole, so the second save
    dropped the first's message."""
    make_user(app, "two-tabs", "operator", password=PASSWORD)
    first, second = _failed_jobs(app, "doc-tab-1", "doc-tab-2")
    tab = app.test_client()
    _sign_in(tab, "two-tabs")
    other_tab = _copy(app, _cookie(tab))
    token = _token(tab, "/jobs")
    statuses = _at_once(
        app, monkeypatch,
        lambda: tab.post(f"/jobs/{first}/acknowledge", data={"csrf_token": token}).status_code,
        lambda: other_tab.post(f"/jobs/{second}/acknowledge", data={"csrf_token": token}).status_code,
    )
    assert statuses == [303, 303]
    shown = tab.get("/jobs?acknowledged=include").get_data(as_text=True)
    assert "document <bdi>doc-tab-1</bdi>" in shown and "document <bdi>doc-tab-2</bdi>" in shown
    assert "doc-tab-1</bdi>." not in tab.get("/jobs?acknowledged=include").get_data(as_text=True)  # shown once


def test_a_message_shown_in_one_tab_does_not_come_back_through_a_form_sent_meanwhile(app, monkeypatch):
    make_user(app, "shown-once", "operator", password=PASSWORD)
    first, second = _failed_jobs(app, "doc-seen-1", "doc-seen-2")
    tab = app.test_client()
    _sign_in(tab, "shown-once")
    token = _token(tab, "/jobs")
    assert tab.post(f"/jobs/{first}/acknowledge", data={"csrf_token": token}).status_code == 303
    other_tab = _copy(app, _cookie(tab))
    pages = []
    _at_once(
        app, monkeypatch,
        lambda: pages.append(tab.get(f"/jobs/{first}").get_data(as_text=True)),  # shows the first message
        lambda: other_tab.post(f"/jobs/{second}/acknowledge", data={"csrf_token": token}).status_code,
    )
    assert "document <bdi>doc-seen-1</bdi>" in pages[0]
    after = tab.get("/jobs?acknowledged=include").get_data(as_text=True)
    assert "document <bdi>doc-seen-2</bdi>" in after and "document <bdi>doc-seen-1</bdi>" not in after


def test_two_tabs_asking_about_their_selections_at_once_each_keep_their_question(app, monkeypatch):
    """A trial: the second tab's question (kept in the session) replaced the
    first's, whose tab was sent to /jobs."""
    make_user(app, "two-questions", "operator", password=PASSWORD)
    first, second = _failed_jobs(app, "doc-ask-1", "doc-ask-2")
    tab = app.test_client()
    _sign_in(tab, "two-questions")
    other_tab = _copy(app, _cookie(tab))
    token = _token(tab, "/jobs")
    answers = []
    _at_once(
        app, monkeypatch,
        lambda: answers.append(tab.post("/jobs/bulk", data={"csrf_token": token, "op": "requeue:selected",
                                                            "job_id": [first]})),
        lambda: answers.append(other_tab.post("/jobs/bulk", data={"csrf_token": token, "op": "acknowledge:selected",
                                                                  "job_id": [second]})),
    )
    pages = sorted(tab.get(answer.headers["Location"]).get_data(as_text=True) for answer in answers)
    assert "Acknowledge 1 job?" in pages[0] and "doc-ask-2" in pages[0]
    assert "Requeue 1 job?" in pages[1] and "doc-ask-1" in pages[1]


def test_session_cleanup_deletes_the_expired_rows_and_says_how_many(app, runner):
    app.test_client().get("/login")  # an anonymous session row
    app.test_client().get("/login")
    with app.app_context():
        db.session.execute(sa.update(ServerSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    app.test_client().get("/login")  # one that has not expired
    result = runner.invoke(args=["session_cleanup"])
    assert result.exit_code == 0, result.output
    assert result.output == "deleted 2 expired server_sessions\n"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServerSession)) == 1
    assert "Delete expired server-side sessions" in runner.invoke(args=["session_cleanup", "--help"]).output


def test_session_cleanup_without_its_database_says_so_without_a_traceback():
    from app import create_app
    from tests.live_server import free_port

    down = create_app({"TESTING": True, "DB_CONNECT_TIMEOUT_S": 2,
                       "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://u@127.0.0.1:{free_port()}/none"})
    result = down.test_cli_runner().invoke(args=["session_cleanup"])
    with down.app_context():
        db.engine.dispose()
    assert result.exit_code == 1
    assert "the database did not answer (OperationalError); nothing was deleted" in result.output
    assert "Traceback" not in result.output and "SELECT" not in result.output
