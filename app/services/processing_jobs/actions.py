"""Operator actions on failed jobs: requeue and acknowledge, one or a few selected.

Each job is changed in its own short transaction (row-locked like every
transition), so a bulk action over many jobs never holds long locks, and a
job that changed meanwhile (e.g. a worker completed it) is skipped, not
forced. Every job of a filter or a group goes through a frozen selection
instead (:mod:`app.services.bulk_actions`), which links each job it changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from app.models import ProcessingJob
from app.models.job_status import FAILURE_STATUSES
from app.models.types import utcnow
from app.services.access import count_in_audit_event
from app.services.processing_jobs.errors import InvalidTransitionError, JobNotFoundError
from app.services.processing_jobs.lifecycle import requeue_job
from app.services.processing_jobs.locking import load_job_for_update
from app.unit_of_work import write_transaction


class JobAction:
    """Names of the operator actions."""

    REQUEUE = "requeue"
    ACKNOWLEDGE = "acknowledge"
    ALL = (REQUEUE, ACKNOWLEDGE)


@dataclass
class BulkResult:
    """What a bulk action did: jobs changed and jobs skipped (not in a state
    the action applies to, or gone)."""

    changed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class ActionOutcome:
    """One job after an action: the job, and whether the action changed it.

    Acknowledging an acknowledged job again changes nothing (who did it first
    is kept): ``changed`` is then false, and nothing is to be audited.
    """

    job: ProcessingJob
    changed: bool


def acknowledge_job(job_id: uuid.UUID | str, actor: str) -> ActionOutcome:
    """Mark a failed job's current failure as acknowledged (resolved).

    It then leaves the dashboard's default view; a new failure or a requeue
    clears the mark. One ``with write_transaction():`` block.

    Args:
        job_id: the job.
        actor: who acknowledges (stored in ``acknowledged_by``, 200 characters).

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job is not ``Failed`` or ``Validation_Failed``.
    """
    with write_transaction():
        job = load_job_for_update(job_id)
        if job.job_status not in FAILURE_STATUSES:
            raise InvalidTransitionError(job.id, job.status, "acknowledged")
        if job.acknowledged_at is not None:
            return ActionOutcome(job, changed=False)
        job.acknowledged_at = utcnow()
        job.acknowledged_by = actor[:200]
    return ActionOutcome(job, changed=True)


def apply_action(action: str, job_id: uuid.UUID | str, actor: str) -> ActionOutcome:
    """Run one :class:`JobAction` on one job, in one ``with write_transaction():`` block.

    Called inside the caller's block, it joins it: the action's audit row,
    written there too, then commits with the change or not at all.

    Raises:
        ValueError: unknown action.
        JobNotFoundError, InvalidTransitionError: as the action raises.
    """
    if action == JobAction.REQUEUE:
        return ActionOutcome(requeue_job(job_id), changed=True)
    if action == JobAction.ACKNOWLEDGE:
        return acknowledge_job(job_id, actor)
    raise ValueError(f"unknown action {action!r}")


def apply_to_jobs(
    action: str, job_ids: Iterable[uuid.UUID | str], actor: str, audit_event_id: uuid.UUID
) -> BulkResult:
    """Run ``action`` on each job; jobs it does not apply to are skipped.

    Args:
        audit_event_id: the bulk action's audit event, written (and committed)
            before the first change: each job's transaction adds one to its
            ``row_count``, so the audit counts exactly the changes that
            committed, even if the action stops half way.
    """
    result = BulkResult()
    for job_id in job_ids:
        try:
            with write_transaction():
                outcome = apply_action(action, job_id, actor)
                if outcome.changed:
                    count_in_audit_event(audit_event_id)
        except (InvalidTransitionError, JobNotFoundError):
            result.skipped += 1
            continue
        # Decided under the job's row lock: of several operators acting on
        # the same jobs at once, exactly one changes (and counts) each.
        if outcome.changed:
            result.changed += 1
        else:
            result.skipped += 1
    return result
