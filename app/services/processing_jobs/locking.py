"""Loading a job for change, locked against concurrent writers."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.services.processing_jobs.errors import JobNotFoundError
from app.unit_of_work import require_write_transaction


def parse_job_id(job_id: uuid.UUID | str) -> uuid.UUID:
    """Return ``job_id`` as a UUID.

    Raises:
        JobNotFoundError: ``job_id`` is not a UUID (so it names no job).
    """
    if isinstance(job_id, uuid.UUID):
        return job_id
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise JobNotFoundError.not_a_uuid() from None


#: The locked read, built once: ``session.get(..., with_for_update=True)``
#: builds its SELECT and that SELECT's cache key anew on every call (a sixth
#: of this read's CPU on the record path, docs/benchmarks.md).
#: ``populate_existing`` as in ``session.get``: the values read under the lock
#: replace any stale ones in the identity map.
_JOB_FOR_UPDATE = (
    sa.select(ProcessingJob)
    .where(ProcessingJob.id == sa.bindparam("locked_job_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def load_job_for_update(job_id: uuid.UUID | str) -> ProcessingJob:
    """Load a job in the open write transaction, locking its row.

    On PostgreSQL this is ``SELECT ... FOR UPDATE``, so two workers changing
    the same job are serialised; SQLite allows one writer at a time anyway.
    ``populate_existing`` makes sure the values are the ones read under the
    lock, not stale ones from the identity map.

    Raises:
        JobNotFoundError: no such job.
        RuntimeError: called outside ``with write_transaction():``.
    """
    key = parse_job_id(job_id)
    require_write_transaction()
    job = db.session.execute(_JOB_FOR_UPDATE, {"locked_job_id": key}).scalar_one_or_none()
    if job is None:
        raise JobNotFoundError(key)
    return job
