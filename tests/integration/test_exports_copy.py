"""PostgreSQL writes the items CSV with ``COPY``: the same bytes as the Python path.

The ``COPY`` path (``app.services.exports.queries.copy_item_rows``) formats and
neutralises cells in SQL; the Python path does it with ``csv`` and
:func:`~app.services.exports.neutralise_formula`. Two implementations of one
format, so these tests compare them byte for byte: on generated text
(hypothesis: formula prefixes, quotes, commas, CR/LF, non-ASCII, empty
strings), in chunks of any size, under every filter. PostgreSQL
only: SQLite has no ``COPY`` and always takes the Python path.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.extensions import db
from app.models import ProcessingJob
from app.services import exports
from app.services.exports import ItemRows
from app.services.processing_jobs.job_filter import JobFilter, TimeField
from tests.integration.test_exports_streaming import _recorded

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)

# Text a worker might send: anything but NUL (PostgreSQL text cannot hold it;
# the recorder replaces it) and lone surrogates (also replaced), with the
# characters CSV and spreadsheets care about made likely.
_tricky = st.sampled_from(["=", "+", "-", "@", "\t", "\r", "\n", "\r\n", ",", '"', "'", " ", "é", "\u2028", "\\.",
                          "\x1b", "\x7f", "\x9b", "\x01", "\\u001b", "\u202e", "\u2066", "\u200f", "\uff1d",
                          "\uff20"])
_char = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
text = st.lists(st.one_of(_tricky, st.text(_char, max_size=6)), max_size=5).map("".join)

entity = st.one_of(
    st.fixed_dictionaries({}, optional={"type": text, "code": text, "index": st.integers(0, 99)}),
    text,  # not an object: no entity cells
)
item = st.fixed_dictionaries(
    {},
    optional={"code": st.one_of(text, st.sampled_from(["c.0", "c.1"])),
              "severity": st.sampled_from(["error", "warning", ""]), "pointer": text,
              "message": text, "entity": entity},
)
details = st.one_of(
    st.lists(item, max_size=4).map(
        lambda items: {"schema_version": 1, "errors": items, "error_count": len(items), "truncated": False}
    ),
    st.none(),
    st.just({"schema_version": 2, "errors": [{"code": "not-v1"}]}),
    st.just({"schema_version": 1, "errors": "not an array"}),
)
job = st.fixed_dictionaries({
    "document_id": text.filter(lambda t: len(t) <= 200),
    "job_type": st.sampled_from(["entity_extraction", "-x", "ocr.v2"]),
    "error_message": text,
    "error_details": details,
    "error_format": st.sampled_from(["normalized", "free-form", None]),
    "status": st.sampled_from(["Validation_Failed", "Failed", "Completed"]),
    "microsecond": st.sampled_from([0, 1, 500_000, 999_999]),
})


def _store(jobs: list[dict[str, Any]]) -> None:
    db.session.execute(sa.delete(ProcessingJob))
    for n, fields in enumerate(jobs):
        at = T0 + timedelta(minutes=n)
        db.session.add(ProcessingJob(
            id=uuid.uuid4(), document_id=fields["document_id"], job_type=fields.get("job_type", "entity_extraction"),
            status=fields["status"],
            error_message=fields["error_message"], error_details=fields["error_details"],
            error_format=fields["error_format"], created_at=at,
            completed_at=at + timedelta(seconds=5, microseconds=fields["microsecond"]),
        ))
    db.session.commit()


def _both(job_filter: JobFilter, items: ItemRows = ItemRows(), **kwargs: Any) -> tuple[str, str]:
    python = "".join(exports.iter_job_errors_csv(job_filter, use_copy=False, items=items))
    copied = "".join(exports.iter_job_errors_csv(job_filter, use_copy=True, items=items, **kwargs))
    return python, copied


#: Prefixes of job_url: the app's own URL, built from the request's Host.
_prefixes = st.sampled_from(["/jobs/", "http://localhost/jobs/", 'https://a,b"c/jobs/', "http://x\r\ny/jobs/"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(job, min_size=1, max_size=6), prefix=_prefixes)
def test_copy_writes_the_same_bytes_as_the_csv_module(app, jobs, prefix):
    with app.app_context():
        _store(jobs)
        python, copied = _both(JobFilter(), ItemRows(job_url_prefix=prefix), batch_size=3)
    assert copied == python
    parsed = list(csv.reader(io.StringIO(copied.removeprefix("\ufeff"), newline="")))
    assert len(parsed) == 1 + sum(
        max(len(j["error_details"]["errors"]), 1)
        if j["error_format"] != "free-form" and isinstance(j["error_details"], dict)
        and j["error_details"].get("schema_version") == 1 and isinstance(j["error_details"]["errors"], list)
        else 1
        for j in jobs
    )


@pytest.fixture
def failures(app) -> list[str]:
    """40 jobs, newest first: every third ``Failed`` without details, the
    others ``Validation_Failed`` with ``n % 7`` items (one with 12)."""
    with app.app_context():
        jobs = []
        for n in range(40):
            count = 12 if n == 17 else n % 7
            items = [{"code": f"c.{k % 3}", "severity": "error", "message": f"=m {n}.{k}", "pointer": f"/e/{k}"}
                     for k in range(count)]
            failed = n % 3 == 0
            jobs.append({
                "document_id": f"doc-{n % 5}", "error_message": f"failure {n}",
                "error_details": None if failed else {"schema_version": 1, "errors": items,
                                                      "error_count": count, "truncated": False},
                "error_format": None if failed else "normalized",
                "status": "Failed" if failed else "Validation_Failed", "microsecond": n * 1000,
            })
        _store(jobs)
        return [str(i) for i in db.session.scalars(
            sa.select(ProcessingJob.id).order_by(ProcessingJob.created_at.desc()))]


@pytest.mark.parametrize(
    "job_filter",
    [
        JobFilter(),
        JobFilter(statuses=()),
        JobFilter(error_code="c.2"),
        JobFilter(document_id="doc-3"),
        JobFilter(time_field=TimeField.COMPLETED, time_from=T0 + timedelta(minutes=5),
                  time_to=T0 + timedelta(minutes=30)),
        JobFilter(text="failure 1"),
        JobFilter(text="M 1"),
    ],
    ids=["default", "all-statuses", "error-code", "document", "completed-window", "text", "item-text"],
)
@pytest.mark.parametrize("chunk_rows", [1, 5, 2_000])
@pytest.mark.parametrize("matching_only", [True, False], ids=["matching-items", "all-items"])
def test_chunks_and_filters_do_not_change_the_bytes(app, failures, job_filter, chunk_rows, matching_only):
    with app.app_context():
        python, copied = _both(job_filter, ItemRows(matching_only=matching_only), batch_size=chunk_rows)
    assert copied == python
    assert copied.count("\r\n") > 1  # the filter matched something: not two empty files


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(job, min_size=1, max_size=6), code=st.sampled_from(["c.0", "c.1", ""]))
def test_only_the_matching_items_by_both_paths(app, jobs, code):
    """With an error_code, both paths write the rows of the items with that
    code alone, and the Python path agrees with the envelope read in Python."""
    with app.app_context():
        _store(jobs)
        python, copied = _both(JobFilter(statuses=(), error_code=code), batch_size=2)
    assert copied == python
    parsed = list(csv.DictReader(io.StringIO(copied.removeprefix("\ufeff"), newline="")))
    assert [row["code"] for row in parsed] == [code] * sum(
        1 for j in reversed(jobs) if j["error_format"] != "free-form" and isinstance(j["error_details"], dict)
        and j["error_details"].get("schema_version") == 1 and isinstance(j["error_details"]["errors"], list)
        for i in j["error_details"]["errors"] if isinstance(i, dict) and i.get("code") == code
    )


def test_postgresql_uses_copy_by_default_and_counts_rows(app, failures, monkeypatch):
    calls: list[int] = []
    real = exports.queries.copy_item_rows

    def spy(job_filter, chunk_rows, *rest):  # noqa: ANN001, ANN002, ANN202
        calls.append(chunk_rows)
        return real(job_filter, chunk_rows, *rest)

    monkeypatch.setattr(exports.queries, "copy_item_rows", spy)
    finished: list[tuple[int, bool]] = []
    with app.app_context():
        chunks = list(exports.iter_job_errors_csv(JobFilter(), on_finish=_recorded(finished), batch_size=7))
    assert calls == [7]
    rows = list(csv.reader(io.StringIO("".join(chunks).removeprefix("\ufeff"), newline="")))
    assert finished == [(len(rows) - 1, True)]
    # Rows are handed on as they arrive: chunks of 7 rows, the first after the header.
    assert [chunk.count("\r\n") for chunk in chunks[:-1]] == [1 + 7] + [7] * (len(chunks) - 2)


def test_a_slow_reader_is_cut_off_by_the_timeout(app):
    """A download slower than its statement timeout (the app's
    EXPORT_STATEMENT_TIMEOUT_MS, passed in by the view) is ended by the
    server: enough rows (about 25 MB) that the COPY outlives its timeout
    while the client reads slowly.

    The client keeps reading, slowly, rather than stopping: PostgreSQL
    does not act on a cancel while its backend is blocked writing to a
    full socket, so a reader that stopped altogether left the COPY blocked
    for ever once the socket filled before the timeout (a quiet machine;
    the suite then hung in the teardown, on the connection the suspended
    COPY still held)."""
    message = "x" * 400
    items = [{"code": "c", "severity": "error", "message": message, "pointer": "/p"} for _ in range(10)]
    envelope = {"schema_version": 1, "errors": items, "error_count": 10, "truncated": False}
    with app.app_context():
        db.session.execute(sa.insert(ProcessingJob), [
            {"id": uuid.uuid4(), "document_id": f"doc-{n}", "status": "Validation_Failed", "error_message": "m",
             "error_details": envelope, "error_format": "normalized", "created_at": T0 + timedelta(seconds=n),
             "completed_at": T0 + timedelta(seconds=n)}
            for n in range(5_000)
        ])
        db.session.commit()
    with app.app_context():
        # The timeout must let the first rows out (the COPY sorts before
        # its first row, which a busy machine can stretch past 2 s) and
        # then end the COPY while the reader dawdles. A timeout that ends
        # it before the first chunk proves nothing: try again with twice
        # the time, a few times.
        for timeout_ms in (2_000, 4_000, 8_000, 16_000):
            stream = exports.iter_job_errors_csv(JobFilter(), batch_size=100, statement_timeout_ms=timeout_ms)
            try:
                next(stream)
                break
            except sa.exc.OperationalError as error:
                assert isinstance(error.orig, psycopg.errors.QueryCanceled), error
                db.session.rollback()
            except psycopg.errors.QueryCanceled:
                db.session.rollback()
        else:
            pytest.fail("the COPY's first rows never came within 16 s")
        # About 100 chunks of 100 rows (5 MB) per timeout: by the time the
        # timeout fires the client has read a fifth of the rows, and the
        # socket's buffers (a few MB) cannot hold the rest, so the COPY is
        # still writing; each read lets the backend write again and see the
        # cancel between rows.
        pause_s = timeout_ms / 100_000
        deadline = time.monotonic() + 200 * pause_s + 60
        try:
            with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
                for _chunk in stream:
                    assert time.monotonic() < deadline, "the export's statement was not cancelled"
                    time.sleep(pause_s)  # the slow reader itself, not a wait for a condition
        finally:
            stream.close()  # never leave the COPY holding the connection (the teardown would wait on it)
        assert not db.session().in_transaction()
        # The connection still serves, with the usual timeout: the export's
        # was SET LOCAL, gone with its transaction.
        assert db.session.execute(sa.text("SHOW statement_timeout")).scalar_one() != "300ms"
        db.session.rollback()


def test_one_snapshot_for_the_whole_export(app, failures):
    """Jobs deleted by another connection mid-export still come out: one
    statement, one snapshot."""
    with app.app_context():
        expected = "".join(exports.iter_job_errors_csv(JobFilter(), use_copy=True))
        stream = exports.iter_job_errors_csv(JobFilter(), use_copy=True, batch_size=3)
        first = next(stream)
        with db.engine.begin() as other:
            other.execute(sa.delete(ProcessingJob).where(ProcessingJob.id.in_(
                [uuid.UUID(i) for i in failures[-10:]])))
        assert first + "".join(stream) == expected


def test_closing_early_ends_the_copy_and_the_transaction(app, failures):
    finished: list[tuple[int, bool]] = []
    with app.app_context():
        stream = exports.iter_job_errors_csv(JobFilter(), use_copy=True, batch_size=3, on_finish=_recorded(finished))
        first = next(stream)
        stream.close()
        assert finished == [(first.count("\r\n") - 1, False)]  # closed early: not complete
        assert not db.session().in_transaction()
        busy = db.session.connection().exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid()"
            " AND datname = current_database()"
        ).scalar_one()
        db.session.rollback()
    assert busy == 0
