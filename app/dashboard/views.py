"""Dashboard views over the same services as the API.

Views read the query string, call services and hand plain values to the
templates; the services own every query (``app.services.processing_jobs.jobs``
for the list and pages, ``app.services.dashboard_stats`` for the aggregates).
"""

from __future__ import annotations

from flask import current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from app.api.serializers import job_to_json
from app.auth.guards import requires
from app.dashboard import bp
from app.dashboard.charts import bar_chart
from app.dashboard.links import href, list_links, query_pairs
from app.models import JobStatus
from app.models.access import Permission
from app.models.job_status import FAILURE_STATUSES
from app.models.types import utcnow
from app.services import dashboard_stats
from app.services.processing_jobs import jobs

#: What ``/jobs`` shows without a ``status`` parameter: the failures.
DEFAULT_DASHBOARD_STATUSES = (JobStatus.VALIDATION_FAILED, JobStatus.FAILED)
assert set(DEFAULT_DASHBOARD_STATUSES) == FAILURE_STATUSES

#: Acknowledged failures are resolved: the dashboard hides them unless asked.
DEFAULT_DASHBOARD_ACKNOWLEDGED = jobs.AcknowledgedFilter.EXCLUDE

#: Query parameters that make up a filter (carried by bulk-action forms).
FILTER_PARAMETERS = (
    "status", "time_field", "from", "to", "document_id", "job_type", "error_code", "q", "acknowledged",
)

#: Page sizes offered in the filter form (any 1..MAX_PAGE_SIZE is accepted).
PAGE_SIZES = (25, 50, 100, 200)


def current_filter() -> jobs.JobFilter:
    """The job filter named by the query string, with the dashboard's defaults.

    Parameters: ``status`` (repeatable; default the failure statuses),
    ``time_field`` (``created``|``completed``), ``from``, ``to`` (RFC 3339),
    ``document_id``, ``job_type``, ``error_code``, ``q``, ``acknowledged``
    (``exclude`` (default)|``include``|``only``). Shared with the exports.

    Raises:
        InvalidQueryError: a parameter is wrong (names it).
    """
    return jobs.JobFilter.from_args(
        request.args,
        default_statuses=DEFAULT_DASHBOARD_STATUSES,
        default_acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED,
    )


@bp.get("/jobs")
@requires(Permission.VIEW_JOBS)
def list_jobs() -> str | Response:
    """List jobs newest first (failures by default) with counts, top codes and a chart.

    Query: the :func:`current_filter` parameters, ``cursor`` and ``limit``
    (1 to ``MAX_PAGE_SIZE``, default 50). A form submits empty fields; the
    answer is then a redirect to the same query without them, so the
    address bar holds a clean URL to bookmark.
    """
    pairs = list(request.args.items(multi=True))
    if any(value == "" for _, value in pairs):
        cleaned = [(k, v) for k, v in pairs if v != ""]
        return redirect(href(url_for("dashboard.list_jobs"), cleaned))
    job_filter = current_filter()
    limit = jobs.parse_limit(request.args.get("limit"), maximum=current_app.config["MAX_PAGE_SIZE"])
    page = jobs.list_jobs(job_filter, limit=limit, cursor=request.args.get("cursor"))
    now = utcnow()
    stats = dashboard_stats.summarize(job_filter, now=now, ttl=current_app.config["DASHBOARD_STATS_TTL"])
    links = list_links(
        url_for("dashboard.list_jobs"),
        url_for("exports.export_job_errors_csv"),
        url_for("exports.export_job_errors_ndjson"),
        url_for("exports.export_entities_csv"),
        pairs,
        next_cursor=page.next_cursor,
        codes=[row.code for row in stats.top_codes.codes],
        now=now,
    )
    return render_template(
        "jobs/list.html",
        page=page,
        job_filter=job_filter,
        limit=limit,
        page_sizes=PAGE_SIZES,
        stats=stats,
        chart=bar_chart(stats.timeline),
        links=links,
        is_first_page=not request.args.get("cursor"),
        first_page=href(url_for("dashboard.list_jobs"), query_pairs(pairs)),
        statuses=list(JobStatus),
        time_fields=list(jobs.TimeField),
        acknowledged_choices=list(jobs.AcknowledgedFilter),
        filter_fields=[(k, v) for k, v in pairs if k in FILTER_PARAMETERS],
    )


@bp.get("/jobs/<job_id>")
@requires(Permission.VIEW_JOBS)
def show_job(job_id: str) -> str:
    """Show one job whole: fields, current failure, failure history (oldest
    first) and extracted entities (404 page when unknown)."""
    job = jobs.get_job(job_id)
    return render_template(
        "jobs/detail.html",
        job=job,
        failures=jobs.list_failures(job.id),
        entities=jobs.list_entities(job.id),
    )


@bp.get("/jobs/<job_id>/job.json")
@requires(Permission.VIEW_JOBS)
def show_job_json(job_id: str) -> Response:
    """The job as the API shows it, for signed-in operators (the API itself
    takes worker tokens only)."""
    return jsonify(job_to_json(jobs.get_job(job_id)))
