"""Processing-job services: the failure recorder and the job lifecycle."""

from app.services.processing_jobs.errors import (
    InvalidFailurePayloadError,
    InvalidJobError,
    InvalidTransitionError,
    JobNotFoundError,
)
from app.services.processing_jobs.failure_recorder import (
    FailureLimits,
    FailureRecorder,
    JSONText,
    SQLAlchemyFailureRecorder,
)

__all__ = [
    "FailureLimits",
    "FailureRecorder",
    "InvalidFailurePayloadError",
    "InvalidJobError",
    "InvalidTransitionError",
    "JSONText",
    "JobNotFoundError",
    "SQLAlchemyFailureRecorder",
]
