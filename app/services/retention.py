"""Retention: delete finished jobs, their history and old idempotency answers.

Clinical failure text is patient data; it is kept as long as it is useful
and no longer. :func:`purge_finished_jobs` deletes jobs that finished
(``Completed``, ``Failed``, ``Validation_Failed``) before a cutoff, with
their ``job_failures`` and ``extracted_entities`` rows (and so their
failure-group occurrences), and the ``idempotency_records`` created before
the cutoff. A failure group left with no occurrence keeps its counts and
lifecycle but not its text: its sample message, and the title of a group
made from a message, are replaced (:func:`redact_emptied_groups`); a group
that keeps failures takes its sample message from the newest one left
(:func:`resample_kept_groups`).

Unlike the other services this is not one transaction: it works in batches,
each its own short transaction, so a large purge never holds locks for long
or grows one huge transaction, and a purge that is stopped half-way keeps
what it finished. Within a batch the job rows are locked (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite's single writer), so a failure being recorded
on a job at that moment either lands before the purge sees the row or waits.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import ExtractedEntity, FailureGroup, IdempotencyRecord, JobFailure, ProcessingJob
from app.models.failure_group import PURGED_SAMPLE, PURGED_TITLE, FailureOccurrence
from app.models.job_status import TERMINAL_STATUSES
from app.services.failure_groups.recording import end_current_occurrences
from app.services.failure_groups.write_statements import SAMPLE_MESSAGE_MAX_LENGTH
from app.services.group_samples import sample_failure
from app.unit_of_work import WriteTransaction, replayed_write_transaction, write_transaction

#: Statuses of jobs the purge deletes.
FINISHED_STATUSES = tuple(sorted(s.value for s in TERMINAL_STATUSES))
#: Largest batch: the ids of one batch are bound as parameters of an IN list.
MAX_BATCH_SIZE = 5_000
DEFAULT_BATCH_SIZE = 500

_AGE = re.compile(r"([1-9][0-9]{0,5})([hdw])")
_AGE_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """Parse an age such as ``180d``, ``26w`` or ``48h`` (hours, days, weeks).

    Raises:
        ValueError: not a positive whole number followed by ``h``, ``d`` or ``w``.
    """
    match = _AGE.fullmatch(text.strip())
    if match is None:
        if re.fullmatch(r"0*[1-9][0-9]{6,}[hdw]", text.strip()):  # a trial: 5000000d was "not a number"
            raise ValueError("an age is at most 999999 of its unit (h, d or w), e.g. 180d")
        raise ValueError("an age is a positive whole number followed by h, d or w, e.g. 180d")
    return timedelta(**{_AGE_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class PurgeCounts:
    """Rows deleted (or, in a dry run, that would be), per table."""

    processing_jobs: int = 0
    job_failures: int = 0
    extracted_entities: int = 0
    idempotency_records: int = 0
    #: Failure groups whose text was replaced (not deleted; not in :meth:`as_dict`).
    groups_redacted: int = 0
    #: Failure groups that kept failures and took their sample message from
    #: the newest kept one (not in :meth:`as_dict`).
    groups_resampled: int = 0

    def as_dict(self) -> dict[str, int]:
        """Table name -> count, in a fixed order."""
        return {
            "processing_jobs": self.processing_jobs,
            "job_failures": self.job_failures,
            "extracted_entities": self.extracted_entities,
            "idempotency_records": self.idempotency_records,
        }


def _expired_jobs(cutoff: datetime) -> sa.Select:
    return sa.select(ProcessingJob.id).where(
        ProcessingJob.status.in_(FINISHED_STATUSES),
        ProcessingJob.completed_at.is_not(None),
        ProcessingJob.completed_at < cutoff,
    )


def count_expired(cutoff: datetime) -> PurgeCounts:
    """What :func:`purge_finished_jobs` would delete for ``cutoff`` (one read).

    Args:
        cutoff: timezone-aware; rows older than this (strictly) expire.
    """
    jobs = _expired_jobs(cutoff).subquery()
    try:
        counts = PurgeCounts(
            processing_jobs=db.session.scalar(sa.select(sa.func.count()).select_from(jobs)) or 0,
            job_failures=db.session.scalar(
                sa.select(sa.func.count())
                .select_from(JobFailure)
                .where(JobFailure.job_id.in_(sa.select(jobs.c.id)))
            )
            or 0,
            extracted_entities=db.session.scalar(
                sa.select(sa.func.count())
                .select_from(ExtractedEntity)
                .where(ExtractedEntity.job_id.in_(sa.select(jobs.c.id)))
            )
            or 0,
            idempotency_records=db.session.scalar(
                sa.select(sa.func.count())
                .select_from(IdempotencyRecord)
                .where(IdempotencyRecord.created_at < cutoff)
            )
            or 0,
        )
    finally:
        db.session.rollback()  # end the read transaction
    return counts


def purge_finished_jobs(cutoff: datetime, *, batch_size: int = DEFAULT_BATCH_SIZE) -> PurgeCounts:
    """Delete finished jobs whose ``completed_at`` is before ``cutoff``, in batches.

    Each batch (at most ``batch_size`` jobs, oldest first) is one
    transaction: its jobs' ``job_failures`` and ``extracted_entities`` rows,
    then the jobs. Then ``idempotency_records`` created before ``cutoff``, in
    batches of the same size. Jobs that are not finished (``Pending``,
    ``Processing``, a requeued job) are never deleted, however old.

    Args:
        cutoff: timezone-aware UTC ``datetime``.
        batch_size: 1 to :data:`MAX_BATCH_SIZE`.

    Returns:
        The rows deleted per table.

    Raises:
        ValueError: ``batch_size`` out of range or ``cutoff`` naive.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}")
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    counts = PurgeCounts()
    while True:
        deleted = _purge_job_batch(cutoff, batch_size, counts)
        if deleted < batch_size:
            break
    while True:
        deleted = _purge_idempotency_batch(cutoff, batch_size)
        counts.idempotency_records += deleted
        if deleted < batch_size:
            break
    return counts


