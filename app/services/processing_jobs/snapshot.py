"""A job as a write left it: plain values, not an ORM object."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models import JobStatus


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """The ``processing_jobs`` row of one job, as stored by the write that
    returned it (same attribute names as :class:`~app.models.ProcessingJob`,
    so :func:`app.web.serializers.job_to_json` renders either).

    The failure recorder returns it: read with one Core ``SELECT ... FOR
    UPDATE`` and changed with one Core ``UPDATE``, without the ORM's load and
    unit of work (docs/benchmarks.md, "The record path"). Timestamps are
    timezone-aware UTC; ``error_details`` the stored JSON value (``None``:
    SQL NULL); ``status`` a :class:`JobStatus` value.
    """

    id: uuid.UUID
    document_id: str
    job_type: str
    status: str
    error_message: str | None
    error_details: Any
    error_format: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    updated_at: datetime

    @property
    def job_status(self) -> JobStatus:
        """The status as a :class:`JobStatus`."""
        return JobStatus(self.status)
