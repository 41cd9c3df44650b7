"""Hot-path statements sent straight to the database driver, compiled once.

On the record path (docs/benchmarks.md, "The record path"), SQLAlchemy's
``Connection.execute`` of a prebuilt Core statement cost about as much CPU
as the statement's round trip: a new execution context, parameter and result
set-up, a cursor result per call. A :class:`DriverStatement` compiles its
Core statement once per dialect and, on PostgreSQL (psycopg), sends it on
the DBAPI cursor of the same SQLAlchemy ``Connection`` (so in the same
transaction), keeping what the rest of the app relies on:

* the column types' conversions: each bound value goes through its type's
  bind processor (``UTCDateTime``, ``JSONB`` ...) and each fetched value
  through its result processor, as ``Connection.execute`` would;
* the engine's ``before_cursor_execute`` / ``after_cursor_execute`` events
  (statement logs, tracing, the round-trip tests);
* errors as SQLAlchemy raises them (``sqlalchemy.exc.DBAPIError`` wrapping
  the driver's, the connection invalidated on a disconnect), so the
  problem+json handlers answer as before.

A statement that leaves a column with a Python-side default (computed by
SQLAlchemy at execution time) to its default is refused when compiled:
give every such value. Other dialects (SQLite)
run the Core statement through ``Connection.execute`` unchanged.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

#: Dialect drivers the direct path supports: named ``%(name)s`` parameters.
_DIRECT_DRIVERS = frozenset({"psycopg"})


class _Compiled:
    """One statement compiled for one dialect, with its value conversions."""

    __slots__ = ("sql", "binds", "columns", "fixed")

    def __init__(self, statement: sa.Executable, dialect: Dialect, keys: Iterable[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            # Python-side defaults are computed by SQLAlchemy's execution
            # context, which the direct path does not have.
            raise ValueError("a DriverStatement needs every column with a Python-side default given")
        if any(bind.callable is not None for bind in compiled.bind_names):
            raise ValueError("a DriverStatement cannot take a bind parameter computed per call (callable_)")
        self.sql: str = compiled.string
        _let_psycopg_cache(self.sql)
        # bind_names: each parameter as rendered in the SQL (``binds`` also
        # holds anonymous parameters under their internal keys).
        self.binds: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in compiled.bind_names.items()
        ]
        #: Values written into the statement (``col == 5``), used when a call does not give them.
        self.fixed: dict[str, Any] = {
            name: bind.effective_value for bind, name in compiled.bind_names.items() if not bind.required
        }
        self.columns: list[tuple[str, Callable[[Any], Any] | None]] = [
            (key, type_.dialect_impl(dialect).result_processor(dialect, None))
            for key, _name, _objects, type_ in compiled._result_columns  # noqa: SLF001 (names and types, in order)
        ]


def _let_psycopg_cache(sql: str) -> None:
    """Let psycopg cache the conversion of ``sql``, however long.

    psycopg turns a query's ``%(name)s`` placeholders into PostgreSQL's
    ``$n`` on every ``execute``, and keeps the result (an LRU of 128
    queries) only for queries up to ``MAX_CACHED_STATEMENT_LENGTH`` bytes
    (4,096 in psycopg 3.3): long queries are usually an ORM's one-off
    ``INSERT ... VALUES`` lists (psycopg discussion #628). A
    :class:`DriverStatement` is the opposite, one fixed text run on every
    report; the failure-group statement is longer than 4,096 bytes, and
    converting it again cost 0.3 ms of the app's CPU per report
    (docs/benchmarks.md, "The hot group, session 18"). So the limit is
    raised to the longest compiled statement (a handful, each compiled once
    per engine). psycopg is pinned; a version without the setting leaves
    the limit alone (slower, still correct), and a test checks that the
    cache holds a statement longer than psycopg's own limit.
    """
    from psycopg import _queries  # noqa: PLC0415 (only the psycopg path needs it)

    length = len(sql.encode())
    if length > getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", length):
        _queries.MAX_CACHED_STATEMENT_LENGTH = length


class DriverStatement:
    """A Core ``SELECT``/``INSERT``/``UPDATE`` with named bind parameters,
    run on the DBAPI cursor where the dialect allows (see the module).

    Args:
        statement: the Core statement; its parameters are ``bindparam``
            names or, for an ``INSERT``/``UPDATE``, column keys.
        keys: for an ``INSERT``/``UPDATE``, the column keys the calls give
            (the SET or VALUES list is compiled from them); every call must
            give exactly these plus the statement's ``bindparam`` names.
    """

    def __init__(self, statement: sa.Executable, keys: Iterable[str] = ()) -> None:
        self.statement = statement
        self.keys = tuple(keys)
        # Per dialect object (one per engine), forgotten with its engine.
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def _for(self, dialect: Dialect) -> _Compiled | None:
        if dialect.driver not in _DIRECT_DRIVERS:
            return None
        compiled = self._compiled.get(dialect)
        if compiled is None:
            compiled = self._compiled[dialect] = _Compiled(self.statement, dialect, self.keys)
        return compiled

    def rows(self, connection: sa.Connection, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run it with ``parameters`` on ``connection``; its rows as dicts of
        column key to value (converted by the column types), ``[]`` when it
        returns none."""
        compiled = self._for(connection.dialect)
        if compiled is None:
            result = connection.execute(self.statement, dict(parameters))
            return [dict(row._mapping) for row in result] if result.returns_rows else []  # noqa: SLF001
        given = {**compiled.fixed, **parameters} if compiled.fixed else parameters
        values = {name: given[name] if process is None else process(given[name]) for name, process in compiled.binds}
        raw = connection.connection.driver_connection
        cursor = raw.cursor()
        sql = compiled.sql
        try:
            sql, values = _before(connection, cursor, sql, values)
            cursor.execute(sql, values)
            # Whether it returns rows is known from the compiled statement:
            # psycopg builds a Column object per column each time
            # ``cursor.description`` is read (a tenth of the group write's CPU).
            fetched = cursor.fetchall() if compiled.columns else []
            _after(connection, cursor, sql, values)
        except connection.dialect.loaded_dbapi.Error as error:
            _raise_wrapped(connection, cursor, sql, values, error)
        finally:
            cursor.close()
        columns = compiled.columns
        return [
            {key: value if process is None else process(value) for (key, process), value in zip(columns, row)}
            for row in fetched
        ]

    def first(self, connection: sa.Connection, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        """:meth:`rows`, first row only (``None`` when there is none)."""
        rows = self.rows(connection, parameters)
        return rows[0] if rows else None


def _before(connection: sa.Connection, cursor: Any, sql: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # As Connection._execute_context does: each listener may return a new
    # statement and parameters (SQLAlchemy wraps those registered without
    # retval=True to hand back what they were given).
    for listener in connection.dispatch.before_cursor_execute:
        sql, values = listener(connection, cursor, sql, values, None, False)
    return sql, values


def _after(connection: sa.Connection, cursor: Any, sql: str, values: dict[str, Any]) -> None:
    for listener in connection.dispatch.after_cursor_execute:
        listener(connection, cursor, sql, values, None, False)


def _raise_wrapped(connection: sa.Connection, cursor: Any, sql: str, values: dict[str, Any],
                   error: Exception) -> None:
    """Raise ``error`` as SQLAlchemy would: a ``DBAPIError`` subclass, after
    invalidating the connection if the database went away."""
    dialect = connection.dialect
    disconnected = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
    if disconnected:
        connection.invalidate(error)
    raise sa_exc.DBAPIError.instance(
        sql, values, error, dialect.loaded_dbapi.Error, connection_invalidated=disconnected, dialect=dialect
    ) from error
