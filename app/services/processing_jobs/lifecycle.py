"""Creating, reading and moving processing jobs (other than failing them).

A job moves ``Pending`` -> ``Processing`` -> ``Completed`` here, and back to
``Pending`` when requeued; :mod:`~app.services.processing_jobs.failure_recorder`
fails it. Each public function that changes a job is one
``with write_transaction():`` block, so it commits on its own or joins the
caller's transaction.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.errors import FieldError, field_error
from app.extensions import db
from app.models import ExtractedEntity, JobFailure, JobStatus, ProcessingJob
from app.models.job_status import can_transition
from app.models.processing_job import DOCUMENT_ID_MAX_LENGTH, JOB_TYPE_MAX_LENGTH
from app.models.types import utcnow
from app.services.failure_groups.recording import end_current_occurrences
from app.services.json_values import (
    clean_text,
    has_acting_control,
    has_unstorable_text,
)
from app.services.processing_jobs.errors import (
    FailureChangedError,
    InvalidJobError,
    InvalidTransitionError,
    JobNotFoundError,
)
from app.services.processing_jobs.entities import checked_entity_rows, same_entities
from app.services.processing_jobs.locking import load_job_for_update, parse_job_id
from app.unit_of_work import write_transaction

DEFAULT_JOB_TYPE = "entity_extraction"


def create_job(document_id: object, job_type: object = DEFAULT_JOB_TYPE) -> ProcessingJob:
    """Create a ``Pending`` job for one clinical document.

    Args:
        document_id: the document's identifier, stored as sent
            (:func:`new_job_errors`).
        job_type: kind of processing, e.g. ``"entity_extraction"``; 1 to 64
            characters of letters, digits, ``_``, ``-`` or ``.``.

    Returns:
        The job as stored (new UUID, ``created_at``/``updated_at`` now, UTC).

    Raises:
        InvalidJobError: :func:`new_job_errors` found a fault.
    """
    errors = new_job_errors(document_id, job_type)
    if errors:
        raise InvalidJobError(errors)
    assert isinstance(document_id, str) and isinstance(job_type, str)
    with write_transaction():
        job = ProcessingJob(
            document_id=clean_text(document_id),
            job_type=job_type,
            status=JobStatus.PENDING.value,
        )
        db.session.add(job)
    return job


def new_job_errors(document_id: object, job_type: object) -> list[FieldError]:
    """The faults of a new job's fields (empty when it may be created), each
    naming its field (``/document_id``, ``/job_type``) and never quoting it.

    ``document_id`` is an identifier, stored as sent and matched exactly by
    the filters: 1 to 200 characters, without white space around it (a
    worker's ``" a1"`` would otherwise be a job no search for ``a1`` finds),
    a control character other than TAB, LF and CR (C0 including NUL, DEL,
    C1: no query parameter may hold one, so no filter could find the job),
    a format character (Unicode category Cf: bidi overrides such as U+202E
    would make one id look like another), an unpaired surrogate, or a line
    or paragraph separator (U+2028, U+2029).
    ``job_type``: 1 to 64 ASCII letters, digits, ``_``, ``-`` or ``.``.
    """
    errors: list[FieldError] = []
    # The characters before the white space: str.strip() takes U+001C-U+001F,
    # U+0085 and U+2028 off the ends too, and "rc\u001f" was told "white
    # space", "\u001c\u001d" "a non-empty string" (a re-check).
    if not isinstance(document_id, str) or not document_id:
        errors.append(field_error("/document_id", "must be a non-empty string"))
    elif len(document_id) > DOCUMENT_ID_MAX_LENGTH:
        errors.append(field_error("/document_id", f"must be at most {DOCUMENT_ID_MAX_LENGTH} characters"))
    elif has_acting_control(document_id) or "\x00" in document_id:
        errors.append(field_error("/document_id", "must not hold a control character (TAB, LF and CR aside)"))
    elif has_unstorable_text(document_id):
        errors.append(field_error("/document_id", "must not hold an unpaired UTF-16 surrogate"))
    elif any(unicodedata.category(c) == "Cf" for c in document_id):
        errors.append(field_error("/document_id", "must not hold a format character (such as U+202E or U+200B)"))
    elif any(unicodedata.category(c) in ("Zl", "Zp") for c in document_id):
        errors.append(field_error("/document_id", "must not hold a line or paragraph separator (U+2028, U+2029)"))
    elif not document_id.strip():
        errors.append(field_error("/document_id", "must be a non-empty string"))
    elif document_id != document_id.strip():
        errors.append(field_error("/document_id", "must not begin or end with white space (it is stored as sent)"))
    if not isinstance(job_type, str) or not job_type:
        errors.append(field_error("/job_type", "must be a non-empty string"))
    elif len(job_type) > JOB_TYPE_MAX_LENGTH or not all(c.isascii() and (c.isalnum() or c in "_-.") for c in job_type):
        errors.append(
            field_error("/job_type", f"must be 1 to {JOB_TYPE_MAX_LENGTH} letters, digits, '_', '-' or '.'")
        )
    return errors


def get_job(job_id: uuid.UUID | str) -> ProcessingJob:
    """Return one job.

    Raises:
        JobNotFoundError: no job has this id (or it is not a UUID).
    """
    key = parse_job_id(job_id)
    job = db.session.get(ProcessingJob, key)
    if job is None:
        raise JobNotFoundError(key)
    return job


def _transition(
    job_id: uuid.UUID | str,
    target: JobStatus,
    entities: Sequence[Mapping[str, Any]] = (),
    *,
    shown_failure_at: datetime | None = None,
) -> ProcessingJob:
    entity_rows = checked_entity_rows(entities)
    with write_transaction():
        job = load_job_for_update(job_id)
        if target is JobStatus.COMPLETED and job.job_status is JobStatus.COMPLETED and same_entities(
            job.id, entity_rows
        ):
            # The same completion again (a retry that lost its answer and its
            # key): nothing changes, as for a failure report sent twice. Other
            # entities are another worker's result: the 409 below.
            return job
        if not can_transition(job.job_status, target):
            raise InvalidTransitionError(job.id, job.status, target.value)
        require_failure_shown(job, shown_failure_at)
        now = utcnow()
        job.status = target.value
        if target is JobStatus.PROCESSING:
            job.started_at = now
        elif target is JobStatus.PENDING:
            # Requeue: the failure stays in job_failures; the row starts over.
            job.started_at = None
            job.completed_at = None
            job.error_message = None
            job.error_details = None
            job.error_format = None
            job.acknowledged_at = None
            job.acknowledged_by = None
        else:
            job.completed_at = now
            job.error_message = None
            job.error_details = None
            job.error_format = None
        if target in (JobStatus.PENDING, JobStatus.COMPLETED):
            end_current_occurrences([job.id])  # no longer failing on its groups
        for row in entity_rows:
            row.job_id = job.id
            db.session.add(row)
    return job


def start_job(job_id: uuid.UUID | str) -> ProcessingJob:
    """Move a job ``Pending`` -> ``Processing`` and set ``started_at`` (UTC).

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job is not ``Pending``.
    """
    return _transition(job_id, JobStatus.PROCESSING)


def complete_job(job_id: uuid.UUID | str, entities: Sequence[Mapping[str, Any]] = ()) -> ProcessingJob:
    """Mark a ``Pending`` or ``Processing`` job ``Completed`` and store its entities.

    One transaction: the entities and the status change are stored together
    or not at all.

    Args:
        job_id: the job.
        entities: the extracted entities in the worker's order, each shaped as
            the contract's ``ExtractedEntityInput`` (``entity_type``, ``text``,
            ``code``, ``code_system``, ``confidence`` 0-1, ``span``
            ``{page?, start, end}``, ``value`` (a FHIR Quantity), ``attributes``), already checked against
            that schema by the caller.

    A ``Completed`` job sent the same entities again (a retry that lost its
    answer) is returned unchanged (:func:`~app.services.processing_jobs.entities.same_entities`).

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job has already finished (and is not
            ``Completed`` with these entities).
        InvalidEntitiesError: a span ends before it starts, or attributes
            are not storable JSON.
    """
    return _transition(job_id, JobStatus.COMPLETED, entities)


def require_failure_shown(job: ProcessingJob, shown_failure_at: datetime | None) -> None:
    """Check, under the job's row lock, that it still has the failure an
    operator was shown: its ``completed_at`` (every failure and requeue
    moves it) is ``shown_failure_at``. ``None``: nothing to check.

    Raises:
        FailureChangedError: the job failed again, or was requeued, since.
    """
    if shown_failure_at is not None and job.completed_at != shown_failure_at:
        raise FailureChangedError(job.id, job.status)


def requeue_job(job_id: uuid.UUID | str, *, shown_failure_at: datetime | None = None) -> ProcessingJob:
    """Send a failed job back to ``Pending`` so a worker processes it again.

    The failure stays in the job's history (``job_failures``); the row's
    error fields, ``started_at`` and ``completed_at`` are cleared.

    Args:
        shown_failure_at: the ``completed_at`` (aware UTC) of the failure
            the operator was shown; with it, a job that failed again or was
            requeued since is left alone.

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job is not ``Failed`` or ``Validation_Failed``.
        FailureChangedError: its ``completed_at`` is not ``shown_failure_at``.
    """
    return _transition(job_id, JobStatus.PENDING, shown_failure_at=shown_failure_at)


def list_entities(job_id: uuid.UUID | str) -> list[ExtractedEntity]:
    """The entities of a job in the worker's order (empty unless ``Completed``).

    Raises:
        JobNotFoundError: no such job.
    """
    job = get_job(job_id)
    statement = (
        sa.select(ExtractedEntity).where(ExtractedEntity.job_id == job.id).order_by(ExtractedEntity.position)
    )
    return list(db.session.scalars(statement))


def list_failures(job_id: uuid.UUID | str) -> list[JobFailure]:
    """Every failure recorded on a job, oldest first.

    Raises:
        JobNotFoundError: no such job.
    """
    job = get_job(job_id)
    statement = (
        sa.select(JobFailure)
        .where(JobFailure.job_id == job.id)
        .order_by(JobFailure.recorded_at, JobFailure.id)
    )
    return list(db.session.scalars(statement))
