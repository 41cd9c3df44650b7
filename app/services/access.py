"""Accounts, worker tokens and the audit log.

Passwords: Werkzeug's ``generate_password_hash`` (scrypt, a standard
memory-hard KDF) and ``check_password_hash``. Worker tokens: 256 bits from
``secrets``, shown once, stored as SHA-256 (``hashlib``) and compared with
``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import InvalidFieldsError, ServiceError, field_error
from app.extensions import db
from app.models.access import USERNAME_MAX_LENGTH, AuditEvent, Role, User, WorkerToken
from app.models.types import utcnow
from app.services.driver_statements import DriverStatement
from app.services.json_values import clean_json_value, clean_text
from app.unit_of_work import mark_read_only_transaction, require_write_transaction, write_transaction

#: Unicode general categories refused in user names: Cc (controls) and Cf
#: (format characters: bidi overrides and isolates, zero-width joiners).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})

#: Shortest password accepted, in characters (NIST SP 800-63B: at least 8).
MIN_PASSWORD_LENGTH = 12
#: Prefix of every worker token, so leaked tokens are easy to scan for.
TOKEN_PREFIX = "cit_"

# Checked against when the user does not exist, so a wrong user name costs
# the same time as a wrong password (no user enumeration by timing).
_DUMMY_HASH = generate_password_hash("not-a-real-password-" + secrets.token_hex(8))


class AccountExistsError(ServiceError):
    """A user or token with that name already exists (HTTP 409)."""

    status = 409
    title = "Already exists"
    slug = "already-exists"


class UnknownAccountError(ServiceError):
    """No such user or token (HTTP 404)."""

    status = 404
    title = "Not found"
    slug = "not-found"


def create_user(username: str, password: str, role: Role | str, *, actor: str | None = None) -> User:
    """Create an operator account.

    Args:
        username: 1 to 150 characters, no surrounding whitespace; compared
            exactly when signing in.
        password: at least :data:`MIN_PASSWORD_LENGTH` characters.
        role: one of :class:`Role`.
        actor: who creates it (``cli`` from ``flask users create``): the
            ``users.create`` audit row is written in the same transaction.
            ``None`` (fixtures, the demo seed) writes none.

    Raises:
        InvalidFieldsError: bad user name, short password, unknown role.
        AccountExistsError: the user name is taken.
    """
    errors = []
    if not username or username != username.strip() or len(username) > USERNAME_MAX_LENGTH:
        errors.append(field_error("/username", f"must be 1 to {USERNAME_MAX_LENGTH} characters without surrounding spaces"))
    elif any(unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in username):
        # A name is shown in the audit log and typed at sign-in: a control
        # character (ESC) or a bidi override (U+202E) would make one name
        # look like another.
        errors.append(field_error("/username", "must not hold control or format characters (such as U+202E)"))
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.append(field_error("/password", f"must be at least {MIN_PASSWORD_LENGTH} characters"))
    try:
        role = Role(role)
    except ValueError:
        errors.append(field_error("/role", "must be one of " + ", ".join(r.value for r in Role)))
    if errors:
        raise InvalidFieldsError("The account is not valid.", errors)
    password_hash = generate_password_hash(password)
    with write_transaction():
        if db.session.scalar(sa.select(User.id).where(User.username == username)) is not None:
            raise AccountExistsError(f"A user named {username!r} already exists.")
        user = User(username=username, password_hash=password_hash, role=Role(role).value)
        db.session.add(user)
        if actor is not None:
            add_audit_event(actor, "users.create", {"username": username, "role": Role(role).value})
    return user


def authenticate(username: str, password: str, *, address: str | None = None) -> User | None:
    """Return the active user with this exact name and password, else ``None``.

    Takes the same time whether or not the user exists. Every attempt is a
    security event: an ``auth.sign_in`` audit row (the user name as typed,
    the client ``address``, ``outcome`` ``success`` or ``failure``; never the
    password). A success is audited in the transaction that records
    ``last_login_at``, before the caller starts the session: if the audit
    cannot be written, the exception stops the sign-in.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the audit row could not be written.
    """
    user = db.session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
    elif not check_password_hash(user.password_hash, password) or not user.active:
        user = None
    facts = {"outcome": "success" if user is not None else "failure", "address": address}
    with write_transaction():
        if user is not None:
            user = db.session.get(User, user.id)
            user.last_login_at = utcnow()
        add_audit_event(username, "auth.sign_in", facts)
    return user


def list_users() -> list[User]:
    """Every operator account, by user name (hashes are never shown)."""
    return list(db.session.scalars(sa.select(User).order_by(User.username)))


def _change_user(
    username: str, actor: str, action: str, change: Callable[[User], None],
    done: Callable[[User], bool] = lambda user: False,
) -> tuple[User, bool]:
    """Apply ``change`` to the user named ``username`` and end all their
    sessions (``session_generation`` + 1), audited in the same transaction.
    Returns ``(user, changed)``: when ``done(user)`` says (under the row
    lock) that the change is already made, nothing is written or audited
    and ``changed`` is False."""
    with write_transaction():
        user = db.session.scalar(sa.select(User).where(User.username == username).with_for_update())
        if user is None:
            raise UnknownAccountError(f"No user is named {_shown(username)}.")
        if done(user):
            # Enabling an active account must not end its sessions, and a
            # second disable is no new event in the audit log.
            return user, False
        change(user)
        user.session_generation += 1
        add_audit_event(actor, action, {"username": username})
    return user, True


def set_user_active(username: str, active: bool, *, actor: str = "cli") -> tuple[User, bool]:
    """Enable or disable an account; either way every session of it ends.

    A disabled user cannot sign in, and pages opened with an earlier session
    ask for a sign-in at once. Audited (``users.disable`` / ``users.enable``).
    Returns ``(user, changed)``: an account already in that state is left
    as it is (its sessions too) and nothing is audited.

    Raises:
        UnknownAccountError: no user has that name.
    """

    def change(user: User) -> None:
        user.active = active

    return _change_user(
        username, actor, "users.enable" if active else "users.disable", change, lambda user: user.active == active
    )


def set_user_password(username: str, password: str, *, actor: str = "cli") -> User:
    """Set a new password (scrypt hash) and end every session of the account.

    Audited (``users.set_password``; never the password).

    Raises:
        InvalidFieldsError: shorter than :data:`MIN_PASSWORD_LENGTH`.
        UnknownAccountError: no user has that name.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidFieldsError(
            "The password is not valid.",
            [field_error("/password", f"must be at least {MIN_PASSWORD_LENGTH} characters")],
        )
    password_hash = generate_password_hash(password)

    def change(user: User) -> None:
        user.password_hash = password_hash

    return _change_user(username, actor, "users.set_password", change)[0]


