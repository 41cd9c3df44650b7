"""JSON shapes of API resources (the OpenAPI document's schemas).

Below the blueprints: the API answers with them and the dashboard's
``job.json`` shows the same shape, without one blueprint importing the other.
"""

from __future__ import annotations

from typing import Any

from app.models import ExtractedEntity, JobFailure, ProcessingJob
from app.services.processing_jobs.snapshot import JobSnapshot
from app.timestamps import rfc3339


def job_to_json(job: ProcessingJob | JobSnapshot) -> dict[str, Any]:
    """Return the API representation of a job (the ORM row or the snapshot a write returned).

    Keys: ``id, document_id, job_type, status, error_message, error_details,
    error_format, created_at, started_at, completed_at, updated_at``; timestamps RFC 3339 UTC.
    """
    return {
        "id": str(job.id),
        "document_id": job.document_id,
        "job_type": job.job_type,
        "status": job.status,
        "error_message": job.error_message,
        "error_details": job.error_details,
        "error_format": job.error_format,
        "created_at": rfc3339(job.created_at),
        "started_at": rfc3339(job.started_at),
        "completed_at": rfc3339(job.completed_at),
        "updated_at": rfc3339(job.updated_at),
    }


def entity_to_json(entity: ExtractedEntity) -> dict[str, Any]:
    """The API representation of an extracted entity (``ExtractedEntity`` schema)."""
    return {
        "id": str(entity.id),
        "position": entity.position,
        "entity_type": entity.entity_type,
        "text": entity.text,
        "code": entity.code,
        "code_system": entity.code_system,
        "confidence": entity.confidence,
        "span": {"page": entity.page, "start": entity.span_start, "end": entity.span_end},
        "value": entity.value,
        "attributes": entity.attributes,
    }


def failure_to_json(failure: JobFailure) -> dict[str, Any]:
    """The API representation of one recorded failure (``JobFailure`` schema)."""
    return {
        "id": str(failure.id),
        "status": failure.status,
        "error_message": failure.error_message,
        "error_details": failure.error_details,
        "error_format": failure.error_format,
        "recorded_at": rfc3339(failure.recorded_at),
        "worker": (
            {"name": failure.worker_name, "version": failure.worker_version}
            if failure.worker_name is not None or failure.worker_version is not None
            else None
        ),
    }
