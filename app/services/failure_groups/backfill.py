"""Grouping stored failures: ``flask groups backfill`` and ``regroup``.

Not one transaction: batches, each its own short transaction, so a backfill
of millions of failures never holds locks for long and one stopped half-way
keeps what it finished (running it again carries on). A batch locks only
its jobs' rows, in id order, the lock the recorder takes too: a failure
being recorded on one of them waits for the batch, or the batch for it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import JobFailure, ProcessingJob
from app.models.failure_group import FailureGroup, FailureOccurrence
from app.models.job_status import FAILURE_STATUSES
from app.services.failure_groups.fingerprint import GROUPING_VERSION, KNOWN_VERSIONS, UnknownGroupingVersionError
from app.services.failure_groups.batch_recording import record_batch_occurrences
from app.unit_of_work import write_transaction

#: What a batch reads of each failure: one statement for the whole batch.
_FAILURE_COLUMNS = (
    JobFailure.id, JobFailure.job_id, JobFailure.recorded_at, JobFailure.error_message, JobFailure.error_details,
    JobFailure.error_format, JobFailure.worker_name, JobFailure.worker_version,
)

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 5_000


@dataclass
class BackfillResult:
    """What a backfill did: failures grouped, occurrences made, batches, seconds."""

    failures: int = 0
    occurrences: int = 0
    batches: int = 0
    seconds: float = 0.0


def _ungrouped(version: int, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[sa.Row[Any]]:
    """The failures with no occurrence under ``version`` (rows of
    :data:`_FAILURE_COLUMNS`), oldest first, after the keyset position
    ``after`` (``recorded_at``, id)."""
    grouped = (
        sa.select(FailureOccurrence.id)
        .join(FailureGroup, FailureGroup.id == FailureOccurrence.group_id)
        .where(FailureOccurrence.failure_id == JobFailure.id, FailureGroup.grouping_version == version)
    )
    statement = sa.select(*_FAILURE_COLUMNS).where(~grouped.exists())
    if after is not None:
        at, last_id = after
        statement = statement.where(
            sa.or_(JobFailure.recorded_at > at, sa.and_(JobFailure.recorded_at == at, JobFailure.id > last_id))
        )
    return list(db.session.execute(statement.order_by(JobFailure.recorded_at, JobFailure.id).limit(limit)))


def _grouped_among(version: int, failure_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``failure_ids`` that have an occurrence under ``version``."""
    return set(db.session.scalars(
        sa.select(FailureOccurrence.failure_id).distinct()
        .join(FailureGroup, FailureGroup.id == FailureOccurrence.group_id)
        .where(FailureOccurrence.failure_id.in_(failure_ids), FailureGroup.grouping_version == version)
    ))


def _latest_failures(job_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The newest failure of each job (by ``recorded_at``, then id)."""
    latest: dict[uuid.UUID, uuid.UUID] = {}
    rows = db.session.execute(
        sa.select(JobFailure.job_id, JobFailure.id)
        .where(JobFailure.job_id.in_(job_ids))
        .order_by(JobFailure.job_id, JobFailure.recorded_at.desc(), JobFailure.id.desc())
    )
    for job_id, failure_id in rows:
        latest.setdefault(job_id, failure_id)
    return latest


def backfill_groups(
    version: int = GROUPING_VERSION,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[BackfillResult], None] | None = None,
) -> BackfillResult:
    """Group every stored failure that has no occurrence under ``version``.

    A failure is grouped as its job's *current* one when it is the job's
    newest failure and the job is still ``Failed``/``Validation_Failed``.
    Groups, counters and rollups are written as the recorder writes them;
    occurrences older than a group's last state change do not reopen it.

    Args:
        version: a grouping version this code implements.
        batch_size: failures per transaction, 1 to :data:`MAX_BATCH_SIZE`.
        progress: called with the running totals after each batch.

    Raises:
        UnknownGroupingVersionError: ``version`` is not implemented.
        ValueError: ``batch_size`` out of range.
    """
    if version not in KNOWN_VERSIONS:
        raise UnknownGroupingVersionError(f"grouping version {version} is not one of {KNOWN_VERSIONS}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}")
    result = BackfillResult()
    started = time.monotonic()
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        with write_transaction() as transaction:
            batch = _ungrouped(version, after, batch_size)
            if not batch:
                transaction.rollback()  # nothing left: end the (SQLite: locking) transaction
                break
            job_ids = sorted({row.job_id for row in batch})
            jobs = {
                row.id: row
                for row in db.session.execute(
                    sa.select(ProcessingJob.id, ProcessingJob.job_type, ProcessingJob.status)
                    .where(ProcessingJob.id.in_(job_ids))
                    .order_by(ProcessingJob.id)
                    .with_for_update()
                )
            }
            latest = _latest_failures(job_ids)
            # Read again under the jobs' locks: another backfill (or a
            # regroup) that took them first has grouped some meanwhile, and
            # grouping them twice broke the occurrences' unique key (a trial
            # ran two at once: one stopped with an IntegrityError).
            done_meanwhile = _grouped_among(version, [failure.id for failure in batch])
            failed = {status.value for status in FAILURE_STATUSES}
            items = []
            for failure in batch:
                job = jobs.get(failure.job_id)
                if job is None or failure.id in done_meanwhile:  # purged, or grouped, meanwhile
                    continue
                current = latest.get(job.id) == failure.id and job.status in failed
                items.append((failure, job, current))
            result.occurrences += record_batch_occurrences(items, version)
            result.failures += len(items)
        after = (batch[-1].recorded_at, batch[-1].id)
        result.batches += 1
        result.seconds = time.monotonic() - started
        if progress is not None:
            progress(result)
        db.session.expunge_all()  # keep memory flat over millions of rows
    result.seconds = time.monotonic() - started
    return result