def load_user(session_user_id: str) -> User | None:
    """The active user a session names (Flask-Login's ``user_loader``), else ``None``.

    Args:
        session_user_id: ``"<id>.<session_generation>"`` (:meth:`User.get_id`).
            A session kept from before the user's generation was raised
            (disabled, password changed) names an old one and loads nobody.
    """
    user_id, dot, generation = session_user_id.partition(".")
    if not dot or not user_id.isdecimal() or not generation.isdecimal() or len(session_user_id) > 40:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_generation != int(generation):
        return None
    return user


def _shown(name: str) -> str:
    # A name as an error repeats it: quoted, and cut at a stored name's
    # length (a re-check typed 5,000 characters and got them all back).
    return repr(name[:100]) + ("…" if len(name) > 100 else "")


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (what is stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_worker_token(name: str, *, actor: str | None = None) -> tuple[str, WorkerToken]:
    """Create a worker token; returns ``(token, record)``. The token is shown once.

    With an ``actor`` (``cli``), audited (``tokens.create``, never the token) in the same transaction.

    Raises:
        InvalidFieldsError: empty or over-long name.
        AccountExistsError: a token with that name exists.
    """
    if not name or name != name.strip() or len(name) > 100:
        raise InvalidFieldsError("The token name is not valid.", [field_error("/name", "must be 1 to 100 characters")])
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        existing = db.session.scalar(sa.select(WorkerToken).where(WorkerToken.name == name))
        if existing is not None:
            state = " (revoked)" if existing.revoked_at is not None else ""
            raise AccountExistsError(f"A token named {name!r} already exists{state}; to give it a new secret: "
                                     f"flask --app wsgi tokens rotate {name}")
        record = WorkerToken(name=name, token_hash=hash_token(token), prefix=token[:10])
        db.session.add(record)
        if actor is not None:
            add_audit_event(actor, "tokens.create", {"name": name, "prefix": record.prefix})
    return token, record


@dataclass(frozen=True)
class VerifiedToken:
    """A worker token that passed :func:`verify_worker_token`: plain values, not
    the ORM record (nothing to expire at commit, no identity-map work per request)."""

    id: uuid.UUID  #: scopes idempotency keys
    name: str  #: the audit log's actor
    last_used_at: datetime | None  #: UTC; when its use was last noted


_TOKENS = WorkerToken.__table__
#: The lookup of every API request, built once: Core, the few columns needed,
#: straight to the driver on PostgreSQL (:mod:`app.services.driver_statements`).
_TOKEN_BY_HASH = DriverStatement(sa.select(
    _TOKENS.c.id, _TOKENS.c.name, _TOKENS.c.token_hash, _TOKENS.c.revoked_at, _TOKENS.c.last_used_at
).where(_TOKENS.c.token_hash == sa.bindparam("digest")))


def verify_worker_token(token: str) -> VerifiedToken | None:
    """The unrevoked token matching ``token``, else ``None``."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    # On the session's connection (same transaction, which the request's
    # write may continue), not through Session.execute: a Core SELECT of
    # plain columns needs none of the ORM's per-statement work.
    row = _TOKEN_BY_HASH.first(db.session.connection(), {"digest": digest})
    mark_read_only_transaction()  # the request's write may continue this transaction
    if row is None or row["revoked_at"] is not None:
        return None
    # The lookup is by hash already; compare again in constant time anyway.
    if not hmac.compare_digest(row["token_hash"], digest):
        return None
    return VerifiedToken(id=row["id"], name=row["name"], last_used_at=row["last_used_at"])


#: ``last_used_at`` is written at most this often per token (seconds), so
#: busy workers do not turn every read into a write.
TOKEN_USE_RESOLUTION = 60


def note_token_use(record: VerifiedToken) -> None:
    """Record that ``record`` was just used (for ``flask tokens list``).

    Written in its own short transaction, at most once a minute per token.
    """
    now = utcnow()
    last = record.last_used_at
    if last is not None and (now - last).total_seconds() < TOKEN_USE_RESOLUTION:
        return
    token_id = record.id
    with write_transaction():
        db.session.execute(sa.update(WorkerToken).where(WorkerToken.id == token_id).values(last_used_at=now))


def list_worker_tokens() -> list[WorkerToken]:
    """Every token, newest first (hashes are never shown)."""
    return list(db.session.scalars(sa.select(WorkerToken).order_by(WorkerToken.created_at.desc())))


def rotate_worker_token(name: str, *, actor: str | None = None) -> tuple[str, WorkerToken]:
    """Give the token called ``name`` a new secret; returns ``(token, record)``.
    The token is shown once.

    The old secret stops working at once (its hash is replaced); the name
    and the id stay, so the audit log's actor and the scope of idempotency
    keys carry over. A revoked token is active again, with the new secret:
    its name is a host's, and a rotation keeps it (a trial could not reuse a
    revoked name). With an ``actor`` (``cli``), audited (``tokens.rotate``:
    the name, the old and new prefixes, whether it was revoked) in the same
    transaction, before the change commits.

    Raises:
        UnknownAccountError: no token has that name.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        record = db.session.scalar(sa.select(WorkerToken).where(WorkerToken.name == name).with_for_update())
        if record is None:
            raise UnknownAccountError(f"No token is named {_shown(name)}.")
        if actor is not None:
            add_audit_event(actor, "tokens.rotate", {"name": name, "old_prefix": record.prefix, "prefix": token[:10],
                                                     "was_revoked": record.revoked_at is not None})
        record.token_hash = hash_token(token)
        record.prefix = token[:10]
        record.revoked_at = None
    return token, record


