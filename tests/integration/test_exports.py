"""Exports of job errors (CSV, NDJSON; per item or per job) and of entities (CSV).

Runs on SQLite and PostgreSQL (the ``app`` fixture). Streaming, the
server-side cursor and the ``on_finish`` row count are in
``test_exports_streaming.py``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from app.errors import InvalidQueryError
from app.extensions import db
from app.models import ProcessingJob
from app.models.access import AuditEvent
from app.registry import get_failure_recorder
from app.services.error_details import envelope_errors as error_items
from app.services.exports import (
    ENTITY_COLUMNS, ITEM_COLUMNS, JOB_ERROR_COLUMNS, neutralise_formula,
)
from app.services.processing_jobs.lifecycle import complete_job, create_job
from app.web.query import parse_items, parse_rows

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
DETAILS = {"errors": [
    {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM",
     "pointer": "/entities/2/value/unit"},
]}
# What the recorder stores for DETAILS: the normalized error-details v1 envelope.
STORED = {"schema_version": 1, **DETAILS, "error_count": 1, "truncated": False}
TRICKY_MESSAGE = "=HYPERLINK(\"http://evil\")\nline two, with comma and \"quotes\""


def insert_job(
    document_id: str,
    *,
    status: str = "Validation_Failed",
    message: str | None = "validation failed",
    details: Any = None,
    error_format: str | None = "normalized",
    created_hours: float = 0,
    job_type: str = "entity_extraction",
) -> str:
    """Store a finished job row as it is (test setup: values the API would refuse
    or change, e.g. a leading tab, exercise the export's own defences)."""
    created = T0 + timedelta(hours=created_hours)
    job = ProcessingJob(
        id=uuid.uuid4(), document_id=document_id, job_type=job_type, status=status, error_message=message,
        error_details=details, error_format=error_format if details is not None else None,
        created_at=created, completed_at=created + timedelta(minutes=1),
    )
    db.session.add(job)
    db.session.commit()
    return str(job.id)


def envelope(*items: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "errors": list(items), "error_count": len(items), "truncated": False}


def item(
    code: str, message: str = "failed", pointer: str = "/entities/0", severity: str = "error"
) -> dict[str, str]:
    return {"code": code, "severity": severity, "message": message, "pointer": pointer}


@pytest.fixture
def jobs(app):
    """A validation failure (envelope), a crash (no details), a completion."""
    with app.app_context():
        recorder = get_failure_recorder()
        failed = create_job("doc-failed")
        recorder.record_validation_failure(failed.id, TRICKY_MESSAGE, DETAILS)
        crashed = create_job("doc-crashed")
        recorder.record_failure(crashed.id, "+worker crashed")
        done = create_job("doc-done")
        complete_job(done.id)
        return {"failed": str(failed.id), "crashed": str(crashed.id), "done": str(done.id)}


def csv_text(response) -> str:
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens the file as UTF-8
    return body.decode("utf-8")[1:]


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_text(response), newline="")))


def csv_header(response) -> list[str]:
    return next(csv.reader(io.StringIO(csv_text(response), newline="")))


def ndjson(response) -> list[dict[str, Any]]:
    text = response.get_data(as_text=True)
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


# -- one row per error item (the default) ------------------------------------------------


