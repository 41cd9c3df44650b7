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
from dataclasses import dataclass, field, replace
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
                [parameter_error("cursor", "is not a cursor this list returned (its next page link or next_cursor)")],
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


#: Jobs of a search's other conditions a page reads newest first, in the
#: listing's index order, before it asks the search's own index
#: (:func:`_search_rows`). A term in at least 1 in 400 of the newest jobs
#: fills a page of 50 inside it; at 1,000,000 jobs it reads in about 10 ms.
SEARCH_WINDOW = 20_000


def list_jobs(job_filter: JobFilter, *, limit: int, cursor: str | None = None) -> JobPage:
    """Return one page of jobs matching ``job_filter``, newest first.

    Keyset pagination on ``(time, id)`` of ``job_filter.time_field``: no
    ``OFFSET`` and no ``COUNT(*)``; one indexed range scan of ``limit + 1``
    rows (the extra row tells whether there is a next page). A search
    (``text``) reads at most :data:`SEARCH_WINDOW` jobs that way, then the
    older matches by the search's index (:func:`_search_rows`).

    Args:
        job_filter: which jobs.
        limit: page size (the caller caps it).
        cursor: ``next_cursor`` of the previous page, or ``None`` for the first.

    Raises:
        InvalidQueryError: the cursor is not valid, or was made for the other
            ``time_field``.
    """
    after: list[sa.ColumnElement[bool]] = []
    if cursor:
        position = Cursor.decode(cursor)
        if position.time_field is not job_filter.time_field:
            raise InvalidQueryError(
                "The cursor belongs to a listing ordered by another time_field; start again from the first page.",
                [parameter_error("cursor", f"was made for time_field={position.time_field.value}")],
            )
        after.append(older_than(job_filter, position.at, position.id))
    if job_filter.text is None:
        statement = (
            sa.select(ProcessingJob)
            .where(*job_filter.where(), *after)
            .order_by(*newest_first(job_filter))
            .limit(limit + 1)
        )
        jobs = list(db.session.scalars(statement))
    else:
        jobs = _search_rows(job_filter, after, limit + 1)
    next_cursor = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        last = jobs[-1]
        next_cursor = Cursor(job_filter.time_field, _listing_time(job_filter, last), last.id).encode()
    return JobPage(jobs=jobs, next_cursor=next_cursor)


def _listing_time(job_filter: JobFilter, job: ProcessingJob) -> datetime:
    """The job's time in the listing's order (``created_at`` or ``completed_at``, aware UTC)."""
    at = job.completed_at if job_filter.time_field is TimeField.COMPLETED else job.created_at
    assert at is not None  # the filter keeps only finished jobs for "completed"
    return at


def _search_rows(job_filter: JobFilter, after: list[sa.ColumnElement[bool]], wanted: int) -> list[ProcessingJob]:
    """The newest ``wanted`` jobs of a search (``job_filter.text`` set) after
    the ``after`` conditions, in :func:`newest_first` order.

    Which plan is fast depends on where the matches are, which PostgreSQL
    cannot know: its estimate of ``LIKE '%term%'`` assumes the matches are
    spread evenly over time. Walking the time index is fast when the newest
    jobs hold the term, and reads the whole table when only old jobs do (a
    term in 0.5 % of 1,000,000 jobs, all old: 800 ms); the trigram index
    returns every candidate of a rare term, which is fast when they are few
    and slow when its trigrams are common (``/entities/17/code``: 187 ms,
    wherever the matches are). So both, bounded:

    1. the newest :data:`SEARCH_WINDOW` jobs of the other conditions, in
       index order, keeping those that match (a subquery with ``LIMIT``,
       so the term is never pushed into the walk); the window's last job
       comes back too, as a sentinel, when the window was full and the page
       was not;
    2. only then, the matches older than the sentinel, all of them
       gathered first (a ``MATERIALIZED`` CTE: PostgreSQL uses the trigram
       index for a rare term) and the newest of them kept.

    Same rows and order as one ``WHERE ... ORDER BY ... LIMIT`` on either
    backend (tests/integration/test_search.py).
    """
    others = [*replace(job_filter, text=None).where(), *after]
    matches = job_filter.text_condition()
    at = job_filter.time_column
    window = (
        sa.select(
            ProcessingJob.id.label("id"),
            at.label("at"),
            sa.func.row_number().over(order_by=newest_first(job_filter)).label("place"),
            matches.label("hit"),
        )
        .where(*others)
        .order_by(*newest_first(job_filter))
        .limit(SEARCH_WINDOW)
        .subquery("search_window")
    )
    kept = (
        sa.select(window.c.id, window.c.hit, window.c.place)
        .where(sa.or_(window.c.hit, window.c.place == SEARCH_WINDOW))
        .order_by(window.c.at.desc(), window.c.id.desc())
        .limit(wanted)
        .subquery("kept")
    )
    rows = db.session.execute(
        sa.select(ProcessingJob, kept.c.hit, kept.c.place)
        .join(kept, ProcessingJob.id == kept.c.id)
        .order_by(kept.c.place)
    ).all()
    jobs = [job for job, hit, _place in rows if hit]
    sentinel = next((job for job, _hit, place in rows if place == SEARCH_WINDOW), None)
    if sentinel is None or len(jobs) >= wanted:
        return jobs
    older = (
        sa.select(ProcessingJob.id.label("id"), at.label("at"))
        .where(*others, matches, older_than(job_filter, _listing_time(job_filter, sentinel), sentinel.id))
        .cte("older_matches")
        .prefix_with("MATERIALIZED")
    )
    newest_older = (
        sa.select(older.c.id, older.c.at)
        .order_by(older.c.at.desc(), older.c.id.desc())
        .limit(wanted - len(jobs))
        .subquery("newest_older")
    )
    jobs += db.session.scalars(
        sa.select(ProcessingJob)
        .join(newest_older, ProcessingJob.id == newest_older.c.id)
        .order_by(newest_older.c.at.desc(), newest_older.c.id.desc())
    )
    return jobs


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
