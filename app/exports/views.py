"""Export views: the filters of ``/jobs`` (:func:`~app.web.query.dashboard_filter`);
the body is streamed from :mod:`app.services.exports`.

Every answer is an attachment with a timestamped (UTC) file name that says
what it holds (``job-errors-per-item-…``, ``job-errors-per-job-…``,
``entities-…``) and what narrowed it (``-group-7``, ``-code-…``, ``-type-…``),
with ``Cache-Control: no-store``: the files hold clinical
data that must not stay in browser or proxy caches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TypeVar

from flask import Response, current_app, render_template, request, stream_with_context, url_for

from app.auth.guards import current_actor, requires
from app.config import DEFAULT_EXPORT_STATEMENT_TIMEOUT_MS
from app.errors import InvalidQueryError, parameter_error
from app.exports import bp
from app.models import JobStatus
from app.models.access import Permission
from app.redirects import OTHER_SITES
from app.services import exports
from app.services.access import record_audit_event, set_audit_row_count
from app.services.failure_groups import queries as group_queries
from app.services.processing_jobs.job_filter import JobFilter
from app.web.query import (
    DEFAULT_DASHBOARD_ACKNOWLEDGED,
    FILTER_PARAMETERS,
    dashboard_filter,
    job_filter_from_args,
    parse_items,
    parse_rows,
    refuse_unknown_parameters,
)

T = TypeVar("T")

#: What a job-error export reads: the list's filter, ``rows`` and ``items``.
#: Anything else (``range``, ``limit``, a typo) is refused before the audit
#: row is written: an export that ignored it would say one thing in the
#: audit log ("range = 1h") and hold another (every matching job).
JOB_ERROR_EXPORT_PARAMETERS = (*FILTER_PARAMETERS, "rows", "items")

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
NDJSON_CONTENT_TYPE = "application/x-ndjson; charset=utf-8"


def _job_errors_query() -> tuple[JobFilter, exports.ExportRows, exports.ItemRows]:
    """The filter, ``rows`` and item rows (``items``, the ``job_url`` prefix) of a job-error export.

    Raises:
        InvalidQueryError: naming every bad parameter (``/status``, ``/rows`` ...).
    """
    problems: list[InvalidQueryError] = []

    def attempt(parse: Callable[[], T]) -> T | None:
        try:
            return parse()
        except InvalidQueryError as exc:
            problems.append(exc)
            return None

    attempt(lambda: refuse_unknown_parameters(request.args, JOB_ERROR_EXPORT_PARAMETERS))
    job_filter = attempt(lambda: dashboard_filter(request.args))
    rows = attempt(lambda: parse_rows(request.args.get("rows")))
    items = attempt(lambda: parse_items(request.args.get("items")))
    if problems:
        raise InvalidQueryError(problems[0].detail, [e for p in problems for e in p.errors])
    assert job_filter is not None and rows is not None and items is not None
    # 404 before anything is audited or sent: an empty file would read as "nothing fails on it".
    group_queries.require_group(job_filter.group_id)
    return job_filter, rows, exports.ItemRows(
        matching_only=items is exports.ExportItems.MATCHING,
        job_url_prefix=_page_url_prefix("dashboard.show_job", "job_id"),
        group_url_prefix=_page_url_prefix("dashboard.show_group", "group_id"),
    )


#: Stands for the id while a page's URL is built (neither a UUID nor an
#: integer, so it cannot be a real id).
_ID_PLACEHOLDER = "PAGE-ID"


def _page_url_prefix(endpoint: str, key: str) -> str:
    """A page's absolute URL without its id (the job's or the group's):
    ``job_url`` and ``group_url`` in the exports are this and the id."""
    url = url_for(endpoint, **{key: _ID_PLACEHOLDER}, _external=True)
    prefix, found, rest = url.rpartition(_ID_PLACEHOLDER)
    assert found and not rest, url  # the id ends the page's URL
    return prefix


def _audit(action: str, applied: dict[str, list[str]]) -> exports.OnFinish:
    """Write the export's audit row now, before the first byte; return the
    ``on_finish`` that fills in how many rows were sent.

    The row (who, ``applied``: the filter as applied, defaults included
    (:meth:`JobFilter.applied`), and the export's own parameters;
    ``row_count`` still empty) is committed here,
    while the request is there and before the response exists: if it cannot
    be written, the exception refuses the export (503 or 500 page) and not
    one row leaves. The count is added when the stream ends or the client
    goes away; if that update fails, the row stays, with its count unknown.
    """
    if request.method == "HEAD":
        # HEAD sends the headers only (Werkzeug never runs the body), so no
        # export takes place and there is nothing to audit.
        return _nothing_sent
    event_id = record_audit_event(current_actor(), action, applied)

    def finish(row_count: int, complete: bool) -> None:
        set_audit_row_count(event_id, row_count, complete)

    return finish


def _applied(job_filter: JobFilter, rows: exports.ExportRows, items: exports.ItemRows) -> dict[str, list[str]]:
    """A job-error export's audit facts: its filter as applied, ``rows``,
    and ``items`` for a one-row-per-item export."""
    applied = {**job_filter.applied(), "rows": [rows.value]}
    if rows is exports.ExportRows.ITEMS:
        chosen = exports.ExportItems.MATCHING if items.matching_only else exports.ExportItems.ALL
        applied["items"] = [chosen.value]
    return applied


def _cross_site_question(applied: dict[str, list[str]], kind: str) -> str | None:
    """The page that asks before an export another site's link started, or
    ``None`` for one started here (or by a typed address, a bookmark, a
    client that sends no Fetch Metadata).

    A browser sends the session cookie (``SameSite=Lax``) with a top-level
    link from any site, so such a link made an audited export in the
    signed-in user's name that they never chose (a trial). With
    ``Sec-Fetch-Site: cross-site`` or ``same-site`` (W3C Fetch Metadata)
    nothing is exported or audited; the page shows the filter and links to
    the same address, whose click is then same-origin."""
    if request.headers.get("Sec-Fetch-Site") not in OTHER_SITES or request.method == "HEAD":
        return None
    return render_template("exports/confirm.html", applied=applied, kind=kind, same_url=request.full_path.rstrip("?"))


def _nothing_sent(row_count: int, complete: bool) -> None:
    """``on_finish`` of a HEAD request, which exports nothing."""


#: Characters a filter's value keeps in a file name; any other becomes "_".
_NAME_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _filter_tag(job_filter: JobFilter) -> str:
    """What narrows an export, for its file name: ``-group-7``,
    ``-code-schema.maximum``, ``-type-ocr`` (in that order; none: ``""``), so
    several downloads can be told apart. Only those: a document id or a
    search could name a patient, and file names end up in download lists.
    Each value plain ASCII (others ``_``), at most 40 characters."""
    parts = []
    for label, value in (("group", job_filter.group_id), ("code", job_filter.error_code), ("type", job_filter.job_type)):
        if value is not None:
            parts.append(f"-{label}-" + "".join(c if c in _NAME_SAFE else "_" for c in str(value))[:40])
    return "".join(parts)


def _attachment(chunks: Iterator[str], name: str, extension: str, content_type: str) -> Response:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        stream_with_context(chunks),
        content_type=content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{stamp}.{extension}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@bp.get("/job-errors.csv")
@requires(Permission.EXPORT)
def export_job_errors_csv() -> Response | str:
    """CSV of job errors for the dashboard's filter; ``rows=items`` (default,
    one row per error item: with ``error_code`` only those items unless
    ``items=all``) or ``rows=jobs`` (one row per job). Audited."""
    job_filter, rows, items = _job_errors_query()
    applied = _applied(job_filter, rows, items)
    if (question := _cross_site_question(applied, "the job errors CSV")) is not None:
        return question
    chunks = exports.iter_job_errors_csv(
        job_filter, rows, items=items,
        on_finish=_audit("export.job_errors.csv", applied),
        statement_timeout_ms=current_app.config.get("EXPORT_STATEMENT_TIMEOUT_MS", DEFAULT_EXPORT_STATEMENT_TIMEOUT_MS),
    )
    return _attachment(chunks, exports.EXPORT_FILE_NAMES[rows] + _filter_tag(job_filter), "csv", CSV_CONTENT_TYPE)


@bp.get("/job-errors.ndjson")
@requires(Permission.EXPORT)
def export_job_errors_ndjson() -> Response | str:
    """NDJSON of job errors (one object per line); ``rows`` and ``items`` as the CSV's. Audited."""
    job_filter, rows, items = _job_errors_query()
    applied = _applied(job_filter, rows, items)
    if (question := _cross_site_question(applied, "the job errors NDJSON")) is not None:
        return question
    chunks = exports.iter_job_errors_ndjson(
        job_filter, rows, items=items,
        on_finish=_audit("export.job_errors.ndjson", applied),
    )
    return _attachment(chunks, exports.EXPORT_FILE_NAMES[rows] + _filter_tag(job_filter), "ndjson", NDJSON_CONTENT_TYPE)