def _purge_job_batch(cutoff: datetime, batch_size: int, counts: PurgeCounts) -> int:
    # Replayed when PostgreSQL aborts it as a deadlock's victim: its deletes
    # move the summary rollups' rows in job order while recorders lock them in
    # key order (a trial: the purge stopped half-way, beside live reports).
    # Counted only once it commits, so a replay counts nothing twice.
    done = replayed_write_transaction(functools.partial(_delete_job_batch, cutoff, batch_size))
    if done is None:
        return 0
    deleted, failures, entities, jobs, redacted, resampled = done
    counts.job_failures += failures
    counts.extracted_entities += entities
    counts.processing_jobs += jobs
    counts.groups_redacted += redacted
    counts.groups_resampled += resampled
    return deleted


def _delete_job_batch(cutoff: datetime, batch_size: int, transaction: WriteTransaction) -> tuple[int, ...] | None:
    """One batch of :func:`purge_finished_jobs`, in ``transaction``: the
    jobs taken, then the failures, entities and jobs deleted and the groups
    redacted and resampled; ``None`` when no job is left."""
    ids: Sequence[uuid.UUID] = db.session.scalars(
        _expired_jobs(cutoff)
        .order_by(ProcessingJob.completed_at, ProcessingJob.id)
        .limit(batch_size)
        # Another transaction changing one of these jobs keeps it; the
        # next run of the purge gets it if it is still expired.
        .with_for_update(skip_locked=True)
    ).all()
    if not ids:
        transaction.rollback()
        return None
    # Children first, counted exactly; ON DELETE CASCADE would remove
    # them too but would not say how many. The jobs' group occurrences go
    # with their failures; their "currently failing" counts end first.
    end_current_occurrences(ids)
    # The groups the batch takes occurrences from: through the failures,
    # whose ids lead the occurrences' unique index (no index has job_id first).
    occurrences, failure_rows = FailureOccurrence.__table__, JobFailure.__table__
    touched = list(db.session.scalars(
        sa.select(occurrences.c.group_id).distinct().where(occurrences.c.failure_id.in_(
            sa.select(failure_rows.c.id).where(failure_rows.c.job_id.in_(ids))))))
    failures = _delete(JobFailure.__table__, JobFailure.__table__.c.job_id.in_(ids))
    entities = _delete(ExtractedEntity.__table__, ExtractedEntity.__table__.c.job_id.in_(ids))
    jobs = _delete(ProcessingJob.__table__, ProcessingJob.__table__.c.id.in_(ids))
    redacted = redact_emptied_groups(touched) if touched else 0
    resampled = resample_kept_groups(touched) if touched else 0
    return len(ids), failures, entities, jobs, redacted, resampled