def test_csv_has_one_row_per_error_item_with_the_columns_in_order(client, jobs):
    response = client.get("/exports/job-errors.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="job-errors-per-item-\d{8}T\d{6}Z\.csv"', response.headers["Content-Disposition"]
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert csv_header(response) == list(ITEM_COLUMNS) == [
        "job_id", "job_url", "document_id", "job_type", "status", "completed_at", "error_message",
        "code", "severity", "pointer", "message", "entity_type", "entity_code", "group_id", "group_title",
        "group_url",
    ]
    rows = csv_rows(response)
    assert {r["job_id"] for r in rows} == {jobs["failed"], jobs["crashed"]}
    failed = next(r for r in rows if r["job_id"] == jobs["failed"])
    assert failed["job_url"] == f"http://localhost/jobs/{jobs['failed']}"
    assert failed["document_id"] == "doc-failed"
    assert failed["job_type"] == "entity_extraction"
    assert failed["status"] == "Validation_Failed"
    assert failed["error_message"] == "'" + TRICKY_MESSAGE
    assert (failed["entity_type"], failed["entity_code"]) == ("", "")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", failed["completed_at"])
    assert (failed["code"], failed["severity"], failed["pointer"], failed["message"]) == (
        "unit.not_ucum", "error", "/entities/2/value/unit", "unit is not UCUM",
    )
    # A job without details: one row, item columns empty, the job's message.
    crashed = next(r for r in rows if r["job_id"] == jobs["crashed"])
    assert (crashed["code"], crashed["severity"], crashed["pointer"]) == ("", "", "")
    assert crashed["message"] == "'+worker crashed"


def test_items_keep_the_workers_order_and_jobs_are_newest_first(app, client):
    with app.app_context():
        older = insert_job("doc-old", details=envelope(item("a.first"), item("a.second"), item("a.third")))
        newer = insert_job("doc-new", details=envelope(item("b.only")), created_hours=1)
    rows = csv_rows(client.get("/exports/job-errors.csv"))
    assert [(r["job_id"], r["code"]) for r in rows] == [
        (newer, "b.only"), (older, "a.first"), (older, "a.second"), (older, "a.third"),
    ]


def test_a_job_without_envelope_items_gets_one_row_with_its_message(app, client):
    with app.app_context():
        free = insert_job("doc-free", message="could not parse output", error_format="free-form",
                          details={"errors": [item("looks.like.an.item")], "schema_version": 1})
        empty = insert_job("doc-empty", message="no items", details=envelope(), created_hours=1)
        text = insert_job("doc-text", message="plain", details="just a string", error_format="free-form",
                          created_hours=2)
    rows = csv_rows(client.get("/exports/job-errors.csv"))
    assert [r["job_id"] for r in rows] == [text, empty, free]
    for row, message in zip(rows, ["plain", "no items", "could not parse output"]):
        assert (row["code"], row["severity"], row["pointer"], row["message"]) == ("", "", "", message)
    records = ndjson(client.get("/exports/job-errors.ndjson"))
    assert [r["code"] for r in records] == [None, None, None]
    assert records[2]["message"] == "could not parse output"


@pytest.mark.parametrize(
    ("details", "error_format", "is_envelope"),
    [
        (envelope(item("a.b")), "normalized", True),
        (envelope(item("a.b")), None, True),  # a job from before error_format was recorded
        (envelope(item("a.b")), "free-form", False),
        ({**envelope(item("a.b")), "schema_version": 2}, "normalized", False),
        ({**envelope(item("a.b")), "schema_version": "1"}, "normalized", False),
        ({**envelope(item("a.b")), "schema_version": True}, "normalized", False),
        ({**envelope(), "errors": {"0": item("a.b")}}, "normalized", False),
        ([item("a.b")], "normalized", False),
        ("text", "free-form", False),
    ],
    ids=["v1", "legacy-null-format", "declared-free-form", "version-2", "version-string", "version-true",
         "errors-object", "bare-array", "string"],
)
def test_the_database_and_python_agree_on_what_an_envelope_is(
    app, client, details, error_format, is_envelope
):
    with app.app_context():
        job = insert_job("doc", message="job message", details=details, error_format=error_format)
        db.session.execute(  # insert_job leaves error_format NULL only without details
            sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(job))
            .values(error_format=error_format)
        )
        db.session.commit()
    (row,) = csv_rows(client.get("/exports/job-errors.csv"))
    assert (row["code"], row["message"]) == (("a.b", "failed") if is_envelope else ("", "job message"))
    (by_job,) = csv_rows(client.get("/exports/job-errors.csv?rows=jobs"))
    assert by_job["error_count"] == ("1" if is_envelope else "")
    assert (error_items(details, error_format) is not None) is is_envelope


def test_items_that_are_not_objects_give_empty_item_cells(app, client):
    with app.app_context():
        insert_job("doc", message="job message", details=envelope(item("a.b"), "a string", 3),
                   error_format=None)
    rows = csv_rows(client.get("/exports/job-errors.csv"))
    assert [(r["code"], r["severity"], r["pointer"], r["message"]) for r in rows] == [
        ("a.b", "error", "/entities/0", "failed"), ("", "", "", ""), ("", "", "", ""),
    ]


def test_items_follow_the_completed_time_order(app, client):
    with app.app_context():
        first = insert_job("doc-1", details=envelope(item("one.a"), item("one.b")), created_hours=2)
        second = insert_job("doc-2", details=envelope(item("two.a")), created_hours=1)
        db.session.execute(
            sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(second))
            .values(completed_at=T0 + timedelta(hours=5))
        )
        db.session.commit()
    rows = csv_rows(client.get("/exports/job-errors.csv?time_field=completed"))
    assert [(r["job_id"], r["code"]) for r in rows] == [(second, "two.a"), (first, "one.a"), (first, "one.b")]
    assert rows[0]["completed_at"] == "2025-03-01T05:00:00Z"


def test_multi_line_messages_quotes_and_commas_stay_in_one_cell(app, client):
    message = 'first line, with a comma\nsecond "quoted" line\r\nthird line'
    with app.app_context():
        job = insert_job("doc,with \"quotes\"", message="job message", details=envelope(item("x.y", message)))
    response = client.get("/exports/job-errors.csv")
    text = csv_text(response)
    # Rows end in CRLF; the line breaks inside the quoted cell are kept as they are.
    assert text.endswith("\r\n") and text.count("\r\n") == 3  # header, the row, and the one in the message
    (row,) = csv_rows(response)
    assert row["job_id"] == job
    assert row["message"] == message
    assert row["document_id"] == 'doc,with "quotes"'


