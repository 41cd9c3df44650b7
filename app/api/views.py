"""API views: unpack the request, call a service, shape the answer.

Views never touch ``db.session``; services raise typed errors that the
app-level handlers turn into RFC 9457 problem+json. Request bodies are
checked against the published OpenAPI document (:mod:`app.api.contract`).
Changing requests may carry an ``Idempotency-Key`` (:mod:`app.services.idempotency`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Response, abort, current_app, jsonify, request, url_for

from app.api import bp
from app.api.contract import (
    PUBLISHED_SCHEMAS,
    served_openapi_document,
    refuse_unknown_query_parameters,
    validate_request,
)
from app.api.idempotent import idempotent_answer
from app.api.json_body import read_json_body, refuse_body
from app.models import JobStatus, ProcessingJob
from app.models.job_status import status_from_worker_word
from app.auth.guards import current_actor
from app.registry import get_failure_recorder
from app.services.access import add_audit_event, record_audit_event
from app.services.failure_groups import queries as group_queries
from app.services.failure_groups.worker import check_worker
from app.services.idempotency import check_idempotency_key
from app.services.processing_jobs import entities, lifecycle, pagination
from app.services.processing_jobs.errors import InvalidFailurePayloadError
from app.services.processing_jobs.job_filter import AcknowledgedFilter
from app.services.processing_jobs.snapshot import JobSnapshot
from app.web.query import job_filter_from_args, read_job_list
from app.web.serializers import entity_to_json, failure_to_json, job_to_json

#: A changing service call; run inside the request's write transaction.
Operation = Callable[[], ProcessingJob | JobSnapshot]


def _answer(operation: Operation, body: Any, *, status: int = 200) -> Response:
    """Run ``operation`` and answer with the job (:func:`idempotent_answer`)."""
    return idempotent_answer(lambda: job_to_json(operation()), body, status=status)


def _body(schema_name: str, semantic: Callable[[Any], list[Any]] | None = None) -> dict[str, Any]:
    body = read_json_body(request)
    validate_request(body, schema_name, semantic)
    return body


def _new_job_faults(body: Any) -> list[Any]:
    """The service's own checks of a new job (format characters, white space
    around the id...), run with the schema check so one 422 names every fault."""
    if not isinstance(body, dict):
        return []
    return lifecycle.new_job_errors(body.get("document_id"), body.get("job_type", lifecycle.DEFAULT_JOB_TYPE))


def _report_faults(body: Any) -> list[Any]:
    """The services' own checks of a result or failure report, run with the
    schema check so one 422 names every fault of the body."""
    if not isinstance(body, dict):
        return []
    if body.get("status") == "completed":
        return entities.entity_errors(body.get("entities"))
    recorder = get_failure_recorder()
    if "error_message" not in body or not hasattr(recorder, "check_report"):
        return check_worker(body.get("worker"))[2]
    try:  # check_report names the worker's faults too
        _check_report(recorder, body)
    except InvalidFailurePayloadError as exc:
        return list(exc.errors)
    return []


def _check_report(recorder: Any, body: dict[str, Any]) -> Any:
    return recorder.check_report(
        body["error_message"], body.get("error_details"), body.get("error_format"), body.get("worker"))


def _failure_operation(job_id: str, status: JobStatus, body: dict[str, Any]) -> Operation:
    """Record the report ``body`` as a ``status`` failure.

    The report is checked here, before the write transaction: its details
    are normalized (a megabyte of validator output can take a second)
    without holding the job's lock or, on SQLite, the database's write
    lock, and once. A refused report raises
    :class:`~app.services.processing_jobs.errors.InvalidFailurePayloadError`
    (422). A recorder without ``check_report`` checks it itself.
    """
    recorder = get_failure_recorder()
    if hasattr(recorder, "check_report"):
        report = _check_report(recorder, body)
        return lambda: recorder.record_checked(job_id, status, report)
    validation = status is JobStatus.VALIDATION_FAILED
    record = recorder.record_validation_failure if validation else recorder.record_failure
    return lambda: record(job_id, body["error_message"], body.get("error_details"),
                          error_format=body.get("error_format"), worker=body.get("worker"))


@bp.before_request
def refuse_unknown_query() -> None:
    """Every API read and write answers 400 ``invalid-query`` for a query
    parameter its operation does not declare (a write declares none), before
    anything is changed."""
    refuse_unknown_query_parameters(
        request.url_rule.rule if request.url_rule else None, request.method, list(request.args.keys())
    )


#: What an API answer may be: JSON, a problem (RFC 9457) or a published schema.
ANSWER_TYPES = ("application/json", "application/problem+json", "application/schema+json")


@bp.before_request
def refuse_unacceptable_answers() -> None:
    """406 ``not-acceptable`` (RFC 9110 section 12.5.1), before anything is
    changed, for a request whose ``Accept`` header admits none of
    :data:`ANSWER_TYPES` (``*/*`` and ``application/*`` admit them all); no
    ``Accept`` header admits anything."""
    if "Accept" in request.headers and request.accept_mimetypes.best_match(ANSWER_TYPES) is None:
        abort(406, description="This API answers with application/json (and application/problem+json "
                               "for problems); the Accept header admits neither.")


@bp.before_request
def refuse_a_bad_idempotency_key() -> None:
    """400 ``invalid-idempotency-key`` for a changing request whose
    ``Idempotency-Key`` header is malformed, before its body is read: a
    header's fault is named first, not after the body's 422 (a worker
    author's trial), and nothing is changed."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
        check_idempotency_key(key)


@bp.after_request
def answer_options_without_a_body(response: Response) -> Response:
    """Flask answers ``OPTIONS`` itself with ``Allow`` and an empty
    ``text/html`` 200; the API says the same as 204 No Content (RFC 9110
    section 9.3.7), with no media type for a body it does not have (a
    schemathesis run)."""
    if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
        response.status_code = 204
        del response.headers["Content-Type"]
    return response


@bp.get("/openapi.json")
def get_openapi() -> Response:
    """The OpenAPI 3.1 document of this API (the worker contract)."""
    return jsonify(served_openapi_document(current_app.config["MAX_PAGE_SIZE"]))


@bp.get("/schemas/<name>")
def get_schema(name: str) -> Response:
    """A published JSON Schema (draft 2020-12), as ``application/schema+json``:
    ``entity-document.v1.schema.json`` (what error pointers point into) or
    ``error-details.v1.schema.json`` (the normalized envelope). 404 otherwise."""
    if name not in PUBLISHED_SCHEMAS:
        abort(404, description="No published schema has this name; the schemas are: "
                               + ", ".join(sorted(PUBLISHED_SCHEMAS)) + ".")
    # The bytes of the file (not send_file: a streamed file stays open until
    # the client closes the answer).
    return Response(PUBLISHED_SCHEMAS[name][1].read_bytes(), mimetype="application/schema+json")


@bp.post("/processing-jobs")
def create_processing_job() -> Response:
    """Create a job: ``{"document_id": str, "job_type"?: str}`` -> 201 + job + ``Location``."""
    body = _body("NewJob", _new_job_faults)
    return _answer(
        lambda: lifecycle.create_job(body["document_id"], body.get("job_type", lifecycle.DEFAULT_JOB_TYPE)),
        body,
        status=201,
    )


def audit_api_seen(action: str, ids: list[str], *, key: str = "job_ids") -> None:
    """Write the audit row of an API answer about to show clinical data:
    ``action`` (``seen.api.jobs``: jobs with their error details,
    ``seen.api.failures``: a job's failure history, ``seen.api.entities``:
    its extracted entities, ``seen.api.groups``: failure groups with their
    sample message) by the worker token, naming ``ids`` under ``key``
    (``job_ids``: job id strings; ``group_ids``), in its own committed
    transaction before the answer is made; nothing when ``ids`` is empty (a
    poll for pending jobs shows no error text) or for ``HEAD``. As the dashboard's ``seen.*`` rows
    (app/dashboard/seen.py): error details may hold patient data, and a
    token on any worker host can read them (a trial).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the row could not be written; the
            answer is then not sent (503).
    """
    if ids and request.method != "HEAD":
        record_audit_event(current_actor(), action, {key: ids})


def _with_details(jobs: list[dict[str, Any]]) -> list[str]:
    """The ids of the job answers that show a failure's text."""
    return [job["id"] for job in jobs if job["error_message"] is not None or job["error_details"] is not None]


@bp.get("/processing-jobs/<job_id>")
def get_processing_job(job_id: str) -> Response:
    """Return one job (404 problem when unknown); audited when it shows a failure (:func:`audit_api_seen`)."""
    answer = job_to_json(lifecycle.get_job(job_id))
    audit_api_seen("seen.api.jobs", _with_details([answer]))
    return jsonify(answer)


@bp.get("/processing-jobs")
def list_processing_jobs() -> Response:
    """Return a page of jobs, newest first, filtered as the dashboard filters.

    Query (the dashboard's names, :func:`app.web.query.job_filter_from_args`): ``status``
    (repeatable or comma-separated; canonical name or worker word; default
    all), ``time_field`` (``created`` (default) or ``completed``: the
    timestamp ``from``/``to`` bound and the order), ``from``, ``to`` (RFC
    3339 date-times with an offset, ``from <= t < to``), ``document_id``,
    ``job_type``, ``error_code`` (an error-details item code), ``q`` (text in
    ``error_message``, case-insensitive), ``acknowledged`` (``include``
    (default here, unlike the dashboard), ``exclude``, ``only``), ``limit``
    (1 to ``MAX_PAGE_SIZE``, default 50), ``cursor`` (from ``next_cursor``).
    Answer: ``{"items": [job...], "next_cursor": str|null}`` plus a
    ``Link: <...>; rel="next"`` header (RFC 8288) when there is a next page.
    A bad parameter is a 400 problem naming it; a ``group`` no group has is
    a 404 problem.
    """
    # Acknowledged jobs stay in by default: API clients list what exists;
    # hiding resolved failures is the dashboard's choice of view.
    read_filter = functools.partial(
        job_filter_from_args, request.args, default_acknowledged=AcknowledgedFilter.INCLUDE
    )
    job_filter, wanted = read_job_list(request.args, read_filter, maximum=current_app.config["MAX_PAGE_SIZE"])
    group_queries.require_group(job_filter.group_id)  # 404, as the pages answer
    page = pagination.list_jobs(job_filter, limit=wanted.limit, cursor=wanted.cursor)
    items = [job_to_json(j) for j in page.jobs]
    audit_api_seen("seen.api.jobs", _with_details(items))
    response = jsonify({"items": items, "next_cursor": page.next_cursor})
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


@bp.post("/processing-jobs/<job_id>/start")
def start_processing_job(job_id: str) -> Response:
    """Move a job ``Pending`` -> ``Processing``. Takes no body (415 if one is sent)."""
    refuse_body(request)
    return _answer(lambda: lifecycle.start_job(job_id), None)


@bp.post("/processing-jobs/<job_id>/requeue")
def requeue_processing_job(job_id: str) -> Response:
    """Send a failed job back to ``Pending``; its failures stay in the history.

    Takes no body (415 if one is sent). Audited like the dashboard's requeue
    (actor: the worker token's name), in the requeue's transaction; a
    replayed retry changes nothing and writes no second row.
    """
    refuse_body(request)
    actor = current_actor()

    def requeue() -> ProcessingJob:
        job = lifecycle.requeue_job(job_id)
        add_audit_event(actor, "jobs.requeue", {"scope": "job", "job_ids": [str(job.id)], "via": "api"}, 1)
        return job

    return _answer(requeue, None)


@bp.post("/processing-jobs/<job_id>/validation-failure")
def record_validation_failure(job_id: str) -> Response:
    """Record a validation failure.

    Body (``ValidationFailureReport``): ``{"error_message": str,
    "error_details": any JSON, "error_format"?: str}``. 200 and the updated
    job; 404/409/422 problems as the recorder raises.
    """
    body = _body("ValidationFailureReport", _report_faults)
    return _answer(_failure_operation(job_id, JobStatus.VALIDATION_FAILED, body), body)


@bp.post("/processing-jobs/<job_id>/result")
def record_processing_result(job_id: str) -> Response:
    """Record the worker's outcome (``ProcessingResult``).

    * ``{"status": "completed", "entities": [...]}`` -> entities stored, job
      ``Completed``, in one transaction;
    * ``{"status": "validation_failed", "error_message", "error_details",
      "error_format"?}`` -> the failure recorder, as the dedicated endpoint;
    * ``{"status": "failed", "error_message", "error_details"?}`` -> ``Failed``.
    """
    body = _body("ProcessingResult", _report_faults)
    status = status_from_worker_word(body["status"])  # the schema allows only known words
    operation: Operation
    if status is JobStatus.COMPLETED:
        def operation():  # noqa: E306
            return lifecycle.complete_job(job_id, body.get("entities", []))
    else:
        operation = _failure_operation(job_id, status, body)
    return _answer(operation, body)


@bp.get("/processing-jobs/<job_id>/entities")
def list_job_entities(job_id: str) -> Response:
    """The entities a completed job extracted, in the worker's order (audited
    when there are any, :func:`audit_api_seen`)."""
    items = [entity_to_json(e) for e in lifecycle.list_entities(job_id)]
    audit_api_seen("seen.api.entities", [str(lifecycle.get_job(job_id).id)] if items else [])
    return jsonify({"items": items})


@bp.get("/processing-jobs/<job_id>/failures")
def list_job_failures(job_id: str) -> Response:
    """Every failure recorded on the job, oldest first (append-only history;
    audited when there are any, :func:`audit_api_seen`)."""
    items = [failure_to_json(f) for f in lifecycle.list_failures(job_id)]
    audit_api_seen("seen.api.failures", [str(lifecycle.get_job(job_id).id)] if items else [])
    return jsonify({"items": items})
