"""The ``job_failures`` table: every failure ever recorded, append-only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import JSONDocument, UTCDateTime, utcnow

#: Longest worker name / version a report may carry, in characters.
WORKER_NAME_MAX_LENGTH = 100
WORKER_VERSION_MAX_LENGTH = 100


class JobFailure(db.Model):
    """One recorded failure of a job. Rows are only ever inserted.

    The job row holds the latest failure; this table keeps them all, so a
    job that is requeued and fails again shows both. ``error_format`` names
    the format the details arrived in (``normalized``, ``pydantic``, ...,
    ``free-form``); ``error_details`` is what was stored. ``worker_name``
    and ``worker_version`` are the report's optional ``worker`` object.
    """

    __tablename__ = "job_failures"
    __table_args__ = (sa.Index("ix_job_failures_job_id_recorded_at", "job_id", "recorded_at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("processing_jobs.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    error_message: Mapped[str] = mapped_column(sa.Text, nullable=False)
    error_details: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    error_format: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    worker_name: Mapped[str | None] = mapped_column(sa.String(WORKER_NAME_MAX_LENGTH), nullable=True)
    worker_version: Mapped[str | None] = mapped_column(sa.String(WORKER_VERSION_MAX_LENGTH), nullable=True)
    #: When the attempt that failed had started (the job's ``started_at`` at
    #: the time), or ``None`` (it failed before starting, or was recorded
    #: before migration 0014). A requeue clears the job's own ``started_at``.
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def __repr__(self) -> str:
        return f"<JobFailure {self.job_id} {self.status} {self.recorded_at}>"
