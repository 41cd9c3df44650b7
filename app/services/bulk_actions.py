"""Requeue or acknowledge many jobs: a frozen selection, worked through in batches.

1. :func:`freeze_group_selection` (or :func:`freeze_filter_selection`) copies
   the ids of the jobs the action would change into ``bulk_action_jobs`` with
   one ``INSERT ... SELECT`` and returns the :class:`BulkAction`, whose
   ``total`` is the exact count the confirmation page shows. Nothing changes yet.
2. :func:`start` claims the action (``pending`` -> ``running``, a conditional
   UPDATE: of two submits, exactly one wins) and, in the same transaction,
   writes its audit row (who, what, the group or the filter, the count
   selected) *before* the first change.
3. :func:`run_batch` acts on the next ``batch_size`` jobs of the selection
   in one transaction: locks their rows, changes those the action still
   applies to and that still have the failure they were frozen with (their
   ``completed_at``: a job that failed again has a failure nobody was asked
   about) with set-based UPDATEs, ends their current failure-group
   occurrences (a requeue), adds the number changed to the audit row and to
   the action's ``changed``, and moves ``next_position`` on. A failure rolls
   back that batch only, so ``changed`` and the audit row's ``row_count``
   are always exactly what took effect. :func:`run` loops until done.

Where the loop runs is ``BULK_ACTION_RUNNER``'s choice. ``procrastinate``
(the default on PostgreSQL): the request that confirms the action defers
one task in the transaction of :func:`start`, and a worker runs :func:`run`
to the end (:mod:`app.services.bulk_queue`, :func:`resume`). ``inline``
(SQLite): the request runs it for at most ``BULK_ACTION_REQUEST_SECONDS``;
a larger action pauses there and the operator continues it from its
progress page (a ``running`` action whose request died is resumable after
:data:`STALE_AFTER`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import (
    AuditEvent,
    BulkAction,
    BulkActionJob,
    BulkActionState,
    FailureOccurrence,
    JobStatus,
    ProcessingJob,
)
from app.models.job_status import FAILURE_STATUSES
from app.models.types import utcnow
from app.services.access import add_audit_event
from app.services.failure_groups.recording import end_current_occurrences
from app.services.processing_jobs.actions import JobAction
from app.services.processing_jobs.job_filter import JobFilter
from app.unit_of_work import WriteTransaction, replayed_write_transaction, write_transaction

#: Jobs changed per transaction.
BATCH_SIZE = 1_000
#: A ``running`` action whose last batch committed longer ago than this lost
#: its request (a worker timeout, a restart) and may be claimed again.
STALE_AFTER = timedelta(seconds=120)

_FAILURES = [s.value for s in FAILURE_STATUSES]


class BulkActionNotFoundError(LookupError):
    """No bulk action with this id (or not this operator's)."""


def _applies(action: str) -> list[sa.ColumnElement[bool]]:
    """SQL: the job is one ``action`` changes now."""
    conditions = [ProcessingJob.status.in_(_FAILURES)]
    if action == JobAction.ACKNOWLEDGE:
        conditions.append(ProcessingJob.acknowledged_at.is_(None))
    return conditions


def _freeze(action: str, actor: str, ids: sa.Select[Any], **fields: Any) -> BulkAction:
    if action not in JobAction.ALL:
        raise ValueError(f"unknown action {action!r}")
    with write_transaction():
        bulk = BulkAction(id=uuid.uuid4(), action=action, actor=actor[:200], state=BulkActionState.PENDING.value,
                          total=0, next_position=0, changed=0, skipped=0, **fields)
        db.session.add(bulk)
        db.session.flush()
        # With each job's completed_at: the failure the count is about.
        numbered = ids.add_columns(
            ProcessingJob.completed_at.label("failed_at"),
            (sa.func.row_number().over(order_by=ProcessingJob.id) - 1).label("position"),
        ).subquery()
        db.session.execute(
            sa.insert(BulkActionJob.__table__).from_select(
                ["bulk_action_id", "position", "job_id", "failed_at"],
                sa.select(sa.literal(bulk.id, sa.Uuid), numbered.c.position, numbered.c.id, numbered.c.failed_at),
            )
        )
        # Counted, not the INSERT's rowcount: drivers differ on INSERT ... SELECT.
        bulk.total = db.session.scalar(
            sa.select(sa.func.count()).where(BulkActionJob.bulk_action_id == bulk.id)
        )
    return bulk


def freeze_group_selection(action: str, group_id: int, actor: str) -> BulkAction:
    """Freeze the jobs currently failing on failure group ``group_id`` that
    ``action`` would change (for acknowledge: not yet acknowledged).

    Returns:
        The ``pending`` :class:`BulkAction`; ``total`` is the exact count.

    Raises:
        ValueError: unknown action.
    """
    ids = (
        sa.select(ProcessingJob.id)
        .join(FailureOccurrence, FailureOccurrence.job_id == ProcessingJob.id)
        .where(FailureOccurrence.group_id == group_id, FailureOccurrence.is_current, *_applies(action))
    )
    return _freeze(action, actor, ids, scope="group", group_id=group_id)


def freeze_filter_selection(action: str, job_filter: JobFilter, query: Mapping[str, Any], actor: str) -> BulkAction:
    """Freeze the jobs ``job_filter`` matches that ``action`` would change;
    ``query`` (the query-string pairs) is kept for the audit row."""
    ids = sa.select(ProcessingJob.id).where(*job_filter.where(), *_applies(action))
    return _freeze(action, actor, ids, scope="filter", query=dict(query))


def get(bulk_id: uuid.UUID | str) -> BulkAction:
    """The bulk action ``bulk_id``.

    Raises:
        BulkActionNotFoundError: unknown id (or not a UUID).
    """
    try:
        key = bulk_id if isinstance(bulk_id, uuid.UUID) else uuid.UUID(str(bulk_id))
    except ValueError:
        raise BulkActionNotFoundError(bulk_id) from None
    bulk = db.session.get(BulkAction, key, populate_existing=True)
    if bulk is None:
        raise BulkActionNotFoundError(bulk_id)
    return bulk


def start(bulk_id: uuid.UUID, actor: str, audit: Mapping[str, Any]) -> bool:
    """Claim a ``pending`` action for running (or continue a ``paused`` or
    ``failed`` one, or a ``running`` one without progress for
    :data:`STALE_AFTER`) and, the first time, write its audit row, in one
    transaction that commits before any job changes. ``False`` when it is
    running or done already (a second submit): nothing is written.

    Args:
        actor: who confirms it, the audit row's actor.
        audit: facts for the audit row's ``filter`` (the group, the
            filter); ``selected`` (the total), ``bulk_action_id`` and
            ``asked_by`` (who froze the selection) are added.
    """
    now = utcnow()
    claimable = sa.or_(
        BulkAction.state.in_([BulkActionState.PENDING, BulkActionState.PAUSED, BulkActionState.FAILED]),
        sa.and_(BulkAction.state == BulkActionState.RUNNING, BulkAction.progressed_at < now - STALE_AFTER),
    )
    with write_transaction() as transaction:
        claimed = db.session.execute(
            sa.update(BulkAction)
            .where(BulkAction.id == bulk_id, claimable)
            .values(state=BulkActionState.RUNNING.value, started_at=sa.func.coalesce(BulkAction.started_at, now),
                    progressed_at=now)
            .returning(BulkAction.action, BulkAction.total, BulkAction.audit_event_id, BulkAction.actor)
        ).one_or_none()
        if claimed is None:
            if not transaction.joined:
                transaction.rollback()
            return False
        action, total, audit_event_id, asked_by = claimed
        if audit_event_id is None:
            # The row's actor confirmed it; who asked (froze the selection,
            # named in the jobs' histories) may be another user (a trial).
            facts = {**audit, "selected": total, "bulk_action_id": str(bulk_id), "asked_by": asked_by}
            event = add_audit_event(actor, f"jobs.{action}", facts, 0)
            db.session.execute(sa.update(BulkAction).where(BulkAction.id == bulk_id).values(audit_event_id=event.id))
    return True


def resume(bulk_id: uuid.UUID) -> bool:
    """Take a started action over for a background run (procrastinate's
    task, :mod:`app.services.bulk_queue`): ``running``, ``paused`` or
    ``failed`` -> ``running``, in its own transaction. ``False`` when it is
    ``done`` (or ``pending``: never confirmed, so never audited).

    Only the queue's lock on the bulk id keeps two runs apart; each batch
    also locks the action's row, so even overlapping runs count exactly.
    """
    with write_transaction():
        resumed = db.session.execute(
            sa.update(BulkAction)
            .where(BulkAction.id == bulk_id, BulkAction.audit_event_id.is_not(None),
                   BulkAction.state.in_([BulkActionState.RUNNING, BulkActionState.PAUSED, BulkActionState.FAILED]))
            .values(state=BulkActionState.RUNNING.value, progressed_at=utcnow())
            .returning(BulkAction.id)
        ).one_or_none()
    return resumed is not None


def run_batch(bulk_id: uuid.UUID, batch_size: int = BATCH_SIZE) -> bool:
    """Act on the next ``batch_size`` jobs of a running action, in one
    transaction; ``True`` while jobs remain. Marks the action ``done`` after
    the last batch. The batch runs again from its start when PostgreSQL
    aborts it as a deadlock's victim (a batch's jobs move their groups'
    rollup rows in job order, a recorder's in key order:
    :func:`app.unit_of_work.replayed_write_transaction`).
    """
    return replayed_write_transaction(lambda transaction: _run_batch(transaction, bulk_id, batch_size))


def _run_batch(transaction: WriteTransaction, bulk_id: uuid.UUID, batch_size: int) -> bool:
    """One try of :func:`run_batch`, inside its write transaction."""
    bulk = db.session.get(BulkAction, bulk_id, with_for_update=True, populate_existing=True)
    if bulk is None or bulk.state != BulkActionState.RUNNING:
        transaction.rollback()
        return False
    rows = db.session.execute(
        sa.select(BulkActionJob.position, BulkActionJob.job_id)
        .where(BulkActionJob.bulk_action_id == bulk_id, BulkActionJob.position >= bulk.next_position)
        .order_by(BulkActionJob.position)
        .limit(batch_size)
    ).all()
    ids = [row.job_id for row in rows]
    changed_ids: list[uuid.UUID] = []
    if ids:
        # Lock in id order (as every multi-row locker should) so two
        # batches over overlapping jobs cannot deadlock. Only jobs still
        # on the failure they were frozen with: one that failed again
        # (or was requeued and failed) has a failure nobody was asked about.
        frozen = sa.and_(BulkActionJob.bulk_action_id == bulk_id, BulkActionJob.job_id == ProcessingJob.id,
                         BulkActionJob.position.in_([row.position for row in rows]))
        changed_ids = list(db.session.scalars(
            sa.select(ProcessingJob.id)
            .join(BulkActionJob, frozen)
            .where(*_applies(bulk.action),
                   sa.or_(BulkActionJob.failed_at.is_(None), ProcessingJob.completed_at == BulkActionJob.failed_at))
            .order_by(ProcessingJob.id)
            .with_for_update(of=ProcessingJob)
        ))
    if changed_ids:
        _apply(bulk.action, changed_ids, bulk.actor)
        # Which of the selection this batch changed, for each job's history
        # (found by the job_id index, not by reading the audit log).
        changed = set(changed_ids)
        db.session.execute(
            sa.update(BulkActionJob)
            .where(BulkActionJob.bulk_action_id == bulk_id,
                   BulkActionJob.position.in_([r.position for r in rows if r.job_id in changed]))
            .values(changed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            sa.update(AuditEvent)
            .where(AuditEvent.id == bulk.audit_event_id)
            .values(row_count=sa.func.coalesce(AuditEvent.row_count, 0) + len(changed_ids))
        )
    bulk.changed += len(changed_ids)
    bulk.skipped += len(ids) - len(changed_ids)
    bulk.next_position = (rows[-1].position + 1) if rows else bulk.total
    bulk.progressed_at = utcnow()
    more = bulk.next_position < bulk.total
    if not more:
        bulk.state = BulkActionState.DONE.value
        bulk.finished_at = utcnow()
    return more


def job_bulk_actions(job_id: uuid.UUID) -> list[tuple[datetime, BulkAction]]:
    """The bulk actions (on a group's or a filter's jobs) that changed
    ``job_id``, oldest first: ``(when the job was changed, the action)``.

    Read through ``ix_bulk_action_jobs_job_id``: one index probe for the
    job's few selection rows, then each action by its primary key. The cost
    follows the number of bulk actions that selected this job, not the
    number of jobs or audit rows, so it stays the same at 1,000,000 jobs
    (the audit log's one row per bulk action names the filter or group,
    not the jobs, and cannot be searched by job). Selected-but-skipped jobs
    (``changed_at`` ``NULL``) are left out.
    """
    rows = db.session.execute(
        sa.select(BulkActionJob.changed_at, BulkAction)
        .join(BulkAction, BulkAction.id == BulkActionJob.bulk_action_id)
        .where(BulkActionJob.job_id == job_id, BulkActionJob.changed_at.is_not(None))
        .order_by(BulkActionJob.changed_at)
    ).all()
    return [(row[0], row[1]) for row in rows]


def _apply(action: str, job_ids: list[uuid.UUID], actor: str) -> None:
    """The set-based twin of :func:`app.services.processing_jobs.lifecycle.requeue_job`
    and :func:`~app.services.processing_jobs.actions.acknowledge_job`, for
    rows already locked and known to apply."""
    now = utcnow()
    if action == JobAction.REQUEUE:
        db.session.execute(
            sa.update(ProcessingJob)
            .where(ProcessingJob.id.in_(job_ids))
            .values(status=JobStatus.PENDING.value, started_at=None, completed_at=None, error_message=None,
                    error_details=None, error_format=None, acknowledged_at=None, acknowledged_by=None,
                    updated_at=now)
            .execution_options(synchronize_session=False)
        )
        # As requeue_job: the jobs stop failing on their groups (the
        # "failing now" counters go down) in the same transaction.
        end_current_occurrences(job_ids)
    else:
        db.session.execute(
            sa.update(ProcessingJob)
            .where(ProcessingJob.id.in_(job_ids))
            .values(acknowledged_at=now, acknowledged_by=actor[:200], updated_at=now)
            .execution_options(synchronize_session=False)
        )


def _leave(bulk_id: uuid.UUID, state: BulkActionState) -> None:
    """``running`` -> ``state`` (``failed`` or ``paused``: it may be continued), own transaction."""
    with write_transaction():
        db.session.execute(
            sa.update(BulkAction)
            .where(BulkAction.id == bulk_id, BulkAction.state == BulkActionState.RUNNING)
            .values(state=state.value)
        )


def run(bulk_id: uuid.UUID, batch_size: int = BATCH_SIZE, budget_seconds: float | None = None,
        stop_requested: Callable[[], bool] | None = None) -> BulkAction:
    """Run the remaining batches of a started action until it is done, or
    ``budget_seconds`` have passed (a web request must answer before its
    server's timeout), or ``stop_requested()`` says so after a batch (a
    worker shutting down): then it is ``paused``. On an error it is
    marked ``failed`` (what committed stays counted) and the error re-raised."""
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    try:
        while run_batch(bulk_id, batch_size):
            if (deadline is not None and time.monotonic() >= deadline) or (stop_requested and stop_requested()):
                _leave(bulk_id, BulkActionState.PAUSED)
                break
    except Exception:
        _leave(bulk_id, BulkActionState.FAILED)
        raise
    return get(bulk_id)
