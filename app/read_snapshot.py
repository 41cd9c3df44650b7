"""Reads that must agree with each other: ``with read_snapshot() as one:``.

Under PostgreSQL's READ COMMITTED (the level here) each statement sees the
commits made before it began, so two statements of one page can see two
states of the data: a worker's report landing between them is in one and
not the other. The /jobs summary counts a partial hour as that hour's
rollup rows minus the jobs of the rest of the hour
(:func:`app.services.summary_ranges.plan_range`), which is exact only when
both reads see the same state; its three cards also agree only then.

:func:`read_snapshot` runs a block's reads against one snapshot where that
can be had, and says whether it could; :func:`reads_one_snapshot` lets code
called inside the block ask.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import psycopg
from psycopg.pq import TransactionStatus

from app.extensions import db

_ONE_SNAPSHOT: ContextVar[bool] = ContextVar("one_snapshot", default=False)


def reads_one_snapshot() -> bool:
    """Whether the session's reads now see one snapshot: inside a
    :func:`read_snapshot` block that could have one."""
    return _ONE_SNAPSHOT.get()


@contextmanager
def read_snapshot() -> Iterator[bool]:
    """Run the block's reads of the session against one snapshot, where possible.

    * PostgreSQL, the session reading in autocommit (a GET or HEAD request,
      :data:`app.extensions.POSTGRESQL_READ_AUTOCOMMIT`): the block runs in
      a ``REPEATABLE READ, READ ONLY`` transaction of its own, whose every
      statement sees the commits made before its first one (PostgreSQL
      manual, "Repeatable Read Isolation Level"); it costs the ``BEGIN`` and
      ``COMMIT`` round trips, and takes no lock.
    * SQLite: the session's transaction already reads one snapshot (WAL
      mode: from its first read to its end), as long as the block does not
      end it.
    * PostgreSQL inside a real transaction (a write, a command, a test's
      set-up): its isolation cannot change once it has begun, so nothing is
      done and the reads stay READ COMMITTED.

    The block must not commit or roll back the session: that would end the
    snapshot (and, on SQLite, begin another).

    Yields:
        Whether the block's reads see one snapshot (``True`` in the first
        two cases); :func:`reads_one_snapshot` says the same inside it.

    Raises:
        Whatever the block raises, after its snapshot's transaction was
        rolled back.
    """
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        one, driver = True, None
    else:
        driver = connection.connection.driver_connection
        one = bool(driver.autocommit) and driver.info.transaction_status == TransactionStatus.IDLE
    if not one:
        yield False
        return
    if driver is not None:
        connection.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    token = _ONE_SNAPSHOT.set(True)
    try:
        yield True
    except BaseException:
        if driver is not None and not driver.closed:
            try:
                driver.rollback()  # psycopg sends ROLLBACK while a transaction is open, autocommit or not
            except psycopg.Error:
                pass  # the connection is gone; the block's own error says why, and the pool drops it
        raise
    else:
        if driver is not None:
            driver.commit()
    finally:
        _ONE_SNAPSHOT.reset(token)
