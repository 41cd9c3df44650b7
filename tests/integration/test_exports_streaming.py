"""Exports stream in constant memory and report their row count.

Runs on SQLite and PostgreSQL. No timings: what is checked is that the
first chunk is produced from the first batch alone, that PostgreSQL reads
through a server-side cursor, that the read transaction and connection are
released however the stream ends, and that ``on_finish`` gets the exact
number of rows handed out.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.services import exports
from app.services.exports import ExportRows
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.lifecycle import complete_job, create_job

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
JOBS = 23
BATCH = 4


def _recorded(finished: list[tuple[int, bool]]):  # noqa: ANN202
    """An ``on_finish`` that notes each call's ``(row_count, complete)``."""
    return lambda count, complete: finished.append((count, complete))


def _envelope(count: int) -> dict[str, Any]:
    items = [{"code": f"c.{n}", "severity": "error", "message": f"m {n}", "pointer": f"/entities/{n}"}
             for n in range(count)]
    return {"schema_version": 1, "errors": items, "error_count": count, "truncated": False}


@pytest.fixture
def many_jobs(app) -> list[str]:
    """``JOBS`` failed jobs, newest first; job ``n`` (0 = oldest) has ``n % 3 + 1`` items."""
    with app.app_context():
        ids = []
        for n in range(JOBS):
            job = ProcessingJob(
                id=uuid.uuid4(), document_id=f"doc-{n}", status="Validation_Failed",
                error_message=f"failure {n}", error_details=_envelope(n % 3 + 1), error_format="normalized",
                created_at=T0 + timedelta(minutes=n), completed_at=T0 + timedelta(minutes=n, seconds=30),
            )
            db.session.add(job)
            ids.append(str(job.id))
        db.session.commit()
        return ids[::-1]


ITEM_ROWS = sum(n % 3 + 1 for n in range(JOBS))


@pytest.fixture
def statements(app) -> Iterator[list[tuple[Any, str, dict[str, Any]]]]:
    """(DB-API cursor, SQL, execution options) of each export query run."""
    seen: list[tuple[Any, str, dict[str, Any]]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("SELECT") and "processing_jobs" in statement:
            seen.append((cursor, statement, dict(context.execution_options)))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", record)


def _open_cursors() -> int:
    return db.session.connection().exec_driver_sql("SELECT count(*) FROM pg_cursors").scalar_one()


def test_first_chunk_comes_from_the_first_batch_through_a_server_side_cursor(
    app, backend, many_jobs, statements
):
    finished: list[tuple[int, bool]] = []
    with app.app_context():
        stream = exports.iter_job_errors_csv(
            JobFilter(), ExportRows.JOBS, on_finish=_recorded(finished), batch_size=BATCH
        )
        first = next(stream)
        # Header plus exactly one batch of jobs: the rest is still in the database.
        rows = list(csv.reader(io.StringIO(first.lstrip("\ufeff"), newline="")))
        assert [r[0] for r in rows[1:]] == many_jobs[:BATCH]
        ((cursor, _sql, options),) = statements
        assert options["yield_per"] == BATCH
        if backend == "postgresql":
            assert isinstance(cursor, psycopg.ServerCursor)  # DECLARE ... CURSOR; FETCH FORWARD 4
            assert _open_cursors() == 1
        assert finished == []
        rest = list(stream)
        assert len(rest) == -(-JOBS // BATCH) - 1  # one chunk per further batch
        every = list(csv.reader(io.StringIO((first + "".join(rest)).lstrip("\ufeff"), newline="")))
        assert [r[0] for r in every[1:]] == many_jobs
        assert finished == [(JOBS, True)]
        assert not db.session().in_transaction()  # the read transaction is over
        if backend == "postgresql":
            assert _open_cursors() == 0
            db.session.rollback()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda f, **kw: exports.iter_job_errors_csv(f, **kw), ITEM_ROWS),
        (lambda f, **kw: exports.iter_job_errors_csv(f, ExportRows.JOBS, **kw), JOBS),
        (lambda f, **kw: exports.iter_job_errors_ndjson(f, **kw), ITEM_ROWS),
        (lambda f, **kw: exports.iter_job_errors_ndjson(f, ExportRows.JOBS, **kw), JOBS),
    ],
    ids=["csv-items", "csv-jobs", "ndjson-items", "ndjson-jobs"],
)
def test_on_finish_gets_the_exact_row_count(app, many_jobs, make, expected):
    finished: list[tuple[int, bool]] = []
    with app.app_context():
        text = "".join(make(JobFilter(), on_finish=_recorded(finished), batch_size=BATCH))
    if text.startswith("\ufeff"):
        assert len(list(csv.reader(io.StringIO(text[1:], newline="")))) - 1 == expected
    else:
        assert len([json.loads(line) for line in text.splitlines()]) == expected
    assert finished == [(expected, True)]


