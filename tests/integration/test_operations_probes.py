"""Liveness, readiness, ``flask check-ready`` and answers while the database is down."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.web.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE
from app.auth.guards import requires
from app.extensions import db
from app.models.access import Permission
from app.operations.readiness import code_heads
from tests.conftest import make_user, sign_in

#: A well-formed worker token: checking it needs the database, which is down.
SOME_TOKEN = "cit_" + "x" * 40

#: Nothing listens on port 1: connections are refused at once.
UNREACHABLE_URL = "postgresql+psycopg://clinical:pw-not-to-leak@127.0.0.1:1/clinical"
LEAKS = ("pw-not-to-leak", "127.0.0.1:1", "Traceback", "OperationalError", "psycopg", "connection refused")


@pytest.fixture
def down_app() -> Iterator[Flask]:
    """The app, in testing mode, with a database that refuses connections."""
    application = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": UNREACHABLE_URL})
    yield application
    with application.app_context():
        db.engine.dispose()


def _assert_no_leak(text: str) -> None:
    for secret in LEAKS:
        assert secret.lower() not in text.lower(), secret


def test_healthz_answers_without_the_database(down_app):
    response = down_app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/healthz?x=%00", "/readyz?probe=%1b", "/healthz?q=%C3", "/readyz?q=\u00e9"])
def test_a_probe_s_refused_query_is_problem_json_for_the_program_that_reads_it(anonymous_client, path):
    # A trial: the probes answered these with the dashboard's HTML error page.
    base, _, query = path.partition("?")
    response = anonymous_client.get(base, environ_overrides={"QUERY_STRING": query})
    assert response.status_code == 400
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    assert response.get_json()["type"].endswith("/invalid-query")


def test_readyz_is_ready_on_a_migrated_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "checks": {"database": "ok", "schema": "ok"}}


def test_readyz_is_503_when_the_database_is_unreachable_and_says_no_more(down_app):
    response = down_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "not-ready",
        "checks": {"database": "unreachable", "schema": "unknown"},
    }
    assert response.headers["Retry-After"] == "5"
    _assert_no_leak(response.get_data(as_text=True))


def test_readyz_is_503_when_the_schema_is_behind_the_code(app, client):
    (head,) = code_heads()
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0001_processing_jobs'"))
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json["checks"] == {"database": "ok", "schema": "not-at-head"}
        result = app.test_cli_runner().invoke(args=["check-ready"])
        assert result.exit_code == 1
        assert "0001_processing_jobs" in result.output and "db upgrade" in result.output
    finally:
        with app.app_context(), db.engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = :head"), {"head": head})


def test_check_ready_command_passes_on_a_migrated_database(runner):
    result = runner.invoke(args=["check-ready"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ready: database schema at")


def test_check_ready_command_fails_without_leaking_the_url(down_app, caplog):
    result = down_app.test_cli_runner().invoke(args=["check-ready"])
    assert result.exit_code == 1
    assert result.output.strip() == "database unreachable"
    # Its own line only: no "readiness: database unreachable" log line beside it (a trial saw both).
    assert not [r for r in caplog.records if "readiness" in r.getMessage()]


def test_maintenance_commands_stop_with_one_line_on_a_database_not_ready(down_app, tmp_path, caplog):
    """The third trial (session 16): `flask groups roll-up-days` without the
    demo's DATABASE_URL printed a 60-line traceback with its SQL, and left
    an empty SQLite file behind."""
    result = down_app.test_cli_runner().invoke(args=["groups", "roll-up-days"])
    assert result.exit_code == 1 and result.output.strip() == "Error: database unreachable"
    assert not [r for r in caplog.records if "readiness" in r.getMessage()]
    _assert_no_leak(result.output)
    missing = tmp_path / "missing.sqlite3"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{missing}"})
    # The second trial: users, tokens and jobs commands (the README's "users create" among them)
    # and check-ready still printed tracebacks and created the file.
    for command in (["groups", "roll-up-days"], ["groups", "backfill"], ["users", "create", "--username", "x",
                    "--role", "admin", "--password-stdin"], ["tokens", "list"],
                    ["jobs", "purge", "--older-than", "180d", "--dry-run"], ["check-ready"]):
        result = app.test_cli_runner().invoke(args=command, input="a-password-of-some-length\n")
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, (command, result.output)
        assert f"no SQLite database at {missing}" in result.output and "Traceback" not in result.output
    assert not missing.exists()  # nothing created
    # A subcommand's --help needs no database (a trial: `users create --help` stopped at the line above).
    for command in (["users", "create", "--help"], ["tokens", "rotate", "--help"], ["groups", "backfill", "--help"],
                    ["jobs", "purge", "--help"]):
        result = app.test_cli_runner().invoke(args=command)
        assert result.exit_code == 0 and result.output.startswith("Usage: "), (command, result.output)
    assert not missing.exists()
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{empty}"})
    result = app.test_cli_runner().invoke(args=["groups", "roll-up-days"])
    assert result.exit_code == 1
    assert "none (never migrated)" in result.output and "db upgrade" in result.output
    with app.app_context():
        db.engine.dispose()


def test_the_entry_point_stops_with_one_line_on_an_unusable_database_url():
    """``flask --app wsgi …`` (and a WSGI server importing wsgi.py) with a
    DATABASE_URL of no database the app knows: one line naming the
    problem, exit 1, no traceback, no password."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "DATABASE_URL": "bogus://user:s3cret@db.example/jobs", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "check-ready"],
        cwd=root, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "configuration error: DATABASE_URL must be a postgresql:// or sqlite:/// URL, not bogus://"]
    assert "Traceback" not in result.stdout + result.stderr and "s3cret" not in result.stdout + result.stderr


