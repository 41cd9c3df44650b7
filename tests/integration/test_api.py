"""The JSON API under ``/api/v1`` over HTTP (Flask test client), on SQLite and PostgreSQL.

Every refusal is checked the same way: the status, the
``application/problem+json`` media type, the problem ``type`` slug, the bad
fields named in ``errors``, the stored row unchanged (read with a fresh
connection, not the session) and a working client afterwards (the session
was rolled back). Races between workers are covered elsewhere.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.api import json_body, views
from app.web.errors import PROBLEM_TYPE_BASE
from app.extensions import db
from app.models import ProcessingJob
from app.services.error_details import ERROR_FORMATS
from app.services.json_values import canonical_json
from tests.helpers import stored_job_row

API = "/api/v1/processing-jobs"
JOB_KEYS = {
    "id",
    "document_id",
    "job_type",
    "status",
    "error_message",
    "error_details",
    "error_format",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
}
#: Free-form details (no format marker), so they are stored exactly as sent
#: with ``error_format == "free-form"``; normalising recognised formats is
#: tested with the error-details service (and a few cases at the end here).
DETAILS = {
    "document": "note-17",
    "problems": [{"where": "/entities/0/code", "why": "not an ICD-10-CM code", "count": 2, "fatal": True}],
}
FIRST_FAILURE = {"error_message": "first failure", "error_details": DETAILS}


# -- helpers -------------------------------------------------------------------


def job_url(job_id: str, action: str = "") -> str:
    return f"{API}/{job_id}/{action}" if action else f"{API}/{job_id}"


def create_job(client: FlaskClient, document_id: str = "doc-0001", **fields: Any) -> dict[str, Any]:
    response = client.post(API, json={"document_id": document_id, **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def post_ok(client: FlaskClient, url: str, body: Any = None) -> dict[str, Any]:
    response = client.post(url, json=body) if body is not None else client.post(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def row(app: Flask, job_id: str) -> dict[str, Any] | None:
    with app.app_context():
        return stored_job_row(job_id)


def job_count(app: Flask) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))


def utc(value: datetime) -> datetime:
    """A row's timestamp as aware UTC (SQLite gives naive UTC back)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_timestamp(value: str) -> datetime:
    assert isinstance(value, str) and value.endswith("Z"), value
    parsed = datetime.fromisoformat(value[:-1] + "+00:00")
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def assert_job_json(job: dict[str, Any]) -> None:
    """Exactly the documented keys; timestamps RFC 3339 UTC with ``Z`` or null."""
    assert set(job) == JOB_KEYS
    uuid.UUID(job["id"])
    assert job["error_format"] is None or job["error_format"] in ERROR_FORMATS
    parse_timestamp(job["created_at"])
    parse_timestamp(job["updated_at"])
    for key in ("started_at", "completed_at"):
        if job[key] is not None:
            parse_timestamp(job[key])


def assert_matches_row(job: dict[str, Any], stored: dict[str, Any] | None) -> None:
    """The API's job says what the database holds."""
    assert stored is not None
    assert_job_json(job)
    assert uuid.UUID(job["id"]) == stored["id"]
    for key in ("document_id", "job_type", "status", "error_message", "error_format"):
        assert job[key] == stored[key], key
    assert canonical_json(job["error_details"]) == canonical_json(stored["error_details"])
    for key in ("created_at", "started_at", "completed_at", "updated_at"):
        if stored[key] is None:
            assert job[key] is None, key
        else:
            assert parse_timestamp(job[key]) == utc(stored[key]), key


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """An RFC 9457 problem of this status and type; no HTML, no traceback."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/problem+json"
    assert "Traceback" not in text and "<html" not in text.lower()
    problem = json.loads(text)
    assert problem["type"] == PROBLEM_TYPE_BASE + slug
    assert problem["status"] == status
    assert isinstance(problem["title"], str) and problem["title"]
    if slug == "invalid-fields":
        assert problem["title"] == "Invalid fields"
    assert isinstance(problem["detail"], str) and problem["detail"]
    for error in problem.get("errors", []):
        assert set(error) == {"field", "pointer", "detail"}
        assert error["pointer"].startswith("#")
        assert isinstance(error["detail"], str) and error["detail"]
    return problem


def fields(problem: dict[str, Any]) -> list[str]:
    return sorted(e["field"] for e in problem.get("errors", []))


def assert_client_still_works(client: FlaskClient, job_id: str) -> None:
    """After a refusal the same client can read and write (the session was rolled back)."""
    response = client.get(job_url(job_id))
    assert response.status_code == 200
    assert response.get_json()["id"] == job_id
    response = client.post(API, json={"document_id": "doc-after-refusal"})
    assert response.status_code == 201
    assert response.get_json()["document_id"] == "doc-after-refusal"


def nested_list(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def cursor_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def next_link(response: Any) -> str | None:
    """The target of ``Link: <...>; rel="next"``, or ``None``."""
    header = response.headers.get("Link")
    if header is None:
        return None
    target, _, params = header.partition(";")
    assert params.strip() == 'rel="next"'
    assert target.startswith("<") and target.endswith(">")
    return target[1:-1]


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def job(client: FlaskClient) -> dict[str, Any]:
    """A ``Pending`` job, as the API returned it."""
    return create_job(client)


@pytest.fixture
def failed_job(client: FlaskClient, job: dict[str, Any]) -> dict[str, Any]:
    """A job already ``Validation_Failed`` with a first report, so a refused
    request that slipped through would show as a changed message or details."""
    return post_ok(client, job_url(job["id"], "validation-failure"), FIRST_FAILURE)


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build extra apps on this test's database with other settings."""
    made: list[Flask] = []

    def factory(**settings: Any) -> Flask:
        application = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, **settings})
        made.append(application)
        return application

    yield factory
    for application in made:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


# -- creating and reading jobs -------------------------------------------------


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
        # breaks two keywords (minLength and pattern, type and enum) is named
        # once per keyword.
        ({"document_id": {"id": "doc-1"}}, "invalid-fields", ["document_id"]),
        ({"document_id": ["doc-1"]}, "invalid-fields", ["document_id"]),
        ({"document_id": 1234}, "invalid-fields", ["document_id"]),
        ({"document_id": None}, "invalid-fields", ["document_id"]),
        ({"document_id": ""}, "invalid-fields", ["document_id", "document_id"]),
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


