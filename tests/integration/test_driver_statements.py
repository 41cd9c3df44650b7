"""Hot-path statements sent to the driver (app/services/driver_statements.py):
the same values in and out as ``Connection.execute``, the engine's cursor
events, and SQLAlchemy's errors. On SQLite the Core path runs; on PostgreSQL
the direct one; the assertions are the same."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

from app.extensions import db
from app.models import JobFailure, ProcessingJob
from app.models.types import utcnow
from app.services.driver_statements import DriverStatement
from app.services.processing_jobs.lifecycle import create_job
from app.unit_of_work import write_transaction

JOBS = ProcessingJob.__table__
READ_JOB = sa.select(*JOBS.c).where(JOBS.c.id == sa.bindparam("job_id"))
SET_KEYS = ("status", "error_message", "error_details", "error_format", "completed_at", "updated_at")
SET_JOB = sa.update(JOBS).where(JOBS.c.id == sa.bindparam("job_id"))


def _values(n: int, details):  # noqa: ANN001, ANN202
    now = utcnow() - timedelta(minutes=n)
    return {"status": "Validation_Failed", "error_message": f"m{n}", "error_details": details,
            "error_format": "normalized" if details is not None else None, "completed_at": now, "updated_at": now}


@pytest.mark.parametrize("details", [None, {"errors": [{"code": "é", "n": 1.5, "x": [None, True]}]}, "text", 3])
def test_a_write_and_a_read_match_core(app_ctx, details):
    core_job, direct_job = create_job("doc-core").id, create_job("doc-direct").id
    values = _values(1, details)
    with write_transaction():
        connection = db.session.connection()
        connection.execute(SET_JOB, {"job_id": core_job, **values})
        direct_write = DriverStatement(SET_JOB, keys=SET_KEYS)
        assert direct_write.rows(connection, {"job_id": direct_job, **values}) == []
    with write_transaction():
        connection = db.session.connection()
        through_core = dict(connection.execute(READ_JOB, {"job_id": core_job}).one()._mapping)
        direct = DriverStatement(READ_JOB).first(connection, {"job_id": direct_job})
        # SQL NULL and JSON null stay apart as Core keeps them.
        stored = sa.select(JOBS.c.error_details.is_(None)).where(JOBS.c.id == sa.bindparam("job_id"))
        assert connection.execute(stored, {"job_id": core_job}).scalar() == connection.execute(
            stored, {"job_id": direct_job}).scalar()
    assert direct is not None
    for key in ("id", "document_id", "created_at", "updated_at"):
        through_core.pop(key), direct.pop(key)
    assert direct == through_core
    assert direct["completed_at"].utcoffset() == timedelta(0)
    assert DriverStatement(READ_JOB).first(db.session.connection(), {"job_id": uuid.uuid4()}) is None


def test_statements_reach_the_engine_s_cursor_events(app_ctx):
    job_id = create_job("doc-events").id
    seen = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen.append(("before", statement.split()[0], str(parameters)))

    def after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen.append(("after", statement.split()[0], str(parameters)))

    sa.event.listen(db.engine, "before_cursor_execute", before)
    sa.event.listen(db.engine, "after_cursor_execute", after)
    try:
        DriverStatement(READ_JOB).first(db.session.connection(), {"job_id": job_id})
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)
        sa.event.remove(db.engine, "after_cursor_execute", after)
        db.session.rollback()
    assert [(when, word) for when, word, _ in seen] == [("before", "SELECT"), ("after", "SELECT")]
    # The parameters as the driver receives them (a UUID or its hex).
    assert all(job_id.hex in parameters.replace("-", "") for _, _, parameters in seen)


def test_a_database_error_is_raised_as_sqlalchemy_raises_it(app_ctx):
    job_id = create_job("doc-error").id
    insert = DriverStatement(sa.insert(JobFailure.__table__), keys=(
        "id", "job_id", "status", "error_message", "error_details", "error_format", "recorded_at",
        "worker_name", "worker_version", "started_at",
    ))
    row = {"id": uuid.uuid4(), "job_id": job_id, "status": "Failed", "error_message": "m", "error_details": None,
           "error_format": None, "recorded_at": utcnow(), "worker_name": None, "worker_version": None,
           "started_at": None}
    with pytest.raises(sa.exc.IntegrityError):
        with write_transaction():
            connection = db.session.connection()
            insert.rows(connection, row)
            insert.rows(connection, row)  # the same id again
    assert db.session.scalar(sa.select(sa.func.count()).select_from(JobFailure)) == 0


def test_a_column_default_left_to_python_is_refused():
    # processing_jobs.id and created_at have Python-side defaults, which only
    # SQLAlchemy's execution context computes.
    statement = DriverStatement(sa.insert(JOBS), keys=("document_id",))
    with pytest.raises(ValueError, match="Python-side default"):
        statement._for(psycopg_dialect.dialect())  # noqa: SLF001


def test_a_value_written_into_the_statement_is_sent_too(app_ctx):
    job_id = create_job("doc-fixed").id
    def document_of(status: str) -> DriverStatement:
        return DriverStatement(
            sa.select(JOBS.c.document_id).where(JOBS.c.status == status, JOBS.c.id == sa.bindparam("job_id"))
        )

    pending, failed = document_of("Pending"), document_of("Failed")
    connection = db.session.connection()
    assert pending.first(connection, {"job_id": job_id}) == {"document_id": "doc-fixed"}
    assert failed.first(connection, {"job_id": job_id}) is None
    db.session.rollback()


def test_psycopg_keeps_the_conversion_of_a_statement_longer_than_its_cache_limit(app_ctx, backend):
    # psycopg converts ``%(name)s`` placeholders on every execute and caches
    # the result only up to a length (4,096 bytes in 3.3); the failure-group
    # statement is longer, and converting it per report cost 0.3 ms of CPU.
    long_read = sa.select(*JOBS.c, *(sa.literal_column(f"'{n:04}'").label(f"pad_{n}") for n in range(300))).where(
        JOBS.c.id == sa.bindparam("job_id"))
    statement = DriverStatement(long_read)
    job_id = create_job("doc-long").id
    connection = db.session.connection()
    assert statement.first(connection, {"job_id": job_id})["pad_299"] == "0299"
    if backend != "postgresql":
        return  # SQLite runs the Core path
    from psycopg import _queries

    sql = statement._for(connection.dialect).sql  # noqa: SLF001
    assert len(sql.encode()) > 4096 and _queries.MAX_CACHED_STATEMENT_LENGTH >= len(sql.encode())
    hits = _queries._query2pg.cache_info().hits  # noqa: SLF001
    assert statement.first(connection, {"job_id": job_id})["pad_0"] == "0000"
    assert _queries._query2pg.cache_info().hits == hits + 1  # noqa: SLF001
    db.session.rollback()
