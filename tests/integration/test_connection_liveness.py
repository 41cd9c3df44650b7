"""A pooled PostgreSQL connection the server ended is replaced at checkout,
without a ``SELECT 1`` ping on every request (app.extensions._check_psycopg_liveness)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from app.extensions import db
from tests.conftest import make_user, sign_in

POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _backend_pid(app) -> int:  # noqa: ANN001
    with app.app_context():
        pid = db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        db.session.remove()  # back to the pool
    return pid


def _statements_seen(app, run) -> list[str]:  # noqa: ANN001
    """The SQL ``run()`` sends through the app's engine, in order."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def note(conn, cursor, statement, *args) -> None:  # noqa: ANN001, ANN002
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    return seen


@POSTGRESQL_ONLY
def test_a_healthy_pooled_connection_is_reused_without_a_ping(app):
    client = sign_in(app.test_client(), make_user(app, "liveness-viewer", "viewer"))
    first = _backend_pid(app)
    statements = _statements_seen(app, lambda: client.get("/jobs"))
    assert client.get("/jobs").status_code == 200
    assert _backend_pid(app) == first  # the same server process: no reconnect per request
    assert not any(s.strip().lower() == "select 1" for s in statements), statements


@POSTGRESQL_ONLY
def test_a_connection_the_server_terminated_is_replaced_before_a_request_uses_it(app):
    client = sign_in(app.test_client(), make_user(app, "liveness-viewer", "viewer"))
    assert client.get("/jobs").status_code == 200
    doomed = _backend_pid(app)
    admin = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool)
    try:
        with admin.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": doomed}).scalar()
            deadline = time.monotonic() + 10
            while connection.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": doomed}
            ).scalar():
                assert time.monotonic() < deadline, "the terminated backend did not exit within 10 s"
                time.sleep(0.01)
                connection.rollback()  # a new snapshot of pg_stat_activity
    finally:
        admin.dispose()

    # Without the checkout check this request would meet the dead socket
    # (503 "database unavailable"); with it, the pool reconnects first.
    response = client.get("/jobs")
    assert response.status_code == 200
    assert _backend_pid(app) != doomed
