"""Loading a job for change, locked against concurrent writers."""

from __future__ import annotations

import uuid

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
        raise JobNotFoundError(job_id) from None


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
    job = db.session.get(ProcessingJob, key, with_for_update=True, populate_existing=True)
    if job is None:
        raise JobNotFoundError(job_id)
    return job
