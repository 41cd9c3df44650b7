"""Column types shared by the models."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC ``datetime``."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` that only ever holds aware UTC values.

    On the way in a naive ``datetime`` is refused (``ValueError``) rather than
    guessed at, and aware values are converted to UTC. On the way out SQLite's
    naive values (it has no time zone type) are marked UTC, so both databases
    return the same aware value. This is the one place timestamps are
    normalised (STYLE.md, "Timestamps").
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: store timezone-aware UTC values only")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            # SQLite stores text; keep one canonical form without offset.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


#: JSON column: ``jsonb`` on PostgreSQL, JSON text on SQLite. Python ``None``
#: is stored as SQL NULL (not the JSON literal ``null``) so "no details" is
#: distinguishable with ``IS NULL`` on both backends.
JSONDocument = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


