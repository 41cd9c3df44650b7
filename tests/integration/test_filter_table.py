"""Every filter of the table (app/services/processing_jobs/job_filter.py) reaches every reader.

A filter is one field of ``JobFilter``; the API list, the dashboard's bulk
actions and the exports read the query through the same table. For each
filter, a query that should narrow three failed jobs to a known few is sent
to all three, and each must choose exactly those: a reader that dropped the
parameter would choose others (every sample changes the choice).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from app.api.contract import openapi_document
from app.extensions import db
from app.models import FailureGroup, ProcessingJob
from app.registry import get_failure_recorder
from app.services.processing_jobs.actions import acknowledge_job
from app.services.processing_jobs.lifecycle import create_job
from app.web.query import FILTER_PARAMETERS
from tests.helpers import stored_job_row

NOW = datetime.now(timezone.utc).replace(microsecond=0)
LONG_AGO = NOW - timedelta(days=3)
YESTERDAY = (NOW - timedelta(days=1)).isoformat().replace("+00:00", "Z")


def _envelope(code: str) -> dict:
    return {"errors": [{"code": code, "severity": "error", "message": "m", "pointer": "/a"}]}


#: The jobs: (document, job type, how it failed, message, error code, created, completed, acknowledged).
JOBS = [
    ("doc-a", "extract", "validation", "alpha problem", "x.one", LONG_AGO, LONG_AGO, False),
    ("doc-b", "ocr", "failure", "beta crash", "x.two", LONG_AGO, NOW, False),
    ("doc-c", "extract", "validation", "gamma problem", "x.two", NOW, NOW, True),
]

#: Per filter parameter: the query that tries it and the documents it chooses.
#: Acknowledged jobs are included (the API's default, not the dashboard's)
#: unless the sample says otherwise. A new filter needs a sample here.
SAMPLES: dict[str, tuple[dict[str, str], set[str]]] = {
    "status": ({"status": "Failed"}, {"doc-b"}),
    # Completed since yesterday: doc-b too, which was created long ago.
    "time_field": ({"time_field": "completed", "from": YESTERDAY}, {"doc-b", "doc-c"}),
    "acknowledged": ({"acknowledged": "only"}, {"doc-c"}),
    "from": ({"from": YESTERDAY}, {"doc-c"}),
    "to": ({"to": YESTERDAY}, {"doc-a", "doc-b"}),
    "error_code": ({"error_code": "x.one"}, {"doc-a"}),
    "q": ({"q": "BETA"}, {"doc-b"}),
    "document_id": ({"document_id": "doc-a"}, {"doc-a"}),
    "document_id_prefix": ({"document_id_prefix": "doc-c"}, {"doc-c"}),
    "job_type": ({"job_type": "ocr"}, {"doc-b"}),
    # The failure group of code x.two (its id is known once the jobs are stored).
    "group": ({"group": "<group of x.two>"}, {"doc-b", "doc-c"}),
}


def test_every_filter_of_the_table_has_a_sample():
    assert set(SAMPLES) == set(FILTER_PARAMETERS)


def test_every_filter_is_a_parameter_of_the_listing_in_the_contract():
    operation = openapi_document()["paths"]["/api/v1/processing-jobs"]["get"]
    documented = {p["name"] for p in operation["parameters"] if p.get("in") == "query"}
    assert set(FILTER_PARAMETERS) <= documented


def _query(parameter: str, groups: dict[str, str] | None = None) -> dict[str, str]:
    """The sample's query; ``<group of CODE>`` becomes that group's id (``groups``)."""
    query = {"acknowledged": "include", **SAMPLES[parameter][0]}
    return {name: (groups or {}).get(value, value) for name, value in query.items()}


def _without(parameter: str) -> dict[str, str]:
    query = _query(parameter)
    query.pop(parameter)
    return query


@pytest.fixture
def groups(app, jobs) -> dict[str, str]:  # noqa: ANN001
    """``<group of CODE>`` -> the id of the failure group of that error code, as text."""
    with app.app_context():
        return {f"<group of {code}>": str(group_id)
                for code, group_id in db.session.execute(sa.select(FailureGroup.code, FailureGroup.id))}


@pytest.fixture
def jobs(app) -> dict[str, str]:  # noqa: ANN001
    """document id -> job id of :data:`JOBS`, stored with their times."""
    ids = {}
    with app.app_context():
        recorder = get_failure_recorder()
        for document, job_type, how, message, code, created, completed, acknowledged in JOBS:
            job_id = create_job(document, job_type).id
            record = recorder.record_validation_failure if how == "validation" else recorder.record_failure
            record(job_id, message, _envelope(code))
            if acknowledged:
                acknowledge_job(job_id, "test-admin")
            db.session.execute(
                sa.update(ProcessingJob).where(ProcessingJob.id == job_id)
                .values(created_at=created, completed_at=completed)
            )
            db.session.commit()
            ids[document] = str(job_id)
    return ids


def _api(client, query: dict[str, str]) -> set[str]:  # noqa: ANN001
    response = client.get(f"/api/v1/processing-jobs?{urlencode({**query, 'limit': 200})}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {item["document_id"] for item in response.get_json()["items"]}


def _export(client, jobs: dict[str, str], query: dict[str, str]) -> set[str]:  # noqa: ANN001
    response = client.get(f"/exports/job-errors.ndjson?{urlencode({**query, 'rows': 'jobs'})}")
    assert response.status_code == 200, response.get_data(as_text=True)
    documents = {job_id: document for document, job_id in jobs.items()}
    return {documents[json.loads(line)["job_id"]] for line in response.get_data(as_text=True).splitlines()}


class _Forms(HTMLParser):
    """The hidden fields of each form of a page, by the form's action."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hidden: dict[str, list[tuple[str, str]]] = {}
        self._action: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self._action = found.get("action") or ""
            self.hidden.setdefault(self._action, [])
        elif tag == "input" and found.get("type") == "hidden" and self._action is not None:
            self.hidden[self._action].append((found["name"] or "", found.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._action = None


def _bulk_requeue(app, client, jobs: dict[str, str], query: dict[str, str]) -> set[str]:  # noqa: ANN001
    """Requeue every job the filtered list shows, as an operator does: the
    list page's bulk form, then the confirmation page's form."""
    page = client.get(f"/jobs?{urlencode(query)}")
    assert page.status_code == 200
    fields = _Forms(page.get_data(as_text=True)).hidden["/jobs/bulk"]
    frozen = client.post("/jobs/bulk", data=MultiDict([*fields, ("op", "requeue:filter")]))
    assert frozen.status_code == 303 and frozen.headers["Location"].startswith("/bulk-actions/")
    confirm = client.get(frozen.headers["Location"])
    assert confirm.status_code == 200
    # The confirmation froze the selection; its form runs it (in batches).
    ((action, fields),) = [(a, f) for a, f in _Forms(confirm.get_data(as_text=True)).hidden.items()
                           if a.startswith("/bulk-actions/")]
    assert client.post(action, data=MultiDict(fields)).status_code == 303
    with app.app_context():
        return {document for document, job_id in jobs.items()
                if stored_job_row(job_id)["status"] == "Pending"}


@pytest.mark.parametrize("parameter", list(SAMPLES))
def test_each_filter_chooses_the_same_jobs_in_the_api_the_exports_and_bulk_actions(
    app, client, jobs, groups, parameter  # noqa: ANN001
):
    chosen = SAMPLES[parameter][1]
    query = _query(parameter, groups)
    assert _api(client, _without(parameter)) != chosen  # the sample depends on its parameter
    assert _api(client, query) == chosen
    assert _export(client, jobs, query) == chosen
    assert _bulk_requeue(app, client, jobs, query) == chosen