# -- formula neutralisation -----------------------------------------------------------

PREFIXES = ["=", "+", "-", "@", "\t", "\r"]


@pytest.mark.parametrize("prefix", PREFIXES, ids=["equals", "plus", "minus", "at", "tab", "cr"])
def test_formula_prefixes_are_neutralised_in_every_text_cell(app, client, prefix):
    with app.app_context():
        job = insert_job(
            f"{prefix}doc", message=f"{prefix}job message",
            details=envelope(item(f"{prefix}code", f"{prefix}cmd|' /C calc'!A0", f"{prefix}pointer")),
        )
        free = insert_job(f"{prefix}doc2", message=f"{prefix}free message", details=None, created_hours=-1)
    rows = csv_rows(client.get("/exports/job-errors.csv"))
    assert [r["job_id"] for r in rows] == [job, free]  # ids are not prefixed
    assert rows[0]["document_id"] == f"'{prefix}doc"
    assert rows[0]["code"] == f"'{prefix}code"
    assert rows[0]["pointer"] == f"'{prefix}pointer"
    assert rows[0]["message"] == f"'{prefix}cmd|' /C calc'!A0"
    assert rows[1]["message"] == f"'{prefix}free message"
    (by_job, _) = csv_rows(client.get("/exports/job-errors.csv?rows=jobs"))
    assert by_job["document_id"] == f"'{prefix}doc"
    assert by_job["error_message"] == f"'{prefix}job message"
    # NDJSON keeps the stored strings.
    first = ndjson(client.get("/exports/job-errors.ndjson"))[0]
    assert (first["document_id"], first["code"], first["pointer"], first["message"]) == (
        f"{prefix}doc", f"{prefix}code", f"{prefix}pointer", f"{prefix}cmd|' /C calc'!A0",
    )


def test_neutralise_formula_leaves_other_cells_alone():
    assert neutralise_formula("=1+2") == "'=1+2"
    assert neutralise_formula("'=1+2") == "'=1+2"  # already text
    assert neutralise_formula("a=b") == "a=b"
    # What a spreadsheet may trim before a formula counts (a support trial).
    assert neutralise_formula(" =1") == "' =1" and neutralise_formula(" \n @SUM(A1)") == "' \n @SUM(A1)"
    assert neutralise_formula("\n=1+1") == "'\n=1+1" and neutralise_formula(" a=1") == " a=1"
    assert neutralise_formula("  ") == "  "
    assert neutralise_formula("") == ""


# -- one row per job ------------------------------------------------------------------


def test_rows_jobs_gives_one_row_per_job_with_details_and_count(client, jobs):
    response = client.get("/exports/job-errors.csv?rows=jobs")
    assert response.status_code == 200
    # Not the per-item file's name: both can sit in one Downloads folder.
    assert re.fullmatch(
        r'attachment; filename="job-errors-per-job-\d{8}T\d{6}Z\.csv"', response.headers["Content-Disposition"]
    )
    assert csv_header(response) == list(JOB_ERROR_COLUMNS) == [
        "job_id", "job_url", "document_id", "job_type", "status", "completed_at", "error_message",
        "error_details", "error_count",
    ]
    rows = {r["job_id"]: r for r in csv_rows(response)}
    assert set(rows) == {jobs["failed"], jobs["crashed"]}
    # The job's page, absolute, as in the per-item export: a support person opens it from the sheet.
    assert {r["job_url"] for r in rows.values()} == {f"http://localhost/jobs/{job}" for job in rows}
    failed = rows[jobs["failed"]]
    assert json.loads(failed["error_details"]) == STORED
    assert failed["error_count"] == "1"
    assert failed["job_type"] == "entity_extraction"
    assert failed["error_message"] == "'" + TRICKY_MESSAGE
    crashed = rows[jobs["crashed"]]
    assert (crashed["error_details"], crashed["error_count"]) == ("", "")


def test_the_job_error_files_share_their_common_columns_in_one_order():
    """The job's columns in the per-item and the per-job files (CSV header
    and NDJSON keys) come in one order, so a support person can line the
    files up side by side."""
    shared = set(ITEM_COLUMNS) & set(JOB_ERROR_COLUMNS)
    assert [c for c in ITEM_COLUMNS if c in shared] == [c for c in JOB_ERROR_COLUMNS if c in shared]
    assert {"status", "completed_at", "error_message"} <= shared


