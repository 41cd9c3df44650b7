"""What the failure-groups write path reads of a just-recorded failure: plain values.

The recorder writes the ``job_failures`` row with one Core ``INSERT`` (no ORM
object, docs/benchmarks.md "The record path"), and hands the grouping these
values instead. The attribute names are :class:`~app.models.JobFailure`'s
(and ``job``'s are :class:`~app.models.ProcessingJob`'s), so the code that
groups a failure reads either: a backfill still passes ORM rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


class RecordedJob(NamedTuple):
    """The job a failure belongs to, as much as grouping reads of it."""

    id: uuid.UUID
    job_type: str


@dataclass(frozen=True, slots=True)
class RecordedFailure:
    """One ``job_failures`` row as inserted (same names as ``JobFailure``).

    ``recorded_at`` is timezone-aware UTC; ``error_details`` the stored JSON
    value (``None``: SQL NULL); ``status`` a ``JobStatus`` value.
    """

    id: uuid.UUID
    job_id: uuid.UUID
    job_type: str
    status: str
    error_message: str
    error_details: Any
    error_format: str | None
    recorded_at: datetime
    worker_name: str | None
    worker_version: str | None
    #: When the failed attempt started (UTC; ``None``: never started).
    started_at: datetime | None = None

    @property
    def job(self) -> RecordedJob:
        """The failure's job: its id and type."""
        return RecordedJob(self.job_id, self.job_type)
