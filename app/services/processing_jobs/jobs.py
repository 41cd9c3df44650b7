"""Creating, reading, listing and moving processing jobs (other than failing them).

Listing uses keyset ("seek") pagination ordered by ``created_at`` (or
``completed_at``, see :class:`TimeField`) then ``id``, newest first: no
``OFFSET`` scan and no ``COUNT(*)``, so a page costs the same wherever it is
in a large table. :class:`JobFilter` is the one filter of the dashboard, the
exports and the JSON list.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.errors import FieldError, InvalidQueryError, field_error
from app.extensions import begin_write_transaction, db
from app.models import EntityType, ExtractedEntity, JobFailure, JobStatus, ProcessingJob
from app.models.job_status import can_transition
from app.models.processing_job import DOCUMENT_ID_MAX_LENGTH, JOB_TYPE_MAX_LENGTH
from app.models.types import JSONDocument, utcnow
from app.services.json_values import InvalidJSONValueError, clean_json_value, clean_text
from app.services.processing_jobs.errors import (
    InvalidEntitiesError,
    InvalidJobError,
    InvalidTransitionError,
    JobNotFoundError,
)
from app.services.processing_jobs.failure_recorder import BeforeCommit
from app.services.processing_jobs.locking import load_job_for_update, parse_job_id

DEFAULT_JOB_TYPE = "entity_extraction"


def create_job(
    document_id: object,
    job_type: object = DEFAULT_JOB_TYPE,
    *,
    before_commit: BeforeCommit | None = None,
) -> ProcessingJob:
    """Create a ``Pending`` job for one clinical document.

    Args:
        document_id: the document's identifier; 1 to 200 characters, not blank.
        job_type: kind of processing, e.g. ``"entity_extraction"``; 1 to 64
            characters of letters, digits, ``_``, ``-`` or ``.``.
        before_commit: called with the flushed job inside the transaction.

    Returns:
        The committed job (new UUID, ``created_at``/``updated_at`` now, UTC).

    Raises:
        InvalidJobError: a field is missing, of the wrong type or too long.
    """
    errors: list[FieldError] = []
    if isinstance(document_id, str):
        document_id = document_id.strip()
    if not isinstance(document_id, str) or not document_id:
        errors.append(field_error("/document_id", "must be a non-empty string"))
    elif len(document_id) > DOCUMENT_ID_MAX_LENGTH:
        errors.append(field_error("/document_id", f"must be at most {DOCUMENT_ID_MAX_LENGTH} characters"))
    if not isinstance(job_type, str) or not job_type:
        errors.append(field_error("/job_type", "must be a non-empty string"))
    elif len(job_type) > JOB_TYPE_MAX_LENGTH or not all(c.isascii() and (c.isalnum() or c in "_-.") for c in job_type):
        errors.append(
            field_error("/job_type", f"must be 1 to {JOB_TYPE_MAX_LENGTH} letters, digits, '_', '-' or '.'")
        )
    if errors:
        raise InvalidJobError(errors)
    assert isinstance(document_id, str) and isinstance(job_type, str)
    begin_write_transaction()
    job = ProcessingJob(
        document_id=clean_text(document_id),
        job_type=job_type,
        status=JobStatus.PENDING.value,
    )
    db.session.add(job)
    try:
        if before_commit is not None:
            db.session.flush()
            before_commit(job)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return job


def get_job(job_id: uuid.UUID | str) -> ProcessingJob:
    """Return one job.

    Raises:
        JobNotFoundError: no job has this id (or it is not a UUID).
    """
    job = db.session.get(ProcessingJob, parse_job_id(job_id))
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def _transition(
    job_id: uuid.UUID | str,
    target: JobStatus,
    before_commit: BeforeCommit | None = None,
    entities: Sequence[Mapping[str, Any]] = (),
) -> ProcessingJob:
    entity_rows = [_entity_row(index, entity) for index, entity in enumerate(entities)]
    try:
        job = load_job_for_update(job_id)
        if not can_transition(job.job_status, target):
            raise InvalidTransitionError(job.id, job.status, target.value)
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
        for row in entity_rows:
            row.job_id = job.id
            db.session.add(row)
        if before_commit is not None:
            db.session.flush()
            before_commit(job)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return job


def start_job(job_id: uuid.UUID | str, *, before_commit: BeforeCommit | None = None) -> ProcessingJob:
    """Move a job ``Pending`` -> ``Processing`` and set ``started_at`` (UTC).

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job is not ``Pending``.
    """
    return _transition(job_id, JobStatus.PROCESSING, before_commit)


def complete_job(
    job_id: uuid.UUID | str,
    entities: Sequence[Mapping[str, Any]] = (),
    *,
    before_commit: BeforeCommit | None = None,
) -> ProcessingJob:
    """Mark a ``Pending`` or ``Processing`` job ``Completed`` and store its entities.

    One transaction: the entities and the status change are stored together
    or not at all.

    Args:
        job_id: the job.
        entities: the extracted entities in the worker's order, each shaped as
            the contract's ``ExtractedEntityInput`` (``entity_type``, ``text``,
            ``code``, ``code_system``, ``confidence`` 0-1, ``span``
            ``{page?, start, end}``, ``attributes``), already checked against
            that schema by the caller.
        before_commit: called with the flushed job inside the transaction.

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job has already finished.
        InvalidEntitiesError: a span ends before it starts, or attributes
            are not storable JSON.
    """
    return _transition(job_id, JobStatus.COMPLETED, before_commit, entities)


def requeue_job(job_id: uuid.UUID | str, *, before_commit: BeforeCommit | None = None) -> ProcessingJob:
    """Send a failed job back to ``Pending`` so a worker processes it again.

    The failure stays in the job's history (``job_failures``); the row's
    error fields, ``started_at`` and ``completed_at`` are cleared.

    Raises:
        JobNotFoundError: no such job.
        InvalidTransitionError: the job is not ``Failed`` or ``Validation_Failed``.
    """
    return _transition(job_id, JobStatus.PENDING, before_commit)


#: Deepest nesting accepted in an entity's ``attributes``.
MAX_ATTRIBUTES_DEPTH = 8


def _entity_row(index: int, entity: Mapping[str, Any]) -> ExtractedEntity:
    span = entity["span"]
    errors: list[FieldError] = []
    if span["end"] < span["start"]:
        errors.append(field_error(f"/entities/{index}/span/end", "must not be before span.start"))
    attributes = entity.get("attributes")
    try:
        attributes = clean_json_value(attributes, max_depth=MAX_ATTRIBUTES_DEPTH, max_string_length=2_000)
    except InvalidJSONValueError as exc:
        errors.append(field_error(f"/entities/{index}/attributes{exc.pointer}", exc.reason))
    if errors:
        raise InvalidEntitiesError(errors)
    code = entity.get("code")
    code_system = entity.get("code_system")
    return ExtractedEntity(
        position=index,
        entity_type=EntityType(entity["entity_type"]).value,
        text=clean_text(entity["text"]),
        code=clean_text(code) if code is not None else None,
        code_system=clean_text(code_system) if code_system is not None else None,
        confidence=float(entity["confidence"]),
        page=span.get("page"),
        span_start=span["start"],
        span_end=span["end"],
        attributes=attributes,
    )


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


# -- listing -----------------------------------------------------------------

class TimeField(StrEnum):
    """Which timestamp ``from``/``to`` bound and the listing is ordered by."""

    CREATED = "created"
    COMPLETED = "completed"


class AcknowledgedFilter(StrEnum):
    """What to do with acknowledged failures (``acknowledged_at IS NOT NULL``)."""

    EXCLUDE = "exclude"
    INCLUDE = "include"
    ONLY = "only"


class error_details_has_code(FunctionElement[bool]):  # noqa: N801 (named like the SQL function it stands for)
    """SQL condition: ``error_details`` is an envelope whose ``errors`` array
    holds an object with ``code`` equal to a string.

    Built as ``error_details_has_code(column, code, probe)`` where ``probe``
    is the containment document ``{"errors": [{"code": code}]}``. One
    construct with one meaning, compiled per backend so that
    :meth:`JobFilter.where` stays backend-neutral:

    * PostgreSQL: ``error_details @> probe``, which the GIN ``jsonb_path_ops``
      index ``ix_processing_jobs_error_details`` (migration 0004) serves;
    * SQLite: ``json_type(error_details, '$.errors') = 'array' AND EXISTS
      (SELECT 1 FROM json_each(error_details, '$.errors') WHERE
      json_extract(value, '$.code') = code)`` -- a scan; SQLite has no JSON
      index.

    Both match only a string ``code`` in an object item of an ``errors``
    array, wherever the item is in the array.
    """

    type = sa.Boolean()
    name = "error_details_has_code"
    inherit_cache = True


@compiles(error_details_has_code, "postgresql")
def _has_code_postgresql(element: error_details_has_code, compiler: SQLCompiler, **kw: Any) -> str:
    details, _code, probe = element.clauses
    return compiler.process(sa.type_coerce(details, JSONB).op("@>")(probe), **kw)


class error_details_has_code_scanned(error_details_has_code):  # noqa: N801
    """:class:`error_details_has_code`, written so that PostgreSQL tests it
    row by row instead of through the GIN index.

    For queries already narrowed by a time range: the index returns a bitmap
    of *every* job with the code (half the table for a common one: 42 ms at
    1,000,000 jobs, docs/benchmarks.md), where testing the few thousand
    rows in the range costs a few ms. The planner underrates that bitmap.
    """

    name = "error_details_has_code_scanned"
    inherit_cache = True


@compiles(error_details_has_code_scanned, "postgresql")
def _has_code_scanned_postgresql(
    element: error_details_has_code_scanned, compiler: SQLCompiler, **kw: Any
) -> str:
    details, _code, probe = element.clauses
    # coalesce() hides the column from the index; NULL details match nothing either way.
    document = sa.func.coalesce(sa.type_coerce(details, JSONB), sa.cast(sa.literal("null"), JSONB))
    return compiler.process(document.op("@>")(probe), **kw)


@compiles(error_details_has_code, "sqlite")
@compiles(error_details_has_code_scanned, "sqlite")
def _has_code_sqlite(element: error_details_has_code, compiler: SQLCompiler, **kw: Any) -> str:
    details, code, _probe = element.clauses
    item = sa.func.json_each(details, "$.errors").table_valued("value", "type").alias("error_item")
    # CASE, not AND: SQLite does not promise to evaluate AND left to right,
    # and json_extract() raises on an item that is a bare string.
    item_code = sa.case((item.c.type == "object", sa.func.json_extract(item.c.value, "$.code")))
    condition = sa.and_(
        sa.func.json_type(details, "$.errors") == "array",
        sa.exists().select_from(item).where(item_code == code),
    )
    return compiler.process(condition, **kw)


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape ``%``, ``_`` and the escape character for a LIKE pattern."""
    return (
        text.replace(escape, escape + escape).replace("%", escape + "%").replace("_", escape + "_")
    )


