"""The failure recorder's statements on the job row and its history.

Each is built once, with the values as parameters: Core rather than the
ORM's load and unit of work, which on the record path cost more CPU than the
statements themselves, and on PostgreSQL sent straight to the driver
(:mod:`app.services.driver_statements`; docs/benchmarks.md, "The record
path"). All run inside the recorder's ``with write_transaction():`` block,
on the session's connection.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import JobFailure, JobStatus, ProcessingJob
from app.services.driver_statements import DriverStatement
from app.services.failure_groups.recorded import RecordedFailure
from app.services.processing_jobs.signals import note_recorded_failure
from app.services.processing_jobs.snapshot import JobSnapshot
from app.unit_of_work import require_write_transaction

#: The record path's statements on the job row, each built once (compiled
#: forms cached by SQLAlchemy), with the values as parameters: Core rather
#: than the ORM's load and unit of work, which on the record path cost more
#: CPU than the statements themselves (docs/benchmarks.md, "The record path").
#: On PostgreSQL they go straight to the driver, compiled once
#: (:mod:`app.services.driver_statements`).
_JOBS = ProcessingJob.__table__
_LOCK_JOB = DriverStatement(
    sa.select(*_JOBS.c).where(_JOBS.c.id == sa.bindparam("locked_job_id")).with_for_update()
)
#: The columns a recorded failure sets (:func:`set_failure`).
_FAILURE_COLUMNS = (
    "status", "error_message", "error_format", "error_details", "completed_at",
    "acknowledged_at", "acknowledged_by", "updated_at",
)
_UPDATE_FAILED_JOB = DriverStatement(
    sa.update(_JOBS).where(_JOBS.c.id == sa.bindparam("locked_job_id")), keys=_FAILURE_COLUMNS
)


def lock_job(connection: sa.Connection, job_id: uuid.UUID) -> JobSnapshot | None:
    """The job's row, locked for the rest of the transaction (``SELECT ...
    FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds
    the one write lock), or ``None`` when no job has this id. ``connection``
    is the session's (its transaction)."""
    require_write_transaction()
    row = _LOCK_JOB.first(connection, {"locked_job_id": job_id})
    return None if row is None else JobSnapshot(**row)


def set_failure(
    connection: sa.Connection,
    job: JobSnapshot, target: JobStatus, message: str, details: Any, used_format: str | None, now: datetime
) -> JobSnapshot:
    """The job row: status, the failure, ``completed_at``; the acknowledgement
    cleared. Returns the job as stored.

    One :data:`_UPDATE_FAILED_JOB` (the row is locked by :func:`lock_job`).
    A ``ProcessingJob`` of this job that the session holds is expired, so it
    reads the stored values on next use. ``updated_at`` is ``now``, like
    ``completed_at``.
    """
    values = {
        "status": target.value,
        "error_message": message,
        "error_format": used_format,
        # Stored as given (None is SQL NULL); a new object each time, so no
        # in-place edit of the job's previous details can leak into it.
        "error_details": details,
        "completed_at": now,
        "acknowledged_at": None,  # a new failure needs attention again
        "acknowledged_by": None,
        "updated_at": now,
    }
    _UPDATE_FAILED_JOB.rows(connection, {"locked_job_id": job.id, **values})
    session = db.session()
    loaded = session.identity_map.get(session.identity_key(ProcessingJob, job.id))
    if loaded is not None:
        session.expire(loaded)
    return dataclasses.replace(job, **values)


#: The history row, one Core ``INSERT`` built once: an ORM ``JobFailure``
#: flushed by the unit of work cost more CPU than the statement itself
#: (docs/benchmarks.md, "The record path").
_HISTORY_COLUMNS = (
    "id", "job_id", "status", "error_message", "error_details", "error_format",
    "recorded_at", "worker_name", "worker_version", "started_at",
)
_INSERT_FAILURE = DriverStatement(sa.insert(JobFailure.__table__), keys=_HISTORY_COLUMNS)


def append_history(connection: sa.Connection, failure: RecordedFailure) -> None:
    """Insert ``failure`` into ``job_failures`` (the append-only history of
    the job's failures) and note it for the metrics, counted if it commits."""
    _INSERT_FAILURE.rows(
        connection,
        {
            "id": failure.id,
            "job_id": failure.job_id,
            "status": failure.status,
            "error_message": failure.error_message,
            "error_details": failure.error_details,
            "error_format": failure.error_format,
            "recorded_at": failure.recorded_at,
            "worker_name": failure.worker_name,
            "worker_version": failure.worker_version,
            "started_at": failure.started_at,
        },
    )
    note_recorded_failure(failure.status, failure.error_format, failure.error_details)


_FAILURES = JobFailure.__table__
_NEWEST_FAILURE_WORKER = (
    sa.select(_FAILURES.c.worker_name, _FAILURES.c.worker_version)
    .where(_FAILURES.c.job_id == sa.bindparam("job_id"))
    .order_by(_FAILURES.c.recorded_at.desc())
    .limit(1)
)


def current_failure_worker(connection: sa.Connection, job_id: uuid.UUID) -> tuple[str | None, str | None]:
    """``(worker_name, worker_version)`` of the job's newest history row (its
    current failure: the recorder writes both in one transaction), each
    ``None`` when not reported; ``(None, None)`` when the job has no history.
    Read only when a report repeats the job's failure, to tell a retry from
    the same failure sent by another worker (one index probe,
    ``ix_job_failures_job_id_recorded_at``)."""
    row = connection.execute(_NEWEST_FAILURE_WORKER, {"job_id": job_id}).first()
    return (None, None) if row is None else (row.worker_name, row.worker_version)
