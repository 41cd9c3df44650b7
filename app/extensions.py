"""Flask extensions, created unbound so models and services can import them
without importing the application factory (no circular imports)."""

import sqlite3

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


# Deterministic constraint names so Alembic migrations are reproducible on
# SQLite and PostgreSQL alike (Alembic docs, "The Importance of Naming
# Constraints").
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every model (SQLAlchemy 2 typed mappings)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


#: Execution option that makes the next transaction on SQLite a write
#: transaction (``BEGIN IMMEDIATE``); see :func:`begin_write_transaction`.
SQLITE_IMMEDIATE = "sqlite_begin_immediate"


#: ``Session.info`` key: the transaction :func:`mark_read_only_transaction` vouched for.
_READ_ONLY_TRANSACTION = "read_only_transaction"


def mark_read_only_transaction() -> None:
    """Declare that the session's open transaction has only read so far.

    On PostgreSQL, :func:`begin_write_transaction` may then continue it
    instead of ending it and checking a connection out again (a ``ROLLBACK``
    and a pool pre-ping saved per API request, whose bearer-token lookup is
    such a read). The mark holds for this transaction object only: once it
    ends, the next one is unmarked.
    """
    session = db.session()
    transaction = session.get_transaction()
    if transaction is not None:
        session.info[_READ_ONLY_TRANSACTION] = transaction


#: ``Session.info`` key: the write transaction :func:`mark_joinable_write_transaction` lends on.
_JOINABLE_WRITE_TRANSACTION = "joinable_write_transaction"


def mark_joinable_write_transaction() -> None:
    """Let the next :func:`begin_write_transaction` continue the open write transaction.

    For a caller that began a write transaction itself and wrote in it
    before calling a service that must share it: the idempotency claim
    (:mod:`app.services.idempotency`) inserts its key, then the service makes
    the change, and both commit together or not at all. On both backends:
    the transaction is already a write transaction (SQLite: ``BEGIN
    IMMEDIATE``). Like :func:`mark_read_only_transaction`, the mark holds for
    this transaction object only, and is used up by the next
    :func:`begin_write_transaction`.
    """
    session = db.session()
    transaction = session.get_transaction()
    if transaction is not None:
        session.info[_JOINABLE_WRITE_TRANSACTION] = transaction


def begin_write_transaction() -> None:
    """Start the session's next transaction as a write transaction.

    Services that change data call this first. On SQLite it makes the
    transaction ``BEGIN IMMEDIATE``: with a deferred BEGIN, two requests that
    read a job and then write it can both hold a read lock, and SQLite fails
    one of them at once with "database is locked" instead of waiting. On
    PostgreSQL it changes nothing (row locks do that work). Any open
    transaction of the session is rolled back first: a service method is one
    transaction of its own. The one exception: on PostgreSQL, a transaction
    marked by :func:`mark_read_only_transaction` (it changed nothing, and
    under READ COMMITTED each statement reads afresh) is continued; and on
    both backends, a write transaction marked by
    :func:`mark_joinable_write_transaction` is continued.
    """
    session = db.session()
    marked = session.info.pop(_READ_ONLY_TRANSACTION, None)
    joinable = session.info.pop(_JOINABLE_WRITE_TRANSACTION, None)
    if session.in_transaction():
        if joinable is not None and joinable is session.get_transaction():
            return
        if (
            marked is not None
            and marked is session.get_transaction()
            and not (session.new or session.dirty or session.deleted)
            and session.get_bind().dialect.name == "postgresql"
        ):
            return
        session.rollback()
    session.connection(execution_options={SQLITE_IMMEDIATE: True})


def _sqlite_connect(dbapi_connection, connection_record) -> None:  # noqa: ANN001 (DB-API objects)
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Let SQLAlchemy's "begin" event emit BEGIN (pysqlite's own handling
    # cannot do IMMEDIATE), wait for a busy database instead of failing at
    # once, enforce foreign keys, and let readers run beside a writer (WAL).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _sqlite_begin(connection) -> None:  # noqa: ANN001
    # SQLAlchemy docs, "Serializable isolation / Savepoints / Transactional
    # DDL" for pysqlite: emit BEGIN ourselves.
    if connection.dialect.name == "sqlite":
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


event.listen(Engine, "connect", _sqlite_connect)
event.listen(Engine, "begin", _sqlite_begin)


def release_session(exception: BaseException | None = None) -> None:
    """``teardown_appcontext``: end the request's session, even if the database died.

    Registered after Flask-SQLAlchemy's own teardown, so it runs first (Flask
    runs teardowns in reverse order). If the database went away while a
    transaction was open (a restart, a failover), the ROLLBACK of a normal
    close fails; the request has already been answered, so instead of turning
    that into a 500 the session's connections are invalidated (discarded by
    the pool, which reconnects on the next checkout: pool_pre_ping).
    """
    session = db.session()
    try:
        session.close()
    except exc.DBAPIError:
        try:
            session.invalidate()
        except exc.DBAPIError:  # pragma: no cover - nothing more can be done
            pass
