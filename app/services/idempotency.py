"""Idempotent retries of worker requests (``Idempotency-Key``).

Follows the IETF draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header): the first successful answer to a
keyed request is stored in the same transaction as the change it reports; a
retry with the same key and the same request gets that answer again and
changes nothing; the same key with a different request is refused (422).
Refused requests are not stored, so retrying them re-evaluates them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.errors import ServiceError, field_error
from app.extensions import db, mark_read_only_transaction
from app.models import IdempotencyRecord
from app.models.idempotency_record import IDEMPOTENCY_KEY_MAX_LENGTH
from app.services.json_values import canonical_json


class IdempotencyKeyReusedError(ServiceError):
    """The key was already used for a different request (HTTP 422)."""

    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used for a different request; use a new key.",
            [field_error("", "differs from the request first sent with this Idempotency-Key")],
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


@dataclass(frozen=True)
class IdempotencyClaim:
    """One keyed request: its key and the fingerprint of what was asked.

    Attributes:
        key: the header value (1 to 255 visible ASCII characters).
        method: HTTP method.
        path: request path.
        fingerprint: SHA-256 hex of method, path and the canonical JSON body.
    """

    key: str
    method: str
    path: str
    fingerprint: str

    @classmethod
    def for_request(cls, key: str, method: str, path: str, body: Any) -> IdempotencyClaim:
        """Build a claim; ``body`` is the parsed JSON body (``None`` when empty).

        Raises:
            InvalidIdempotencyKeyError: empty, too long, or not visible ASCII.
        """
        if not (1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH) or not all(0x21 <= ord(c) <= 0x7E for c in key):
            raise InvalidIdempotencyKeyError(
                f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters.",
                [field_error("", "Idempotency-Key header is malformed")],
            )
        digest = hashlib.sha256(
            "\n".join([method, path, canonical_json(body)]).encode("utf-8", "surrogatepass")
        ).hexdigest()
        return cls(key=key, method=method, path=path, fingerprint=digest)

    def find(self) -> StoredAnswer | None:
        """The stored answer for this key, or ``None``.

        Raises:
            IdempotencyKeyReusedError: the key was used for another request.
        """
        record = db.session.get(IdempotencyRecord, self.key)
        # Only read: the write that may follow can continue this transaction
        # (PostgreSQL); otherwise it ends with the request.
        mark_read_only_transaction()
        if record is None:
            return None
        if record.fingerprint != self.fingerprint:
            raise IdempotencyKeyReusedError()
        return StoredAnswer(status=record.response_status, body=record.response_body)

    def stage(self, status: int, body: Any) -> None:
        """Add the answer to the current transaction (the caller commits).

        A concurrent request with the same key makes the commit fail with
        ``sqlalchemy.exc.IntegrityError``; the caller then calls :meth:`find`.
        """
        db.session.add(
            IdempotencyRecord(
                key=self.key,
                fingerprint=self.fingerprint,
                method=self.method,
                path=self.path[:512],
                response_status=status,
                response_body=body,
            )
        )


def run_idempotent(
    claim: IdempotencyClaim | None,
    operation: Callable[[Callable[[Any], None] | None], Any],
    *,
    status: int,
    render: Callable[[Any], Any],
) -> tuple[int, Any, bool]:
    """Run a changing service call, answering retries with the stored answer.

    Args:
        claim: the request's claim, or ``None`` when it has no key (then the
            operation simply runs).
        operation: calls the service, passing on the ``before_commit`` hook
            it is given; the service calls it with its result inside the
            transaction, after the flush.
        status: the HTTP status of a successful answer.
        render: turns the operation's result into the JSON body.

    Returns:
        ``(status, body, replayed)``; ``replayed`` is true when the answer
        came from an earlier request with the same key.

    Raises:
        IdempotencyKeyReusedError: the key belongs to another request.
        Whatever the service raises (nothing is stored then).
    """
    if claim is not None:
        stored = claim.find()
        if stored is not None:
            return stored.status, stored.body, True
    rendered: list[Any] = []

    def before_commit(result: Any) -> None:
        # Rendered inside the transaction, from the flushed values: the
        # answer then needs no reload after the commit (which expires them).
        body = render(result)
        rendered.append(body)
        if claim is not None:
            claim.stage(status, body)

    try:
        result = operation(before_commit)
    except IntegrityError:
        if claim is None:
            raise
        # A concurrent request with the same key committed first.
        stored = claim.find()
        if stored is None:
            raise
        return stored.status, stored.body, True
    return status, rendered[-1] if rendered else render(result), False
