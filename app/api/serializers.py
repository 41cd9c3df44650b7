"""JSON shapes of API resources."""

from __future__ import annotations

from typing import Any

from app.models import ProcessingJob
from app.timestamps import rfc3339


def job_to_json(job: ProcessingJob) -> dict[str, Any]:
    """Return the API representation of a job.

    Keys: ``id, document_id, job_type, status, error_message, error_details,
    created_at, started_at, completed_at, updated_at``; timestamps RFC 3339 UTC.
    """
    return {
        "id": str(job.id),
        "document_id": job.document_id,
        "job_type": job.job_type,
        "status": job.status,
        "error_message": job.error_message,
        "error_details": job.error_details,
        "created_at": rfc3339(job.created_at),
        "started_at": rfc3339(job.started_at),
        "completed_at": rfc3339(job.completed_at),
        "updated_at": rfc3339(job.updated_at),
    }