def revoke_worker_token(name: str, *, actor: str | None = None) -> tuple[WorkerToken, bool]:
    """Revoke a token by name; it stops working at once.

    With an ``actor`` (``cli``), audited (``tokens.revoke``) in the same
    transaction. Returns ``(record, revoked_now)``: a token revoked before
    keeps its ``revoked_at`` and is not audited again.

    Raises:
        UnknownAccountError: no token has that name.
    """
    with write_transaction():
        record = db.session.scalar(sa.select(WorkerToken).where(WorkerToken.name == name).with_for_update())
        if record is None:
            raise UnknownAccountError(f"No token is named {_shown(name)}.")
        if record.revoked_at is not None:
            return record, False
        if actor is not None:
            add_audit_event(actor, "tokens.revoke", {"name": name})
        record.revoked_at = utcnow()
    return record, True


#: Deepest nesting stored in an audit event's ``filter`` (query pairs and id lists need 3).
AUDIT_FILTER_MAX_DEPTH = 8


def _audit_event(
    actor: str, action: str, filter: Mapping[str, Any] | None, row_count: int | None
) -> AuditEvent:
    # The storage rule of app.services.json_values applies to audit text as to
    # everything else: a NUL in a filter must not make the audit insert fail.
    return AuditEvent(
        id=uuid.uuid4(),  # known before the commit, which expires the object
        actor=clean_text(actor)[:200],
        action=action,
        filter=clean_json_value(dict(filter), max_depth=AUDIT_FILTER_MAX_DEPTH) if filter else None,
        row_count=row_count,
    )


