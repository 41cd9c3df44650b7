"""API views of failure groups: list, one group, resolve, ignore, reopen.

Thin views over :mod:`app.services.failure_groups`; the actor of a state
change is the worker token's name (audited by the service before the change
takes effect). A state change and its answer are one write transaction:
the answer is rendered from the changed group before the commit, so it
shows exactly what was stored, and with an ``Idempotency-Key`` it is stored
for the key's retries, as the jobs' writes are.
``docs/failure-groups.md`` describes the groups.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, jsonify, request, url_for

from app.api import bp
from app.api.contract import validate_request
from app.api.json_body import read_json_body, sends_body
from app.api.idempotent import idempotent_answer
from app.api.views import audit_api_seen
from app.auth.guards import current_actor
from app.errors import FieldError, InvalidFieldsError, InvalidQueryError, field_error
from app.services.failure_groups import lifecycle
from app.services.failure_groups.queries import decode_cursor, get_group, list_groups
from app.services.failure_groups.serialize import group_to_json
from app.services.json_values import json_integer
from app.web.group_query import group_filter_from_args, group_sort_from_args
from app.web.query import raise_problems, read_or_note, read_page
from app.web.query_time import parse_range_bound


#: Each action's 422 ``detail``, the same for a fault of its schema and one
#: of the service's later rules (an ``until`` in year 0000 and one in year
#: 9999 differ only in which check finds them).
REFUSED = {
    "ResolveGroup": lifecycle.RESOLUTION_REFUSED,
    "IgnoreGroup": lifecycle.IGNORE_REFUSED,
    "ReopenGroup": lifecycle.REOPEN_REFUSED,
}


def _optional_body(
    schema_name: str, semantic: Callable[[Any], list[FieldError]] | None = None
) -> dict[str, Any] | None:
    """The JSON body checked against ``schema_name`` and, in the same round,
    by ``semantic`` (so one 422 names every fault); ``None`` when there is
    no body at all (:func:`~app.api.json_body.sends_body`), so a form or
    any other body that is not JSON is a 415, never read as ``{}``."""
    if not sends_body(request):
        return None
    body = read_json_body(request)
    validate_request(body, schema_name, semantic, refused=REFUSED[schema_name])
    return body


def _resolution_faults(body: Any) -> list[FieldError]:
    if not isinstance(body, dict):
        return []
    return lifecycle.resolution_errors(body.get("in_version"), body.get("worker"))


def _group_answer(group_id: Any) -> Response:
    answer = group_to_json(get_group(group_id))
    audit_api_seen("seen.api.groups", _with_sample([answer]), key="group_ids")
    return jsonify(answer)


def _with_sample(groups: list[dict[str, Any]]) -> list[str]:
    """The ids of the group answers that show a sample message (a worker's
    text, which may hold patient data: a re-check)."""
    return [str(group["id"]) for group in groups if group["sample_message"] is not None]


def _change(group_id: str, change: Callable[[], Any], body: dict[str, Any] | None) -> Response:
    """Run a lifecycle ``change`` (its service joins the transaction) and
    answer with the group as changed, all in one write transaction (replayed
    whole when PostgreSQL aborts it as a deadlock's victim), idempotently
    when the request has an ``Idempotency-Key``, as the jobs' writes are
    (:func:`app.api.idempotent.idempotent_answer`): a retry of a resolve that
    worked gets its answer again, not a 409 "already resolved"."""
    def change_and_read() -> Any:
        change()
        return group_to_json(get_group(group_id))

    response = idempotent_answer(change_and_read, body)
    if response.status_code == 200:
        # The answer shows the group's sample message and title, as a GET's
        # does: audited as one before it is sent (a replay's too). A trial
        # found only the state change's row.
        audit_api_seen("seen.api.groups", _with_sample([response.get_json()]), key="group_ids")
    return response


@bp.get("/failure-groups")
def list_failure_groups() -> Response:
    """A page of failure groups (``{"items": [...], "next_cursor"}``).

    Query: ``state``, ``substate`` (repeatable or comma-separated),
    ``code``, ``job_type``, ``worker_version``, ``from``/``to`` (RFC 3339,
    bound ``last_seen``), ``grouping_version``, ``sort`` (``last_seen``
    (default), ``first_seen``, ``job_count``; newest or most first),
    ``limit`` (1 to ``MAX_PAGE_SIZE``), ``cursor``. A ``Link: rel="next"``
    header names the next page. A bad parameter is a 400 problem naming it.
    """
    problems: list[InvalidQueryError] = []  # every bad parameter named at once (read_or_note)
    group_filter = read_or_note(problems, group_filter_from_args, request.args)
    sort = read_or_note(problems, group_sort_from_args, request.args)
    wanted = read_or_note(
        problems, read_page, request.args, maximum=current_app.config["MAX_PAGE_SIZE"],
        # A cursor is checked against the sort asked for, or against its own when that is bad.
        cursor_reader=functools.partial(decode_cursor, sort=sort),
    )
    raise_problems(problems)
    page = list_groups(group_filter, sort=sort, limit=wanted.limit, cursor=wanted.cursor)
    items = [group_to_json(v) for v in page.items]
    audit_api_seen("seen.api.groups", _with_sample(items), key="group_ids")
    response = jsonify({"items": items, "next_cursor": page.next_cursor})
    if page.next_cursor:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        args.append(("cursor", page.next_cursor))
        response.headers["Link"] = f'<{url_for("api.list_failure_groups")}?{urlencode(args)}>; rel="next"'
    return response


@bp.get("/failure-groups/<group_id>")
def get_failure_group(group_id: str) -> Response:
    """One failure group with its exact counts (404 problem when unknown)."""
    return _group_answer(group_id)


@bp.post("/failure-groups/<group_id>/resolve")
def resolve_failure_group(group_id: str) -> Response:
    """Resolve a group, optionally ``{"in_version": str, "worker"?: str}``; 409 if already resolved."""
    body = _optional_body("ResolveGroup", _resolution_faults)
    actor = current_actor()
    in_version, in_worker = (body or {}).get("in_version"), (body or {}).get("worker")
    return _change(group_id, lambda: lifecycle.resolve_group(
        group_id, actor, in_version=in_version, in_worker=in_worker, via="api"), body)


@bp.post("/failure-groups/<group_id>/ignore")
def ignore_failure_group(group_id: str) -> Response:
    """Ignore a group: ``{}`` forever, ``{"until": date-time or date}`` (a
    date alone: 00:00 UTC that day) or ``{"occurrences": N}``."""
    body = _optional_body("IgnoreGroup")
    fields = body or {}
    until = None
    if "until" in fields:
        try:
            # A date alone is that day's 00:00 UTC, as the dashboard's form takes it.
            until = parse_range_bound(fields["until"], "until", end=False)
        except InvalidQueryError as exc:
            # The parser names a query parameter; here the time is a body field.
            raise InvalidFieldsError(
                REFUSED["IgnoreGroup"],
                [field_error("/until", error["detail"]) for error in exc.errors],
            ) from None
    # 2.0 is 2, not a 422, as the schema check and a span's offsets take it.
    occurrences = json_integer(fields.get("occurrences"))
    actor = current_actor()
    return _change(
        group_id,
        lambda: lifecycle.ignore_group(group_id, actor, until=until, occurrences=occurrences, via="api"),
        body,
    )


@bp.post("/failure-groups/<group_id>/reopen")
def reopen_failure_group(group_id: str) -> Response:
    """Reopen a resolved or ignored group (``unresolved``/``ongoing``); 409 if unresolved."""
    body = _optional_body("ReopenGroup")
    actor = current_actor()
    return _change(group_id, lambda: lifecycle.reopen_group(group_id, actor, via="api"), body)
