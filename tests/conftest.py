"""Shared fixtures, after the Flask tutorial's ``app``/``client``/``runner``.

Every test that uses ``app`` runs twice: on SQLite and on PostgreSQL (CTFd's
approach, but in one run). The PostgreSQL URL comes from ``TEST_DATABASE_URL``,
which ``make test`` (scripts/with-postgres) sets after starting a throwaway
cluster. Without it the PostgreSQL half fails instead of skipping: a skipped
storage test is not a passing one.

Isolation: both schemas are built once per run by the real migrations. Each
SQLite test gets its own copy of the migrated file; each PostgreSQL test
starts from empty tables (TRUNCATE afterwards). Truncation rather than a
rolled-back savepoint because the services commit, and the HTTP, worker and
race tests use several connections that must see each other's commits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import settings
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.models.access import User
from app.services import access, dashboard_stats, worker_tokens
from tests.live_server import redis_server, serve

BACKENDS = ("sqlite", "postgresql")

# A run writes nothing into the work tree: no example database, and
# Hypothesis's other files (its constants cache) go to a temporary folder
# removed when the session ends (pytest_sessionfinish below).
settings.register_profile("suite", database=None)
settings.load_profile("suite")
_HYPOTHESIS_DIR = tempfile.mkdtemp(prefix="clinical-hypothesis-")
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _HYPOTHESIS_DIR


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove Hypothesis's temporary folder."""
    shutil.rmtree(_HYPOTHESIS_DIR, ignore_errors=True)


def _migrate(url: str) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgresql_url() -> str:
    """``TEST_DATABASE_URL`` migrated to head (once per run)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.fail(
            "TEST_DATABASE_URL is not set: run the tests with `make test` "
            "(it starts a throwaway PostgreSQL) or scripts/with-postgres pytest"
        )
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        # A fresh schema every run: the database may be left from an earlier one.
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    _migrate(url)
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each backend in turn."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.sqlite3"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgresql_url")
    yield url
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        tables = [t for t in db.metadata.sorted_tables]
        names = ", ".join(t.name for t in tables)
        connection.execute(sa.text(f"TRUNCATE {names} CASCADE"))
    engine.dispose()


@pytest.fixture
def backend(database_url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``: the backend of this test run."""
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The app on a migrated, empty database (SQLite or PostgreSQL).

    Sign-in rate limits are off (tests sign in often; the limit has its own
    test); CSRF protection stays on.
    """
    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "RATELIMIT_ENABLED": False,
            "DASHBOARD_STATS_TTL": 0,  # tests change data between page loads
            # Bulk actions run in the request on both backends; the tests of
            # the background runner (test_bulk_queue.py) start a worker and
            # choose "procrastinate" themselves.
            "BULK_ACTION_RUNNER": "inline",
        }
    )
    yield application
    # The summary cache is per process and keyed by database URL, which the
    # PostgreSQL tests share: a test that turned the TTL on must not leave
    # figures for the next one.
    dashboard_stats.forget_summaries()
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def worker_token(app: Flask) -> str:
    """A valid worker bearer token (for the API)."""
    with app.app_context():
        token, _ = worker_tokens.create_worker_token("test-worker")
    return token


@pytest.fixture
def auth_headers(worker_token: str) -> dict[str, str]:
    """Headers that authenticate a worker: ``Authorization: Bearer <token>``."""
    return {"Authorization": f"Bearer {worker_token}"}


def make_user(app: Flask, username: str, role: str, password: str | None = None) -> int:
    """Create an account; without ``password`` it cannot sign in by form
    (tests then sign in with :func:`sign_in`, skipping the slow KDF)."""
    with app.app_context():
        if password is not None:
            return access.create_user(username, password, role).id
        user = User(username=username, password_hash="!unusable", role=role)
        db.session.add(user)
        db.session.commit()
        return user.id


def sign_in(client: FlaskClient, user_id: int) -> FlaskClient:
    """Put a Flask-Login session for ``user_id`` in ``client``'s (server-side) session."""
    with client.application.app_context():
        session_user_id = db.session.get(User, user_id).get_id()
        db.session.rollback()
    with client.session_transaction() as session:
        session["_user_id"] = session_user_id
        session["_fresh"] = True
    return client


@pytest.fixture
def anonymous_client(app: Flask) -> FlaskClient:
    """A client with no credentials at all."""
    return app.test_client()


@pytest.fixture
def client(app: Flask, worker_token: str) -> FlaskClient:
    """A client signed in as an admin (dashboard) that also sends a worker
    token (API): each side only looks at its own credential."""
    test_client = sign_in(app.test_client(), make_user(app, "test-admin", "admin"))
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {worker_token}"
    return test_client


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner for ``app``."""
    return app.test_cli_runner()


@pytest.fixture
def app_ctx(app: Flask) -> Iterator[Flask]:
    """``app`` with an application context pushed (for service tests)."""
    with app.app_context():
        yield app


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """``app`` served over real HTTP on a free loopback port (a thread per
    request, each with its own database connection); yields the root URL."""
    with serve(app) as base_url:
        yield base_url


@pytest.fixture
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a throwaway, empty ``redis-server`` (stopped afterwards)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build extra apps on this test's database with other settings."""
    made: list[Flask] = []

    def factory(**settings: Any) -> Flask:
        application = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, **settings})
        made.append(application)
        return application

    yield factory
    for application in made:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
