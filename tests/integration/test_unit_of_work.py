"""``with write_transaction():`` (app/unit_of_work.py): commit, rollback, joining."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.services.processing_jobs.errors import InvalidTransitionError
from app.services.processing_jobs.lifecycle import create_job, start_job
from app.services.processing_jobs.locking import load_job_for_update
from app.unit_of_work import in_write_transaction, mark_read_only_transaction, write_transaction
from tests.helpers import aborted_statement, stored_job_row


def _documents() -> list[str]:
    """Document ids of the stored jobs, read on a connection of its own."""
    with db.engine.connect() as connection:
        return sorted(connection.execute(sa.select(ProcessingJob.document_id)).scalars())


@pytest.fixture
def transactions(app_ctx) -> Iterator[list[str]]:  # noqa: ANN001
    """BEGIN, COMMIT and ROLLBACK as the engine sees them (SQLite's BEGIN IMMEDIATE spelt out)."""
    seen: list[str] = []
    engine = db.engine

    def statement(conn, cursor, text, parameters, context, executemany):  # noqa: ANN001
        if text.startswith("BEGIN"):
            seen.append(text)

    listeners = [
        (engine, "before_cursor_execute", statement),
        (engine, "commit", lambda conn: seen.append("COMMIT")),
        (engine, "rollback", lambda conn: seen.append("ROLLBACK")),
    ]
    for target, name, function in listeners:
        sa.event.listen(target, name, function)
    yield seen
    for target, name, function in listeners:
        sa.event.remove(target, name, function)


def test_a_block_commits_what_it_wrote(app_ctx):
    with write_transaction():
        db.session.add(ProcessingJob(document_id="doc-a"))
        assert in_write_transaction()
    assert not in_write_transaction()
    assert _documents() == ["doc-a"]


def test_an_exception_rolls_the_block_back_and_propagates(app_ctx):
    with pytest.raises(KeyError), write_transaction():
        db.session.add(ProcessingJob(document_id="doc-a"))
        db.session.flush()
        raise KeyError("stop")
    assert not in_write_transaction()
    assert _documents() == []


def test_a_nested_block_joins_the_outer_one(app_ctx):
    with write_transaction():
        job = create_job("doc-inner")  # its own block joins: flushed, not committed
        assert job.id is not None and _documents() == []
        db.session.add(ProcessingJob(document_id="doc-outer"))
    assert _documents() == ["doc-inner", "doc-outer"]


def test_an_exception_after_a_nested_block_rolls_both_back(app_ctx):
    with pytest.raises(RuntimeError), write_transaction():
        create_job("doc-inner")
        raise RuntimeError("the outer block fails after the service succeeded")
    assert _documents() == []


def test_a_nested_refusal_rolls_the_outer_block_back(app_ctx):
    job_id = create_job("doc-1").id
    with pytest.raises(InvalidTransitionError), write_transaction():
        db.session.add(ProcessingJob(document_id="doc-outer"))
        start_job(job_id)
        start_job(job_id)  # Processing -> Processing is refused
    assert _documents() == ["doc-1"]
    assert stored_job_row(job_id)["status"] == "Pending"


def test_rollback_ends_the_block_without_committing(app_ctx):
    with write_transaction() as transaction:
        db.session.add(ProcessingJob(document_id="doc-a"))
        db.session.flush()
        transaction.rollback()
    assert _documents() == []


def test_a_joined_block_cannot_end_the_outer_one(app_ctx):
    with pytest.raises(RuntimeError), write_transaction(), write_transaction() as inner:
        inner.rollback()


def test_helpers_that_lock_refuse_to_run_outside_a_block(app_ctx):
    job_id = create_job("doc-1").id
    with pytest.raises(RuntimeError, match="write_transaction"):
        load_job_for_update(job_id)


def test_it_begins_at_its_first_statement_as_a_write_transaction(app_ctx, backend, transactions):
    with write_transaction():
        assert transactions == []  # nothing yet: a refusal here costs no round trip
        create_job("doc-1")
    expected_begin = "BEGIN IMMEDIATE" if backend == "sqlite" else "BEGIN"
    if backend == "sqlite":  # pysqlite: the app emits BEGIN itself (app.extensions)
        assert transactions == [expected_begin, "COMMIT"]
    else:  # psycopg begins implicitly: SQLAlchemy's "begin" sends no statement
        assert transactions == ["COMMIT"]
    transactions.clear()
    db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))  # a read outside: deferred
    db.session.rollback()
    if backend == "sqlite":
        assert transactions == ["BEGIN", "ROLLBACK"]


