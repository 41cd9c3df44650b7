"""Column types shared by the models."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import AsBoolean
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC ``datetime``."""
    return datetime.now(timezone.utc)


def iso_date(moment: datetime) -> str:
    """``moment``'s date as ISO 8601 ``YYYY-MM-DD``, the year in four digits
    (``0002-01-01``): ``strftime("%Y")`` writes year 2 as ``2`` on glibc,
    while SQL's formats (and RFC 3339) pad it."""
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


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




class IndexedFlag(TypeDecorator[bool]):
    """A ``BOOLEAN`` column that partial indexes use as their predicate
    (``... WHERE is_current``), and that a condition on it renders bare.

    A Boolean column used as a condition compiles to ``col`` on PostgreSQL
    but to ``col = 1`` on SQLite (it has no boolean type), and SQLite only
    uses a partial index when the query's WHERE holds the index's predicate
    term as written: ``is_current = 1`` made ending a job's current
    occurrences a scan of every occurrence. With this type the condition is
    ``col`` (qualified by its table or alias) on both databases, however the
    column is reached (``Model.col``, ``table.c.col``, an alias). Stored and
    read as ``sa.Boolean``; the DDL is unchanged. Write conditions as the
    bare column (``.where(Model.flag)``): ``.is_(True)`` compiles to ``IS
    true``, which PostgreSQL 15 does not prove implies the predicate.
    """

    impl = sa.Boolean
    cache_ok = True
    #: ``== True`` and ``.is_(True)`` compare with the constant, as on a
    #: plain Boolean (a TypeDecorator would bind a parameter: ``IS $1``).
    coerce_to_is_types = (type(None), bool)


@compiles(AsBoolean, "sqlite")
def _bare_indexed_flag(element: AsBoolean, compiler: SQLCompiler, **kw: Any) -> str:
    """SQLite: an :class:`IndexedFlag` column as a true condition renders
    bare (``col``, true for 1); every other boolean as SQLAlchemy does."""
    if element.operator is operators.is_true and isinstance(element.element.type, IndexedFlag):
        return compiler.process(element.element, **kw)
    return compiler.visit_unary(element, **kw)
