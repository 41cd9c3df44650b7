"""The columns of the three exports: one :class:`Column` per column, in order.

Adding an export column is one entry in one of the tables below
(:data:`ITEM_EXPORT`, :data:`JOB_ERROR_EXPORT`, :data:`ENTITY_EXPORT`): its
name, SQL expression, JSON value, CSV cell and, for the items export, the
SQL of its ``COPY`` cell. The SELECTs, the record builders, the CSV header
and the NDJSON keys all read these tables (docs/exports.md, "Adding an
export column").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from app.models import ExtractedEntity, FailureGroup, FailureOccurrence, ProcessingJob
from app.models.types import JSONDocument
from app.services.error_details import is_envelope_sql
from app.services.failure_groups.fingerprint import GROUPING_VERSION
from app.services.exports.cells import (
    canonical_job_url,
    canonical_uuid,
    empty_if_none,
    json_cell,
    same,
    sql_rfc3339,
    sql_text_cell,
    text_cell,
    utc_rfc3339,
)
from app.timestamps import rfc3339

JOBS = ProcessingJob.__table__
ENTITIES = ExtractedEntity.__table__

#: ``job_url`` is this prefix and the job id. The views pass the job page's
#: absolute URL without the id (``https://host/jobs/``); without a request
#: (tests, benchmarks) it is the page's path.
DEFAULT_JOB_URL_PREFIX = "/jobs/"
#: ``group_url`` is this prefix and the group id (as ``job_url``: the views
#: pass the group page's absolute URL without the id).
DEFAULT_GROUP_URL_PREFIX = "/groups/"


@dataclass(frozen=True)
class Sources:
    """What a column's SQL may read: the ``processing_jobs`` and
    ``extracted_entities`` tables, the fields of the error item (items
    export only: ``code``, ``severity``, ``pointer``, ``message``,
    ``entity_type``, ``entity_code``), its 0-based position in ``errors``
    (NULL on the one row of a job without items) and its failure group
    (:func:`item_group_sql`), the dialect name (``"postgresql"`` or
    ``"sqlite"``), the prefix of ``job_url`` (both job-error exports) and
    that of ``group_url`` (the items export)."""

    dialect: str
    item: Mapping[str, sa.ColumnElement[Any]]
    jobs: sa.Table = JOBS
    entities: sa.Table = ENTITIES
    job_url_prefix: str = DEFAULT_JOB_URL_PREFIX
    group_url_prefix: str = DEFAULT_GROUP_URL_PREFIX
    item_position: sa.ColumnElement[Any] | None = None
    item_group: sa.ColumnElement[Any] | None = None


SQL = Callable[[Sources], sa.ColumnElement[Any]]


@dataclass(frozen=True)
class Column:
    """One export column.

    Attributes:
        name: the CSV header cell and the NDJSON key.
        sql: the SELECT's expression for it.
        json_value: the value the database returns -> the NDJSON value
            (stored strings as they are, timestamps RFC 3339 UTC).
        csv_cell: that JSON value -> the CSV cell (worker text through
            :func:`~app.services.exports.cells.neutralise_formula`, ``None``
            empty).
        copy_sql: PostgreSQL: the cell as ``COPY`` must write it, the same
            text as ``csv_cell`` gives (``''`` as NULL). Needed by the items
            export only, the one PostgreSQL writes with ``COPY``.
        per_job: the items export: a job's column, the same on each of its
            item rows, so it is converted once per job.
    """

    name: str
    sql: SQL
    json_value: Callable[[Any], Any] = same
    csv_cell: Callable[[Any], Any] = same
    copy_sql: SQL | None = None
    per_job: bool = False


def _job(name: str) -> SQL:
    return lambda s: s.jobs.c[name]


def _entity(name: str) -> SQL:
    return lambda s: s.entities.c[name]


def _quantity(field: str) -> SQL:
    """An entity's measured value (a FHIR Quantity, ``{"value": 4, "unit": "ng/L"}``):
    its ``field``, NULL when the entity has none."""

    def sql(s: Sources) -> sa.ColumnElement[Any]:
        value = s.entities.c.value
        if s.dialect == "postgresql":
            return sa.type_coerce(value, JSONB).op("->>")(field)
        path = f"$.{field}"
        # A number as the worker wrote it, as PostgreSQL's ->> gives it:
        # SQLite's json_extract reads one past 64 bits as a double
        # (12345678901234567891 was exported as 1.2345678901234567e+19, a
        # 400-digit one as inf; a trial), where its -> keeps the JSON text.
        return sa.case(
            (sa.func.json_type(value, path).in_(("integer", "real")),
             sa.type_coerce(value, sa.Text).op("->", return_type=sa.Text)(path)),
            else_=sa.func.json_extract(value, path),
        )

    return sql


def _item(name: str) -> SQL:
    return lambda s: s.item[name]


def _job_url_sql(s: Sources) -> sa.ColumnElement[Any]:
    # Server-made text (the app's own URL and the id): not neutralised, and
    # never empty, so the COPY cell is the same expression.
    return sa.literal(s.job_url_prefix, sa.Text) + sa.cast(s.jobs.c.id, sa.Text)


def _group_url_sql(s: Sources) -> sa.ColumnElement[Any]:
    # Server-made text (the app's URL and the group's integer id); NULL
    # without a group (text || NULL is NULL on both databases), which the
    # CSV and COPY both write as an empty cell.
    return sa.literal(s.group_url_prefix, sa.Text) + sa.cast(s.item_group, sa.Text)


def _item_text(name: str) -> Column:
    """A column of worker text read from the error item (not per job)."""
    return Column(name, _item(name), csv_cell=text_cell, copy_sql=lambda s: sql_text_cell(s.item[name]))


def _item_occurrences(s: Sources) -> sa.Select[Any]:
    """The current occurrences of the row's job whose ``item_positions`` hold
    the row's item (for the row of a job without items: the occurrence made
    from its message, ``[]``), selecting their ``group_id``."""
    occurrences = FailureOccurrence.__table__
    assert s.item_position is not None
    position = s.item_position
    if s.dialect == "postgresql":
        positions = sa.type_coerce(occurrences.c.item_positions, JSONB)
        holds = positions.op("@>")(sa.func.jsonb_build_array(position))
        empty = sa.func.jsonb_array_length(positions) == 0
    else:
        listed = sa.func.json_each(occurrences.c.item_positions).table_valued("value").alias("listed")
        # correlate_except: the row's item (a json_each of the outer query)
        # is the outer one, not a second json_each in here.
        holds = (
            sa.select(listed.c.value).select_from(listed).where(listed.c.value == position)
            .correlate_except(listed).exists()
        )
        empty = sa.func.json_array_length(occurrences.c.item_positions) == 0
    return sa.select(occurrences.c.group_id).where(
        occurrences.c.job_id == s.jobs.c.id,
        # Plain "is_current" (not IS TRUE): the predicate of the partial
        # index ix_failure_occurrences_current_job_id, so PostgreSQL uses it.
        occurrences.c.is_current,
        sa.or_(holds, sa.and_(position.is_(None), empty)),
    )


def item_group_sql(s: Sources) -> sa.ColumnElement[Any]:
    """The failure group of the export row's item under the current grouping
    version (:func:`_item_occurrences`), one lookup per item row; NULL when
    its failure was not grouped (stored before the groups and not
    backfilled) or the item is not an object. Served by the partial index of
    current occurrences by job. SQLite's; PostgreSQL reads the same from
    one lookup per job (:func:`job_groups_lateral`)."""
    occurrences = FailureOccurrence.__table__
    groups = FailureGroup.__table__
    return (
        _item_occurrences(s)
        .with_only_columns(sa.func.min(occurrences.c.group_id))
        .join(groups, groups.c.id == occurrences.c.group_id)
        .where(groups.c.grouping_version == GROUPING_VERSION)
        .scalar_subquery()
    )


def job_groups_lateral(jobs: sa.Table) -> sa.Lateral:
    """PostgreSQL: per job, ``groups``: a JSON object from each item position
    (as text; ``"-1"`` for the failure's message when it had no items) to
    its failure group under the current grouping version, from the job's
    current occurrences -- the twin of :func:`item_group_sql`, made once per
    job rather than once per item row (an export has several items per job)."""
    occurrences = FailureOccurrence.__table__
    groups = FailureGroup.__table__
    positions = sa.type_coerce(occurrences.c.item_positions, JSONB)
    listed = sa.case(
        (sa.func.jsonb_array_length(positions) == 0, sa.literal([-1], JSONB)), else_=positions
    )
    slot = sa.func.jsonb_array_elements_text(listed).table_valued(sa.column("position", sa.Text)).render_derived("slot")
    return (
        sa.select(sa.func.jsonb_object_agg(slot.c.position, occurrences.c.group_id, type_=JSONB).label("groups"))
        .select_from(
            occurrences.join(
                groups,
                sa.and_(groups.c.id == occurrences.c.group_id, groups.c.grouping_version == GROUPING_VERSION),
            ).join(slot, sa.true())
        )
        .where(occurrences.c.job_id == jobs.c.id, occurrences.c.is_current)
        .lateral("job_groups")
    )


def item_in_group_sql(s: Sources, group_id: int) -> sa.ColumnElement[bool]:
    """SQL: the export row's item is in failure group ``group_id`` (any grouping version)."""
    return _item_occurrences(s).where(FailureOccurrence.__table__.c.group_id == group_id).exists()


def _group_title_sql(s: Sources) -> sa.ColumnElement[Any]:
    # The title of the row's group, by primary key (NULL without a group).
    # Built from worker text (code and pointer pattern): neutralised as such.
    groups = FailureGroup.__table__
    if s.dialect == "postgresql":  # item_group is a value read from the job's lateral lookup
        return sa.select(groups.c.title).where(groups.c.id == s.item_group).correlate_except(groups).scalar_subquery()
    # SQLite: item_group is itself a correlated subquery; nesting it again
    # would lose its correlation, so read the title the way it reads the id.
    occurrences = FailureOccurrence.__table__
    return (
        _item_occurrences(s)
        .with_only_columns(groups.c.title)
        .join(groups, groups.c.id == occurrences.c.group_id)
        .where(groups.c.grouping_version == GROUPING_VERSION)
        .order_by(occurrences.c.group_id)
        .limit(1)
        .scalar_subquery()
    )


def _error_count_sql(s: Sources) -> sa.ColumnElement[Any]:
    # The details when they are a normalized envelope, else NULL: the rule of
    # error_details.envelope_errors, in SQL, so the count needs no second column.
    details = s.jobs.c.error_details
    envelope = is_envelope_sql(details, s.jobs.c.error_format, s.dialect)
    return sa.type_coerce(sa.case((envelope, details)), JSONDocument)


def _error_count(envelope: Any) -> Any:
    return None if envelope is None else envelope.get("error_count")


#: One row per item of a job's error-details envelope; a job without items
#: gets one row with empty item cells and ``message`` its ``error_message``.
#: The job's columns (``per_job``) come first; the id is read as text and
#: ``completed_at`` without ``UTCDateTime``: both per-row conversions cost
#: more than the rest of the fetch (bench/export_benchmark.py), so they run
#: once per job. ``entity_type`` and ``entity_code`` are the item's
#: ``entity`` (which entity of the document the error is about); ``group_id``
#: the failure group the item is in (:func:`item_group_sql`), ``group_url``
#: its page (absolute, as ``job_url``).
ITEM_EXPORT: tuple[Column, ...] = (
    Column("job_id", lambda s: sa.cast(s.jobs.c.id, sa.String), canonical_uuid,
           copy_sql=lambda s: sa.cast(s.jobs.c.id, sa.Text), per_job=True),
    Column("job_url", _job_url_sql, canonical_job_url, copy_sql=_job_url_sql, per_job=True),
    Column("document_id", _job("document_id"), csv_cell=text_cell,
           copy_sql=lambda s: sql_text_cell(s.jobs.c.document_id), per_job=True),
    Column("job_type", _job("job_type"), csv_cell=text_cell,
           copy_sql=lambda s: sql_text_cell(s.jobs.c.job_type), per_job=True),
    Column("status", _job("status"), copy_sql=_job("status"), per_job=True),
    Column("completed_at", lambda s: sa.type_coerce(s.jobs.c.completed_at, sa.DateTime(timezone=True)),
           utc_rfc3339, empty_if_none, copy_sql=lambda s: sql_rfc3339(s.jobs.c.completed_at), per_job=True),
    Column("error_message", _job("error_message"), csv_cell=text_cell,
           copy_sql=lambda s: sql_text_cell(s.jobs.c.error_message), per_job=True),
    _item_text("code"),
    _item_text("severity"),
    _item_text("pointer"),
    _item_text("message"),
    _item_text("entity_type"),
    _item_text("entity_code"),
    Column("group_id", lambda s: s.item_group, csv_cell=empty_if_none,
           copy_sql=lambda s: sa.cast(s.item_group, sa.Text)),
    Column("group_title", _group_title_sql, csv_cell=text_cell,
           copy_sql=lambda s: sql_text_cell(_group_title_sql(s))),
    Column("group_url", _group_url_sql, csv_cell=empty_if_none, copy_sql=_group_url_sql),
)

#: One row per job: ``error_details`` whole and the envelope's ``error_count``;
#: ``job_url`` as in the items export. The columns both files have come in
#: the items export's order (``completed_at`` before ``error_message``).
JOB_ERROR_EXPORT: tuple[Column, ...] = (
    Column("job_id", _job("id"), str),
    Column("job_url", _job_url_sql, canonical_job_url),
    Column("document_id", _job("document_id"), csv_cell=text_cell),
    Column("job_type", _job("job_type"), csv_cell=text_cell),
    Column("status", _job("status")),
    Column("completed_at", _job("completed_at"), rfc3339, empty_if_none),
    Column("error_message", _job("error_message"), csv_cell=text_cell),
    Column("error_details", _job("error_details"), csv_cell=json_cell),
    Column("error_count", _error_count_sql, _error_count, empty_if_none),
)

#: One row per extracted entity of a ``Completed`` job, in the worker's order.
ENTITY_EXPORT: tuple[Column, ...] = (
    Column("job_id", _entity("job_id"), str),
    Column("document_id", _job("document_id"), csv_cell=text_cell),
    Column("completed_at", _job("completed_at"), rfc3339, empty_if_none),
    Column("position", _entity("position")),
    Column("entity_type", _entity("entity_type"), csv_cell=text_cell),
    Column("text", _entity("text"), csv_cell=text_cell),
    Column("code", _entity("code"), csv_cell=text_cell),
    Column("code_system", _entity("code_system"), csv_cell=text_cell),
    Column("confidence", _entity("confidence")),
    # The measured value (an observation's result, a dose) and its UCUM unit.
    Column("value", _quantity("value"), csv_cell=empty_if_none),
    Column("unit", _quantity("unit"), csv_cell=text_cell),
    Column("page", _entity("page"), csv_cell=empty_if_none),
    Column("span_start", _entity("span_start")),
    Column("span_end", _entity("span_end")),
    Column("attributes", _entity("attributes"), csv_cell=text_cell),
)

#: Column names of each export, in order (the CSV header, the NDJSON keys).
ITEM_COLUMNS = tuple(column.name for column in ITEM_EXPORT)
JOB_ERROR_COLUMNS = tuple(column.name for column in JOB_ERROR_EXPORT)
ENTITY_COLUMNS = tuple(column.name for column in ENTITY_EXPORT)