def _server_transaction_open() -> bool:
    """Whether the session's connection has a transaction open in the database itself
    (not only in SQLAlchemy's bookkeeping)."""
    driver_connection = db.session.connection().connection.driver_connection
    if db.engine.dialect.name == "sqlite":
        return driver_connection.in_transaction
    return driver_connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def test_reads_open_no_transaction_on_postgresql_but_writes_do(app_ctx, backend):
    # While a GET is served, PostgreSQL reads run in the driver's autocommit:
    # no BEGIN before them, no ROLLBACK after
    # (app.extensions.READS_ONLY_WHEN, set by the factory). SQLite keeps its BEGIN (the
    # app emits it for every transaction).
    with app_ctx.test_request_context("/jobs", method="GET"):
        db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))
        assert _server_transaction_open() is (backend == "sqlite")
        db.session.rollback()
        with write_transaction():
            create_job("doc-1")
            assert _server_transaction_open()
        db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))
        assert _server_transaction_open() is (backend == "sqlite")  # the pooled connection is a reader again
        db.session.rollback()
    assert _documents() == ["doc-1"]


@pytest.mark.parametrize("context", ["POST request", "no request (a command, the demo's seed)"])
def test_outside_a_get_the_session_keeps_its_transactions(app_ctx, backend, context):
    # A POST's reads, and every use of the session outside a request, begin a
    # transaction as before: a write there that skips write_transaction() is
    # still one transaction (a temporary table ON COMMIT DROP lives through it).
    def read_then_write() -> None:
        db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))
        assert _server_transaction_open()
        if backend == "postgresql":
            db.session.execute(sa.text("CREATE TEMP TABLE seed ON COMMIT DROP AS SELECT 'doc-t' AS name"))
            db.session.execute(sa.text(
                "INSERT INTO processing_jobs (id, document_id, job_type, status, created_at, updated_at) "
                "SELECT gen_random_uuid(), name, 'entity_extraction', 'Pending', now(), now() FROM seed"))
            db.session.commit()
            assert _documents() == ["doc-t"]
        db.session.rollback()

    if context == "POST request":
        with app_ctx.test_request_context("/api/v1/processing-jobs", method="POST"):
            read_then_write()
    else:
        read_then_write()


def test_a_write_continuing_a_marked_read_is_one_transaction(app_ctx, backend):
    # The API's token lookup reads, marks its transaction, and the write
    # continues it on PostgreSQL: the write must still be atomic, also when
    # the read ran in a GET's autocommit.
    with app_ctx.test_request_context("/jobs", method="GET"):
        db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))
        mark_read_only_transaction()
        with pytest.raises(KeyError), write_transaction():
            create_job("doc-a")
            assert _server_transaction_open()
            create_job("doc-b")
            raise KeyError("half way")
        assert _documents() == []
        db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))
        mark_read_only_transaction()
        with write_transaction():
            create_job("doc-a")
            create_job("doc-b")
        assert _documents() == ["doc-a", "doc-b"]


# -- replayed_write_transaction: a deadlock's victim runs again ------------------------------


@pytest.mark.parametrize("error", [psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure])
def test_a_deadlock_victim_is_run_again_and_its_first_run_left_nothing(app_ctx, error):
    from app.unit_of_work import replayed_write_transaction
    runs: list[int] = []

    def work(_transaction):  # noqa: ANN001, ANN202
        runs.append(len(runs) + 1)
        create_job(f"replayed-{len(runs)}", "entity_extraction")
        if len(runs) == 1:
            raise aborted_statement(error)  # after the first run wrote its job
        return "done"

    assert replayed_write_transaction(work) == "done"
    assert runs == [1, 2]
    assert _documents() == ["replayed-2"]
    assert not in_write_transaction()


def test_other_errors_and_the_last_attempt_are_raised(app_ctx):
    from app.unit_of_work import WRITE_ATTEMPTS, replayed_write_transaction
    runs: list[str] = []

    def unique_violation(_transaction):  # noqa: ANN001, ANN202
        runs.append("unique")
        create_job("not-replayed", "entity_extraction")
        raise aborted_statement(psycopg.errors.UniqueViolation)

    with pytest.raises(sa.exc.OperationalError):
        replayed_write_transaction(unique_violation)
    assert runs == ["unique"]

    def always_deadlocked(_transaction):  # noqa: ANN001, ANN202
        runs.append("deadlock")
        create_job("always-deadlocked", "entity_extraction")
        raise aborted_statement(psycopg.errors.DeadlockDetected)

    with pytest.raises(sa.exc.OperationalError) as raised:
        replayed_write_transaction(always_deadlocked)
    assert raised.value.orig.sqlstate == "40P01"
    assert runs == ["unique"] + ["deadlock"] * WRITE_ATTEMPTS
    assert _documents() == []


def test_inside_an_outer_transaction_the_work_runs_once(app_ctx):
    from app.unit_of_work import replayed_write_transaction
    runs: list[int] = []

    def work(_transaction):  # noqa: ANN001, ANN202
        runs.append(1)
        raise aborted_statement(psycopg.errors.DeadlockDetected)

    with pytest.raises(sa.exc.OperationalError):
        with write_transaction():
            create_job("outer", "entity_extraction")
            replayed_write_transaction(work)
    # Only the outermost block could start again; it was rolled back whole.
    assert runs == [1]
    assert _documents() == []
