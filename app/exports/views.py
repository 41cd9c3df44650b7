"""Export views: same filters as ``/jobs``; the body is streamed."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, stream_with_context

from app.dashboard.views import current_filter
from app.auth.guards import requires
from app.exports import bp
from app.models.access import Permission
from app.services import exports


def _attachment(extension: str) -> dict[str, str]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return {
        "Content-Disposition": f'attachment; filename="job-errors-{stamp}.{extension}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


@bp.get("/job-errors.csv")
@requires(Permission.EXPORT)
def export_job_errors_csv() -> Response:
    """CSV of job errors (one row per job) for the dashboard's filter."""
    job_filter = current_filter()
    return Response(
        stream_with_context(exports.iter_job_errors_csv(job_filter)),
        mimetype="text/csv",
        content_type="text/csv; charset=utf-8",
        headers=_attachment("csv"),
    )


@bp.get("/job-errors.ndjson")
@requires(Permission.EXPORT)
def export_job_errors_ndjson() -> Response:
    """NDJSON of job errors (one object per line) for the dashboard's filter."""
    job_filter = current_filter()
    return Response(
        stream_with_context(exports.iter_job_errors_ndjson(job_filter)),
        content_type="application/x-ndjson; charset=utf-8",
        headers=_attachment("ndjson"),
    )
