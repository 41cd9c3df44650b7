"""Idempotent retries of worker requests (``Idempotency-Key``).

Follows the IETF draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header): the first successful answer to a
keyed request is stored in the same transaction as the change it reports; a
retry with the same key and the same request gets that answer again and
changes nothing; the same key with a different request is refused (422).
Refused requests are not stored, so retrying them re-evaluates them. Keys
belong to the worker token that sent them: two tokens never share one.

A duplicate that arrives while the first request is still running waits for
it and gets its answer: the first request claims the key by inserting its
record before it changes anything, in the same write transaction, and the
duplicate's insert waits on the primary key until that transaction ends
(PostgreSQL), or the duplicate cannot begin its write transaction until then
(SQLite's ``BEGIN IMMEDIATE``: one writer at a time). If the first one rolls
back, the duplicate goes ahead as the first. If the wait reaches
PostgreSQL's ``lock_timeout``, the duplicate is refused with 409
``idempotency-key-in-progress`` (the draft's answer to a concurrent retry),
to be retried after ``Retry-After``; SQLite's own wait (``busy_timeout``)
ends in 503, like any other write then.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.errors import ServiceError, header_error
from app.extensions import db
from app.models import IdempotencyRecord
from app.models.idempotency_record import IDEMPOTENCY_KEY_MAX_LENGTH
from app.services.json_values import canonical_json
from app.unit_of_work import require_write_transaction

_RECORDS = IdempotencyRecord.__table__


class IdempotencyKeyReusedError(ServiceError):
    """The key was already used for a different request (HTTP 422)."""

    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used for a different request; use a new key.",
            [header_error("Idempotency-Key", "was first sent with a different method, path or body")],
        )


class IdempotencyKeyInProgressError(ServiceError):
    """A request with this key is still running (HTTP 409, with ``Retry-After``)."""

    status = 409
    title = "Idempotency key in progress"
    slug = "idempotency-key-in-progress"
    retry_later = True

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed; "
            "send it again, with the same key, after the number of seconds in Retry-After."
        )


class InvalidIdempotencyKeyError(ServiceError):
    """The ``Idempotency-Key`` header is malformed (HTTP 400)."""

    status = 400
    title = "Invalid Idempotency-Key"
    slug = "invalid-idempotency-key"


@dataclass(frozen=True)
class StoredAnswer:
    """An answer kept for a key: HTTP status and JSON body."""

    status: int
    body: Any


def check_idempotency_key(key: str) -> None:
    """Check an ``Idempotency-Key`` header's value (the key alone, before
    any body is read, so a bad key is named first).

    Raises:
        InvalidIdempotencyKeyError: empty, longer than
            :data:`IDEMPOTENCY_KEY_MAX_LENGTH`, not visible ASCII, or
            holding a comma (two headers joined).
    """
    # No comma: HTTP joins repeated headers with one (RFC 9110, 5.3), so
    # two keys sent at once would silently become a third.
    if not (1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH) or not all(0x21 <= ord(c) <= 0x7E and c != "," for c in key):
        rule = f"must be one header of 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters other than ','"
        raise InvalidIdempotencyKeyError(f"Idempotency-Key {rule}.", [header_error("Idempotency-Key", rule)])


@dataclass(frozen=True)
class IdempotencyClaim:
    """One keyed request: who sent it, its key and the fingerprint of what was asked.

    Attributes:
        token_id: the worker token that sent the request (keys are its own).
        key: the header value (1 to 255 visible ASCII characters, no comma).
        method: HTTP method.
        path: request path.
        fingerprint: SHA-256 hex of method, path and the canonical JSON body.
    """

    token_id: uuid.UUID
    key: str
    method: str
    path: str
    fingerprint: str

    @classmethod
    def for_request(
        cls, token_id: uuid.UUID, key: str, method: str, path: str, body: Any
    ) -> IdempotencyClaim:
        """Build a claim; ``body`` is the parsed JSON body (``None`` when empty).

        Raises:
            InvalidIdempotencyKeyError: empty, too long, not visible ASCII,
                or holding a comma (two headers joined).
        """
        check_idempotency_key(key)
        digest = hashlib.sha256(
            "\n".join([method, path, canonical_json(body)]).encode("utf-8", "surrogatepass")
        ).hexdigest()
        return cls(token_id=token_id, key=key, method=method, path=path, fingerprint=digest)

    def claim(self) -> StoredAnswer | None:
        """Claim the key in the open write transaction, or return its stored answer.

        Called first inside the request's ``with write_transaction():``
        block, which then holds, in this order: the claim, the change, and
        :meth:`stage` with the answer; they commit together, and a rollback
        frees the key. Inserts the record, still without its answer, unless
        one exists (``INSERT ... ON CONFLICT DO NOTHING``). Claimed: returns
        ``None``. Not claimed: returns the answer committed by an earlier
        request (on PostgreSQL the insert has first waited for a concurrent
        claim to commit or roll back); nothing was written, so the caller
        ends the transaction at once (on SQLite it holds the database's one
        write lock).

        Raises:
            IdempotencyKeyReusedError: the key was used for another request.
            IdempotencyKeyInProgressError: the request holding the key did
                not finish within PostgreSQL's ``lock_timeout``.
            RuntimeError: called outside a write transaction.
        """
        require_write_transaction()
        try:
            if self._insert_unless_present():
                return None
            record = db.session.execute(
                sa.select(_RECORDS.c.fingerprint, _RECORDS.c.response_status, _RECORDS.c.response_body).where(
                    _RECORDS.c.token_id == self.token_id, _RECORDS.c.key == self.key
                )
            ).one_or_none()
        except sa.exc.OperationalError as exc:
            if isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                raise IdempotencyKeyInProgressError() from None
            raise
        if record is None or record.response_status is None:
            # Purged between the insert and the read, or a committed claim
            # without an answer (a caller that did not stage one): never
            # someone else's answer, and never a second run of the change.
            raise IdempotencyKeyInProgressError()
        if record.fingerprint != self.fingerprint:
            raise IdempotencyKeyReusedError()
        return StoredAnswer(status=record.response_status, body=record.response_body)

    def stage(self, status: int, body: Any) -> None:
        """Write the answer into the claimed record, in the same write transaction."""
        db.session.execute(
            sa.update(_RECORDS)
            .where(_RECORDS.c.token_id == self.token_id, _RECORDS.c.key == self.key)
            .values(response_status=status, response_body=body)
        )

    def _insert_unless_present(self) -> bool:
        dialect = db.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(_RECORDS).values(
            token_id=self.token_id,
            key=self.key,
            fingerprint=self.fingerprint,
            method=self.method,
            path=self.path[:512],
        ).on_conflict_do_nothing(index_elements=[_RECORDS.c.token_id, _RECORDS.c.key])
        # RETURNING rather than rowcount, which psycopg may leave at -1 here.
        return db.session.execute(statement.returning(_RECORDS.c.key)).first() is not None