def test_rows_jobs_counts_what_the_worker_reported(app, client):
    details = {**envelope(item("a.b"), item("c.d")), "error_count": 7, "truncated": True}
    with app.app_context():
        insert_job("doc-many", details=details)
        insert_job("doc-free", details={"errors": [], "error_count": 3}, error_format="free-form",
                   created_hours=-1)
    rows = csv_rows(client.get("/exports/job-errors.csv?rows=jobs"))
    assert [r["error_count"] for r in rows] == ["7", ""]
    records = ndjson(client.get("/exports/job-errors.ndjson?rows=jobs"))
    assert [r["error_count"] for r in records] == [7, None]
    assert records[1]["error_details"] == {"errors": [], "error_count": 3}


def test_ndjson_items_are_one_object_per_line_with_original_strings(client, jobs):
    response = client.get("/exports/job-errors.ndjson")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(
        r'attachment; filename="job-errors-per-item-\d{8}T\d{6}Z\.ndjson"', response.headers["Content-Disposition"]
    )
    records = {r["job_id"]: r for r in ndjson(response)}
    assert set(records) == {jobs["failed"], jobs["crashed"]}
    failed = records[jobs["failed"]]
    assert list(failed) == list(ITEM_COLUMNS)
    assert (failed["code"], failed["severity"], failed["pointer"], failed["message"]) == (
        "unit.not_ucum", "error", "/entities/2/value/unit", "unit is not UCUM",
    )
    crashed = records[jobs["crashed"]]
    assert crashed["message"] == "+worker crashed"
    assert (crashed["code"], crashed["severity"], crashed["pointer"]) == (None, None, None)


def test_ndjson_rows_jobs_keeps_details_as_json(client, jobs):
    records = {r["job_id"]: r for r in ndjson(client.get("/exports/job-errors.ndjson?rows=jobs"))}
    failed = records[jobs["failed"]]
    assert list(failed) == list(JOB_ERROR_COLUMNS)
    assert failed["job_url"] == f"http://localhost/jobs/{jobs['failed']}"
    assert failed["error_message"] == TRICKY_MESSAGE
    assert failed["error_details"] == STORED
    assert failed["error_count"] == 1
    assert records[jobs["crashed"]]["error_details"] is None


# -- filters and bad queries ----------------------------------------------------------


def test_exports_follow_the_list_filters(app, client, jobs):
    with app.app_context():
        coded = insert_job("doc-coded", message="Unit trouble",
                           details=envelope(item("x.one"), item("unit.not_ucum")))
    rows = csv_rows(client.get("/exports/job-errors.csv?status=Completed"))
    assert [r["job_id"] for r in rows] == [jobs["done"]]
    rows = csv_rows(client.get("/exports/job-errors.csv?status=all&document_id=doc-crashed"))
    assert [r["job_id"] for r in rows] == [jobs["crashed"]]
    # error_code chooses jobs, and of their items the ones with that code;
    # items=all exports every item of the chosen jobs.
    rows = csv_rows(client.get("/exports/job-errors.csv?error_code=unit.not_ucum"))
    assert [(r["job_id"], r["code"]) for r in rows] == [(jobs["failed"], "unit.not_ucum"), (coded, "unit.not_ucum")]
    rows = csv_rows(client.get("/exports/job-errors.csv?error_code=unit.not_ucum&items=all"))
    assert [(r["job_id"], r["code"]) for r in rows] == [
        (jobs["failed"], "unit.not_ucum"), (coded, "x.one"), (coded, "unit.not_ucum"),
    ]
    records = ndjson(client.get("/exports/job-errors.ndjson?error_code=unit.not_ucum"))
    assert [(r["job_id"], r["code"]) for r in records] == [(jobs["failed"], "unit.not_ucum"), (coded, "unit.not_ucum")]
    # rows=jobs: one row per chosen job, whatever items says.
    rows = csv_rows(client.get("/exports/job-errors.csv?error_code=unit.not_ucum&rows=jobs"))
    assert [r["job_id"] for r in rows] == [jobs["failed"], coded]
    rows = csv_rows(client.get("/exports/job-errors.csv?q=UNIT+TROUBLE&rows=jobs"))
    assert [r["job_id"] for r in rows] == [coded]
    records = ndjson(client.get("/exports/job-errors.ndjson?status=Failed"))
    assert [r["job_id"] for r in records] == [jobs["crashed"]]