def test_create_job_keeps_unicode_and_cleans_unstorable_characters(client, app):
    data = '{"document_id": "Ünïcödé 😀 \\ud83d\\ude00 \\u0000 \\udc00"}'.encode()
    response = client.post(API, data=data, content_type="application/json")
    assert response.status_code == 201
    job = response.get_json()
    assert job["document_id"] == "Ünïcödé 😀 😀 \ufffd \ufffd"
    assert row(app, job["id"])["document_id"] == "Ünïcödé 😀 😀 \ufffd \ufffd"


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
    assert row(app, job["id"]) == before
    assert job_count(app) == 1
    assert_client_still_works(client, job["id"])


# -- recording a validation failure -----------------------------------------------


def test_record_validation_failure_returns_the_updated_job(client, app, job):
    before = datetime.now(timezone.utc)
    response = client.post(
        job_url(job["id"], "validation-failure"),
        json={"error_message": "  2 entities failed validation\n", "error_details": DETAILS},
    )
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    updated = response.get_json()
    assert_job_json(updated)
    assert updated["id"] == job["id"]
    assert updated["status"] == "Validation_Failed"
    assert updated["error_message"] == "2 entities failed validation"
    assert updated["error_details"] == DETAILS
    assert updated["error_format"] == "free-form"
    assert updated["created_at"] == job["created_at"]
    assert updated["started_at"] is None
    completed = parse_timestamp(updated["completed_at"])
    assert before - timedelta(seconds=1) <= completed <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert parse_timestamp(updated["updated_at"]) >= parse_timestamp(job["updated_at"])
    assert client.get(job_url(job["id"])).get_json() == updated
    assert_matches_row(updated, row(app, job["id"]))


@pytest.mark.parametrize(
    "details",
    [
        DETAILS,
        [],
        {},
        "a plain string",
        "",
        0,
        -17,
        2**53 + 1,
        3.25,
        True,
        False,
        None,
        {"b": [1, {"c": None}], "a": "z"},
        nested_list(32),
    ],
    ids=lambda v: canonical_json(v)[:30],
)
def test_error_details_accept_any_json_value(client, app, job, details):
    updated = post_ok(
        client,
        job_url(job["id"], "validation-failure"),
        {"error_message": "failed", "error_details": details},
    )
    assert canonical_json(updated["error_details"]) == canonical_json(details)
    # JSON null means "no details": there is no format to name.
    assert updated["error_format"] == (None if details is None else "free-form")
    assert_matches_row(updated, row(app, job["id"]))
    assert canonical_json(row(app, job["id"])["error_details"]) == canonical_json(details)


def test_message_at_the_limit_is_accepted(client, app, job):
    updated = post_ok(
        client, job_url(job["id"], "validation-failure"), {"error_message": "m" * 1000, "error_details": {}}
    )
    assert updated["error_message"] == "m" * 1000
    assert row(app, job["id"])["error_message"] == "m" * 1000


def test_recording_the_same_failure_twice_gives_the_same_answer(client, app, job):
    url = job_url(job["id"], "validation-failure")
    first = client.post(url, json={"error_message": "failed", "error_details": DETAILS})
    stored = row(app, job["id"])
    # Same message after trimming, same JSON value in another key order.
    again = {"problems": [dict(reversed(list(DETAILS["problems"][0].items())))], "document": "note-17"}
    second = client.post(url, json={"error_message": " failed ", "error_details": again})
    assert first.status_code == second.status_code == 200
    assert second.get_json() == first.get_json()
    assert second.get_json()["completed_at"] == first.get_json()["completed_at"]
    assert second.get_json()["updated_at"] == first.get_json()["updated_at"]
    assert row(app, job["id"]) == stored


def test_a_different_failure_replaces_the_stored_one(client, app, failed_job):
    updated = post_ok(
        client,
        job_url(failed_job["id"], "validation-failure"),
        {"error_message": "second failure", "error_details": {"problems": []}},
    )
    assert updated["error_message"] == "second failure"
    assert updated["error_details"] == {"problems": []}
    assert updated["error_format"] == "free-form"
    assert parse_timestamp(updated["completed_at"]) >= parse_timestamp(failed_job["completed_at"])
    assert parse_timestamp(updated["updated_at"]) >= parse_timestamp(failed_job["updated_at"])
    assert_matches_row(updated, row(app, failed_job["id"]))


def test_a_float_replaces_an_integer_beyond_double_range(client, app, job):
    # JSON allows 1 followed by 400 zeros; no double holds it, so comparing
    # the stored value with the next report's float must not overflow.
    url = job_url(job["id"], "validation-failure")
    huge = b'{"error_message": "m", "error_details": {"n": 1' + b"0" * 400 + b"}}"
    assert client.post(url, data=huge, content_type="application/json").status_code == 200
    assert row(app, job["id"])["error_details"] == {"n": 10**400}
    updated = post_ok(client, url, {"error_message": "m", "error_details": {"n": 1.5}})
    assert updated["error_details"] == {"n": 1.5}
    assert_matches_row(updated, row(app, job["id"]))


def test_a_fhir_expression_index_longer_than_int_reads_is_kept_as_a_capped_pointer(client, app, job):
    index = "9" * 5000  # more digits than int() converts
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "expression": [f"Patient.name[{index}]"]}],
    }
    updated = post_ok(
        client,
        job_url(job["id"], "validation-failure"),
        {"error_message": "m", "error_details": outcome, "error_format": "fhir-operationoutcome"},
    )
    # Too long for a stored pointer: cut to its longest ancestor that fits.
    assert updated["error_details"]["errors"][0]["pointer"] == "/name"
    assert_matches_row(updated, row(app, job["id"]))


def test_validation_failure_on_a_completed_job_is_a_409_and_changes_nothing(client, app, job):
    post_ok(client, job_url(job["id"], "result"), {"status": "completed"})
    before = row(app, job["id"])
    response = client.post(job_url(job["id"], "validation-failure"), json=FIRST_FAILURE)
    problem = assert_problem(response, 409, "invalid-transition")
    assert "Completed" in problem["detail"]
    assert row(app, job["id"]) == before
    assert before["status"] == "Completed" and before["error_message"] is None
    assert_client_still_works(client, job["id"])


# -- malformed bodies ----------------------------------------------------------


