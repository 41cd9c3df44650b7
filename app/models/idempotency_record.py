"""The ``idempotency_records`` table: answers kept for ``Idempotency-Key`` retries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import JSONDocument, UTCDateTime, utcnow

IDEMPOTENCY_KEY_MAX_LENGTH = 255


class IdempotencyRecord(db.Model):
    """The first successful answer to a request sent with an ``Idempotency-Key``.

    Follows the IETF draft "The Idempotency-Key HTTP Header Field"
    (draft-ietf-httpapi-idempotency-key-header): a retry with the same key
    and the same request gets the stored answer; the same key with another
    request is refused. Keys belong to the worker token that sent them (the
    primary key is ``(token_id, key)``), so two workers that pick the same
    key never see each other's answers. ``fingerprint`` is the SHA-256 (hex)
    of the method, path and canonical JSON body.

    The row is inserted first, claiming the key for the request's write
    transaction (a concurrent duplicate waits on the primary key until that
    transaction ends), and its answer is written in the same transaction as
    the change it answers for. So a change and its answer are stored together
    or not at all, and ``response_status``/``response_body`` are NULL only
    inside the claiming transaction, never in a committed row.
    """

    __tablename__ = "idempotency_records"

    token_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("worker_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(sa.String(IDEMPOTENCY_KEY_MAX_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    method: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    path: Mapped[str] = mapped_column(sa.String(512), nullable=False)
    response_status: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    response_body: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
