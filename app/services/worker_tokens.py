"""Worker tokens: the bearer credentials workers send to ``/api/`` and ``/metrics``.

256 bits from ``secrets``, shown once, stored as SHA-256 (``hashlib``, a
fast hash is enough for a random token: a leaked table gives no usable
token) and compared with ``hmac.compare_digest``. Each create, rotate and
revoke by an actor is audited in its own transaction, before it commits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from app.errors import InvalidFieldsError
from app.extensions import db
from app.models.access import TOKEN_NAME_MAX_LENGTH, WorkerToken
from app.models.types import utcnow
from app.services import account_names
from app.services.access import AccountExistsError, UnknownAccountError, add_audit_event, shown_name
from app.services.driver_statements import DriverStatement
from app.unit_of_work import mark_read_only_transaction, write_transaction

#: Prefix of every worker token, so leaked tokens are easy to scan for.
TOKEN_PREFIX = "cit_"


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (what is stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_worker_token(name: str, *, actor: str | None = None) -> tuple[str, WorkerToken]:
    """Create a worker token; returns ``(token, record)``. The token is shown once.

    With an ``actor`` (``cli``), audited (``tokens.create``, never the token) in the same transaction.

    Raises:
        InvalidFieldsError: a name :func:`~app.services.account_names.name_errors` refuses.
        AccountExistsError: a token with that name exists, or one whose
            name differs only in case or compatibility form
            (:func:`~app.services.account_names.look_alike`).
    """
    name = account_names.name_form(name)  # stored in NFC, as user names are
    if errors := account_names.name_errors("/name", name, TOKEN_NAME_MAX_LENGTH):
        raise InvalidFieldsError("The token name is not valid.", errors)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        existing = db.session.scalar(sa.select(WorkerToken).where(WorkerToken.name == name))
        if existing is not None:
            state = " (revoked)" if existing.revoked_at is not None else ""
            raise AccountExistsError(f"A token named {name!r} already exists{state}; to give it a new secret: "
                                     f"flask --app wsgi tokens rotate {name}")
        # Every name read: a token per worker host, tens or hundreds, made rarely.
        if (twin := account_names.look_alike(name, db.session.scalars(sa.select(WorkerToken.name)))) is not None:
            raise AccountExistsError(
                f"A token named {shown_name(twin)} already exists, and {shown_name(name)} differs from it only in "
                "letter case or character form: the audit log could not tell them apart. Choose another name.")
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
        record = db.session.scalar(account_names.named_query(WorkerToken, WorkerToken.name, name).with_for_update())
        if record is None:
            raise UnknownAccountError(f"No token is named {shown_name(name)}.")
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
        record = db.session.scalar(account_names.named_query(WorkerToken, WorkerToken.name, name).with_for_update())
        if record is None:
            raise UnknownAccountError(f"No token is named {shown_name(name)}.")
        if record.revoked_at is not None:
            return record, False
        if actor is not None:
            add_audit_event(actor, "tokens.revoke", {"name": name})
        record.revoked_at = utcnow()
    return record, True