def test_a_search_exports_the_items_that_hold_the_text(app, client):
    """With ``q``, an item row is written when the item holds the text (the
    search's fields: message, code, pointer, entity type and code); a job
    found by its document id, id or message, none of whose items holds the
    text, is written whole. ``items=all`` and ``rows=jobs`` as for error_code."""
    with app.app_context():
        mixed = insert_job("doc-mixed", created_hours=2, details=envelope(
            item("x.one", "fine"), item("icd.unknown", "code Z99.9 unknown"),
            {**item("x.two"), "entity": {"type": "Condition", "code": "Z99.1"}}, {**item("x.three"), "pointer": 99},
        ))
        by_document = insert_job("doc-z99", created_hours=1, details=envelope(item("a"), item("b")))
        insert_job("doc-other", details=envelope(item("z.nine")))
    expected = [(mixed, "icd.unknown"), (mixed, "x.two"), (by_document, "a"), (by_document, "b")]
    rows = csv_rows(client.get("/exports/job-errors.csv?q=z99"))
    assert [(r["job_id"], r["code"]) for r in rows] == expected
    records = ndjson(client.get("/exports/job-errors.ndjson?q=z99"))
    assert [(r["job_id"], r["code"]) for r in records] == expected
    rows = csv_rows(client.get("/exports/job-errors.csv?q=z99&items=all"))
    assert [r["code"] for r in rows] == ["x.one", "icd.unknown", "x.two", "x.three", "a", "b"]
    rows = csv_rows(client.get("/exports/job-errors.csv?q=z99&rows=jobs"))
    assert [r["job_id"] for r in rows] == [mixed, by_document]
    # Literal and case-insensitive, as the search: "_" is no wildcard.
    assert csv_rows(client.get("/exports/job-errors.csv?q=X_ONE")) == []
    assert [r["code"] for r in csv_rows(client.get("/exports/job-errors.csv?q=X.ONE"))] == ["x.one"]


@pytest.mark.parametrize(
    ("query", "tag"),
    [
        ("error_code=schema.maximum", "-code-schema.maximum"),
        ("group=<group>&error_code=x/y%20z&job_type=ocr", "-group-<group>-code-x_y_z-type-ocr"),
        ("error_code=" + "%C3%A9" * 50, "-code-" + "_" * 40),  # "é" percent-encoded, as a browser sends it
        ("job_type=ocr", "-type-ocr"),
        # A document id or a search could name a patient: never in a file name.
        ("document_id=Jane%20Doe&q=Doe", ""),
    ],
)
def test_the_file_name_says_what_narrowed_the_export(app, client, query, tag):
    from app.extensions import db
    from app.models import FailureGroup

    with app.app_context():
        db.session.add(FailureGroup(fingerprint="f" * 64, grouping_version=1, title="t", code="x", severity="error",
                                    sample_message="m"))
        db.session.commit()
        group = str(db.session.scalar(sa.select(sa.func.max(FailureGroup.id))))
    query, tag = query.replace("<group>", group), tag.replace("<group>", group)
    for path, name in (("/exports/job-errors.csv", "job-errors-per-item"),
                       ("/exports/job-errors.ndjson?rows=jobs", "job-errors-per-job"),
                       ("/exports/entities.csv", "entities")):
        if path.startswith("/exports/entities") and ("error_code" in query or "group" in query):
            continue  # refused there: no completed job has a failure (test_entities_csv_refuses_...)
        separator = "&" if "?" in path else "?"
        response = client.get(f"{path}{separator}{query}")
        body = response.get_data(as_text=True)  # the stream read to its end, its contexts closed
        assert response.status_code == 200, (path, body[:300])
        extension = path.rsplit(".", 1)[1].split("?")[0]
        assert re.fullmatch(rf'attachment; filename="{re.escape(name + tag)}-\d{{8}}T\d{{6}}Z\.{extension}"',
                            response.headers["Content-Disposition"]), response.headers["Content-Disposition"]


def test_an_empty_export_is_the_header_alone(client):
    response = client.get("/exports/job-errors.csv?error_code=none.such")
    assert response.get_data() == "\ufeff".encode() + (",".join(ITEM_COLUMNS) + "\r\n").encode()
    assert client.get("/exports/job-errors.ndjson?error_code=none.such").get_data() == b""


@pytest.mark.parametrize("path", ["/exports/job-errors.csv", "/exports/job-errors.ndjson"])
def test_an_unknown_rows_value_is_a_400_naming_rows(client, path):
    response = client.get(f"{path}?rows=entities")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "<code>rows</code>" in response.get_data(as_text=True)


def test_every_bad_export_parameter_is_named_at_once(client):
    response = client.get("/exports/job-errors.csv?rows=all&status=nope&items=some")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "<code>rows</code>" in html and "<code>status</code>" in html and "<code>items</code>" in html


@pytest.mark.parametrize("path", ["/exports/job-errors.csv", "/exports/job-errors.ndjson", "/exports/entities.csv"])
@pytest.mark.parametrize("query", ["range=1h", "limit=50", "bogus=1"])
def test_a_parameter_the_export_does_not_read_is_a_400_and_nothing_is_audited(app, client, path, query):
    # A trial exported every job with ?range=1h while the audit log read "range = 1h".
    from app.models import AuditEvent

    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                   .where(AuditEvent.action.like("export.%")))
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    assert f"<code>{query.split('=')[0]}</code>" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action.like("export.%"))) == before