@bp.get("/entities.csv")
@requires(Permission.EXPORT)
def export_entities_csv() -> Response | str:
    """CSV of the extracted entities of the ``Completed`` jobs matching the
    dashboard's filter. Only completed jobs have entities, so a ``status``
    that leaves ``Completed`` out, an ``error_code``, a ``group`` or
    ``acknowledged=only`` is a 400 (the file would always be empty while
    the audit row listed them as applied); without ``status`` the
    dashboard's default (failures) is not applied. Audited, with the
    filter the file applies (``status = Completed``)."""
    refuse_unknown_parameters(request.args, FILTER_PARAMETERS)
    # Without a status of its own (an empty status= too, as the list's form
    # sends one) the filter keeps every status: not the dashboard's failures.
    job_filter = job_filter_from_args(
        request.args, default_statuses=(), default_acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED
    )
    faults = []
    if job_filter.statuses and JobStatus.COMPLETED not in job_filter.statuses:
        faults.append(parameter_error("status",
                                      "leave it out, or include Completed: only completed jobs have entities"))
    # Each would make the file always empty (a trial got 200 and a header
    # alone), as a status without Completed.
    for parameter in job_filter.failure_only_parameters():
        faults.append(parameter_error(parameter, "leave it out: it matches failed jobs, and only completed jobs "
                                                 "have entities"))
    if faults:
        raise InvalidQueryError("The entities export has the entities of Completed jobs only.", faults)
    # The filter the file applies: its jobs are the Completed ones whatever
    # status was sent (a trial: "status = Completed, Pending" in the log).
    applied = exports.entities_filter(job_filter).applied()
    if (question := _cross_site_question(applied, "the entities CSV")) is not None:
        return question
    chunks = exports.iter_entities_csv(job_filter, on_finish=_audit("export.entities.csv", applied))
    return _attachment(chunks, "entities" + _filter_tag(job_filter), "csv", CSV_CONTENT_TYPE)
