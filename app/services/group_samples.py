"""A sample of what a failure group holds: the newest failure's items that fall in it.

For the group page ("a sample error item rendered like the job page"): the
items of the group's newest occurrence whose fingerprint is the group's,
recomputed with the group's grouping version
(:func:`app.services.failure_groups.fingerprint.failure_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import uuid
from collections.abc import Iterable

import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup, FailureOccurrence, JobFailure, ProcessingJob
from app.services.error_details import listed_errors
from app.services.failure_groups.fingerprint import UnknownGroupingVersionError, failure_keys


@dataclass(frozen=True)
class SampleFailure:
    """The newest failure of a group and its items in the group.

    Attributes:
        failure: the ``job_failures`` row (its job, time, message, format).
        error_details: ``{"errors": [...]}`` holding only the group's items
            (the shape the job page's error table reads), or ``None`` when
            the group is made from the failure's message (no items).
    """

    failure: JobFailure
    error_details: Any

    @property
    def message(self) -> str | None:
        """The group's message as this sample has it: its first item's
        ``message``, or the failure's ``error_message`` for a group made
        from the message. The group page shows it as "Sample message", so
        the two agree (the group's stored ``sample_message`` follows the
        newest ``last_seen``, which may be another occurrence)."""
        if self.error_details is None:
            return self.failure.error_message
        first = self.error_details["errors"][0].get("message")
        return first if isinstance(first, str) else None


def sample_failure(group: FailureGroup) -> SampleFailure | None:
    """The newest occurrence's failure of ``group`` with its items in the group; ``None`` when it has none."""
    failure = db.session.scalars(
        sa.select(JobFailure)
        .join(FailureOccurrence, FailureOccurrence.failure_id == JobFailure.id)
        .where(FailureOccurrence.group_id == group.id)
        .order_by(FailureOccurrence.occurred_at.desc(), FailureOccurrence.id.desc())
        .limit(1)
    ).first()
    if failure is None:
        return None
    try:
        keys = failure_keys(failure.error_message, failure.error_details, failure.error_format,
                            version=group.grouping_version)
    except UnknownGroupingVersionError:
        return SampleFailure(failure, None)
    items = [item for item in listed_errors(failure.error_details) if isinstance(item, dict)]
    if len(items) != len(keys):  # grouped by the message: no items to show
        return SampleFailure(failure, None)
    mine = [item for item, key in zip(items, keys) if key.fingerprint == group.fingerprint]
    return SampleFailure(failure, {"errors": mine} if mine else None)


def document_ids(job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The document id of each of ``job_ids`` (a page of sample jobs), in one
    query; a job deleted meanwhile is left out."""
    wanted = list(dict.fromkeys(job_ids))
    if not wanted:
        return {}
    rows = db.session.execute(sa.select(ProcessingJob.id, ProcessingJob.document_id).where(ProcessingJob.id.in_(wanted)))
    return {job_id: document_id for job_id, document_id in rows}
