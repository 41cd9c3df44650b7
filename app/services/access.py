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
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import InvalidFieldsError, ServiceError, field_error
from app.extensions import begin_write_transaction, db, mark_read_only_transaction
from app.models.access import USERNAME_MAX_LENGTH, AuditEvent, Role, User, WorkerToken
from app.models.types import utcnow

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


def _commit() -> None:
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def create_user(username: str, password: str, role: Role | str) -> User:
    """Create an operator account.

    Args:
        username: 1 to 150 characters, no surrounding whitespace; compared
            exactly when signing in.
        password: at least :data:`MIN_PASSWORD_LENGTH` characters.
        role: one of :class:`Role`.

    Raises:
        InvalidFieldsError: bad user name, short password, unknown role.
        AccountExistsError: the user name is taken.
    """
    errors = []
    if not username or username != username.strip() or len(username) > USERNAME_MAX_LENGTH:
        errors.append(field_error("/username", f"must be 1 to {USERNAME_MAX_LENGTH} characters without surrounding spaces"))
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.append(field_error("/password", f"must be at least {MIN_PASSWORD_LENGTH} characters"))
    try:
        role = Role(role)
    except ValueError:
        errors.append(field_error("/role", "must be one of " + ", ".join(r.value for r in Role)))
    if errors:
        raise InvalidFieldsError("The account is not valid.", errors)
    begin_write_transaction()
    if db.session.scalar(sa.select(User.id).where(User.username == username)) is not None:
        db.session.rollback()
        raise AccountExistsError(f"A user named {username!r} already exists.")
    user = User(username=username, password_hash=generate_password_hash(password), role=Role(role).value)
    db.session.add(user)
    _commit()
    return user


def authenticate(username: str, password: str) -> User | None:
    """Return the active user with this exact name and password, else ``None``.

    Takes the same time whether or not the user exists.
    """
    user = db.session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    begin_write_transaction()
    user = db.session.get(User, user.id)
    user.last_login_at = utcnow()
    _commit()
    return user


def load_user(user_id: str) -> User | None:
    """The active user with this id (Flask-Login's ``user_loader``), else ``None``."""
    try:
        user = db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None
    return user if user is not None and user.active else None


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (what is stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_worker_token(name: str) -> tuple[str, WorkerToken]:
    """Create a worker token; returns ``(token, record)``. The token is shown once.

    Raises:
        InvalidFieldsError: empty or over-long name.
        AccountExistsError: a token with that name exists.
    """
    if not name or name != name.strip() or len(name) > 100:
        raise InvalidFieldsError("The token name is not valid.", [field_error("/name", "must be 1 to 100 characters")])
    begin_write_transaction()
    if db.session.scalar(sa.select(WorkerToken.id).where(WorkerToken.name == name)) is not None:
        db.session.rollback()
        raise AccountExistsError(f"A token named {name!r} already exists.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = WorkerToken(name=name, token_hash=hash_token(token), prefix=token[:10])
    db.session.add(record)
    _commit()
    return token, record


def verify_worker_token(token: str) -> WorkerToken | None:
    """The unrevoked token record matching ``token``, else ``None``."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    record = db.session.scalar(sa.select(WorkerToken).where(WorkerToken.token_hash == digest))
    mark_read_only_transaction()  # the request's write may continue this transaction
    if record is None or record.revoked_at is not None:
        return None
    # The lookup is by hash already; compare again in constant time anyway.
    return record if hmac.compare_digest(record.token_hash, digest) else None


#: ``last_used_at`` is written at most this often per token (seconds), so
#: busy workers do not turn every read into a write.
TOKEN_USE_RESOLUTION = 60


def note_token_use(record: WorkerToken) -> None:
    """Record that ``record`` was just used (for ``flask tokens list``).

    Written in its own short transaction, at most once a minute per token.
    """
    now = utcnow()
    last = record.last_used_at
    if last is not None and (now - last).total_seconds() < TOKEN_USE_RESOLUTION:
        return
    token_id = record.id
    begin_write_transaction()  # a write transaction of its own (SQLite: BEGIN IMMEDIATE)
    db.session.execute(sa.update(WorkerToken).where(WorkerToken.id == token_id).values(last_used_at=now))
    _commit()


def list_worker_tokens() -> list[WorkerToken]:
    """Every token, newest first (hashes are never shown)."""
    return list(db.session.scalars(sa.select(WorkerToken).order_by(WorkerToken.created_at.desc())))


def revoke_worker_token(name: str) -> WorkerToken:
    """Revoke a token by name; it stops working at once.

    Raises:
        UnknownAccountError: no token has that name.
    """
    begin_write_transaction()
    record = db.session.scalar(sa.select(WorkerToken).where(WorkerToken.name == name))
    if record is None:
        db.session.rollback()
        raise UnknownAccountError(f"No token is named {name!r}.")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    _commit()
    return record


def record_audit_event(
    actor: str, action: str, filter: Mapping[str, Any] | None = None, row_count: int | None = None
) -> AuditEvent:
    """Append one audit event in its own transaction.

    Args:
        actor: user name, or ``cli``.
        action: what happened, e.g. ``export.job_errors.csv``.
        filter: the query parameters that chose the rows (JSON object).
        row_count: how many rows were exported or changed.
    """
    event = AuditEvent(actor=actor, action=action, filter=dict(filter) if filter else None, row_count=row_count)
    begin_write_transaction()
    db.session.add(event)
    _commit()
    return event


def list_audit_events(limit: int = 200) -> list[AuditEvent]:
    """The newest audit events first."""
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.occurred_at.desc()).limit(limit)))
