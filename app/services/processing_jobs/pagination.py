"""Listing jobs a page at a time: the cursor and :func:`list_jobs`.

Keyset ("seek") pagination ordered by ``created_at`` (or ``completed_at``,
see :class:`~app.services.processing_jobs.job_filter.TimeField`) then ``id``,
newest first: no ``OFFSET`` scan and no ``COUNT(*)``, so a page costs the
same wherever it is in a large table.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from app.errors import InvalidQueryError, parameter_error
from app.extensions import db
from app.models import ProcessingJob
from app.services.processing_jobs.filter_sql import id_prefix_range
from app.services.processing_jobs.job_filter import JobFilter, TimeField


@dataclass(frozen=True)
class Cursor:
    """Position after the last job of a page: its time (of ``time_field``) and ``id``.

    The token names the time field, so a cursor cannot be replayed against
    a listing ordered by the other timestamp.
    """

    time_field: TimeField
    at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """Opaque URL-safe token for the ``cursor`` query parameter."""
        raw = f"{self.time_field.value}|{self.at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a token made by :meth:`encode` (or an older ``created|id`` one).

        Raises:
            InvalidQueryError: the token is not one of ours.
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            parts = raw.split("|")
            if len(parts) == 2:  # tokens made before time_field existed
                parts.insert(0, TimeField.CREATED.value)
            if len(parts) != 3:
                raise ValueError("parts")
            time_field, at_text, job_id = parts
            at = datetime.fromisoformat(at_text)
            if at.tzinfo is None:
                raise ValueError("naive")
            return cls(TimeField(time_field), at.astimezone(timezone.utc), uuid.UUID(job_id))
        except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
            raise InvalidQueryError(
                "The cursor is not valid; start again from the first page.",
                [parameter_error("cursor", "is not a cursor returned by this API")],
            ) from None


@dataclass
class JobPage:
    """One page of jobs, newest first, and the cursor of the next page (or ``None``)."""

    jobs: list[ProcessingJob] = field(default_factory=list)
    next_cursor: str | None = None


def newest_first(job_filter: JobFilter) -> tuple[sa.UnaryExpression[Any], sa.UnaryExpression[Any]]:
    """ORDER BY of a listing: the filter's time column, then ``id``, both descending.

    Served by ``ix_processing_jobs_{status_,}created_at_id`` and
    ``ix_processing_jobs_{status_,}completed_at_id``.
    """
    return job_filter.time_column.desc(), ProcessingJob.id.desc()


def older_than(job_filter: JobFilter, at: datetime, job_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """Keyset condition: jobs after ``(at, job_id)`` in :func:`newest_first` order.

    ``(time, id) < (at, job_id)`` on the filter's time column, a row
    comparison both backends evaluate, and PostgreSQL as an index range.
    """
    column = job_filter.time_column
    return sa.tuple_(column, ProcessingJob.id) < sa.tuple_(
        sa.literal(at, column.type), sa.literal(job_id, ProcessingJob.id.type)
    )


def list_jobs(job_filter: JobFilter, *, limit: int, cursor: str | None = None) -> JobPage:
    """Return one page of jobs matching ``job_filter``, newest first.

    Keyset pagination on ``(time, id)`` of ``job_filter.time_field``: no
    ``OFFSET`` and no ``COUNT(*)``; one indexed range scan of ``limit + 1``
    rows (the extra row tells whether there is a next page).

    Args:
        job_filter: which jobs.
        limit: page size (the caller caps it).
        cursor: ``next_cursor`` of the previous page, or ``None`` for the first.

    Raises:
        InvalidQueryError: the cursor is not valid, or was made for the other
            ``time_field``.
    """
    conditions = job_filter.where()
    if cursor:
        position = Cursor.decode(cursor)
        if position.time_field is not job_filter.time_field:
            raise InvalidQueryError(
                "The cursor belongs to a listing ordered by another time_field; start again from the first page.",
                [parameter_error("cursor", f"was made for time_field={position.time_field.value}")],
            )
        conditions.append(older_than(job_filter, position.at, position.id))
    statement = (
        sa.select(ProcessingJob)
        .where(*conditions)
        .order_by(*newest_first(job_filter))
        .limit(limit + 1)
    )
    jobs = list(db.session.scalars(statement))
    next_cursor = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        last = jobs[-1]
        at = last.completed_at if job_filter.time_field is TimeField.COMPLETED else last.created_at
        assert at is not None  # the filter keeps only finished jobs for "completed"
        next_cursor = Cursor(job_filter.time_field, at, last.id).encode()
    return JobPage(jobs=jobs, next_cursor=next_cursor)


def jobs_with_id_prefix(text: str) -> list[uuid.UUID]:
    """The ids of at most two jobs whose id starts with ``text`` (two: the
    prefix is not unique), or none when ``text`` names no ids.

    ``text`` is a search term; it names ids only when
    :func:`~app.services.processing_jobs.filter_sql.id_prefix_range` says so
    (8 to 32 hex digits, hyphens ignored). One range scan of the primary key.
    """
    ids = id_prefix_range(text)
    if ids is None:
        return []
    return list(db.session.scalars(sa.select(ProcessingJob.id).where(ProcessingJob.id.between(*ids)).limit(2)))


def only_job_with_id_prefix(text: str) -> uuid.UUID | None:
    """The id of the one job whose id starts with ``text``, if exactly one
    does (:func:`jobs_with_id_prefix`)."""
    found = jobs_with_id_prefix(text)
    return found[0] if len(found) == 1 else None
