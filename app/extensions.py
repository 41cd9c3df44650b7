"""Flask extensions, created unbound so models and services can import them
without importing the application factory (no circular imports)."""

import select
import sqlite3
from collections.abc import Callable

import psycopg
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool


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


#: Execution option: on PostgreSQL, whether the transaction that begins on
#: the connection only reads, so its statements run in the driver's
#: autocommit mode, without psycopg's implicit ``BEGIN`` before the first one
#: nor a ``ROLLBACK`` at the end (two round trips per request). Under READ
#: COMMITTED each statement reads afresh either way, so a read sees the same
#: rows. Unset, :data:`READS_ONLY_WHEN` decides; :func:`app.unit_of_work.write_transaction`
#: and the streaming exports set it to ``False`` (a write must be one
#: transaction; a named cursor and ``SET LOCAL`` need one). SQLite ignores it.
POSTGRESQL_READ_AUTOCOMMIT = "postgresql_read_autocommit"

#: Engine execution option: a callable taking no argument that says, at a
#: PostgreSQL transaction's begin with :data:`POSTGRESQL_READ_AUTOCOMMIT`
#: unset, whether that transaction only reads. The application factory sets
#: it to "a GET or HEAD request is being served", a fact of the web layer this
#: module does not import. Without it (commands, the demo's seed, benchmarks,
#: tests' own set-up, Alembic) every transaction is a real one, so a write
#: there that does not go through ``write_transaction()`` is still atomic.
READS_ONLY_WHEN = "postgresql_reads_only_when"

#: Pooled connection's ``info`` key: this module turned psycopg's autocommit on.
_READ_AUTOCOMMIT_SET = "read_autocommit_set"

db = SQLAlchemy(model_class=Base)
migrate = Migrate()


#: Execution option that makes a transaction on SQLite a write transaction
#: (``BEGIN IMMEDIATE``); :func:`app.unit_of_work.write_transaction` sets it on
#: the session for the connection its transaction begins on.
SQLITE_IMMEDIATE = "sqlite_begin_immediate"


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


def _begin(connection) -> None:  # noqa: ANN001
    name = connection.dialect.name
    if name == "sqlite":
        # SQLAlchemy docs, "Serializable isolation / Savepoints / Transactional
        # DDL" for pysqlite: emit BEGIN ourselves.
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
    elif name == "postgresql":
        # Chosen afresh at every begin (the pooled connection keeps the last
        # choice): psycopg sends its implicit BEGIN before the first
        # statement unless autocommit is on. The connection is idle here
        # (checked out idle, or after a COMMIT/ROLLBACK), as psycopg requires.
        # With autocommit on, psycopg's commit() and rollback() send nothing
        # while no transaction is open ("Understanding the DBAPI-Level
        # Autocommit Isolation Level" in SQLAlchemy's docs).
        options = connection.get_execution_options()
        read_only = options.get(POSTGRESQL_READ_AUTOCOMMIT)
        if read_only is None:
            reads_only_when: Callable[[], bool] | None = options.get(READS_ONLY_WHEN)
            read_only = reads_only_when is not None and reads_only_when()
        if read_only:
            driver, info = connection.connection.driver_connection, connection.connection.info
            if not driver.autocommit:
                driver.autocommit = True
                info[_READ_AUTOCOMMIT_SET] = True  # kept with the pooled connection
        else:
            leave_read_autocommit(connection)


def leave_read_autocommit(connection) -> None:  # noqa: ANN001 (a SQLAlchemy Connection)
    """Turn off the PostgreSQL read autocommit this module turned on, if it did.

    Only that one: an engine or connection set to SQLAlchemy's own
    ``AUTOCOMMIT`` isolation level (``CREATE DATABASE``, say) keeps it. The
    connection must be idle (no statement run since its transaction began),
    as psycopg requires; in autocommit nothing is open on the server, so
    psycopg's implicit ``BEGIN`` then comes before the next statement.
    """
    pooled = connection.connection
    if pooled.info.pop(_READ_AUTOCOMMIT_SET, False):
        pooled.driver_connection.autocommit = False


def _server_has_spoken(fileno: int) -> bool:
    """Whether the socket ``fileno`` has something to read, or was closed, right now.

    A pooled PostgreSQL connection at rest has sent nothing and is owed
    nothing: the server only writes to it unasked to end it (an ``FATAL``
    ErrorResponse such as 57P01 on shutdown, restart or
    ``pg_terminate_backend``, then end of file), so readable means "gone".
    """
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))  # POLLHUP / POLLERR are always reported


def _check_psycopg_liveness(dbapi_connection, connection_record, connection_proxy) -> None:  # noqa: ANN001
    """Pool ``checkout`` event: refuse a PostgreSQL connection the server has ended.

    Replaces ``pool_pre_ping`` on PostgreSQL (app.config.engine_options):
    the ping is a ``SELECT 1`` round trip on every checkout, that is on
    every request, a quarter of a signed-in page's round trips. This looks
    at the idle socket instead (one ``poll``, no round trip): a connection
    whose server restarted or terminated it is readable, and raising
    :class:`~sqlalchemy.exc.DisconnectionError` here makes the pool discard
    it and check out a fresh one (SQLAlchemy "Disconnect Handling -
    Pessimistic", the checkout-event form). A server that vanished without
    closing the socket (a cut network) passes both checks alike: the
    ping would wait on TCP as the request's first statement does.
    """
    if not isinstance(dbapi_connection, psycopg.Connection):
        return
    if (
        dbapi_connection.closed
        or dbapi_connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        or _server_has_spoken(dbapi_connection.fileno())
    ):
        raise exc.DisconnectionError("the server ended this pooled connection")


event.listen(Engine, "connect", _sqlite_connect)
event.listen(Engine, "begin", _begin)
event.listen(Pool, "checkout", _check_psycopg_liveness)


def release_session(exception: BaseException | None = None) -> None:
    """``teardown_appcontext``: end the request's session, even if the database died.

    Registered after Flask-SQLAlchemy's own teardown, so it runs first (Flask
    runs teardowns in reverse order). If the database went away while a
    transaction was open (a restart, a failover), the ROLLBACK of a normal
    close fails; the request has already been answered, so instead of turning
    that into a 500 the session's connections are invalidated (discarded by
    the pool, which reconnects on the next checkout).
    """
    session = db.session()
    try:
        session.close()
    except exc.DBAPIError:
        try:
            session.invalidate()
        except exc.DBAPIError:  # pragma: no cover - nothing more can be done
            pass
