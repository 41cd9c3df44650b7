"""The ``idempotency_records`` table: answers kept for ``Idempotency-Key`` retries."""

from __future__ import annotations

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
    request is refused. ``fingerprint`` is the SHA-256 (hex) of the method,
    path and canonical JSON body. Written in the same transaction as the
    change it answers for, so a change and its answer are stored together
    or not at all.
    """

    __tablename__ = "idempotency_records"

    key: Mapped[str] = mapped_column(sa.String(IDEMPOTENCY_KEY_MAX_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    method: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    path: Mapped[str] = mapped_column(sa.String(512), nullable=False)
    response_status: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    response_body: Mapped[Any] = mapped_column(JSONDocument, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