def _body(message: str = "report", details: str = "{}") -> bytes:
    return f'{{"error_message": "{message}", "error_details": {details}}}'.encode()


MALFORMED_BODIES = [
    pytest.param(b'{error_message: "x", error_details: {}}', id="invalid-json"),
    pytest.param(b"{'error_message': 'x', 'error_details': {}}", id="single-quotes"),
    pytest.param(b'{"error_message": "x", "error_details": {"a": [1, 2', id="truncated"),
    pytest.param(b'{"error_message": "x", "error_details": {},}', id="trailing-comma"),
    pytest.param(_body() + b' {"more": 1}', id="two-values"),
    pytest.param(b'{"error_message": "x", /* c */ "error_details": {}}', id="comment"),
    pytest.param(b"", id="empty"),
    pytest.param(b" \r\n\t ", id="whitespace-only"),
    pytest.param(b"\xef\xbb\xbf", id="bom-only"),
    pytest.param(b'{"error_message": "\xff\xfe", "error_details": {}}', id="invalid-utf8"),
    pytest.param(b'{"error_message": "\xc0\xaf", "error_details": {}}', id="overlong-utf8"),
    pytest.param(b'{"error_message": "\xed\xa0\x80", "error_details": {}}', id="encoded-surrogate"),
    pytest.param(b'{"error_message": "caf\xe9", "error_details": {}}', id="latin-1-byte"),
    pytest.param(_body().decode().encode("utf-16"), id="utf-16"),
    pytest.param(_body(details="NaN"), id="nan"),
    pytest.param(_body(details="Infinity"), id="infinity"),
    pytest.param(_body(details="-Infinity"), id="minus-infinity"),
    pytest.param(_body(details='{"n": [1e999]}'), id="1e999"),
    pytest.param(_body(details="-1e999"), id="minus-1e999"),
    pytest.param(_body(details="1" * 5000), id="5000-digit-integer"),
    pytest.param(b'{"error_message": "a", "error_message": "b", "error_details": {}}', id="duplicate-keys"),
    pytest.param(_body(details='{"errors": [{"code": "x", "code": "y"}]}'), id="duplicate-nested-keys"),
    pytest.param(b"[" * 100_000, id="100000-open-brackets"),
    pytest.param(_body(details="[" * 100_000 + "]" * 100_000), id="100000-nested-details"),
    pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="50000-nested-objects"),
]


@pytest.mark.parametrize("data", MALFORMED_BODIES)
def test_malformed_json_is_a_400_problem_and_changes_nothing(client, app, failed_job, data):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 400, "malformed-json")
    assert "errors" not in problem
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


INVALID_FIELD_BODIES = [
    pytest.param(b"[]", "invalid-fields", [""], id="top-level-array"),
    pytest.param(
        b'["error_message", "error_details"]', "invalid-fields", [""], id="top-level-array-of-names"
    ),
    pytest.param(b'"report"', "invalid-fields", [""], id="top-level-string"),
    pytest.param(b"null", "invalid-fields", [""], id="top-level-null"),
    pytest.param(b"42", "invalid-fields", [""], id="top-level-number"),
    pytest.param(b"{}", "invalid-fields", ["error_details", "error_message"], id="empty-object"),
    pytest.param(b'{"error_message": "x"}', "invalid-fields", ["error_details"], id="missing-details"),
    pytest.param(b'{"error_details": {}}', "invalid-fields", ["error_message"], id="missing-message"),
    pytest.param(_body()[:-1] + b', "retry": true}', "invalid-fields", ["retry"], id="unknown-field"),
    pytest.param(
        _body()[:-1] + b', "Error_Message": "x"}', "invalid-fields", ["Error_Message"], id="wrong-case-field"
    ),
    pytest.param(
        b'{"error_message": "x", "status": "Completed"}',
        "invalid-fields",
        ["error_details", "status"],
        id="missing-and-unknown",
    ),
    # The error_message's type and length are the schema's (invalid-fields);
    # blank after trimming is a rule only the recorder knows (invalid-failure).
    pytest.param(
        b'{"error_message": 42, "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-number",
    ),
    pytest.param(
        b'{"error_message": ["x"], "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-list",
    ),
    pytest.param(
        b'{"error_message": {"text": "x"}, "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-object",
    ),
    pytest.param(
        b'{"error_message": null, "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-null",
    ),
    pytest.param(
        b'{"error_message": true, "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-bool",
    ),
    pytest.param(_body(""), "invalid-fields", ["error_message"], id="message-empty"),
    pytest.param(_body(" \\t\\r\\n "), "invalid-failure", ["error_message"], id="message-whitespace"),
    pytest.param(
        _body("\\u00a0\\u2003\\u3000"), "invalid-failure", ["error_message"], id="message-unicode-spaces"
    ),
    # The length limit is the configured one, checked after trimming, by the recorder.
    pytest.param(_body("PHI-" + "x" * 997), "invalid-failure", ["error_message"], id="message-1001-chars"),
    pytest.param(_body("😀" * 1001), "invalid-failure", ["error_message"], id="message-1001-emoji"),
    pytest.param(
        b'{"error_message": 42, "error_details": {}, "error_format": "xml"}',
        "invalid-fields",
        ["error_format", "error_message"],
        id="two-bad-fields-in-the-schema",
    ),
    pytest.param(
        b'{"error_message": " \\t ", "error_details": ' + b"[" * 40 + b"]" * 40 + b"}",
        "invalid-failure",
        ["error_details" + ".0" * 32, "error_message"],
        id="two-bad-fields-in-the-recorder",
    ),
    # A schema error is answered before the recorder looks at anything: the
    # over-deep details are not reported alongside it.
    pytest.param(
        b'{"error_message": 42, "error_details": ' + b"[" * 40 + b"]" * 40 + b"}",
        "invalid-fields",
        ["error_message"],
        id="schema-error-before-recorder-error",
    ),
]


@pytest.mark.parametrize(("data", "slug", "bad_fields"), INVALID_FIELD_BODIES)
def test_wrong_fields_are_a_422_problem_and_change_nothing(client, app, failed_job, data, slug, bad_fields):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 422, slug)
    assert fields(problem) == bad_fields
    for error in problem["errors"]:
        expected_pointer = (
            "#" + "".join("/" + part for part in error["field"].split(".")) if error["field"] else "#"
        )
        assert error["pointer"] == expected_pointer
    # The detail names what is wrong without quoting what was sent.
    assert "PHI-" not in response.get_data(as_text=True)
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


