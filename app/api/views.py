"""API views: unpack the request, call a service, shape the answer.

Views never touch ``db.session``; services raise typed errors that the
app-level handlers turn into RFC 9457 problem+json.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, jsonify, request, url_for

from app.api import bp
from app.api.json_body import read_json_object
from app.api.serializers import job_to_json
from app.errors import InvalidFieldsError, field_error
from app.models import JobStatus
from app.models.job_status import UnknownStatusError, status_from_worker_word
from app.services import get_failure_recorder
from app.services.processing_jobs import jobs


@bp.post("/processing-jobs")
def create_processing_job() -> tuple[Response, int, dict[str, str]]:
    """Create a job: ``{"document_id": str, "job_type"?: str}`` -> 201 + job + ``Location``."""
    body = read_json_object(request, allowed={"document_id", "job_type"}, required={"document_id"})
    job = jobs.create_job(body["document_id"], body.get("job_type", jobs.DEFAULT_JOB_TYPE))
    location = url_for("api.get_processing_job", job_id=job.id)
    return jsonify(job_to_json(job)), 201, {"Location": location}


@bp.get("/processing-jobs/<job_id>")
def get_processing_job(job_id: str) -> Response:
    """Return one job (404 problem when unknown)."""
    return jsonify(job_to_json(jobs.get_job(job_id)))


@bp.get("/processing-jobs")
def list_processing_jobs() -> Response:
    """Return a page of jobs, newest first.

    Query: ``status`` (repeatable or comma-separated; canonical name or worker
    word; default all), ``document_id``, ``job_type``, ``limit`` (1 to
    ``MAX_PAGE_SIZE``, default 50), ``cursor`` (from ``next_cursor``).
    Answer: ``{"items": [job...], "next_cursor": str|null}`` plus a
    ``Link: <...>; rel="next"`` header (RFC 8288) when there is a next page.
    """
    job_filter = jobs.JobFilter.from_query(
        request.args.getlist("status"),
        document_id=request.args.get("document_id"),
        job_type=request.args.get("job_type"),
    )
    limit = jobs.parse_limit(request.args.get("limit"), maximum=current_app.config["MAX_PAGE_SIZE"])
    page = jobs.list_jobs(job_filter, limit=limit, cursor=request.args.get("cursor"))
    response = jsonify({"items": [job_to_json(j) for j in page.jobs], "next_cursor": page.next_cursor})
    if page.next_cursor:
        # The query is encoded here rather than passed to url_for as keyword
        # arguments: url_for gives names such as _external, _scheme, _anchor
        # and endpoint a meaning of its own, so a client could change (or
        # crash) the link by sending them.
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        args.append(("cursor", page.next_cursor))
        next_url = f"{url_for('api.list_processing_jobs')}?{urlencode(args)}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.post("/processing-jobs/<job_id>/validation-failure")
def record_validation_failure(job_id: str) -> Response:
    """Record a validation failure: ``{"error_message": str, "error_details": any JSON}``.

    200 and the updated job; 404/409/422 problems as the recorder raises.
    """
    body = read_json_object(
        request, allowed={"error_message", "error_details"}, required={"error_message", "error_details"}
    )
    job = get_failure_recorder().record_validation_failure(
        job_id, body["error_message"], body["error_details"]
    )
    return jsonify(job_to_json(job))


@bp.post("/processing-jobs/<job_id>/start")
def start_processing_job(job_id: str) -> Response:
    """Move a job ``Pending`` -> ``Processing`` (no body needed)."""
    return jsonify(job_to_json(jobs.start_job(job_id)))


@bp.post("/processing-jobs/<job_id>/result")
def record_processing_result(job_id: str) -> Response:
    """Record the worker's outcome: ``{"status": word, ...}``.

    * ``{"status": "completed"}`` -> job ``Completed``;
    * ``{"status": "validation_failed", "error_message", "error_details"}`` ->
      the failure recorder, as the dedicated endpoint;
    * ``{"status": "failed", "error_message", "error_details"?}`` -> ``Failed``.
    """
    body = read_json_object(
        request, allowed={"status", "error_message", "error_details"}, required={"status"}
    )
    try:
        status = status_from_worker_word(body["status"])
    except UnknownStatusError:
        raise InvalidFieldsError(
            "Unknown result status.",
            [field_error("/status", "must be one of 'completed', 'validation_failed', 'failed'")],
        ) from None
    job: Any
    if status is JobStatus.COMPLETED:
        _refuse_fields(body, {"error_message", "error_details"}, "a completed result carries no error")
        job = jobs.complete_job(job_id)
    elif status is JobStatus.VALIDATION_FAILED:
        _require_fields(body, {"error_message", "error_details"})
        job = get_failure_recorder().record_validation_failure(
            job_id, body["error_message"], body["error_details"]
        )
    elif status is JobStatus.FAILED:
        _require_fields(body, {"error_message"})
        job = get_failure_recorder().record_failure(
            job_id, body["error_message"], body.get("error_details")
        )
    else:
        raise InvalidFieldsError(
            "A result must finish the job.",
            [field_error("/status", "must be one of 'completed', 'validation_failed', 'failed'")],
        )
    return jsonify(job_to_json(job))


def _require_fields(body: dict[str, Any], names: set[str]) -> None:
    missing = sorted(names - body.keys())
    if missing:
        raise InvalidFieldsError(
            "The result lacks required fields.", [field_error(f"/{n}", "is required") for n in missing]
        )


def _refuse_fields(body: dict[str, Any], names: set[str], why: str) -> None:
    present = sorted(names & body.keys())
    if present:
        raise InvalidFieldsError(
            "The result has fields that do not fit its status.",
            [field_error(f"/{n}", f"is not allowed: {why}") for n in present],
        )
