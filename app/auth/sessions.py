"""Server-side browser sessions: revocable, with an idle time-out.

Flask's default session is a signed cookie: the server cannot end it, so a
cookie copied before sign-out would still open the dashboard. Here the
browser holds only a random session id (Flask-Session's
:class:`~flask_session.base.ServerSideSessionInterface`: id generation,
cookie handling, msgpack serialisation) and the session itself is a row of
``server_sessions`` (:class:`~app.models.access.ServerSession`), written
through the app's own transactions:

* signing out empties the session, which deletes its row: the old cookie
  then opens nothing;
* every request moves ``expires_at`` to now + ``SESSION_IDLE_MINUTES``
  (``PERMANENT_SESSION_LIFETIME``), so a session unused that long is gone
  (automatic log-off, as clinical systems expect). The row is rewritten only
  when the session's content changed or its ``expires_at`` is more than
  :func:`refresh_interval` behind (a minute at most): a session may so end up
  to that much *earlier* than the full idle time, never later, and a page
  view does not cost a write;
* the table holds SHA-256 digests of the ids, never the ids themselves;
* disabling a user or changing their password ends all their sessions
  through the user id kept in each (see ``User.session_generation``).

Flask-Session's own SQLAlchemy backend is not used: it creates its table at
start-up (outside the migrations), compares naive local timestamps, and
commits in a session it shares with the request without the app's write
transaction (SQLite ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, Request, g
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from werkzeug.wrappers import Response

from app.web.errors import is_database_unavailable
from app.extensions import db
from app.models.access import ServerSession, User
from app.models.types import utcnow
from app.unit_of_work import write_transaction

log = logging.getLogger(__name__)

#: Random bytes in a session id (``secrets.token_urlsafe``): 256 bits.
SESSION_ID_BYTES = 32

#: Paths whose requests never use the browser session: the worker API and
#: the metrics Prometheus scrapes (both take bearer tokens only).
COOKIELESS_PATH_PREFIXES = ("/api/", "/metrics")

#: ``g`` key holding a database error met while reading the session, raised
#: again by :func:`raise_session_store_error` so the usual 503 page answers.
_STORE_ERROR = "session_store_error"
#: ``g`` key holding the row the request's session was read from: what
#: :meth:`DatabaseSessionInterface._upsert_session` compares against.
_SESSION_USER = "session_user"
_LOADED_ROW = "server_session_row"

#: Longest the stored ``expires_at`` may lag behind "now + idle time-out"
#: before an unchanged session's row is rewritten.
MAX_REFRESH_INTERVAL = timedelta(minutes=1)


#: The statement every signed-in request starts with, built once: building
#: it per request (the join, the ORM entity, its cache key) cost about a
#: third of the session load's CPU (bench/request_overhead.py, docs/benchmarks.md).
_SESSION_WITH_USER = (
    sa.select(ServerSession.data, ServerSession.expires_at, User)
    .outerjoin(User, User.id == ServerSession.user_id)
    .where(ServerSession.session_key == sa.bindparam("store_id"))
)


def refresh_interval(idle_timeout: timedelta) -> timedelta:
    """How far an unchanged session's expiry may lag before its row is rewritten.

    A minute, or a tenth of ``idle_timeout`` if that is shorter: the idle
    sign-out then comes at most that much early (never late), and a user
    clicking through pages costs one write a minute instead of one a page.
    """
    return min(MAX_REFRESH_INTERVAL, idle_timeout / 10)


class DatabaseSessionInterface(ServerSideSessionInterface):
    """Flask-Session interface storing sessions in ``server_sessions``.

    Sessions are permanent: the cookie and the row both expire
    ``PERMANENT_SESSION_LIFETIME`` after the last request
    (``SESSION_REFRESH_EACH_REQUEST``). Expired rows are never read back;
    :meth:`delete_expired_sessions` (``flask session_cleanup``, and each
    sign-in) removes them.
    """

    session_class = ServerSideSession
    # No TTL in SQL: the base class then registers `flask session_cleanup`.
    ttl = False

    def __init__(self, app: Flask) -> None:
        super().__init__(
            app, key_prefix="", use_signer=False, permanent=True, sid_length=SESSION_ID_BYTES,
            serialization_format="msgpack", cleanup_n_requests=None,
        )

    def _get_store_id(self, sid: str) -> str:
        # A leaked table must not hold working cookies: store a digest.
        return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        """Load the session of the request's cookie (a new, empty one if none).

        A database that cannot answer must not turn into Flask's bare 500:
        the error is kept and raised again from ``before_request``, where the
        app's handlers answer 503 with ``Retry-After``.
        """
        if request.path.startswith(COOKIELESS_PATH_PREFIXES):
            # Worker programs authenticate with bearer tokens; a cookie they
            # happen to send is not looked up (nor the session written back).
            session = self.session_class(sid=self._generate_sid(self.sid_length), permanent=True)
            session.store_unavailable = True  # type: ignore[attr-defined]
            return session
        try:
            return super().open_session(app, request)
        except sa.exc.SQLAlchemyError as error:
            db.session.rollback()
            if not is_database_unavailable(error):
                raise
            g.setdefault(_STORE_ERROR, error)
            session = self.session_class(sid=self._generate_sid(self.sid_length), permanent=True)
            session.store_unavailable = True  # type: ignore[attr-defined]
            return session

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        """Write the session (or delete it when emptied), unless its store
        failed this request or the path takes no session."""
        if getattr(session, "store_unavailable", False):
            return
        try:
            super().save_session(app, session, response)
        except sa.exc.SQLAlchemyError as error:
            db.session.rollback()
            if not is_database_unavailable(error):
                raise
            # The answer is ready; the session's expiry is just not extended.
            log.warning("session not saved: database unavailable (%s)", type(error).__name__)

    def _retrieve_session_data(self, store_id: str) -> dict[str, Any] | None:
        # The signed-in user comes in the same statement (the row's user_id
        # hint): loaded into the session's identity map, Flask-Login's
        # loader (app.services.access.load_user, db.session.get) then finds
        # it there instead of querying, one round trip fewer per request.
        row = db.session.execute(_SESSION_WITH_USER, {"store_id": store_id}).first()
        if row is None or row.expires_at <= utcnow():
            return None
        g.setdefault(_LOADED_ROW, (store_id, row.data, row.expires_at))
        # The identity map holds objects weakly: keep the user for the request.
        g.setdefault(_SESSION_USER, row.User)
        return self.serializer.decode(row.data)

    def _delete_session(self, store_id: str) -> None:
        with write_transaction():
            db.session.execute(sa.delete(ServerSession).where(ServerSession.session_key == store_id))

    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession, store_id: str) -> None:
        data = self.serializer.encode(session)
        expires_at = utcnow() + session_lifetime
        loaded = g.get(_LOADED_ROW)
        if (
            loaded is not None
            and loaded[0] == store_id
            and loaded[1] == data  # the same content, byte for byte
            and expires_at - loaded[2] < refresh_interval(session_lifetime)
        ):
            return  # unchanged, and its expiry moved less than a minute ago
        with write_transaction():
            db.session.execute(
                _upsert(db.session.get_bind().dialect.name, store_id, data, expires_at, _named_user(session))
            )

    def _delete_expired_sessions(self) -> None:
        self.delete_expired_sessions()

    def delete_expired_sessions(self) -> int:
        """Delete every session past its ``expires_at``; return how many (own transaction)."""
        with write_transaction():
            result = db.session.execute(sa.delete(ServerSession).where(ServerSession.expires_at <= utcnow()))
        return result.rowcount


def _upsert(dialect: str, store_id: str, data: bytes, expires_at: datetime, user_id: int | None) -> sa.Insert:
    # INSERT ... ON CONFLICT DO UPDATE (both databases have it): two first
    # requests of one new session must not collide on the unique key.
    insert = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}[dialect]
    values = {"data": data, "expires_at": expires_at, "user_id": user_id}
    statement = insert(ServerSession).values(session_key=store_id, **values)
    return statement.on_conflict_do_update(index_elements=[ServerSession.session_key], set_=values)


def _named_user(session: ServerSideSession) -> int | None:
    """The user id in the session's Flask-Login ``_user_id``
    (``"<id>.<generation>"``, :meth:`User.get_id`), or ``None``."""
    user_id, dot, _ = str(session.get("_user_id") or "").partition(".")
    return int(user_id) if dot and user_id.isdecimal() and len(user_id) < 12 else None


def raise_session_store_error() -> None:
    """``before_request``: raise the database error met while opening the session (503)."""
    error = g.pop(_STORE_ERROR, None)
    if error is not None:
        raise error


def init_sessions(app: Flask) -> None:
    """Install the server-side sessions; idle time-out ``SESSION_IDLE_MINUTES``."""
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    app.config["SESSION_REFRESH_EACH_REQUEST"] = True
    app.session_interface = DatabaseSessionInterface(app)
    # First of all before_request hooks: nothing may read the session's user
    # before a store failure has been turned into its 503.
    app.before_request_funcs.setdefault(None, []).insert(0, raise_session_store_error)