def record_audit_event(
    actor: str, action: str, filter: Mapping[str, Any] | None = None, row_count: int | None = None
) -> uuid.UUID:
    """Append one audit event in its own committed transaction; return its id.

    Called *before* what it records takes effect (an export's first byte, a
    sign-in, a bulk action's first change): if it cannot be written, the
    exception stops the action.

    Args:
        actor: user name (as typed, for sign-ins), worker token name, or ``cli``;
            cut to 200 characters.
        action: what happened, e.g. ``export.job_errors.csv``.
        filter: the query parameters that chose the rows, or other facts of
            the event (JSON object; NUL and lone surrogates become U+FFFD).
        row_count: how many rows were exported or changed; ``None`` while
            unknown (an export still streaming), see :func:`set_audit_row_count`
            and :func:`count_in_audit_event`.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the row could not be written.
    """
    event = _audit_event(actor, action, filter, row_count)
    event_id = event.id  # read before the commit expires the object
    with write_transaction():
        db.session.add(event)
    return event_id


def add_audit_event(
    actor: str, action: str, filter: Mapping[str, Any] | None = None, row_count: int | None = None
) -> AuditEvent:
    """Add one audit event to the open write transaction, without committing.

    For a change that commits together with its audit row (a single-job
    action): called inside that change's ``with write_transaction():``
    block. Arguments as :func:`record_audit_event`.

    Raises:
        RuntimeError: called outside a write transaction.
    """
    require_write_transaction()
    event = _audit_event(actor, action, filter, row_count)
    db.session.add(event)
    db.session.flush()
    return event


def count_in_audit_event(event_id: uuid.UUID) -> None:
    """Add one to an audit event's ``row_count``, in the open transaction.

    A bulk action calls it inside each job's own transaction, so every job
    changed is counted in the audit row exactly when (and only if) its change
    commits.

    Raises:
        RuntimeError: called outside a write transaction.
    """
    require_write_transaction()
    db.session.execute(
        sa.update(AuditEvent)
        .where(AuditEvent.id == event_id)
        .values(row_count=sa.func.coalesce(AuditEvent.row_count, 0) + 1)
    )


def note_in_audit_event(event_id: uuid.UUID, facts: dict[str, Any]) -> None:
    """Add ``facts`` to an audit event's ``filter`` once its action has
    ended (own transaction): what it turned out to do, beside what was
    asked (e.g. a bulk action's ``skipped_job_ids``). The row was committed
    before the action took effect; this adds to it, never replaces it."""
    with write_transaction():
        event = db.session.get(AuditEvent, event_id, with_for_update=True)
        if event is not None:
            event.filter = {**(event.filter if isinstance(event.filter, dict) else {}), **facts}


def set_audit_row_count(event_id: uuid.UUID, row_count: int) -> None:
    """Record how many rows an audited export sent, once it has ended (own transaction)."""
    with write_transaction():
        db.session.execute(sa.update(AuditEvent).where(AuditEvent.id == event_id).values(row_count=row_count))

