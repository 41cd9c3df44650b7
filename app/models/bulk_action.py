"""Bulk actions on many jobs: a frozen selection worked through in batches.

``bulk_actions`` holds one action (requeue or acknowledge every job of a
failure group, or of a filter): who, what, how many were selected, how far
it has got. ``bulk_action_jobs`` is the selection, frozen when the operator
asked for confirmation, so the count shown is the count acted on; positions
``0 .. total-1`` are worked through in order, ``next_position`` being the
first not yet done (advanced in each batch's transaction, so a failure
half-way leaves an exact account).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import JSONDocument, UTCDateTime, utcnow


class BulkActionState(StrEnum):
    """``pending`` (selection frozen, not confirmed), ``running``, ``paused``
    (a request's time budget ran out; continued by the next submit),
    ``done``, ``failed`` (stopped by an error; may be continued)."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"


class BulkAction(db.Model):
    """One bulk action and its progress.

    Attributes:
        action: ``requeue`` or ``acknowledge``.
        scope: ``group`` (``group_id`` names it) or ``filter`` (``query`` holds it).
        total: jobs in the frozen selection.
        next_position: selection rows below it are done.
        changed, skipped: of the done rows, jobs changed and jobs the action
            no longer applied to (e.g. completed meanwhile).
        audit_event_id: the audit row written before the first change.
    """

    __tablename__ = "bulk_actions"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'running', 'paused', 'done', 'failed')", name="state"),
        sa.CheckConstraint("action IN ('requeue', 'acknowledge')", name="action"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    action: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    scope: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    group_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey("failure_groups.id", ondelete="SET NULL"), nullable=True
    )
    query: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    actor: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    state: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=BulkActionState.PENDING.value)
    total: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_position: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    changed: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    skipped: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    audit_event_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: When the last batch committed (or the run started): a ``running``
    #: action without progress for a while lost its request and may be resumed.
    progressed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BulkActionJob(db.Model):
    """One job of a frozen selection, at ``position`` (0-based, the order of work).

    ``changed_at`` is set by the batch that changed the job (``None``: not
    reached yet, or skipped because the action no longer applied). With the
    ``job_id`` index, a job's page finds the bulk actions that changed it
    without reading the audit log (:func:`app.services.bulk_actions.job_bulk_actions`).
    """

    __tablename__ = "bulk_action_jobs"
    __table_args__ = (sa.Index("ix_bulk_action_jobs_job_id", "job_id"),)

    bulk_action_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("bulk_actions.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The job's ``completed_at`` when the selection was frozen: the failure
    #: the operator was asked about. A batch changes the job only while it
    #: is still that failure (migration 0021; ``None`` for older rows:
    #: not checked).
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
