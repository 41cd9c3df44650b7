"""Routing errors and the unexpected: 404, 405, 500 and oversized chunked bodies as problems.

Every refusal is checked as ``helpers.assert_problem`` says, with the stored row
unchanged and a working client afterwards."""

from __future__ import annotations

import io
import logging
import uuid

import pytest
import sqlalchemy as sa

from app.api import views
from app.extensions import db
from app.models import ProcessingJob
from tests.integration.api.helpers import (
    API,
    FIRST_FAILURE,
    assert_client_still_works,
    assert_problem,
    job_url,
    row,
)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope",
        "/api/v1/",
        "/api/v1/processing-jobs/",
        "/api/v1/processing-jobs/{id}/nope",
        "/api/v1/processing-jobs/{id}/validation-failure/",
        "/api/v2/processing-jobs",
    ],
)
def test_unknown_api_paths_are_a_404_problem(client, job, path):
    response = client.get(path.format(id=job["id"]))
    problem = assert_problem(response, 404, "not-found")
    assert problem["instance"] == path.format(id=job["id"])


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("path", ["/api/v1/processing-jobs//start", "/api/v1/processing-jobs//result",
                                  "/api/v1//processing-jobs", "/api/v1/failure-groups//resolve"])
def test_a_doubled_slash_is_a_404_problem_not_a_redirect_or_another_route(client, method, path):
    # An empty job id from a worker's URL joining: a trial got an HTML 308
    # (GET) and a 405 naming the job route (POST) once the slashes merged.
    response = getattr(client, method)(path, json={"status": "completed", "entities": []})
    problem = assert_problem(response, 404, "not-found")
    assert problem["instance"] == path
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    ("method", "action", "allowed"),
    [
        ("put", "", {"GET", "HEAD", "OPTIONS"}),
        ("delete", "", {"GET", "HEAD", "OPTIONS"}),
        ("patch", "", {"GET", "HEAD", "OPTIONS"}),
        ("post", "", {"GET", "HEAD", "OPTIONS"}),
        ("get", "validation-failure", {"POST", "OPTIONS"}),
        ("put", "validation-failure", {"POST", "OPTIONS"}),
        ("get", "start", {"POST", "OPTIONS"}),
        ("delete", "result", {"POST", "OPTIONS"}),
    ],
)
def test_wrong_method_is_a_405_problem_with_allow(client, app, failed_job, method, action, allowed):
    before = row(app, failed_job["id"])
    response = getattr(client, method)(job_url(failed_job["id"], action), json=FIRST_FAILURE)
    assert_problem(response, 405, "method-not-allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


def test_wrong_method_on_the_collection_is_a_405_problem(client, app):
    response = client.delete(API)
    assert_problem(response, 405, "method-not-allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS", "POST"}


def test_options_names_the_methods_with_no_body(client):
    # Flask's own answer was an empty text/html 200 (a schemathesis run).
    response = client.options(API)
    assert response.status_code == 204 and response.get_data() == b""
    assert "Content-Type" not in response.headers
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS", "POST"}


def test_unexpected_errors_are_a_500_problem_without_internals(make_app, monkeypatch, auth_headers, caplog):
    production_like = make_app(PROPAGATE_UNEXPECTED=False)

    def explode(job_id: str) -> None:
        raise RuntimeError("patient Jane Doe, MRN 0042")

    monkeypatch.setattr(views.lifecycle, "get_job", explode)
    job_id = str(uuid.uuid4())
    with caplog.at_level(logging.ERROR):
        response = production_like.test_client().get(job_url(job_id), headers=auth_headers)
    problem = assert_problem(response, 500, "internal-error")
    text = response.get_data(as_text=True)
    assert "Jane Doe" not in text and "RuntimeError" not in text
    # The log names the type, the route's rule (not the path's text) and the
    # request id the answer gave, so one is found from the other (a trial).
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unhandled")]
    assert line == (f"unhandled RuntimeError on GET /api/v1/processing-jobs/<job_id> "
                    f"(request {problem['request_id']})")
    assert job_id not in line and "Jane Doe" not in caplog.text


def test_an_oversized_chunked_body_is_a_413(make_app, auth_headers):
    small = make_app(MAX_CONTENT_LENGTH=1024)
    client = small.test_client()
    body = b'{"document_id": "' + b"x" * 4000 + b'"}'

    # A chunked body: no Content-Length, the server reads until the end.
    response = client.post(
        API,
        input_stream=io.BytesIO(body),
        headers={**auth_headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    problem = assert_problem(response, 413, "content-too-large")
    # Where: the body itself, as no length was declared (a trial found no place named).
    assert problem["errors"] == [{"pointer": "#", "field": "", "detail": "the body reached the limit of 1024 bytes"}]
    with small.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob)) == 0


def test_a_path_nothing_answers_says_where_to_look_not_werkzeugs_words(client):
    """The sixth trial: some 404s read "If you entered the URL manually
    please check your spelling"; the others name what was not found."""
    problem = client.get("/api/v1/nope").get_json()
    assert problem["status"] == 404 and "/api/v1/openapi.json" in problem["detail"]
    problem = client.get("/api/v1/schemas/nope.json").get_json()
    assert problem["status"] == 404 and "entity-document.v1.schema.json" in problem["detail"]
    for path in ("/problems/nope", "/nothing-here"):
        page = client.get(path)
        assert page.status_code == 404 and "Nothing is at this address." in page.get_data(as_text=True)
    # A page's JSON document answers as JSON, as a program reading it expects.
    problem = client.get(f"/jobs/{uuid.uuid4()}/job.json?x=1").get_json()
    assert problem["status"] == 400 and [e["parameter"] for e in problem["errors"]] == ["x"]
    assert client.get(f"/jobs/{uuid.uuid4()}/job.json").get_json()["status"] == 404
    for path in ("/api/v1/nope", "/problems/nope"):
        assert "check your spelling" not in client.get(path).get_data(as_text=True)
