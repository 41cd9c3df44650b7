"""SQLAlchemy models."""

from app.models.job_status import JobStatus
from app.models.processing_job import ProcessingJob

__all__ = ["JobStatus", "ProcessingJob"]
