"""The search finds a job by any failure it ever had, not only its current one.

A job that failed with ``Z99``, was requeued, and then failed with something
else or completed, is still found by ``Z99``: on PostgreSQL from the earlier
failures' text a trigger keeps (migration 0020), on SQLite from the job's
``job_failures`` rows. Both must list the same jobs, and the row says that
the match is in the job's history.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.models import ProcessingJob
from app.registry import get_failure_recorder
from app.services.processing_jobs.filter_sql import failure_holds_text
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.lifecycle import complete_job, create_job, list_failures, requeue_job, start_job
from tests.integration.test_dashboard_filters import item, shown_ids
from tests.integration.test_exports import csv_rows
from tests.integration.test_search import search_plan
from tests.integration.test_migrations import empty_database_url  # noqa: F401 (a fixture)

API = "/api/v1/processing-jobs"


def _fail(job_id: uuid.UUID, code: str, message: str) -> None:
    get_failure_recorder().record_validation_failure(job_id, message, {"errors": [
        item(code, message=message, pointer="/entities/0/code", entity={"type": "Condition", "code": code.upper()}),
    ]})


@pytest.fixture
def history(app) -> dict[str, str]:
    """Name -> job id: jobs whose failures changed over time."""
    with app.app_context():
        made: dict[str, str] = {}
        # Failed with Z99, requeued, failed with a unit error: its current failure does not hold Z99.
        job = create_job("referral-earlier-1")
        _fail(job.id, "code.unknown_icd10cm", "code Z99.89X is not in ICD-10-CM")
        requeue_job(job.id)
        _fail(job.id, "unit.not_ucum", "unit mg/dLx is not UCUM")
        made["refailed"] = str(job.id)
        # Failed with Z99, requeued, completed: no current failure at all.
        job = create_job("referral-earlier-2")
        _fail(job.id, "code.unknown_icd10cm", "code Z99.1 is not in ICD-10-CM")
        requeue_job(job.id)
        start_job(job.id)
        complete_job(job.id, [{"entity_type": "Condition", "text": "chest pain", "code": "R07.9",
                               "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.9,
                               "span": {"start": 0, "end": 10}}])
        made["completed"] = str(job.id)
        # Failing with Z99 now: found by its current failure.
        job = create_job("referral-current-3")
        _fail(job.id, "code.unknown_icd10cm", "code Z99.2 is not in ICD-10-CM")
        made["current"] = str(job.id)
        # Requeued and still waiting: found, and shown as Pending.
        job = create_job("referral-earlier-4")
        _fail(job.id, "schema.required", "missing property 'dose'")
        requeue_job(job.id)
        made["pending"] = str(job.id)
        # A second failure recorded over the first, with no requeue between.
        job = create_job("referral-overwritten-7")
        _fail(job.id, "code.first_over", "first report of the worker")
        _fail(job.id, "code.second_over", "second report of the worker")
        made["overwritten"] = str(job.id)
        # Never failed with Z99.
        job = create_job("referral-other-5")
        _fail(job.id, "unit.not_ucum", "unit is not UCUM")
        made["other"] = str(job.id)
        return made


def _listed(client, text: str) -> tuple[set[str], str]:
    response = client.get(f"/search?q={quote(text)}")
    assert response.status_code == 302
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    return set(shown_ids(html)), html


def _names(history: dict[str, str], ids: set[str]) -> set[str]:
    by_id = {v: k for k, v in history.items()}
    return {by_id[i] for i in ids}


@pytest.mark.parametrize(("text", "expected"), [
    ("Z99", {"refailed", "completed", "current"}),
    ("unknown_icd10cm", {"refailed", "completed", "current"}),  # an earlier item's code
    ("CODE.UNKNOWN_ICD10CM", {"refailed", "completed", "current"}),  # entity code, any case
    ("mg/dLx", {"refailed"}),  # the current failure still counts
    ("property 'dose'", {"pending"}),  # requeued, not yet run again
    ("UCUM", {"refailed", "other"}),
    ("first report", {"overwritten"}),  # replaced by a later failure, not requeued
    ("report of the worker", {"overwritten"}),
    # A match never spans two failures, nor two fields of one.
    ("ICD-10-CMunit", set()),
    ("ICD-10-CMcode", set()),
])
def test_the_search_finds_a_job_by_its_earlier_failures_on_both_databases(client, history, text, expected):
    ids, _html = _listed(client, text)
    assert _names(history, ids) == expected
    api = client.get(f"{API}?q={quote(text)}&status=all&acknowledged=include")
    assert api.status_code == 200
    assert _names(history, {job["id"] for job in api.get_json()["items"]}) == expected


@pytest.mark.parametrize("text", ["Z99", "unknown_icd10cm", "CODE.UNKNOWN_ICD10CM", "mg/dLx", "UCUM",
                                  "first report", "ICD-10-CMunit", "/entities/0/code", "Condition"])
def test_the_python_twin_finds_what_the_sql_finds(app, history, text):
    # failure_holds_text (which failure a page marks) against the search's SQL.
    with app.app_context():
        by_sql = {str(j.id) for j in db.session.scalars(sa.select(ProcessingJob).where(*JobFilter(text=text).where()))}
        by_python = {job_id for job_id in history.values()
                     if any(failure_holds_text(f.error_message, f.error_details, text) for f in list_failures(job_id))}
    assert by_python == by_sql


def test_the_row_says_when_the_match_is_in_the_jobs_history(client, history):
    _ids, html = _listed(client, "Z99")
    rows = {job_id: row for row in re.findall(r'<tr class="job.*?</tr>', html, re.S)
            for job_id in set(shown_ids(row))}
    for name in ("refailed", "completed"):
        link = re.search(r'<a class="match earlier" href="([^"]+)">matches an earlier failure</a>',
                         rows[history[name]])
        assert link, name
        assert link.group(1).startswith(f"/jobs/{history[name]}?back=") and link.group(1).endswith("#history")
    assert "matches an earlier failure" not in rows[history["current"]]
    # Found by its document id, not its history: no note either.
    _ids, html = _listed(client, "referral-earlier-2")
    assert "matches an earlier failure" not in html


def test_the_note_opens_the_earlier_failure_that_matched(client, history):
    _ids, html = _listed(client, "Z99")
    row = next(r for r in re.findall(r'<tr class="job.*?</tr>', html, re.S) if history["refailed"] in r)
    link = re.search(r'<a class="match earlier" href="([^"]+)">', row).group(1).replace("&amp;", "&")
    assert "match=Z99" in link
    page = client.get(link.split("#")[0]).get_data(as_text=True)
    section = re.search(r'<section class="history" id="history">.*?</section>', page, re.S).group(0)
    failures = re.findall(r'<li class="event event-failed failure">.*?</li>', section, re.S)
    assert len(failures) == 2
    first, second = failures  # oldest first: the Z99 failure, then the unit error
    assert "holds “<bdi>Z99</bdi>”, the search you came from" in first and "Z99.89X" in first
    assert '<details class="error-details" open>' in first
    assert "the search you came from" not in second and '<details class="error-details" open>' not in second
    # Without match: nothing is marked or opened.
    plain = client.get(f"/jobs/{history['refailed']}").get_data(as_text=True)
    assert "the search you came from" not in plain


def test_the_entities_export_of_a_search_has_the_completed_jobs_found_by_their_history(client, history):
    html = client.get("/jobs?q=Z99&status=all&acknowledged=include").get_data(as_text=True)
    link = re.search(r'<a href="(/exports/entities\.csv\?[^"]+)">entities CSV</a> \(of the completed jobs\)', html)
    assert link, "a search may match completed jobs: their entities are offered"
    response = client.get(link.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    rows = csv_rows(response)
    assert [(row["job_id"], row["code"]) for row in rows] == [(history["completed"], "R07.9")]


@pytest.mark.parametrize("path", ["/exports/job-errors.csv", "/exports/job-errors.ndjson"])
def test_the_per_error_export_of_a_search_has_only_current_items_that_match(client, history, path):
    # Per job: every job the search lists. Per error: only items that hold
    # the text; a job found by an earlier failure has none now (its history has it).
    query = "q=Z99&status=all&acknowledged=include"

    def rows(url: str) -> list[dict]:
        response = client.get(url)  # read whole before the next request: a streamed body
        assert response.status_code == 200
        if path.endswith(".csv"):
            return csv_rows(response)
        return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]

    jobs, items = rows(f"{path}?{query}&rows=jobs"), rows(f"{path}?{query}")
    assert _names(history, {row["job_id"] for row in jobs}) == {"refailed", "completed", "current"}
    assert [(row["job_id"], row["code"]) for row in items] == [(history["current"], "code.unknown_icd10cm")]


def test_a_bulk_requeue_keeps_the_failures_searchable(app, client, history):
    with app.app_context():
        job = create_job("referral-bulk-6")
        _fail(job.id, "code.unknown_snomed", "code 99999X is not in SNOMED CT")
        job_id = str(job.id)
    html = client.get("/jobs").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    confirm = client.post("/jobs/bulk", data={"csrf_token": token, "op": "requeue:selected", "job_id": [job_id]},
                          follow_redirects=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.get_data(as_text=True)).group(1)
    done = client.post("/jobs/bulk/confirm", data={"csrf_token": token, "op": "requeue:selected", "job_id": [job_id]})
    assert done.status_code == 303
    with app.app_context():
        assert db.session.get(ProcessingJob, uuid.UUID(job_id)).error_message is None
    ids, html = _listed(client, "99999X")
    assert ids == {job_id}
    assert "matches an earlier failure" in html


def test_postgresql_keeps_the_earlier_text_only_when_a_failure_is_replaced(app_ctx, backend):
    if backend != "postgresql":
        columns = {c["name"] for c in sa.inspect(db.engine).get_columns("processing_jobs")}
        assert "earlier_search_text" not in columns
        return

    def earlier(job_id: uuid.UUID) -> str | None:
        return db.session.execute(sa.text("SELECT earlier_search_text FROM processing_jobs WHERE id = :id"),
                                  {"id": job_id}).scalar_one()

    job = create_job("doc-trigger")
    _fail(job.id, "code.first", "First failure")
    assert earlier(job.id) is None  # the recorder's write on a job with no failure calls nothing
    requeue_job(job.id)
    first = earlier(job.id)
    assert first is not None and "code.first" in first and "first failure" in first  # lower-cased
    assert "doc-trigger" not in first  # the document id is in search_text already
    _fail(job.id, "code.second", "Second failure")
    assert earlier(job.id) == first
    requeue_job(job.id)
    both = earlier(job.id)
    assert both.startswith("second failure") and both.endswith(first) and "\x1e" in both  # newest first


def test_postgresql_serves_a_rare_term_from_both_trigram_indexes(app_ctx, backend):
    if backend != "postgresql":
        # SQLite has no such index: its search reads each job's failures.
        compiled = str(sa.select(ProcessingJob.id).where(*JobFilter(text="ICD-10-CM").where()).compile(db.engine))
        assert "FROM job_failures AS earlier_failure" in compiled and "earlier_search_text" not in compiled
        return
    plan = search_plan("ICD-10-CM")
    assert "ix_processing_jobs_search_text" in plan and "ix_processing_jobs_earlier_search_text" in plan, plan


def test_the_migration_fills_the_earlier_text_from_the_history(empty_database_url):  # noqa: F811
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True})
    with app.app_context():
        upgrade(revision="0019_job_group_rollups")  # before 0020
        job = create_job("doc-before-0020")
        _fail(job.id, "code.before_upgrade", "Failed before the upgrade")
        requeue_job(job.id)
        _fail(job.id, "code.after_requeue", "Failed again")
        current = create_job("doc-current-0020")
        _fail(current.id, "code.still_current", "Failing now")
        job_id, current_id = job.id, current.id
        db.session.rollback()
        upgrade()
        assert {j.id for j in db.session.scalars(
            sa.select(ProcessingJob).where(*JobFilter(text="before_upgrade").where()))} == {job_id}
        assert {j.id for j in db.session.scalars(
            sa.select(ProcessingJob).where(*JobFilter(text="still_current").where()))} == {current_id}
        if db.engine.dialect.name == "postgresql":
            rows = dict(db.session.execute(sa.text("SELECT id, earlier_search_text FROM processing_jobs")).all())
            assert "code.before_upgrade" in rows[job_id] and "code.after_requeue" not in rows[job_id]
            assert rows[current_id] is None  # its only failure is its current one
        db.session.rollback()
        db.engine.dispose()