def redact_emptied_groups(group_ids: Sequence[int]) -> int:
    """Of ``group_ids``, the groups with no occurrence left lose their text,
    in the open transaction: ``sample_message`` becomes
    :data:`PURGED_SAMPLE`, and a group made from a message (no ``code``)
    gets the title :data:`PURGED_TITLE` with its fingerprint's first 12
    characters (to tell such groups apart). Error text may hold patient
    data: kept no longer than the failures it came from. Counts, state and
    timeline stay, so a comeback still reopens the group; its next
    occurrence brings a sample message (and a message group's title) back.
    Returns how many groups were changed."""
    groups = FailureGroup.__table__
    occurrences = FailureOccurrence.__table__
    emptied = sa.and_(
        groups.c.id.in_(sorted(group_ids)),
        ~sa.exists().where(occurrences.c.group_id == groups.c.id),
        groups.c.sample_message != PURGED_SAMPLE,
    )
    title = sa.case(
        (groups.c.code.is_(None),
         sa.literal(PURGED_TITLE + " (", sa.Text) + sa.func.substr(groups.c.fingerprint, 1, 12) + ")"),
        else_=groups.c.title,
    )
    return db.session.execute(
        sa.update(groups).where(emptied).values(sample_message=PURGED_SAMPLE, title=title)
        .execution_options(synchronize_session=False)
    ).rowcount


def resample_kept_groups(group_ids: Sequence[int]) -> int:
    """Of ``group_ids``, the groups that still have occurrences take their
    ``sample_message`` from the newest one left
    (:func:`app.services.group_samples.sample_failure`; :data:`PURGED_SAMPLE`
    when it has no message), in the open transaction. The stored sample
    may have come from a failure just deleted: a trial found a purged job's
    text still on ``/groups``. One read per group. Returns how many groups
    changed."""
    changed = 0
    kept = db.session.scalars(
        sa.select(FailureGroup).where(
            FailureGroup.id.in_(sorted(group_ids)),
            sa.exists().where(FailureOccurrence.group_id == FailureGroup.id),
        ).order_by(FailureGroup.id)
    ).all()
    for group in kept:
        sample = sample_failure(group)
        message = (sample.message if sample is not None else None) or PURGED_SAMPLE
        message = message[:SAMPLE_MESSAGE_MAX_LENGTH]
        if message != group.sample_message:
            group.sample_message = message
            changed += 1
    db.session.flush()
    return changed


def _purge_idempotency_batch(cutoff: datetime, batch_size: int) -> int:
    with write_transaction():
        # The primary key is (token_id, key): a key alone may also be
        # another token's, with a recent answer.
        keys = [
            tuple(row)
            for row in db.session.execute(
                sa.select(IdempotencyRecord.token_id, IdempotencyRecord.key)
                .where(IdempotencyRecord.created_at < cutoff)
                .order_by(IdempotencyRecord.created_at)
                .limit(batch_size)
            )
        ]
        table = IdempotencyRecord.__table__
        deleted = _delete(table, sa.tuple_(table.c.token_id, table.c.key).in_(keys)) if keys else 0
    return deleted


def _delete(table: sa.Table, condition: sa.ColumnElement[bool]) -> int:
    return db.session.execute(sa.delete(table).where(condition)).rowcount
