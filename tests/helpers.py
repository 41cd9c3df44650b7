"""Helpers shared by the tests (plain functions, no fixtures)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa

from app.extensions import db
from werkzeug.datastructures import MultiDict

from app.models import JobStatus, ProcessingJob
from app.services.processing_jobs.job_filter import AcknowledgedFilter, JobFilter
from app.web.query import FILTER_PARAMETERS, job_filter_from_args


def stored_job_row(job_id: uuid.UUID | str) -> dict[str, Any] | None:
    """Read a job's row with a new connection, bypassing the ORM session.

    What this returns is what the database holds, not what a session cached.
    """
    job_id = uuid.UUID(str(job_id))
    with db.engine.connect() as connection:
        row = connection.execute(
            sa.select(ProcessingJob.__table__).where(ProcessingJob.__table__.c.id == job_id)
        ).mappings().one_or_none()
    return dict(row) if row is not None else None


def crashed_job(client: Any, document_id: str, message: str) -> str:
    """A job created, started and reported ``failed`` with ``message`` (no
    details: its failure group is titled by the message) through the API of
    ``client`` (a Flask test client); its id."""
    job = client.post("/api/v1/processing-jobs", json={"document_id": document_id}).get_json()
    client.post(f"/api/v1/processing-jobs/{job['id']}/start")
    answer = client.post(
        f"/api/v1/processing-jobs/{job['id']}/result", json={"status": "failed", "error_message": message}
    )
    assert answer.status_code == 200, answer.get_json()
    return job["id"]


def set_status(job_id: uuid.UUID | str, status: str) -> None:
    """Force a job's status directly in the database (test setup only)."""
    db.session.execute(
        sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(str(job_id))).values(status=status)
    )
    db.session.commit()


def job_filter_from_query(
    statuses: Iterable[str] = (),
    *,
    default_statuses: Sequence[JobStatus] = (),
    default_acknowledged: AcknowledgedFilter = AcknowledgedFilter.INCLUDE,
    time_from: str | None = None,
    time_to: str | None = None,
    **parameters: str | None,
) -> JobFilter:
    """The app's query-string reader (:func:`app.web.query.job_filter_from_args`)
    for values in hand: ``statuses`` are the ``status`` values, ``time_from``
    and ``time_to`` are ``from`` and ``to`` (Python keywords both), the other
    filters go by their query-string name; ``None`` means absent.

    Raises:
        InvalidQueryError: as :func:`app.web.query.job_filter_from_args`.
        TypeError: a name that is not a filter parameter.
    """
    query: MultiDict[str, str] = MultiDict([("status", status) for status in statuses])
    for name, value in {**parameters, "from": time_from, "to": time_to}.items():
        if name not in FILTER_PARAMETERS:
            raise TypeError(f"job_filter_from_query() got an unknown parameter {name!r}")
        if value is not None:
            query.add(name, value)
    return job_filter_from_args(query, default_statuses=default_statuses, default_acknowledged=default_acknowledged)


def aborted_statement(
    error: type[psycopg.Error] = psycopg.errors.DeadlockDetected,
) -> sa.exc.OperationalError:
    """What SQLAlchemy raises when PostgreSQL aborts a statement with
    ``error`` (default: a deadlock's victim, SQLSTATE 40P01), for tests that
    inject one."""
    return sa.exc.OperationalError("UPDATE job_group_rollups ...", {}, error("aborted"))


#: The key of a failure group's counter rows (``failure_group_counts``, shard aside).
COUNTER_KEY = ("group_id", "job_type", "worker_version")


def counter_sums() -> dict[tuple, tuple[int, int, int]]:
    """The groups' counters per key, shards summed: (group, job type, worker
    version) -> (occurrences, jobs, current jobs)."""
    from app.models import FailureGroupCount
    from app.services.rollup_compaction import COUNTER_VALUES

    table = FailureGroupCount.__table__
    keys = [table.c[name] for name in COUNTER_KEY]
    rows = db.session.execute(
        sa.select(*keys, *(sa.func.sum(table.c[name]) for name in COUNTER_VALUES)).group_by(*keys)
    ).all()
    return {tuple(row[:3]): tuple(int(value) for value in row[3:]) for row in rows}
