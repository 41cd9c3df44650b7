"""Support exports of job errors (CSV and NDJSON)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from app.services import get_failure_recorder
from app.services.processing_jobs.jobs import complete_job, create_job

DETAILS = {"errors": [{"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/2/value/unit"}]}
# What the recorder stores for DETAILS: the normalized error-details v1 envelope.
STORED = {"schema_version": 1, **DETAILS, "error_count": 1, "truncated": False}


@pytest.fixture
def jobs(app):
    with app.app_context():
        recorder = get_failure_recorder()
        failed = create_job("doc-failed")
        recorder.record_validation_failure(failed.id, "=HYPERLINK(\"http://evil\")\nline two, with comma", DETAILS)
        crashed = create_job("doc-crashed")
        recorder.record_failure(crashed.id, "+worker crashed")
        done = create_job("doc-done")
        complete_job(done.id)
        return {"failed": str(failed.id), "crashed": str(crashed.id), "done": str(done.id)}


def _csv_rows(response) -> list[dict[str, str]]:
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff")  # BOM: Excel opens the file as UTF-8
    return list(csv.DictReader(io.StringIO(text[1:], newline="")))


def test_csv_export_has_one_row_per_failed_job(client, jobs):
    response = client.get("/exports/job-errors.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="job-errors-')
    rows = _csv_rows(response)
    assert {r["job_id"] for r in rows} == {jobs["failed"], jobs["crashed"]}
    failed = next(r for r in rows if r["job_id"] == jobs["failed"])
    assert failed["document_id"] == "doc-failed"
    assert failed["status"] == "Validation_Failed"
    assert failed["completed_at"].endswith("Z")
    assert json.loads(failed["error_details"]) == STORED
    # Multi-line message stays in one cell; the formula is neutralised.
    assert failed["error_message"] == "'=HYPERLINK(\"http://evil\")\nline two, with comma"
    crashed = next(r for r in rows if r["job_id"] == jobs["crashed"])
    assert crashed["error_message"] == "'+worker crashed"
    assert crashed["error_details"] == ""


def test_csv_export_follows_the_list_filters(client, jobs):
    rows = _csv_rows(client.get("/exports/job-errors.csv?status=Completed"))
    assert [r["job_id"] for r in rows] == [jobs["done"]]
    rows = _csv_rows(client.get("/exports/job-errors.csv?status=all&document_id=doc-crashed"))
    assert [r["job_id"] for r in rows] == [jobs["crashed"]]


def test_ndjson_export_keeps_original_strings(client, jobs):
    response = client.get("/exports/job-errors.ndjson")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    lines = response.get_data(as_text=True).splitlines()
    records = {r["job_id"]: r for r in map(json.loads, lines)}
    assert set(records) == {jobs["failed"], jobs["crashed"]}
    failed = records[jobs["failed"]]
    assert failed["error_message"] == "=HYPERLINK(\"http://evil\")\nline two, with comma"
    assert failed["error_details"] == STORED
    assert list(failed) == [
        "job_id", "document_id", "job_type", "status", "error_message", "completed_at", "error_details",
    ]


def test_export_streams_across_batches(client, app, monkeypatch):
    from app.services.processing_jobs import jobs as jobs_module

    real_iter_jobs = jobs_module.iter_jobs
    monkeypatch.setattr(
        "app.services.exports.iter_jobs", lambda f: real_iter_jobs(f, batch_size=3)
    )
    with app.app_context():
        recorder = get_failure_recorder()
        ids = set()
        for i in range(8):
            job = create_job(f"doc-{i}")
            recorder.record_failure(job.id, f"failure {i}")
            ids.add(str(job.id))
    response = client.get("/exports/job-errors.ndjson")
    assert response.is_streamed
    records = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [r["job_id"] for r in records if r["job_id"] in ids] == [r["job_id"] for r in records]
    assert len(records) == 8 and {r["job_id"] for r in records} == ids


def test_export_with_a_bad_filter_is_a_400(client):
    response = client.get("/exports/job-errors.csv?status=nope")
    assert response.status_code == 400
