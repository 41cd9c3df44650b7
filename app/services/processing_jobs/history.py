"""A job's history for people: what happened to it, who did it, and when.

Read from what is already stored, oldest first:

* the job row: created, started (the current attempt), completed, and the
  current acknowledgement (``acknowledged_at``/``acknowledged_by``);
* ``job_failures``: every failure ever recorded (append-only), and when
  the attempt that failed had started (a requeue clears the job's own
  ``started_at``, so earlier starts are only there);
* the audit log: every requeue and acknowledgement that named this job
  (one job, or selected jobs), with its actor and whether it came from the
  API (:func:`app.services.audit_log.job_audit_events`);
* ``bulk_action_jobs``: every bulk action (all jobs of a group or of a
  filter) that changed this job, with its actor and how many other jobs it
  changed (:func:`app.services.bulk_actions.job_bulk_actions`).

Every read is by the job's id through an index, so the page costs the same
at 1,000,000 jobs. An acknowledgement through the older per-job loop over a
filter names no job; it is still listed, from the job row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.models import BulkAction, JobFailure, JobStatus, ProcessingJob
from app.models.access import AuditEvent
from app.services.audit_log import job_audit_events
from app.services.bulk_actions import job_bulk_actions


class HistoryKind(StrEnum):
    """What happened (the order breaks ties between events of the same instant)."""

    CREATED = "created"
    STARTED = "started"
    FAILED = "failed"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    REQUEUED = "requeued"
    COMPLETED = "completed"


_ORDER = {kind: n for n, kind in enumerate(HistoryKind)}


@dataclass(frozen=True)
class HistoryEvent:
    """One event of a job's history.

    Attributes:
        at: when (aware UTC).
        kind: what happened.
        actor: who: a user name, a worker token's name, or ``None`` when
            the worker's own step (created, started, failed, completed),
            whose caller is not recorded.
        via: ``"api"`` for an action sent through the API, ``"selected"`` for
            one of several jobs acted on at once, else ``None``.
            ``"group"`` or ``"filter"`` for a bulk action on every job of a
            failure group or of a filter.
        failure: the recorded failure, for ``failed`` events.
        others: for a bulk action, how many other jobs it changed (so far,
            while it runs).
        group_id: for a bulk action on a group, the group's id.
        bulk_action_id: for a bulk action, its id (its progress page).
    """

    at: datetime
    kind: HistoryKind
    actor: str | None = None
    via: str | None = None
    failure: JobFailure | None = None
    others: int | None = None
    group_id: int | None = None
    bulk_action_id: str | None = None


def _from_audit(event: AuditEvent, job_id: str) -> HistoryEvent | None:
    kind = {"jobs.requeue": HistoryKind.REQUEUED, "jobs.acknowledge": HistoryKind.ACKNOWLEDGED,
            "jobs.unacknowledge": HistoryKind.UNACKNOWLEDGED}.get(event.action)
    if kind is None:
        return None
    facts = event.filter if isinstance(event.filter, dict) else {}
    # An action on selected jobs names them all; the jobs it skipped (their
    # failure changed after the question, or it no longer applied) are
    # listed apart once it ends, and one that changed none counted none (a
    # trial's "Yes" answered twice showed two requeues).
    if event.row_count == 0 or job_id in (facts.get("skipped_job_ids") or ()):
        return None
    via = "api" if facts.get("via") == "api" else ("selected" if facts.get("scope") == "selected" else None)
    return HistoryEvent(event.occurred_at, kind, event.actor, via)


def _from_bulk(at: datetime, bulk: BulkAction) -> HistoryEvent | None:
    kind = {"requeue": HistoryKind.REQUEUED, "acknowledge": HistoryKind.ACKNOWLEDGED}.get(bulk.action)
    if kind is None:
        return None
    return HistoryEvent(at, kind, bulk.actor, bulk.scope, others=max(bulk.changed - 1, 0),
                        group_id=bulk.group_id, bulk_action_id=str(bulk.id))


def job_history(job: ProcessingJob, failures: list[JobFailure]) -> list[HistoryEvent]:
    """The history of ``job``, oldest first (events of the same instant in
    :class:`HistoryKind` order).

    Args:
        job: the job (as loaded).
        failures: its failures, oldest first
            (:func:`~app.services.processing_jobs.lifecycle.list_failures`).
    """
    events = [HistoryEvent(job.created_at, HistoryKind.CREATED)]
    events += [HistoryEvent(f.recorded_at, HistoryKind.FAILED, failure=f) for f in failures]
    audited = [e for e in (_from_audit(event, str(job.id)) for event in job_audit_events(job.id, job.created_at))
               if e is not None]
    audited += [e for e in (_from_bulk(at, bulk) for at, bulk in job_bulk_actions(job.id)) if e is not None]
    events += audited
    # Each attempt's start: the failed ones' from their failures, the current one's from the row.
    starts = {f.started_at for f in failures if f.started_at is not None}
    if job.started_at is not None:
        starts.add(job.started_at)
    events += [HistoryEvent(at, HistoryKind.STARTED) for at in starts]
    if job.job_status is JobStatus.COMPLETED and job.completed_at is not None:
        events.append(HistoryEvent(job.completed_at, HistoryKind.COMPLETED))
    if job.acknowledged_at is not None:
        # Acknowledged with a whole filter: no audit row names the job, the row does.
        last_failure = failures[-1].recorded_at if failures else job.created_at
        if not any(e.kind is HistoryKind.ACKNOWLEDGED and e.at >= last_failure for e in audited):
            events.append(HistoryEvent(job.acknowledged_at, HistoryKind.ACKNOWLEDGED, job.acknowledged_by))
    return sorted(events, key=lambda e: (e.at, _ORDER[e.kind]))