def test_the_lists_export_links_carry_its_filter_alone(client):
    html = client.get("/jobs?status=Failed&limit=25").get_data(as_text=True)
    links = re.findall(r'href="(/exports/[^"]+)"', html)
    assert links and all("limit=" not in link for link in links)
    assert all(client.get(link.replace("&amp;", "&")).status_code == 200 for link in links)


def test_only_string_codes_in_object_items_match(app, client):
    """The item condition is the job filter's: a string ``code`` equal to the
    filter's, in an object item; a number 5 is not the code "5"."""
    with app.app_context():
        job = insert_job("doc", details=envelope(item("5", "the string"), {**item("x"), "code": 5}, "5"))
    rows = csv_rows(client.get("/exports/job-errors.csv?error_code=5"))
    assert [(r["job_id"], r["message"]) for r in rows] == [(job, "the string")]


def test_items_carry_their_entity(app, client):
    entity = {"type": "Condition", "code": "R07.9X", "index": 2}
    with app.app_context():
        job = insert_job("doc", details=envelope(
            {**item("code.unknown_icd10cm"), "entity": entity},
            {**item("schema.required"), "entity": {"index": 0}},
            item("x.y"),
        ))
    rows = csv_rows(client.get("/exports/job-errors.csv"))
    assert [(r["job_id"], r["entity_type"], r["entity_code"]) for r in rows] == [
        (job, "Condition", "R07.9X"), (job, "", ""), (job, "", ""),
    ]
    records = ndjson(client.get("/exports/job-errors.ndjson"))
    assert [(r["entity_type"], r["entity_code"]) for r in records] == [("Condition", "R07.9X"), (None, None), (None, None)]
    assert records[0]["job_url"] == f"http://localhost/jobs/{job}"


def test_parse_items():
    assert parse_items(None) == parse_items("") == parse_items("matching") == "matching"
    assert parse_items("all") == "all"
    with pytest.raises(InvalidQueryError) as caught:
        parse_items("every")
    assert caught.value.errors[0]["parameter"] == "items"


def test_parse_rows():
    assert parse_rows(None) == parse_rows("") == parse_rows("items") == "items"
    assert parse_rows("jobs") == "jobs"
    with pytest.raises(InvalidQueryError) as caught:
        parse_rows("Jobs")
    assert caught.value.errors[0]["parameter"] == "rows"
    assert caught.value.status == 400


# -- entities -------------------------------------------------------------------------

ENTITIES = [
    {"entity_type": "Condition", "text": "Type 2 diabetes, \"uncontrolled\"\nsince 2019", "code": "E11.65",
     "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.93,
     "span": {"page": 2, "start": 10, "end": 54}, "attributes": {"negated": False, "note": "=1+1"}},
    {"entity_type": "Observation", "text": "=HYPERLINK(\"http://evil\")", "code": "-4548-4",
     "code_system": "@loinc", "confidence": 0.5, "span": {"start": 0, "end": 3}, "attributes": None,
     "value": {"value": 7.25, "unit": "=mg/dL"}},
]


@pytest.fixture
def completed(app, jobs):
    with app.app_context():
        job = create_job("+doc-with-entities")
        complete_job(job.id, ENTITIES)
        return str(job.id)


def test_entities_csv_has_one_row_per_entity(client, jobs, completed):
    response = client.get("/exports/entities.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(
        r'attachment; filename="entities-\d{8}T\d{6}Z\.csv"', response.headers["Content-Disposition"]
    )
    assert csv_header(response) == list(ENTITY_COLUMNS)
    rows = csv_rows(response)
    assert [r["job_id"] for r in rows] == [completed, completed]  # the default failure statuses are replaced
    first, second = rows
    assert first["document_id"] == "'+doc-with-entities"
    assert first["completed_at"].endswith("Z")
    assert (first["position"], first["entity_type"], first["code"], first["code_system"]) == (
        "0", "Condition", "E11.65", "http://hl7.org/fhir/sid/icd-10-cm",
    )
    assert first["text"] == "Type 2 diabetes, \"uncontrolled\"\nsince 2019"
    assert float(first["confidence"]) == 0.93
    assert (first["page"], first["span_start"], first["span_end"]) == ("2", "10", "54")
    assert json.loads(first["attributes"]) == {"negated": False, "note": "=1+1"}
    assert second["position"] == "1"
    assert second["text"] == "'=HYPERLINK(\"http://evil\")"
    assert (second["code"], second["code_system"]) == ("'-4548-4", "'@loinc")
    assert (second["page"], second["attributes"]) == ("", "")
    # The measured value and its unit, each a cell of its own (a formula neutralised).
    assert (first["value"], first["unit"]) == ("", "")
    assert (float(second["value"]), second["unit"]) == (7.25, "'=mg/dL")