def test_api_answers_503_problem_with_retry_after_when_the_database_is_down(down_app):
    client = down_app.test_client()
    response = client.post(
        f"/api/v1/processing-jobs/{uuid.uuid4()}/validation-failure",
        json={"error_message": "Entity validation failed", "error_details": {"errors": []}},
        headers={"X-Request-ID": "req-down-1", "Authorization": f"Bearer {SOME_TOKEN}"},
    )
    assert response.status_code == 503
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    assert response.json["type"] == PROBLEM_TYPE_BASE + "service-unavailable"
    assert response.json["request_id"] == "req-down-1"
    assert response.headers["Retry-After"] == "5"
    _assert_no_leak(response.get_data(as_text=True))


def test_dashboard_shows_a_friendly_503_page_when_the_database_is_down(down_app):
    # Anonymous visitors are sent to sign in: the access rules need no database.
    anonymous = down_app.test_client().get("/jobs")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login")
    # A signed-in operator: loading the (server-side) session needs the database.
    signed_in = down_app.test_client()
    signed_in.set_cookie("session", "a-session-id-from-before-the-outage")
    response = signed_in.get("/jobs")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert response.headers["Retry-After"] == "5"
    page = response.get_data(as_text=True)
    assert "try again in a minute" in page
    _assert_no_leak(page)


def test_a_bug_in_sql_still_fails_loudly_in_testing(app):
    # Only "unavailable" database errors become 503s; a wrong statement is a
    # bug and must not hide behind one.
    @app.get("/broken-sql")
    @requires(Permission.VIEW_JOBS)
    def broken_sql() -> str:
        db.session.execute(sa.text("SELECT no_such_column FROM processing_jobs"))
        return "unreachable"

    with pytest.raises(sa.exc.DBAPIError):
        sign_in(app.test_client(), make_user(app, "sql-viewer", "viewer")).get("/broken-sql")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(("change", "said"), [
    ({"database": "no_such_database"}, "the database does not exist"),
    ({"username": "no_such_database"}, "the role does not exist"),
])
def test_a_refused_connection_is_named_at_once_not_waited_for(database_url, monkeypatch, change, said):
    """An SRE trial: a missing database read "database unreachable" after
    the whole start-up wait, like a network problem."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from app.operations import readiness

    monkeypatch.setattr(readiness.time, "sleep", lambda seconds: pytest.fail("waited for a refusal"))
    engine = sa.create_engine(make_url(database_url).set(**change), poolclass=NullPool)
    try:
        status = readiness.wait_until_ready(engine, 60, log_unreachable=False)
    finally:
        engine.dispose()
    assert not status.reachable
    assert status.describe() == f"database refused the connection: {said}"
    assert "no_such_database" not in status.describe()


def test_signing_in_while_the_database_is_down_says_so_instead_of_an_expired_form(down_app):
    """The sign-in page can be served while the database is down, but the
    session holding its form's token cannot be kept: the form then came
    back "expired", and "load the page again" looped as long as the outage
    (a trial). A refused form while the database is unreachable is its 503."""
    client = down_app.test_client()
    page = client.get("/login")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/login", data={"username": "someone", "password": "a long enough password",
                                           "csrf_token": token})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    text = response.get_data(as_text=True)
    assert "try again in a minute" in text and "form has expired" not in text
    _assert_no_leak(text)