def test_on_finish_counts_entities_and_empty_exports(app, many_jobs):
    entity = {"entity_type": "Condition", "text": "asthma", "code": "J45",
              "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.9,
              "span": {"start": 0, "end": 6}}
    finished: list[tuple[int, bool]] = []
    with app.app_context():
        for name in ("a", "b"):
            complete_job(create_job(f"doc-{name}").id, [entity, entity, entity])
        text = "".join(exports.iter_entities_csv(JobFilter(), on_finish=_recorded(finished), batch_size=BATCH))
        assert text.count("\r\n") == 1 + 6
        assert "".join(exports.iter_job_errors_csv(JobFilter(error_code="none"), on_finish=_recorded(finished))) \
            == "\ufeff" + ",".join(exports.ITEM_COLUMNS) + "\r\n"
    assert finished == [(6, True), (0, True)]


def test_a_stream_closed_early_reports_the_rows_handed_out_and_releases_the_database(
    app, backend, many_jobs
):
    finished: list[tuple[int, bool]] = []
    with app.app_context():
        stream = exports.iter_job_errors_ndjson(
            JobFilter(), ExportRows.JOBS, on_finish=_recorded(finished), batch_size=BATCH
        )
        handed_out = next(stream) + next(stream)
        stream.close()  # what a WSGI server does when the client goes away
        assert handed_out.count("\n") == 2 * BATCH
        assert finished == [(2 * BATCH, False)]  # not complete: the audit row says so
        assert not db.session().in_transaction()
        if backend == "postgresql":
            assert _open_cursors() == 0
            db.session.rollback()


def test_the_callback_may_write_once_the_stream_is_over(app, many_jobs):
    """What the audit hook will do: a write transaction inside ``on_finish``."""
    with app.app_context():
        target = many_jobs[-1]

        def on_finish(row_count: int, complete: bool) -> None:
            db.session.execute(
                sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(target))
                .values(acknowledged_by=f"exported {row_count}")
            )
            db.session.commit()

        list(exports.iter_job_errors_csv(JobFilter(), on_finish=on_finish, batch_size=BATCH))
        assert db.session.get(ProcessingJob, uuid.UUID(target)).acknowledged_by == f"exported {ITEM_ROWS}"


def test_the_http_export_is_streamed_in_batches(app, backend, client, many_jobs, monkeypatch, statements):
    monkeypatch.setattr(exports.streaming, "STREAM_BATCH_SIZE", BATCH)
    monkeypatch.setattr(exports.streaming, "COPY_CHUNK_ROWS", BATCH)
    response = client.get("/exports/job-errors.csv", buffered=False)
    try:
        assert response.is_streamed
        chunks = iter(response.response)
        first = next(chunks)
        assert first.startswith(b"\xef\xbb\xbf")
        # The header and one batch of rows (no line breaks in cells here).
        assert first.count(b"\r\n") == 1 + BATCH
        if backend == "sqlite":
            assert statements[0][2]["yield_per"] == BATCH
        # On PostgreSQL the rows come from one COPY, which SQLAlchemy does not
        # see (tests/integration/test_exports_copy.py checks that path).
        rows = list(csv.DictReader(io.StringIO((first + b"".join(chunks)).decode("utf-8-sig"), newline="")))
    finally:
        response.close()
    assert len(rows) == ITEM_ROWS
    assert [r["job_id"] for r in rows if r["code"] == "c.0"] == many_jobs


def test_a_client_going_away_releases_the_connection(app, client, many_jobs, monkeypatch):
    monkeypatch.setattr(exports.streaming, "STREAM_BATCH_SIZE", BATCH)
    response = client.get("/exports/job-errors.ndjson", buffered=False)
    next(iter(response.response))
    with app.app_context():
        pool = db.engine.pool
    assert pool.checkedout() == 1  # the stream holds its read transaction
    response.close()
    assert pool.checkedout() == 0