def test_entities_csv_writes_a_value_as_the_worker_wrote_it(app, client, jobs):
    # A trial: SQLite's json_extract read an integer past 64 bits as a
    # double (1.2345678901234567e+19) and a 400-digit one as inf.
    big, huge = 12345678901234567891, 10**400
    with app.app_context():
        job_id = str(create_job("doc-big-values").id)
        complete_job(job_id, [
            {**ENTITIES[1], "value": {"value": value, "unit": "mg/dL"}} for value in (big, huge, -0.5)
        ])
    rows = csv_rows(client.get("/exports/entities.csv"))
    assert [row["value"] for row in rows if row["job_id"] == job_id] == [str(big), str(huge), "-0.5"]


def test_entities_csv_follows_the_filter_and_refuses_a_status_without_completed(app, client, jobs, completed):
    with app.app_context():
        other = str(complete_job(create_job("doc-other").id, ENTITIES[:1]).id)
        audited = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    rows = csv_rows(client.get("/exports/entities.csv?document_id=doc-other"))
    assert [(r["job_id"], r["position"]) for r in rows] == [(other, "0")]
    for status in ("Completed", "Completed,Failed", "all", "", ","):  # empty: the default, as on every page
        rows = csv_rows(client.get(f"/exports/entities.csv?status={status}&document_id=doc-other"))
        assert [(r["job_id"], r["position"]) for r in rows] == [(other, "0")], status
    # Only completed jobs have entities: a status that leaves Completed out
    # would give an empty file while the audit log listed it as applied.
    for status in ("Failed", "Pending,Validation_Failed"):
        response = client.get(f"/exports/entities.csv?status={status}")
        assert response.status_code == 400, status
        html = response.get_data(as_text=True)
        assert "<code>status</code>" in html and "only completed jobs have entities" in html, status
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == audited + 6
    rows = csv_rows(client.get("/exports/entities.csv"))
    assert [(r["job_id"], r["position"]) for r in rows] == [
        (other, "0"), (completed, "0"), (completed, "1"),
    ]
    assert csv_rows(client.get("/exports/entities.csv?q=anything")) == []  # no job ever failed with it


def test_entities_csv_refuses_filters_no_completed_job_matches_and_audits_what_it_applies(app, client, completed):
    """A trial: ``error_code``, ``group`` and ``acknowledged=only`` gave 200
    and a header alone (a completed job has no current failure and is never
    acknowledged), and ``status=Completed&status=Pending`` was audited as
    both though the file applies Completed alone."""
    with app.app_context():
        audited = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    response = client.get("/exports/entities.csv?error_code=schema.required&group=1&acknowledged=only")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    for parameter in ("error_code", "group", "acknowledged"):
        assert f"<code>{parameter}</code>" in html, parameter
    assert html.count("only completed jobs have entities") == 3
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == audited
    rows = csv_rows(client.get("/exports/entities.csv?status=Completed&status=Pending&acknowledged=include"))
    assert {r["job_id"] for r in rows} == {completed}
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "export.entities.csv")
                                   .order_by(AuditEvent.occurred_at.desc())).first()
    assert event.filter["status"] == ["Completed"]
    assert event.filter["acknowledged"] == ["include"]


def test_rows_jobs_writes_details_as_json_text_strings_included(app, client):
    """A free-form string, a number and an object each read back as the JSON
    value they are: ``"123"`` and ``123`` are not the same cell."""
    with app.app_context():
        insert_job("doc-string", details="123", error_format="free-form")
        insert_job("doc-number", details=123, error_format="free-form", created_hours=-1)
        insert_job("doc-formula", details="=1+1", error_format="free-form", created_hours=-2)
        insert_job("doc-object", details={"b": 1, "a": "é"}, error_format="free-form", created_hours=-3)
    rows = csv_rows(client.get("/exports/job-errors.csv?rows=jobs"))
    cells = {r["document_id"]: r["error_details"] for r in rows}
    assert cells["doc-string"] == '"123"'
    assert cells["doc-number"] == "123"
    assert cells["doc-formula"] == '"=1+1"'  # JSON text: starts with a quote, not a formula
    assert cells["doc-object"] == '{"a": "é", "b": 1}'
    assert [json.loads(cells[d]) for d in ("doc-string", "doc-number", "doc-object")] == ["123", 123, {"a": "é", "b": 1}]


def _fail_with_message(client, document: str, message: str, pointer: str) -> None:
    """A started job of ``document`` failed with ``message`` as its error
    message and as the message of its one item (at ``pointer``)."""
    job = client.post("/api/v1/processing-jobs", json={"document_id": document}).get_json()
    client.post(f"/api/v1/processing-jobs/{job['id']}/start")
    item = {"code": "unit.bad", "severity": "error", "message": message, "pointer": pointer}
    answer = client.post(f"/api/v1/processing-jobs/{job['id']}/validation-failure",
                         json={"error_message": message, "error_details": {"errors": [item]}, "error_format": "normalized"})
    assert answer.status_code == 200, answer.get_json()