def test_whole_body_error_points_at_the_root(client, job):
    response = client.post(
        job_url(job["id"], "validation-failure"), data=b"[]", content_type="application/json"
    )
    problem = assert_problem(response, 422, "invalid-fields")
    assert problem["errors"] == [{"field": "", "pointer": "#", "detail": "must be object"}]


def test_error_details_nested_too_deeply_are_a_422_naming_the_place(client, app, failed_job):
    depth = app.config["MAX_JSON_DEPTH"]
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        json={"error_message": "x", "error_details": {"trace": nested_list(40)}},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    # The array that would be level depth + 1: under "trace" and depth - 1 arrays.
    field = "error_details.trace" + ".0" * (depth - 1)
    assert problem["errors"] == [
        {
            "field": field,
            "pointer": "#/" + field.replace(".", "/"),
            "detail": f"nested deeper than {depth} levels",
        }
    ]
    assert row(app, failed_job["id"]) == before
    # 500 levels: readable by the parser, refused by the depth limit, never a 500.
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        json={"error_message": "x", "error_details": nested_list(500)},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    assert fields(problem) == ["error_details" + ".0" * depth]
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


def test_bodies_nested_near_the_parsers_limit_are_refused_before_any_work(client, app, failed_job):
    # The parser's limit is the interpreter's recursion limit less the frames
    # in use; a body a few levels under it used to parse and then overflow
    # the stack in deeper code (the idempotency fingerprint, a schema error's
    # repr): a 500 at one exact depth, between the 422s and the 400s.
    limit = json_body.MAX_BODY_NESTING
    before, jobs_before = row(app, failed_job["id"]), job_count(app)
    endpoints = {
        API: ("job_type", "invalid-fields"),
        job_url(failed_job["id"], "validation-failure"): ("error_details", "invalid-failure"),
        job_url(failed_job["id"], "result"): ("entities", "invalid-fields"),
    }
    for url, (field, slug) in endpoints.items():
        # ``depth`` arrays inside the body's object: depth + 1 levels. Around
        # our limit, and every depth up to past the parser's (the frames in
        # use differ between runners, so not one depth).
        ceiling = sys.getrecursionlimit()
        for depth in [*range(limit - 2, limit + 3), *range(ceiling - 200, ceiling + 3)]:
            data = f'{{"error_message": "m", "{field}": {"[" * depth}{"]" * depth}}}'
            response = client.post(
                url, data=data, content_type="application/json", headers={"Idempotency-Key": f"{url}{depth}"}
            )
            if depth + 1 <= limit:
                assert_problem(response, 422, slug)
            else:
                problem = assert_problem(response, 400, "malformed-json")
                assert problem["detail"] == f"The body nests arrays or objects more than {limit} levels deep."
    assert row(app, failed_job["id"]) == before
    assert job_count(app) == jobs_before
    assert_client_still_works(client, failed_job["id"])


def test_unknown_field_names_are_escaped_in_pointers(client, app, failed_job):
    before = row(app, failed_job["id"])
    data = _body()[:-1] + b', "a/b~c": 1, "a b": 2, "\xc3\xbc": 3, "\\ud800": 4}'
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 422, "invalid-fields")
    # Sorted by pointer (the fragment form), each named once.
    assert [(e["field"], e["pointer"], e["detail"]) for e in problem["errors"]] == [
        ("ü", "#/%C3%BC", "is not a known field"),
        # A lone surrogate follows the storage rule: U+FFFD, percent-encoded as
        # UTF-8 (echoing "\ud800" would put a string many JSON parsers refuse
        # into the answer, and "?" would point at no member of the body).
        ("\ufffd", "#/%EF%BF%BD", "is not a known field"),
        ("a b", "#/a%20b", "is not a known field"),
        ("a/b~c", "#/a~1b~0c", "is not a known field"),
    ]
    assert "\\ud800" not in response.get_data(as_text=True).lower()
    assert row(app, failed_job["id"]) == before


# -- text the API accepts --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message", "details"),
    [
        pytest.param(
            b"\xef\xbb\xbf" + _body("with bom", '{"k": "v"}'), "with bom", {"k": "v"}, id="utf8-bom"
        ),
        pytest.param(
            _body("bad\\u0000byte", '{"k\\u0000": "v\\u0000", "list": ["\\u0000"]}'),
            "bad\ufffdbyte",
            {"k\ufffd": "v\ufffd", "list": ["\ufffd"]},
            id="nul",
        ),
        pytest.param(
            _body("\\ud800 high", '["\\udc00", "\\udc00\\ud800", {"\\udbff": 1}]'),
            "\ufffd high",
            ["\ufffd", "\ufffd\ufffd", {"\ufffd": 1}],
            id="lone-surrogates",
        ),
        pytest.param(
            _body("\\ud83d\\ude00 pair", '"\\ud83d\\ude00"'), "😀 pair", "😀", id="escaped-surrogate-pair"
        ),
        pytest.param(
            _body("Ünïcödé 😀 日本語 e\u0301 \u2028 \u202e", '{"ключ": "значение 🧬", "emoji": "👩🏽‍⚕️"}'),
            "Ünïcödé 😀 日本語 e\u0301 \u2028 \u202e",
            {"ключ": "значение 🧬", "emoji": "👩🏽‍⚕️"},
            id="raw-non-ascii",
        ),
        pytest.param(
            _body('quotes \\" \\\\ <script>&amp;', '{"html": "<b>&</b>", "tab": "\\t"}'),
            'quotes " \\ <script>&amp;',
            {"html": "<b>&</b>", "tab": "\t"},
            id="escapes-and-markup",
        ),
        pytest.param(
            _body("1e-400 underflows", "[1e-400, -0, 1E2, 123456789012345678901234567890]"),
            "1e-400 underflows",
            [0.0, 0, 100.0, 123456789012345678901234567890],
            id="numbers",
        ),
    ],
)
def test_accepted_text_is_stored_by_one_rule_on_both_backends(client, app, job, data, message, details):
    response = client.post(
        job_url(job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.get_json()
    stored = row(app, job["id"])
    assert updated["error_message"] == stored["error_message"] == message
    assert (
        canonical_json(updated["error_details"])
        == canonical_json(stored["error_details"])
        == canonical_json(details)
    )
    assert_matches_row(updated, stored)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        "application/json;charset=utf8",
        'application/json; charset="utf-8"',
        "Application/JSON",
        "application/merge-patch+json",
        "application/vnd.worker.result+json; charset=utf-8",
    ],
)
def test_json_media_types_are_accepted(client, job, content_type):
    response = client.post(
        job_url(job["id"], "validation-failure"), data=_body("typed"), content_type=content_type
    )
    assert response.status_code == 200
    assert response.get_json()["error_message"] == "typed"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "application/jsonl",
        "application/x-ndjson",
        "application/octet-stream",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/json; charset=us-ascii",
        None,
    ],
)
def test_non_json_bodies_are_a_415_problem_and_change_nothing(client, app, failed_job, content_type):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=_body("sent"), content_type=content_type
    )
    assert_problem(response, 415, "unsupported-media-type")
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


