"""Dashboard views over the same services as the API."""

from __future__ import annotations

from flask import current_app, render_template, request

from app.dashboard import bp
from app.models import JobStatus
from app.models.job_status import FAILURE_STATUSES
from app.services.processing_jobs import jobs

#: What ``/jobs`` shows without a ``status`` parameter: the failures.
DEFAULT_DASHBOARD_STATUSES = (JobStatus.VALIDATION_FAILED, JobStatus.FAILED)
assert set(DEFAULT_DASHBOARD_STATUSES) == FAILURE_STATUSES


def current_filter() -> jobs.JobFilter:
    """The job filter named by the query string (dashboard default: failures).

    Raises:
        InvalidQueryError: an unknown status.
    """
    return jobs.JobFilter.from_query(
        request.args.getlist("status"),
        document_id=request.args.get("document_id"),
        job_type=request.args.get("job_type"),
        default_statuses=DEFAULT_DASHBOARD_STATUSES,
    )


@bp.get("/jobs")
def list_jobs() -> str:
    """List jobs newest first, failures by default; ``?status=`` to choose."""
    job_filter = current_filter()
    limit = jobs.parse_limit(request.args.get("limit"), maximum=current_app.config["MAX_PAGE_SIZE"])
    page = jobs.list_jobs(job_filter, limit=limit, cursor=request.args.get("cursor"))
    filter_args = {k: v for k, v in request.args.to_dict(flat=False).items() if k != "cursor"}
    return render_template(
        "jobs/list.html",
        page=page,
        job_filter=job_filter,
        filter_args=filter_args,
        statuses=list(JobStatus),
    )


@bp.get("/jobs/<job_id>")
def show_job(job_id: str) -> str:
    """Show one job whole (404 page when unknown)."""
    return render_template("jobs/detail.html", job=jobs.get_job(job_id))
