"""The one way to change data: ``with write_transaction():``.

Every change, in a service, a command or a view that puts several changes
together, runs inside this context manager (after cosmicpython's unit of
work). It

* begins a write transaction: on SQLite the transaction's first statement is
  preceded by ``BEGIN IMMEDIATE`` (with a deferred ``BEGIN``, two requests
  that read a job and then write it can both hold a read lock, and SQLite
  fails one of them at once with "database is locked" instead of waiting);
  on PostgreSQL a plain ``BEGIN`` (row locks do that work), where the
  session otherwise reads in autocommit (no ``BEGIN``/``ROLLBACK`` around
  reads: :data:`app.extensions.POSTGRESQL_READ_AUTOCOMMIT`). Any open
  transaction of the session is rolled back first, with one exception: on
  PostgreSQL, a transaction marked by :func:`mark_read_only_transaction`
  (it changed nothing, and under READ COMMITTED each statement reads afresh)
  is continued (its connection leaves autocommit, so the write's first
  statement begins the transaction), which saves the API's bearer-token
  lookup a pool checkout;
* commits when the block ends, and rolls back when anything is raised in it
  (then re-raises);
* joins the write transaction already open when used inside another one:
  the inner block only takes part (it flushes its changes when it ends, so
  the outer block sees them as stored, ids and defaults included) and the
  outermost block commits or rolls back everything together. That is how a
  view puts the idempotency claim, the service's change, an audit row and
  the stored answer into one transaction.

The transaction begins at its first statement, not when the block is
entered: a block that refuses its input before touching the database costs
no round trip, and on SQLite it does not take the database's one write lock
before it needs it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.extensions import POSTGRESQL_READ_AUTOCOMMIT, SQLITE_IMMEDIATE, db, leave_read_autocommit

#: ``Session.info`` key: the transaction :func:`mark_read_only_transaction` vouched for.
_READ_ONLY_TRANSACTION = "read_only_transaction"
#: ``Session.info`` key: the outermost open :class:`WriteTransaction`.
_OPEN = "write_transaction"

#: SQLSTATEs of a transaction PostgreSQL aborted so that another could go
#: on: ``serialization_failure`` (40001) and ``deadlock_detected`` (40P01).
#: Its manual ("Serialization Failure Handling") says to retry such a
#: transaction from the start; nothing of it was stored.
REPLAYABLE_SQLSTATES = frozenset({"40001", "40P01"})
#: Tries of :func:`replayed_write_transaction` in all: the first and four replays.
WRITE_ATTEMPTS = 5
#: Longest pause before the first replay, in seconds; it doubles for each
#: next one. Each pause is drawn at random up to it ("full jitter"), so two
#: victims of one deadlock do not start again together and meet again.
REPLAY_PAUSE_S = 0.005

log = logging.getLogger(__name__)
T = TypeVar("T")
_random = random.Random()


def mark_read_only_transaction() -> None:
    """Declare that the session's open transaction has only read so far.

    On PostgreSQL the next :func:`write_transaction` may then continue it
    instead of ending it and checking a connection out again. The mark holds
    for this transaction object only: once it ends, the next one is unmarked.
    """
    session = db.session()
    transaction = session.get_transaction()
    if transaction is not None:
        session.info[_READ_ONLY_TRANSACTION] = transaction


class WriteTransaction:
    """The handle ``with write_transaction() as transaction:`` gives."""

    def __init__(self, session: Session, *, joined: bool) -> None:
        self._session = session
        self.joined = joined
        self.ended = False

    def rollback(self) -> None:
        """End the transaction now, without committing (the block then commits nothing).

        For a block that finds it has nothing to write after all (a replayed
        idempotent request): its transaction, which on SQLite holds the
        database's one write lock, ends at once. Nothing may be written in
        the block after this.

        Raises:
            RuntimeError: the block joined an outer transaction, which is
                not its to end.
        """
        if self.joined:
            raise RuntimeError("a joined write transaction cannot end the outer one")
        self.ended = True
        self._session.rollback()


def in_write_transaction() -> bool:
    """Whether the session is inside a :func:`write_transaction` block."""
    return _OPEN in db.session().info


def require_write_transaction() -> None:
    """Refuse to go on outside a :func:`write_transaction` block.

    For helpers that lock or write but are not a transaction of their own
    (:func:`app.services.processing_jobs.locking.load_job_for_update`).

    Raises:
        RuntimeError: no write transaction is open.
    """
    if not in_write_transaction():
        raise RuntimeError("this must run inside `with write_transaction():`")


@contextmanager
def write_transaction() -> Iterator[WriteTransaction]:
    """Run the block as one write transaction, or as part of the open one.

    Yields:
        A :class:`WriteTransaction` (needed only to end it early).

    Raises:
        Whatever the block raises, after the rollback; a database error of
        the commit, after the rollback.
    """
    session = db.session()
    if _OPEN in session.info:
        yield from _join(session)
        return
    if _end_unless_continuable(session):
        # In autocommit nothing is open on the server (the lookups so far
        # were each their own statement), so psycopg allows the switch, and
        # its implicit BEGIN then comes before the write's first statement.
        leave_read_autocommit(session.connection())
    transaction = WriteTransaction(session, joined=False)
    session.info[_OPEN] = transaction
    # Applied by SQLAlchemy (2.1) to the connection the session's next
    # transaction begins on, so only that one says BEGIN IMMEDIATE (the
    # "begin" listener in app.extensions): another connection opened
    # meanwhile, a test's reading one say, stays a reader.
    options = session.execution_options
    # Likewise, its connection leaves PostgreSQL's read autocommit.
    session.execution_options = options.union({SQLITE_IMMEDIATE: True, POSTGRESQL_READ_AUTOCOMMIT: False})
    try:
        yield transaction
        if not transaction.ended:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.execution_options = options
        session.info.pop(_OPEN, None)


def _join(session: Session) -> Iterator[WriteTransaction]:
    yield WriteTransaction(session, joined=True)
    # Not on an exception: the outermost block rolls back.
    session.flush()


def _end_unless_continuable(session: Session) -> bool:
    """Roll back the session's open transaction, unless PostgreSQL may continue it.

    Returns:
        Whether the open transaction is continued.
    """
    marked = session.info.pop(_READ_ONLY_TRANSACTION, None)
    if not session.in_transaction():
        return False
    if (
        marked is not None
        and marked is session.get_transaction()
        and not (session.new or session.dirty or session.deleted)
        and session.get_bind().dialect.name == "postgresql"
    ):
        return True
    session.rollback()
    return False


def is_replayable(error: BaseException) -> bool:
    """Whether ``error`` (a ``sqlalchemy.exc.DBAPIError`` or a driver error)
    aborted the transaction for a reason a replay may not meet again
    (:data:`REPLAYABLE_SQLSTATES`)."""
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    return getattr(original, "sqlstate", None) in REPLAYABLE_SQLSTATES


def replayed_write_transaction(work: Callable[[WriteTransaction], T], *, attempts: int = WRITE_ATTEMPTS) -> T:
    """``work(transaction)`` inside ``with write_transaction() as transaction:``,
    run again from the start when PostgreSQL aborts the transaction as a
    deadlock victim or a serialization failure (:func:`is_replayable`), at
    most ``attempts`` times in all.

    For a block whose every effect is in the transaction, so that a replay
    is the first run again: the API's writes (the idempotency claim, the
    change, the stored answer; metrics are counted at commit, and dropped on
    rollback). Two recorders can deadlock on the summary rollups' shard rows
    at the turn of an hour, when one's job moves to the new hour's rows and
    the other's already counts there (docs/summary-counts.md); the victim is
    replayed instead of answering 503; so can recorders whose jobs move
    between failure groups at once (a trial saw it under 50 concurrent
    writers). Each replay waits a random pause first (up to
    :data:`REPLAY_PAUSE_S`, doubling), so the victims of one deadlock do
    not meet again. Inside an outer write transaction ``work`` runs once:
    only the outermost block can start again.

    Returns:
        What ``work`` returns.

    Raises:
        Whatever ``work`` or the commit raises; a replayable error after the
        last attempt.
    """
    if in_write_transaction():
        with write_transaction() as transaction:
            return work(transaction)
    attempt = 1
    while True:
        try:
            with write_transaction() as transaction:
                return work(transaction)
        except sa_exc.DBAPIError as error:
            if attempt >= attempts or not is_replayable(error):
                raise
            # The SQLSTATE only: the message may quote the statement's rows.
            log.warning("write transaction replayed after SQLSTATE %s (attempt %d of %d)",
                        getattr(error.orig, "sqlstate", None), attempt + 1, attempts)
            time.sleep(_random.uniform(0, REPLAY_PAUSE_S * 2 ** (attempt - 1)))
            attempt += 1
