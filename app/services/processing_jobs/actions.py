"""Operator actions on failed jobs: requeue and acknowledge, one or a few selected.

Each job is changed in its own short transaction (row-locked like every
transition), so a bulk action over many jobs never holds long locks, and a
job that changed meanwhile (e.g. a worker completed it) is skipped, not
forced. Every job of a filter or a group goes through a frozen selection
instead (:mod:`app.services.bulk_actions`), which links each job it changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.models.job_status import FAILURE_STATUSES
from app.models.types import utcnow
from app.services.access import count_in_audit_event, note_in_audit_event
from app.services.processing_jobs.errors import InvalidTransitionError, JobNotFoundError
from app.services.processing_jobs.lifecycle import require_failure_shown, requeue_job
from app.services.processing_jobs.locking import load_job_for_update, parse_job_id
from app.unit_of_work import WriteTransaction, replayed_write_transaction, write_transaction


class JobAction:
    """Names of the operator actions."""

    REQUEUE = "requeue"
    ACKNOWLEDGE = "acknowledge"
    #: Takes an acknowledgement back (one job at a time; no bulk form).
    UNACKNOWLEDGE = "unacknowledge"
    #: The actions on many jobs (a selection, a filter, a group).
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


def acknowledge_job(
    job_id: uuid.UUID | str, actor: str, *, shown_failure_at: datetime | None = None
) -> ActionOutcome:
    """Mark a failed job's current failure as acknowledged (resolved).

    It then leaves the dashboard's default view; a new failure or a requeue
    clears the mark. One ``with write_transaction():`` block.

    Args:
        job_id: the job.
        actor: who acknowledges (stored in ``acknowledged_by``, 200 characters).
        shown_failure_at: the ``completed_at`` (aware UTC) of the failure the
            operator was shown; with it, a job that failed again or was
            requeued since is left alone (an unseen failure is never
            acknowledged).

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job is not ``Failed`` or ``Validation_Failed``.
        FailureChangedError: its ``completed_at`` is not ``shown_failure_at``.
    """
    with write_transaction():
        job = load_job_for_update(job_id)
        if job.job_status not in FAILURE_STATUSES:
            raise InvalidTransitionError(job.id, job.status, "acknowledged")
        require_failure_shown(job, shown_failure_at)
        if job.acknowledged_at is not None:
            return ActionOutcome(job, changed=False)
        job.acknowledged_at = utcnow()
        job.acknowledged_by = actor[:200]
    return ActionOutcome(job, changed=True)


def unacknowledge_job(
    job_id: uuid.UUID | str, actor: str, *, shown_failure_at: datetime | None = None
) -> ActionOutcome:
    """Take back the acknowledgement of a failed job's current failure (an
    acknowledge by mistake): it shows in the dashboard's default view
    again. One ``with write_transaction():`` block. A job not acknowledged
    is left as it is (``changed`` false, nothing to audit).

    Args:
        job_id: the job.
        actor: who takes it back (for the caller's audit row).
        shown_failure_at: as for :func:`acknowledge_job`: a job that failed
            again or was requeued since is left alone.

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job is not ``Failed`` or ``Validation_Failed``.
        FailureChangedError: its ``completed_at`` is not ``shown_failure_at``.
    """
    del actor  # the audit row names who; the job keeps no "unacknowledged by"
    with write_transaction():
        job = load_job_for_update(job_id)
        if job.job_status not in FAILURE_STATUSES:
            raise InvalidTransitionError(job.id, job.status, "unacknowledged")
        require_failure_shown(job, shown_failure_at)
        if job.acknowledged_at is None:
            return ActionOutcome(job, changed=False)
        job.acknowledged_at = None
        job.acknowledged_by = None
    return ActionOutcome(job, changed=True)


def failures_shown(job_ids: Iterable[uuid.UUID | str]) -> dict[str, datetime]:
    """Job id (as given) -> the ``completed_at`` of its current failure, for
    the jobs of ``job_ids`` that are failed now: what a question about them
    shows, passed back as ``shown`` to :func:`apply_to_jobs` when the
    operator says yes. Ids that are not jobs, or not failed, are left out.
    Read-only, one statement."""
    by_key: dict[uuid.UUID, str] = {}
    for job_id in job_ids:
        try:
            by_key[parse_job_id(job_id)] = str(job_id)
        except JobNotFoundError:
            continue
    if not by_key:
        return {}
    rows = db.session.execute(
        sa.select(ProcessingJob.id, ProcessingJob.completed_at)
        .where(ProcessingJob.id.in_(list(by_key)), ProcessingJob.status.in_([s.value for s in FAILURE_STATUSES]))
    ).all()
    return {by_key[row.id]: row.completed_at for row in rows if row.completed_at is not None}


def apply_action(
    action: str, job_id: uuid.UUID | str, actor: str, *, shown_failure_at: datetime | None = None
) -> ActionOutcome:
    """Run one :class:`JobAction` on one job, in one ``with write_transaction():`` block.

    Called inside the caller's block, it joins it: the action's audit row,
    written there too, then commits with the change or not at all.
    ``shown_failure_at``: see :func:`acknowledge_job`.

    Raises:
        ValueError: unknown action.
        JobNotFoundError, InvalidTransitionError (FailureChangedError): as the action raises.
    """
    if action == JobAction.REQUEUE:
        return ActionOutcome(requeue_job(job_id, shown_failure_at=shown_failure_at), changed=True)
    if action == JobAction.ACKNOWLEDGE:
        return acknowledge_job(job_id, actor, shown_failure_at=shown_failure_at)
    if action == JobAction.UNACKNOWLEDGE:
        return unacknowledge_job(job_id, actor, shown_failure_at=shown_failure_at)
    raise ValueError(f"unknown action {action!r}")


def apply_to_jobs(
    action: str,
    job_ids: Iterable[uuid.UUID | str],
    actor: str,
    audit_event_id: uuid.UUID,
    *,
    shown: Mapping[str, datetime] | None = None,
) -> BulkResult:
    """Run ``action`` on each job; jobs it does not apply to are skipped.

    Args:
        audit_event_id: the bulk action's audit event, written (and committed)
            before the first change: each job's transaction adds one to its
            ``row_count``, so the audit counts exactly the changes that
            committed, even if the action stops half way.
        shown: job id (as given) -> the ``completed_at`` of the failure the
            question showed; a job whose failure changed since is skipped.
    """
    result = BulkResult()
    skipped: list[str] = []
    for job_id in job_ids:
        seen = None if shown is None else shown.get(str(job_id))

        def act_and_count(_transaction: WriteTransaction) -> ActionOutcome:  # called at once, in this turn
            outcome = apply_action(action, job_id, actor, shown_failure_at=seen)
            if outcome.changed:
                count_in_audit_event(audit_event_id)
            return outcome

        try:
            outcome = replayed_write_transaction(act_and_count)
        except (InvalidTransitionError, JobNotFoundError):
            result.skipped += 1
            skipped.append(str(job_id))
            continue
        # Decided under the job's row lock: of several operators acting on
        # the same jobs at once, exactly one changes (and counts) each.
        if outcome.changed:
            result.changed += 1
        else:
            result.skipped += 1
            skipped.append(str(job_id))
    if skipped:
        # The audit row names every job asked about; which it left alone is
        # a fact of its own (the jobs' histories read it).
        note_in_audit_event(audit_event_id, {"skipped_job_ids": skipped})
    return result