@dataclass(frozen=True)
class JobFilter:
    """Which jobs to list, count or export.

    Attributes:
        statuses: keep jobs in any of these statuses; empty means all.
        document_id: exact document id, or ``None``.
        job_type: exact job type, or ``None``.
        time_field: the timestamp ``time_from``/``time_to`` bound and that
            listings are ordered by. ``completed`` keeps only jobs that have
            finished (``completed_at`` set).
        time_from: keep jobs whose time is at or after this (aware UTC), or ``None``.
        time_to: keep jobs whose time is before this (exclusive), or ``None``.
        error_code: keep jobs whose error-details envelope has an item with
            this ``code`` (any position in ``errors``), or ``None``.
        text: case-insensitive substring of ``error_message`` (the ``q``
            parameter), or ``None``. Matched literally: ``%``, ``_`` and
            ``\\`` are not wildcards. PostgreSQL folds case with ``ILIKE``
            (Unicode); SQLite's ``lower()`` folds ASCII letters only.
        acknowledged: leave out, keep, or keep only acknowledged jobs.
    """

    statuses: tuple[JobStatus, ...] = ()
    document_id: str | None = None
    job_type: str | None = None
    time_field: TimeField = TimeField.CREATED
    time_from: datetime | None = None
    time_to: datetime | None = None
    error_code: str | None = None
    text: str | None = None
    acknowledged: AcknowledgedFilter = AcknowledgedFilter.INCLUDE

    @property
    def time_column(self) -> sa.orm.InstrumentedAttribute[Any]:
        """The column :attr:`time_field` names (``created_at`` or ``completed_at``)."""
        if self.time_field is TimeField.COMPLETED:
            return ProcessingJob.completed_at
        return ProcessingJob.created_at

    def without_statuses(self) -> JobFilter:
        """This filter with every status allowed (for per-status counts)."""
        return replace(self, statuses=())

    def where(self, *, code_index: bool = True) -> list[sa.ColumnElement[bool]]:
        """SQL conditions for this filter (backend-neutral expressions).

        ``code_index=False`` writes the ``error_code`` condition so that
        PostgreSQL does not use its GIN index
        (:class:`error_details_has_code_scanned`), for statements a time range
        already narrows.
        """
        conditions: list[sa.ColumnElement[bool]] = []
        if self.statuses:
            conditions.append(ProcessingJob.status.in_([s.value for s in self.statuses]))
        if self.document_id is not None:
            conditions.append(ProcessingJob.document_id == self.document_id)
        if self.job_type is not None:
            conditions.append(ProcessingJob.job_type == self.job_type)
        if self.time_field is TimeField.COMPLETED:
            conditions.append(ProcessingJob.completed_at.is_not(None))
        if self.time_from is not None:
            conditions.append(self.time_column >= self.time_from)
        if self.time_to is not None:
            conditions.append(self.time_column < self.time_to)
        if self.error_code is not None:
            probe = {"errors": [{"code": self.error_code}]}
            has_code = error_details_has_code if code_index else error_details_has_code_scanned
            conditions.append(has_code(
                ProcessingJob.error_details,
                sa.literal(self.error_code, sa.String),
                sa.literal(probe, JSONDocument),
            ))
        if self.text is not None:
            conditions.append(
                ProcessingJob.error_message.ilike(f"%{escape_like(self.text)}%", escape="\\")
            )
        if self.acknowledged is AcknowledgedFilter.EXCLUDE:
            conditions.append(ProcessingJob.acknowledged_at.is_(None))
        elif self.acknowledged is AcknowledgedFilter.ONLY:
            conditions.append(ProcessingJob.acknowledged_at.is_not(None))
        return conditions


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
                [field_error("/cursor", "is not a cursor returned by this API")],
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
                [field_error("/cursor", f"was made for time_field={position.time_field.value}")],
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
