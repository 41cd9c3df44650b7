"""SQLAlchemy models."""

from app.models.access import AuditEvent, Permission, Role, ServerSession, User, WorkerToken
from app.models.bulk_action import BulkAction, BulkActionJob, BulkActionState
from app.models.extracted_entity import EntityType, ExtractedEntity
from app.models.failure_group import (
    FailureGroup,
    FailureGroupCount,
    FailureGroupDaily,
    FailureGroupDailyState,
    FailureGroupEvent,
    FailureGroupHourly,
    FailureOccurrence,
    GroupState,
    GroupSubstate,
    IgnoreMode,
)
from app.models.idempotency_record import IdempotencyRecord
from app.models.job_failure import JobFailure
from app.models.job_rollup import (
    JobCodePairRollup,
    JobCodeRollup,
    JobCountRollup,
    JobGroupCodeRollup,
    JobGroupRollup,
)
from app.models.job_status import JobStatus
from app.models.processing_job import ProcessingJob

__all__ = [
    "AuditEvent",
    "Permission",
    "Role",
    "ServerSession",
    "User",
    "WorkerToken",
    "BulkAction",
    "BulkActionJob",
    "BulkActionState",
    "FailureGroup",
    "FailureGroupCount",
    "FailureGroupDaily",
    "FailureGroupDailyState",
    "FailureGroupEvent",
    "FailureGroupHourly",
    "FailureOccurrence",
    "GroupState",
    "GroupSubstate",
    "IgnoreMode",
    "EntityType", "ExtractedEntity", "IdempotencyRecord", "JobFailure", "JobCodePairRollup", "JobCodeRollup",
    "JobCountRollup", "JobGroupCodeRollup", "JobGroupRollup",
    "JobStatus", "ProcessingJob"]
