"""Helpers shared by the tests (plain functions, no fixtures)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob


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


def set_status(job_id: uuid.UUID | str, status: str) -> None:
    """Force a job's status directly in the database (test setup only)."""
    db.session.execute(
        sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(str(job_id))).values(status=status)
    )
    db.session.commit()