def test_exports_write_control_characters_as_escapes_that_read_back(client):
    # A terminal that prints the file would act on ESC or CSI (colours, the
    # window title, moving the cursor); the pages show the same escapes.
    message = "bad \x1b[31mred\x1b[0m \x07 \x9b2J \x7f end\ttab"
    _fail_with_message(client, "doc-controls", message, "/entities/0/te\x1bxt")
    escaped = "bad \\u001b[31mred\\u001b[0m \\u0007 \\u009b2J \\u007f end\ttab"
    for rows in ("items", "jobs"):
        text = client.get(f"/exports/job-errors.csv?document_id=doc-controls&rows={rows}").get_data(as_text=True)
        assert not re.search("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text), rows
        [row] = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        assert row["error_message"] == escaped, rows
        if rows == "items":
            assert (row["message"], row["pointer"]) == (escaped, "/entities/0/te\\u001bxt")
        else:  # JSON text whose escapes are JSON's own: the same value
            assert json.loads(row["error_details"])["errors"][0]["message"] == message
        raw = client.get(f"/exports/job-errors.ndjson?document_id=doc-controls&rows={rows}").get_data(as_text=True)
        assert not re.search("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", raw), rows
        [record] = [json.loads(line) for line in raw.splitlines()]
        assert record["error_message"] == message, rows  # JSON escapes: read back as sent


def test_exports_write_bidi_controls_as_escapes(client):
    # A trial: the pages showed "[RLO]", while the files kept the override,
    # and a spreadsheet or terminal showed the text reversed after it.
    message = "Patient \u202eevil\u202c name \u2067x\u2069 \u200f"
    _fail_with_message(client, "doc-bidi", message, "/entities/0/unit")
    escaped = "Patient \\u202eevil\\u202c name \\u2067x\\u2069 \\u200f"
    bidi = "[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
    for rows in ("items", "jobs"):
        text = client.get(f"/exports/job-errors.csv?document_id=doc-bidi&rows={rows}").get_data(as_text=True)
        assert not re.search(bidi, text), rows
        [row] = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        assert row["error_message"] == escaped, rows
        if rows == "items":
            assert row["message"] == escaped
        else:  # JSON text whose escapes are JSON's own: the same value
            assert json.loads(row["error_details"])["errors"][0]["message"] == message
        raw = client.get(f"/exports/job-errors.ndjson?document_id=doc-bidi&rows={rows}").get_data(as_text=True)
        assert not re.search(bidi, raw), rows
        [record] = [json.loads(line) for line in raw.splitlines()]
        assert record["error_message"] == message, rows  # JSON escapes: read back as sent


def test_full_width_formula_starts_are_neutralised():
    # A trial: "\uff1d1+1" (a full-width equals sign) was written as it is.
    for start in ("\uff1d", "\uff0b", "\uff0d", "\uff20"):
        assert neutralise_formula(f"{start}1+1") == f"'{start}1+1"
        assert neutralise_formula(f" {start}1+1") == f"' {start}1+1"
    assert neutralise_formula("a\uff1d1") == "a\uff1d1"


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", " \u3000\n"])
def test_a_formula_after_a_no_break_or_ideographic_space_is_neutralised(client, space):
    # A trial: "\u3000=ideo" was written as it is (only ASCII blanks were
    # trimmed before the check). Both export paths: csv, and COPY on PostgreSQL.
    assert neutralise_formula(f"{space}=1+1") == f"'{space}=1+1"
    assert neutralise_formula(f"{space}\uff1d1") == f"'{space}\uff1d1"
    assert neutralise_formula(f"{space}a=1") == f"{space}a=1"
    message = f"{space}=HYPERLINK(1)"
    _fail_with_message(client, "doc-ideographic", message, "/entities/0/unit")
    for rows in ("items", "jobs"):
        text = client.get(f"/exports/job-errors.csv?document_id=doc-ideographic&rows={rows}").get_data(as_text=True)
        [row] = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        # The job's message is stored stripped ("=HYPERLINK(1)"): guarded either way.
        assert row["error_message"] in ("'" + message, "'" + message.strip()), rows
        if rows == "items":
            assert row["message"] == "'" + message


def test_ndjson_writes_unicode_line_separators_as_escapes(client):
    # A trial: a message holding U+2028/U+2029 made one record five lines
    # for str.splitlines; JSON escapes keep it one line that reads back the same.
    message = "one\u2028two\u2029three"
    _fail_with_message(client, "doc-separators", message, "/entities/0/unit")
    for rows in ("items", "jobs"):
        raw = client.get(f"/exports/job-errors.ndjson?document_id=doc-separators&rows={rows}").get_data(as_text=True)
        assert "\u2028" not in raw and "\u2029" not in raw and "one\\u2028two\\u2029three" in raw, rows
        [record] = [json.loads(line) for line in raw.splitlines()]
        assert record["error_message"] == message, rows
