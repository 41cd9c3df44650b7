"""Helpers for the tests of the JSON API under ``/api/v1`` over HTTP (Flask test client), on
SQLite and PostgreSQL.

Every refusal is checked the same way: the status, the
``application/problem+json`` media type, the problem ``type`` slug, the bad
fields named in ``errors``, the stored row unchanged (read with a fresh
connection, not the session) and a working client afterwards (the session
was rolled back). Races between workers are covered elsewhere.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

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
#: tested with the error-details service (and a few cases in test_error_formats.py).
DETAILS = {
    "document": "note-17",
    "problems": [{"where": "/entities/0/code", "why": "not an ICD-10-CM code", "count": 2, "fatal": True}],
}
FIRST_FAILURE = {"error_message": "first failure", "error_details": DETAILS}


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
        # Where, as JSON:API's error source: exactly one of pointer, parameter, header.
        # A JSON syntax error's item also gives its line and column (1-based).
        places = set(error) - {"field", "detail", "line", "column"}
        assert "field" in error and "detail" in error and len(places) == 1, error
        if "line" in error or "column" in error:
            assert "pointer" in error and error["line"] >= 1 and error["column"] >= 1, error
        assert places <= {"pointer", "parameter", "header"}
        if "pointer" in error:
            assert error["pointer"].startswith("#")
        else:
            assert error["field"] == error[places.pop()]
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
