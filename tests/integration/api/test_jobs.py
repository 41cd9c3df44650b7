"""Creating and reading jobs: ``POST /processing-jobs`` and ``GET /processing-jobs/<id>``.

Every refusal is checked as ``helpers.assert_problem`` says, with the stored row
unchanged and a working client afterwards."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app.services.json_values import canonical_json
from tests.integration.api.helpers import (
    API,
    FIRST_FAILURE,
    assert_client_still_works,
    assert_job_json,
    assert_matches_row,
    assert_problem,
    create_job,
    fields,
    job_count,
    job_url,
    nested_list,
    parse_timestamp,
    row,
)


def test_create_job_returns_201_the_job_and_its_location(client, app):
    before = datetime.now(timezone.utc)
    response = client.post(API, json={"document_id": "doc-0001", "job_type": "entity_extraction"})
    assert response.status_code == 201
    assert response.mimetype == "application/json"
    job = response.get_json()
    assert_job_json(job)
    assert job["document_id"] == "doc-0001"
    assert job["job_type"] == "entity_extraction"
    assert job["status"] == "Pending"
    assert job["error_message"] is job["error_details"] is job["error_format"] is None
    assert job["started_at"] is job["completed_at"] is None
    created = parse_timestamp(job["created_at"])
    assert before - timedelta(seconds=1) <= created <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert response.headers["Location"] == f"{API}/{job['id']}"
    assert client.get(response.headers["Location"]).get_json() == job
    assert_matches_row(job, row(app, job["id"]))


def test_create_job_defaults_the_job_type(client):
    assert create_job(client, "doc-0002")["job_type"] == "entity_extraction"
    assert create_job(client, "doc-0003", job_type="ocr.v2")["job_type"] == "ocr.v2"


@pytest.mark.parametrize(
    ("body", "slug", "bad_fields"),
    [
        # Shape errors are the NewJob schema's (invalid-fields). A value that
        # breaks two keywords (type and enum) is named once per keyword; a
        # blank document id once ("must not be empty or only spaces", not
        # minLength and the pattern \S).
        ({"document_id": {"id": "doc-1"}}, "invalid-fields", ["document_id"]),
        ({"document_id": ["doc-1"]}, "invalid-fields", ["document_id"]),
        ({"document_id": 1234}, "invalid-fields", ["document_id"]),
        ({"document_id": None}, "invalid-fields", ["document_id"]),
        ({"document_id": ""}, "invalid-fields", ["document_id"]),
        ({"document_id": " \t\n"}, "invalid-fields", ["document_id"]),
        ({"document_id": "\u00a0\u2003\u3000"}, "invalid-fields", ["document_id"]),
        ({"document_id": "x" * 201}, "invalid-fields", ["document_id"]),
        ({"document_id": nested_list(500)}, "invalid-fields", ["document_id"]),
        ({"document_id": "doc-1", "job_type": "entity extraction"}, "invalid-fields", ["job_type"]),
        ({"document_id": "doc-1", "job_type": "x" * 65}, "invalid-fields", ["job_type"]),
        ({"document_id": "doc-1", "job_type": "extraction-é"}, "invalid-fields", ["job_type"]),
        ({"document_id": "doc-1", "job_type": 7}, "invalid-fields", ["job_type"]),
        ({"document_id": "doc-1", "job_type": None}, "invalid-fields", ["job_type"]),
        (
            {"document_id": False, "job_type": ""},
            "invalid-fields",
            ["document_id", "job_type", "job_type"],
        ),
        ({}, "invalid-fields", ["document_id"]),
        ({"job_type": "entity_extraction"}, "invalid-fields", ["document_id"]),
        ({"document_id": "doc-1", "priority": 1}, "invalid-fields", ["priority"]),
        ({"document_id": "doc-1", "status": "Completed"}, "invalid-fields", ["status"]),
    ],
    ids=lambda v: canonical_json(v)[:40] if isinstance(v, dict) else None,
)
def test_create_job_refuses_invalid_fields_and_stores_nothing(client, app, body, slug, bad_fields):
    problem = assert_problem(client.post(API, json=body), 422, slug)
    assert fields(problem) == bad_fields
    assert job_count(app) == 0
    response = client.post(API, json={"document_id": "doc-ok"})
    assert response.status_code == 201
    assert job_count(app) == 1


@pytest.mark.parametrize(
    "data",
    [b'{"document_id": "doc-1",}', b'{"document_id": NaN}', b'{"document_id": "a", "document_id": "b"}', b""],
    ids=["trailing-comma", "nan", "duplicate-key", "empty"],
)
def test_create_job_refuses_malformed_json_and_stores_nothing(client, app, data):
    assert_problem(client.post(API, data=data, content_type="application/json"), 400, "malformed-json")
    assert job_count(app) == 0


def test_create_job_keeps_unicode_and_refuses_what_it_could_not_store_as_sent(client, app):
    data = '{"document_id": "Ünïcödé 😀 \\ud83d\\ude00 \\ufffd"}'.encode()
    response = client.post(API, data=data, content_type="application/json")
    assert response.status_code == 201
    job = response.get_json()
    assert job["document_id"] == "Ünïcödé 😀 😀 \ufffd"
    assert row(app, job["id"])["document_id"] == "Ünïcödé 😀 😀 \ufffd"
    # A NUL or a lone surrogate was stored as U+FFFD: the worker's own id then found nothing.
    for escaped, says in (("\\u0000", "control character"), ("\\udc00", "unpaired UTF-16 surrogate")):
        data = ('{"document_id": "a' + escaped + 'b"}').encode()
        problem = assert_problem(client.post(API, data=data, content_type="application/json"), 422, "invalid-job")
        assert [e["pointer"] for e in problem["errors"]] == ["#/document_id"] and says in problem["errors"][0]["detail"]
    assert job_count(app) == 1


def test_get_job_returns_the_stored_job(client, app, job):
    response = client.get(job_url(job["id"]))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == job
    assert_matches_row(response.get_json(), row(app, job["id"]))
    # Any standard spelling of the UUID names the same job.
    assert client.get(job_url(job["id"].upper())).get_json() == job
    assert client.get(job_url(job["id"].replace("-", ""))).get_json() == job


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "12345", "%00", "x" * 500])
@pytest.mark.parametrize(
    ("method", "action", "body"),
    [
        ("get", "", None),
        ("post", "validation-failure", FIRST_FAILURE),
        ("post", "start", None),
        ("post", "result", {"status": "completed"}),
    ],
    ids=["get", "validation-failure", "start", "result"],
)
def test_unknown_job_is_a_404_problem(client, app, job, job_id, method, action, body):
    before = row(app, job["id"])
    response = getattr(client, method)(job_url(job_id, action), json=body)
    assert_problem(response, 404, "job-not-found")
    detail = response.get_json()["detail"]
    # The instance is a URI reference: what the client sent, percent-encoded.
    assert response.get_json()["instance"] == job_url(job_id, action)  # "%00" stays "%00", never a raw NUL
    try:
        uuid.UUID(job_id)
    except ValueError:
        # Not a UUID: the detail says what an id looks like and never echoes
        # the URL's text (a NUL, or whatever else the caller sent).
        assert "UUID" in detail
        assert not any(echo in detail for echo in ("\x00", "not-a-uuid", "12345", "xxxxxxxx"))
    else:
        assert detail == f"No job has id {job_id}."  # a well-formed id is the caller's own key
    assert row(app, job["id"]) == before
    assert job_count(app) == 1
    assert_client_still_works(client, job["id"])


@pytest.mark.parametrize("control", ["\x1b", "\x07", "\x7f", "\x0b", "\x00", "\x85", "\x9b"])
def test_create_job_refuses_a_control_character_in_the_document_id(client, app, control):
    # A job stored so could never be found by its document: every filter
    # refuses the character (app/request_input.py), so the job page's
    # "all jobs of this document" link was a dead one.
    data = json.dumps({"document_id": f"a{control}b"}).encode()
    problem = assert_problem(client.post(API, data=data, content_type="application/json"), 422, "invalid-job")
    assert [e["pointer"] for e in problem["errors"]] == ["#/document_id"]
    assert "control character" in problem["errors"][0]["detail"]
    assert job_count(app) == 0
    # TAB stays allowed (a query parameter may hold it too).
    assert client.post(API, json={"document_id": "a\tb"}).status_code == 201
