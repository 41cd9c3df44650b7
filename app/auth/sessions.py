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

import click
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
from app.web.session_merge import TOKEN_DICT_KEYS

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
#: ``g`` key holding the flashed messages the session was read with.
_LOADED_FLASHES = "server_session_flashes"
#: Flask's session key of the flashed messages (``flask.flash``).
FLASHES_KEY = "_flashes"
#: ``g`` key holding the :data:`TOKEN_DICT_KEYS` entries the session was read with.
_LOADED_TOKENS = "server_session_tokens"

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
        data = self.serializer.decode(row.data)
        g.setdefault(_LOADED_FLASHES, list(data.get(FLASHES_KEY) or ()) if isinstance(data, dict) else [])
        g.setdefault(_LOADED_TOKENS, {
            key: set(data.get(key) or ()) for key in TOKEN_DICT_KEYS if isinstance(data, dict)})
        return data

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
            # Every write, not only one that flashed: a write of the session
            # as it was read would drop a message flashed meanwhile.
            loaded_flashes = g.get(_LOADED_FLASHES, []) if loaded is not None and loaded[0] == store_id else []
            data = self._merge_concurrent_writes(session, store_id, loaded_flashes) or data
            db.session.execute(
                _upsert(db.session.get_bind().dialect.name, store_id, data, expires_at, _named_user(session))
            )

    def _merge_concurrent_writes(self, session: ServerSideSession, store_id: str, loaded: list[Any]) -> bytes | None:
        """This request's flashed messages merged into the stored row's, in
        the open write transaction (the row locked on PostgreSQL; SQLite's
        transaction holds the database): the stored messages, less those this
        request showed (read with the session and gone from it), plus those
        it added. Two forms sent at once (two tabs) each wrote its session
        whole, so one message was lost, or a message already shown came
        back. The entries of :data:`TOKEN_DICT_KEYS` are merged the same way
        (the row's, less those this request dropped, plus its own, the newest
        kept). Sets them in the session and returns its encoded data, or
        ``None`` when the session's data stands as it is (no row stored, or
        nothing flashed, shown or added by another request meanwhile)."""
        stored = db.session.execute(
            sa.select(ServerSession.data).where(ServerSession.session_key == store_id).with_for_update()
        ).scalar()
        if stored is None:
            return None
        stored_data = self.serializer.decode(stored)
        if not isinstance(stored_data, dict):
            return None
        stored_flashes = stored_data.get(FLASHES_KEY) or []
        mine = session.get(FLASHES_KEY) or []
        # What the row holds now, less what this request showed, plus what it added.
        merged = _without(stored_flashes, _without(loaded, mine)) + _without(mine, loaded)
        changed = _plain(merged) != _plain(mine)
        if merged:
            session[FLASHES_KEY] = merged
        else:
            session.pop(FLASHES_KEY, None)
        loaded_tokens = g.get(_LOADED_TOKENS) or {}
        for key, keep in TOKEN_DICT_KEYS.items():
            own = session.get(key) or {}
            dropped = loaded_tokens.get(key, set()) - set(own)
            # The row's entries another request added meanwhile, then this request's (newest last).
            entries = {token: entry for token, entry in (stored_data.get(key) or {}).items()
                       if token not in dropped and token not in own}
            entries.update(own)
            entries = dict(list(entries.items())[-keep:])
            if entries != own:
                session[key] = entries
                changed = True
        # Unchanged: no message flashed or shown meanwhile, nor an entry added: the data as encoded.
        return self.serializer.encode(session) if changed else None

    def _delete_expired_sessions(self) -> None:
        self.delete_expired_sessions()

    def _register_cleanup_app_command(self) -> None:
        # Flask-Session's own command has no help, prints nothing, and shows
        # a traceback with SQL when the database is down (an SRE trial).
        interface = self

        @self.app.cli.command("session_cleanup")
        def session_cleanup() -> None:
            """Delete expired server-side sessions (run it daily, e.g. from cron)."""
            with interface.app.app_context():
                try:
                    deleted = interface.delete_expired_sessions()
                except sa.exc.SQLAlchemyError as exc:
                    raise click.ClickException(
                        f"the database did not answer ({type(exc).__name__}); nothing was deleted"
                    ) from None
            click.echo(f"deleted {deleted} expired server_sessions")

    def delete_expired_sessions(self) -> int:
        """Delete every session past its ``expires_at``; return how many (own transaction)."""
        with write_transaction():
            result = db.session.execute(sa.delete(ServerSession).where(ServerSession.expires_at <= utcnow()))
        return result.rowcount


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (a flashed message is a tuple when
    flashed and a list once read back from msgpack), for comparing."""
    return [_plain(item) for item in value] if isinstance(value, (list, tuple)) else value


def _without(items: list[Any], taken: list[Any]) -> list[Any]:
    """``items`` less one occurrence of each of ``taken`` (a multiset difference, order kept)."""
    left = [_plain(item) for item in taken]
    kept = []
    for item in items:
        if _plain(item) in left:
            left.remove(_plain(item))
        else:
            kept.append(item)
    return kept


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