def test_form_posts_are_a_415_problem(client, app, failed_job):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data={"error_message": "x", "error_details": "{}"}
    )
    assert response.request.mimetype == "application/x-www-form-urlencoded"
    assert_problem(response, 415, "unsupported-media-type")
    assert row(app, failed_job["id"]) == before


# -- body size -------------------------------------------------------------------


def _padded(body: bytes, size: int) -> bytes:
    """``body`` followed by JSON whitespace up to ``size`` bytes."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_body_over_the_configured_limit_is_a_413_problem(make_app, auth_headers):
    small = make_app(MAX_CONTENT_LENGTH=1024)
    client = small.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = auth_headers["Authorization"]
    job = create_job(client)
    url = job_url(job["id"], "validation-failure")
    before = row(small, job["id"])
    response = client.post(url, data=_padded(_body("too big"), 1025), content_type="application/json")
    problem = assert_problem(response, 413, "content-too-large")
    assert "1024 bytes" in problem["detail"]
    assert row(small, job["id"]) == before
    # A body of exactly the limit is read.
    response = client.post(url, data=_padded(_body("just fits"), 1024), content_type="application/json")
    assert response.status_code == 200
    assert response.get_json()["error_message"] == "just fits"
    # Creating a job with an oversized body stores nothing.
    response = client.post(API, json={"document_id": "x" * 2000})
    assert_problem(response, 413, "content-too-large")
    assert job_count(small) == 1


def test_body_over_one_mebibyte_is_a_413_problem_by_default(client, app, failed_job):
    assert app.config["MAX_CONTENT_LENGTH"] == 1_048_576
    before = row(app, failed_job["id"])
    details = json.dumps(["x" * 1000] * 1100)
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        data=_body("huge", details),
        content_type="application/json",
    )
    assert_problem(response, 413, "content-too-large")
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


# -- error_details formats -----------------------------------------------------------

#: Items in the normalized shape (error-details v1).
NORMALIZED_ITEMS = [
    {
        "code": "unit.not_ucum",
        "severity": "error",
        "message": "unit is not a valid UCUM code",
        "pointer": "/entities/1/value/unit",
    },
    {
        "code": "code.unknown_icd10cm",
        "severity": "warning",
        "message": "unknown code",
        "pointer": "/entities/0/code",
    },
]

#: Every way a failure report reaches the recorder over HTTP: (action, body
#: without error_format). failed_job is Validation_Failed, from which all three
#: are allowed, so only the payload decides the answer.
FAILURE_REPORTS = [
    pytest.param(
        "validation-failure",
        {"error_message": "invalid", "error_details": {"k": "v"}},
        id="validation-failure",
    ),
    pytest.param(
        "result",
        {"status": "validation_failed", "error_message": "invalid", "error_details": {"k": "v"}},
        id="result-validation_failed",
    ),
    pytest.param(
        "result",
        {"status": "failed", "error_message": "crashed", "error_details": {"k": "v"}},
        id="result-failed",
    ),
]


@pytest.mark.parametrize(("action", "body"), FAILURE_REPORTS)
@pytest.mark.parametrize(
    ("error_format", "bad_fields"),
    [
        pytest.param("xml", ["error_format"], id="xml"),
        pytest.param("Pydantic", ["error_format"], id="wrong-case"),
        pytest.param("free_form", ["error_format"], id="underscore"),
        pytest.param("FREE-FORM", ["error_format"], id="upper-case"),
        pytest.param(" normalized", ["error_format"], id="leading-space"),
        pytest.param("", ["error_format"], id="empty"),
        # Not a string: the type and the enum are broken, each named.
        pytest.param(None, ["error_format", "error_format"], id="null"),
        pytest.param(3, ["error_format", "error_format"], id="number"),
        pytest.param(["normalized"], ["error_format", "error_format"], id="list"),
    ],
)
def test_unknown_error_format_is_a_422_naming_it_and_changes_nothing(
    client, app, failed_job, action, body, error_format, bad_fields
):
    url = job_url(failed_job["id"], action)
    before = row(app, failed_job["id"])
    response = client.post(url, json={**body, "error_format": error_format})
    problem = assert_problem(response, 422, "invalid-fields")
    assert fields(problem) == bad_fields
    assert {e["pointer"] for e in problem["errors"]} == {"#/error_format"}
    assert any(e["detail"].startswith("must be one of: ") for e in problem["errors"])
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])
    # The same report with a known format is accepted: only the name was wrong.
    accepted = post_ok(client, url, {**body, "error_format": "free-form"})
    assert accepted["error_details"] == {"k": "v"}
    assert accepted["error_format"] == "free-form"


@pytest.mark.parametrize(
    "details",
    [
        {"errors": NORMALIZED_ITEMS},
        {"errors": []},
        NORMALIZED_ITEMS,
        {"schema_version": 1, "errors": NORMALIZED_ITEMS, "error_count": 2, "truncated": False},
        # Would be refused as a malformed normalized payload; free-form takes it as is.
        {"errors": [{**NORMALIZED_ITEMS[0], "severity": "catastrophic", "extra": True}]},
        [{"loc": ["entities", 0, "text"], "msg": "too long", "type": "string_too_long"}],
    ],
    ids=["v0-items", "v0-empty", "bare-items", "v1-envelope", "malformed-items", "pydantic-looking"],
)
def test_free_form_format_stores_details_as_sent_even_when_they_look_structured(client, app, job, details):
    url = job_url(job["id"], "validation-failure")
    updated = post_ok(
        client, url, {"error_message": "invalid", "error_details": details, "error_format": "free-form"}
    )
    assert updated["error_format"] == "free-form"
    assert canonical_json(updated["error_details"]) == canonical_json(details)
    stored = row(app, job["id"])
    assert stored["error_format"] == "free-form"
    assert canonical_json(stored["error_details"]) == canonical_json(details)
    assert_matches_row(updated, stored)
    assert client.get(job_url(job["id"])).get_json() == updated


def test_normalized_looking_details_are_stored_as_the_envelope(client, app, job):
    url = job_url(job["id"], "validation-failure")
    envelope = {"schema_version": 1, "errors": NORMALIZED_ITEMS, "error_count": 2, "truncated": False}
    # No format given: recognised from the items' markers.
    updated = post_ok(
        client, url, {"error_message": "invalid", "error_details": {"errors": NORMALIZED_ITEMS}}
    )
    assert updated["status"] == "Validation_Failed"
    assert updated["error_format"] == "normalized"
    assert updated["error_details"] == envelope
    stored = row(app, job["id"])
    assert stored["error_format"] == "normalized"
    assert canonical_json(stored["error_details"]) == canonical_json(envelope)
    assert_matches_row(updated, stored)
    # Declared, and sent again as the envelope: the same stored failure, so nothing changes.
    for body in (
        {
            "error_message": "invalid",
            "error_details": {"errors": NORMALIZED_ITEMS},
            "error_format": "normalized",
        },
        {"error_message": "invalid", "error_details": envelope},
    ):
        assert post_ok(client, url, body) == updated
        assert row(app, job["id"]) == stored
    # The same details declared free-form are a different failure: stored as sent.
    free = post_ok(
        client,
        url,
        {
            "error_message": "invalid",
            "error_details": {"errors": NORMALIZED_ITEMS},
            "error_format": "free-form",
        },
    )
    assert free["error_format"] == "free-form"
    assert free["error_details"] == {"errors": NORMALIZED_ITEMS}
    assert_matches_row(free, row(app, job["id"]))


@pytest.mark.parametrize(("action", "body"), FAILURE_REPORTS)
@pytest.mark.parametrize(
    ("details", "bad_fields"),
    [
        ({"free": "PHI-note"}, ["error_details"]),
        ("PHI-plain string", ["error_details"]),
        (None, ["error_details"]),
        ({"errors": NORMALIZED_ITEMS}, ["error_details"]),
        (NORMALIZED_ITEMS, ["error_details.0.type"]),
        (["PHI-x"], ["error_details.0"]),
        ([{"loc": ["a", 0], "msg": "PHI-m", "type": 5}], ["error_details.0.type"]),
    ],
    ids=[
        "object", "string", "null", "normalized-v0", "normalized-items", "array-of-strings", "type-not-string"
    ],
)
def test_pydantic_format_with_a_non_pydantic_payload_is_a_422_and_changes_nothing(
    client, app, failed_job, action, body, details, bad_fields
):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], action),
        json={**body, "error_details": details, "error_format": "pydantic"},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    assert fields(problem) == bad_fields
    for error in problem["errors"]:
        assert error["field"].startswith("error_details")
        assert error["pointer"] == "#/" + error["field"].replace(".", "/")
    # The detail says what was expected without quoting what was sent.
    assert "PHI-" not in response.get_data(as_text=True)
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


# -- start and result --------------------------------------------------------------


def test_start_moves_a_pending_job_to_processing(client, app, job):
    started = post_ok(client, job_url(job["id"], "start"))
    assert started["status"] == "Processing"
    assert parse_timestamp(started["started_at"]) >= parse_timestamp(job["created_at"])
    assert started["completed_at"] is None
    assert_matches_row(started, row(app, job["id"]))


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        ([("start", None)], "Processing"),
        ([("result", {"status": "completed"})], "Completed"),
        ([("validation-failure", FIRST_FAILURE)], "Validation_Failed"),
        ([("result", {"status": "failed", "error_message": "crashed"})], "Failed"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_start_on_a_non_pending_job_is_a_409_and_changes_nothing(client, app, job, setup, status):
    for action, body in setup:
        post_ok(client, job_url(job["id"], action), body)
    before = row(app, job["id"])
    assert before["status"] == status
    problem = assert_problem(client.post(job_url(job["id"], "start")), 409, "invalid-transition")
    assert status in problem["detail"]
    assert row(app, job["id"]) == before
    assert_client_still_works(client, job["id"])


@pytest.mark.parametrize(
    ("body", "status", "message", "details", "error_format"),
    [
        ({"status": "completed"}, "Completed", None, None, None),
        (
            {"status": "validation_failed", "error_message": " invalid ", "error_details": DETAILS},
            "Validation_Failed",
            "invalid",
            DETAILS,
            "free-form",
        ),
        (
            {"status": "validation_failed", "error_message": "invalid", "error_details": []},
            "Validation_Failed",
            "invalid",
            [],
            "free-form",
        ),
        # Details are optional for "failed"; none sent is stored as null, with no format.
        (
            {"status": "failed", "error_message": "worker crashed"},
            "Failed",
            "worker crashed",
            None,
            None,
        ),
        (
            {"status": "failed", "error_message": "timeout", "error_details": {"seconds": 30}},
            "Failed",
            "timeout",
            {"seconds": 30},
            "free-form",
        ),
        (
            {
                "status": "failed",
                "error_message": "timeout",
                "error_details": {"seconds": 30},
                "error_format": "free-form",
            },
            "Failed",
            "timeout",
            {"seconds": 30},
            "free-form",
        ),
    ],
    ids=lambda v: canonical_json(v)[:50] if isinstance(v, dict) else None,
)
def test_result_finishes_a_processing_job(client, app, job, body, status, message, details, error_format):
    started = post_ok(client, job_url(job["id"], "start"))
    finished = post_ok(client, job_url(job["id"], "result"), body)
    assert finished["status"] == status
    assert finished["error_message"] == message
    assert canonical_json(finished["error_details"]) == canonical_json(details)
    assert finished["error_format"] == error_format
    assert finished["started_at"] == started["started_at"]
    assert parse_timestamp(finished["completed_at"]) >= parse_timestamp(started["started_at"])
    assert_matches_row(finished, row(app, job["id"]))


def test_validation_failed_result_is_the_same_as_the_dedicated_endpoint(client, job):
    by_result = post_ok(
        client,
        job_url(job["id"], "result"),
        {"status": "validation_failed", "error_message": "invalid", "error_details": DETAILS},
    )
    again = post_ok(
        client,
        job_url(job["id"], "validation-failure"),
        {"error_message": "invalid", "error_details": DETAILS},
    )
    assert again == by_result


@pytest.mark.parametrize(
    ("body", "slug", "bad_fields"),
    [
        ({"status": "done"}, "invalid-fields", ["status"]),
        ({"status": "COMPLETED"}, "invalid-fields", ["status"]),
        # The contract's status words only: the canonical spelling is not one.
        ({"status": "Completed"}, "invalid-fields", ["status"]),
        (
            {"status": "Validation_Failed", "error_message": "invalid", "error_details": []},
            "invalid-fields",
            ["status"],
        ),
        ({"status": "Failed", "error_message": "crashed"}, "invalid-fields", ["status"]),
        ({"status": " completed"}, "invalid-fields", ["status"]),
        (
            {"status": "validation-failed", "error_message": "x", "error_details": {}},
            "invalid-fields",
            ["status"],
        ),
        ({"status": "pending"}, "invalid-fields", ["status"]),
        ({"status": "processing"}, "invalid-fields", ["status"]),
        # Not a string: both the type and the enum are broken, each named.
        ({"status": 1}, "invalid-fields", ["status", "status"]),
        ({"status": None}, "invalid-fields", ["status", "status"]),
        ({"status": ["completed"]}, "invalid-fields", ["status", "status"]),
        ({"status": {"completed": True}}, "invalid-fields", ["status", "status"]),
        ({}, "invalid-fields", ["status"]),
        ({"status": "completed", "reason": "x"}, "invalid-fields", ["reason"]),
        # Fields that do not belong to the status (`false` subschemas) are named.
        ({"status": "completed", "error_message": "x"}, "invalid-fields", ["error_message"]),
        ({"status": "completed", "error_details": None}, "invalid-fields", ["error_details"]),
        ({"status": "completed", "error_format": "free-form"}, "invalid-fields", ["error_format"]),
        (
            {"status": "completed", "error_message": "x", "error_details": {}},
            "invalid-fields",
            ["error_details", "error_message"],
        ),
        ({"status": "validation_failed", "error_message": "x"}, "invalid-fields", ["error_details"]),
        ({"status": "validation_failed"}, "invalid-fields", ["error_details", "error_message"]),
        (
            {"status": "validation_failed", "error_message": "", "error_details": {}},
            "invalid-fields",
            ["error_message"],
        ),
        (
            {"status": "validation_failed", "error_message": " ", "error_details": {}},
            "invalid-failure",
            ["error_message"],
        ),
        ({"status": "failed"}, "invalid-fields", ["error_message"]),
        ({"status": "failed", "error_message": "  "}, "invalid-failure", ["error_message"]),
        ({"status": "failed", "error_message": 500}, "invalid-fields", ["error_message"]),
        ({"status": "failed", "error_message": "x" * 1001}, "invalid-failure", ["error_message"]),
    ],
    ids=lambda v: canonical_json(v)[:50] if isinstance(v, dict) else None,
)
def test_result_with_wrong_fields_is_a_422_and_changes_nothing(client, app, job, body, slug, bad_fields):
    post_ok(client, job_url(job["id"], "start"))
    before = row(app, job["id"])
    problem = assert_problem(client.post(job_url(job["id"], "result"), json=body), 422, slug)
    assert fields(problem) == bad_fields
    assert row(app, job["id"]) == before
    assert before["status"] == "Processing"
    assert_client_still_works(client, job["id"])


@pytest.mark.parametrize(
    "body",
    [
        {"status": "completed"},
        {"status": "failed", "error_message": "late crash"},
        {"status": "validation_failed", "error_message": "late", "error_details": {}},
    ],
    ids=["completed", "failed", "validation_failed"],
)
def test_result_on_a_completed_job_is_a_409_and_changes_nothing(client, app, job, body):
    post_ok(client, job_url(job["id"], "result"), {"status": "completed"})
    before = row(app, job["id"])
    assert_problem(client.post(job_url(job["id"], "result"), json=body), 409, "invalid-transition")
    assert row(app, job["id"]) == before
    assert_client_still_works(client, job["id"])


# -- listing -----------------------------------------------------------------------


@pytest.fixture
def jobs_in_every_status(client: FlaskClient) -> dict[str, str]:
    """document_id -> job id: doc-a Pending, doc-b Processing, doc-c
    Validation_Failed (type ocr), doc-d Failed, doc-e Completed."""
    ids = {}
    for document_id, job_type, actions in [
        ("doc-a", "entity_extraction", []),
        ("doc-b", "entity_extraction", [("start", None)]),
        ("doc-c", "ocr", [("validation-failure", FIRST_FAILURE)]),
        ("doc-d", "entity_extraction", [("result", {"status": "failed", "error_message": "crashed"})]),
        ("doc-e", "entity_extraction", [("result", {"status": "completed"})]),
    ]:
        job_id = create_job(client, document_id, job_type=job_type)["id"]
        for action, body in actions:
            post_ok(client, job_url(job_id, action), body)
        ids[document_id] = job_id
    return ids


@pytest.mark.parametrize(
    ("query", "documents"),
    [
        ("status=Validation_Failed", ["doc-c"]),
        ("status=validation_failed", ["doc-c"]),
        ("status=Failed&status=Validation_Failed", ["doc-c", "doc-d"]),
        ("status=failed,validation_failed", ["doc-c", "doc-d"]),
        ("status=pending&status=Pending", ["doc-a"]),
        ("status=all", ["doc-a", "doc-b", "doc-c", "doc-d", "doc-e"]),
        ("", ["doc-a", "doc-b", "doc-c", "doc-d", "doc-e"]),
        ("document_id=doc-b", ["doc-b"]),
        ("document_id=doc-z", []),
        ("job_type=ocr", ["doc-c"]),
        ("status=completed&document_id=doc-e", ["doc-e"]),
        ("status=completed&document_id=doc-a", []),
    ],
)
def test_list_filters_jobs(client, jobs_in_every_status, query, documents):
    response = client.get(f"{API}?{query}")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    page = response.get_json()
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    assert "Link" not in response.headers
    assert sorted(item["document_id"] for item in page["items"]) == documents
    for item in page["items"]:
        assert_job_json(item)
        assert item["id"] == jobs_in_every_status[item["document_id"]]


def test_list_items_are_the_jobs_as_get_returns_them(client, jobs_in_every_status):
    page = client.get(f"{API}?status=validation_failed").get_json()
    assert page["items"] == [client.get(job_url(jobs_in_every_status["doc-c"])).get_json()]
    assert page["items"][0]["error_details"] == DETAILS


def test_pagination_walks_every_job_exactly_once(client):
    created = [create_job(client, f"doc-{n}")["id"] for n in range(7)]
    url: str | None = f"{API}?limit=3"
    seen: list[dict[str, Any]] = []
    sizes = []
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        page = response.get_json()
        sizes.append(len(page["items"]))
        seen += page["items"]
        url = next_link(response)
        if page["next_cursor"] is None:
            assert url is None
        else:
            assert parse_qs(urlsplit(url).query) == {"limit": ["3"], "cursor": [page["next_cursor"]]}
            # The cursor alone gives the same next page as the link.
            assert (
                client.get(f"{API}?limit=3&cursor={page['next_cursor']}").get_json()
                == client.get(url).get_json()
            )
    assert sizes == [3, 3, 1]
    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)) == 7
    assert set(ids) == set(created)
    keys = [(parse_timestamp(item["created_at"]), uuid.UUID(item["id"])) for item in seen]
    assert keys == sorted(keys, reverse=True)


def test_pagination_keeps_the_filters_in_the_link(client, jobs_in_every_status):
    extra = [create_job(client, f"doc-pending-{n}")["id"] for n in range(2)]
    url: str | None = f"{API}?status=pending&limit=2"
    seen = []
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        seen += [item["id"] for item in response.get_json()["items"]]
        url = next_link(response)
        if url is not None:
            assert parse_qs(urlsplit(url).query)["status"] == ["pending"]
    assert sorted(seen) == sorted([jobs_in_every_status["doc-a"], *extra])


def test_link_treats_every_query_parameter_as_data(client):
    """Names url_for would interpret (``_external``, ``_scheme``...) stay plain query values."""
    created = [create_job(client, f"doc-{n}")["id"] for n in range(2)]
    query = "limit=1&_external=1&_scheme=ftp&_anchor=top&_method=POST&endpoint=x"
    response = client.get(f"{API}?{query}")
    assert response.status_code == 200
    link = next_link(response)
    assert link is not None and link.startswith(f"{API}?")
    assert parse_qs(urlsplit(link).query) == {
        "limit": ["1"],
        "_external": ["1"],
        "_scheme": ["ftp"],
        "_anchor": ["top"],
        "_method": ["POST"],
        "endpoint": ["x"],
        "cursor": [response.get_json()["next_cursor"]],
    }
    second = client.get(link)
    assert second.status_code == 200
    ids = [response.get_json()["items"][0]["id"], second.get_json()["items"][0]["id"]]
    assert sorted(ids) == sorted(created)


def test_limit_up_to_the_maximum_is_accepted(client, app, job):
    maximum = app.config["MAX_PAGE_SIZE"]
    assert client.get(f"{API}?limit={maximum}").get_json()["items"] == [job]
    problem = assert_problem(client.get(f"{API}?limit={maximum + 1}"), 400, "invalid-query")
    assert fields(problem) == ["limit"]


def _cursor(text: str) -> str:
    return "cursor=" + cursor_token(text)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status=done", "status"),
        ("status=Validation_Failed&status=nope", "status"),
        ("status=VALIDATION_FAILED", "status"),
        ("status=all,failed", "status"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1000000", "limit"),
        ("limit=" + "9" * 5000, "limit"),
        ("limit=1.5", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=1_0", "limit"),
        ("limit=%20", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=%C3%A9", "cursor"),
        ("cursor=%00", "cursor"),
        (_cursor("2026-01-01T00:00:00|" + str(uuid.UUID(int=1))), "cursor"),
        (_cursor("yesterday|" + str(uuid.UUID(int=1))), "cursor"),
        (_cursor("2026-01-01T00:00:00+00:00|not-a-uuid"), "cursor"),
        (_cursor("2026-01-01T00:00:00+00:00"), "cursor"),
    ],
)
def test_bad_list_parameters_are_a_400_problem(client, job, query, name):
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    assert fields(problem) == [name]
    assert problem["errors"][0]["pointer"] == f"#/{name}"
    assert_client_still_works(client, job["id"])


def test_cursor_out_of_the_datetime_range_is_a_400_problem(client, job):
    query = _cursor("0001-01-01T00:00:00+14:00|" + job["id"])
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    assert fields(problem) == ["cursor"]


def test_a_nul_is_stored_as_u_fffd_and_refused_in_a_filter(client):
    response = client.post(API, data=b'{"document_id": "doc\\u0000x"}', content_type="application/json")
    assert response.get_json()["document_id"] == "doc\ufffdx"
    # A NUL in a query parameter is a 400 on every route (app/request_input.py);
    # the stored form is what a filter finds.
    problem = assert_problem(client.get(f"{API}?document_id=doc%00x"), 400, "invalid-query")
    assert fields(problem) == ["document_id"]
    page = client.get(f"{API}?document_id=doc%EF%BF%BDx").get_json()
    assert [item["id"] for item in page["items"]] == [response.get_json()["id"]]


# -- routing errors and the unexpected ----------------------------------------------


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


def test_unexpected_errors_are_a_500_problem_without_internals(make_app, monkeypatch, auth_headers):
    production_like = make_app(PROPAGATE_UNEXPECTED=False)

    def explode(job_id: str) -> None:
        raise RuntimeError("patient Jane Doe, MRN 0042")

    monkeypatch.setattr(views.jobs, "get_job", explode)
    response = production_like.test_client().get(job_url(str(uuid.uuid4())), headers=auth_headers)
    assert_problem(response, 500, "internal-error")
    text = response.get_data(as_text=True)
    assert "Jane Doe" not in text and "RuntimeError" not in text


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
    assert_problem(response, 413, "content-too-large")
    with small.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob)) == 0
