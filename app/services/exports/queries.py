"""The exports' SELECTs, built from the column tables, and how they are read.

One ``SELECT`` of the needed columns (Core rows, not ORM objects) in a read
transaction of its own, executed with ``yield_per`` (:func:`batches`); on
PostgreSQL the items CSV is one ``COPY`` of :func:`copy_items_select`
instead (:func:`copy_item_rows`). See docs/exports.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from app.extensions import db
from app.models import JobStatus
from app.services.error_details import is_envelope_sql
from app.services.exports.columns import (
    ENTITIES,
    ENTITY_EXPORT,
    ITEM_EXPORT,
    JOB_ERROR_EXPORT,
    JOBS,
    Column,
    Sources,
)
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.pagination import newest_first

Batch = Sequence[sa.Row[Any]]
Records = list[tuple[Any, ...]]
Statement = Callable[[JobFilter, str], sa.Select[Any]]

_ITEM_FIELDS = ("code", "severity", "pointer", "message")


def _item_sources(dialect: str) -> tuple[sa.FromClause, Sources, sa.ColumnElement[Any]]:
    """The items of each job's envelope as a table joined to ``processing_jobs``.

    Returns ``(from clause, sources with the item fields, item order)``.
    A LEFT JOIN keeps a job without items as one row with NULL items, and
    ``message`` falls back to the job's ``error_message`` there. Item fields
    are read only from object items (an item of another type gives NULLs).
    """
    details = JOBS.c.error_details
    envelope = is_envelope_sql(details, JOBS.c.error_format, dialect)
    if dialect == "postgresql":
        document = sa.type_coerce(details, JSONB)
        elements = sa.func.jsonb_array_elements(sa.case((envelope, document["errors"])))
        item = elements.table_valued(sa.column("value", JSONB), with_ordinality="ordinal")
        item = item.render_derived("item")  # AS item(value, ordinal)
        fields = {name: item.c.value[name].astext for name in _ITEM_FIELDS}
        order = item.c.ordinal
    else:
        elements = sa.func.json_each(sa.case((envelope, details)), "$.errors")
        item = elements.table_valued("value", "type", "key").alias("item")
        fields = {
            name: sa.case((item.c.type == "object", sa.func.json_extract(item.c.value, f"$.{name}")))
            for name in _ITEM_FIELDS
        }
        order = item.c.key
    fields["message"] = sa.case((order.is_(None), JOBS.c.error_message), else_=fields["message"])
    return JOBS.outerjoin(item, sa.true()), Sources(dialect, fields), order


def _selected(columns: Sequence[Column], sources: Sources) -> list[sa.ColumnElement[Any]]:
    return [column.sql(sources).label(column.name) for column in columns]


def job_error_items_select(job_filter: JobFilter, dialect: str) -> sa.Select[Any]:
    """The SELECT behind the one-row-per-item export, for ``dialect``
    (``"postgresql"`` or ``"sqlite"``); bench/export_benchmark.py hands the
    same statement to PostgreSQL's COPY.

    Columns as :data:`~app.services.exports.columns.ITEM_EXPORT` reads them
    (``job_id`` as text, ``completed_at`` plain ``DateTime``: naive on
    SQLite); jobs newest first by the filter's time, items in the worker's order.
    """
    joined, sources, order = _item_sources(dialect)
    return (
        sa.select(*_selected(ITEM_EXPORT, sources))
        .select_from(joined)
        .where(*job_filter.where())
        .order_by(*newest_first(job_filter), order)
    )


def copy_items_select(job_filter: JobFilter) -> sa.Select[Any]:
    """PostgreSQL: :func:`job_error_items_select`'s rows as the text cells the
    Python path writes (each column's ``copy_sql``), ready for
    ``COPY ... (FORMAT csv)``; same filter and order.
    """
    joined, sources, order = _item_sources("postgresql")
    cells = [column.copy_sql(sources) for column in ITEM_EXPORT]  # type: ignore[misc]
    return (
        sa.select(*cells)
        .select_from(joined)
        .where(*job_filter.where())
        .order_by(*newest_first(job_filter), order)
    )


def jobs_select(job_filter: JobFilter, dialect: str) -> sa.Select[Any]:
    """The SELECT of the one-row-per-job export."""
    return (
        sa.select(*_selected(JOB_ERROR_EXPORT, Sources(dialect, {})))
        .where(*job_filter.where())
        .order_by(*newest_first(job_filter))
    )


def entities_filter(job_filter: JobFilter) -> JobFilter:
    """``job_filter`` with its statuses replaced by ``Completed`` alone (only
    completed jobs have entities)."""
    return replace(job_filter, statuses=(JobStatus.COMPLETED,))


def entities_select(job_filter: JobFilter, dialect: str) -> sa.Select[Any]:
    """The SELECT of the entities export: :func:`entities_filter`'s jobs,
    newest first, entities in the worker's order."""
    completed = entities_filter(job_filter)
    return (
        sa.select(*_selected(ENTITY_EXPORT, Sources(dialect, {})))
        .join_from(ENTITIES, JOBS, ENTITIES.c.job_id == JOBS.c.id)
        .where(*completed.where())
        .order_by(*newest_first(completed), ENTITIES.c.position)
    )


# -- records: a batch of database rows -> value tuples in the export's column order ----


def records(columns: Sequence[Column], *, csv: bool) -> Callable[[Batch], Records]:
    """A function turning batches of rows into records: the columns' JSON
    values, or with ``csv`` their CSV cells.

    The leading ``per_job`` columns are converted once per job (rows of one
    job are consecutive, its id first) and reused for its other rows.
    """
    def convert(column: Column) -> Callable[[Any], Any]:
        if not csv:
            return column.json_value
        return lambda value: column.csv_cell(column.json_value(value))

    head_count = 0
    while head_count < len(columns) and columns[head_count].per_job:
        head_count += 1
    head_fns = [convert(column) for column in columns[:head_count]]
    tail_fns = [convert(column) for column in columns[head_count:]]
    state: dict[str, Any] = {"job": None, "head": ()}

    def build(batch: Batch) -> Records:
        out = []
        append = out.append
        job, head = state["job"], state["head"]
        for row in batch:
            if head_count and row[0] != job:
                job, head = row[0], tuple(f(v) for f, v in zip(head_fns, row[:head_count]))
            append(head + tuple([f(v) for f, v in zip(tail_fns, row[head_count:])]))
        state["job"], state["head"] = job, head
        return out

    return build


# -- reading ---------------------------------------------------------------------------


def batches(job_filter: JobFilter, statement: Statement, batch_size: int) -> Iterator[Batch]:
    """Run the export's SELECT in a read transaction of its own; yield its rows in batches.

    ``yield_per`` makes SQLAlchemy set ``stream_results`` (a named cursor on
    psycopg) and fetch ``batch_size`` rows at a time. It runs on the
    session's Connection, not ``Session.execute``, so rows skip the ORM's
    result processing. The transaction ends (rolled back: nothing was
    written) when the generator finishes or is closed.
    """
    if db.session().in_transaction():
        db.session.rollback()  # a fresh snapshot, not one left by earlier work
    try:
        connection = db.session.connection()
        result = connection.execute(
            statement(job_filter, connection.dialect.name), execution_options={"yield_per": batch_size}
        )
        try:
            yield from result.partitions()
        finally:
            result.close()
    finally:
        db.session.rollback()


def _driver_statement(statement: sa.Select[Any], dialect: sa.Dialect) -> tuple[str, dict[str, Any]]:
    """``statement`` as the driver would receive it: SQL text (``IN`` lists
    expanded) and parameters after each type's bind processor (JSONB values
    wrapped for psycopg, ...), for a driver call SQLAlchemy cannot make
    (``COPY``)."""
    compiled = statement.compile(dialect=dialect)
    state = compiled.construct_expanded_state()
    params = dict(state.parameters)
    for name, bind in compiled.binds.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is None:
            continue
        for key in state.parameter_expansion.get(name, [name]):
            if key in params:
                params[key] = processor(params[key])
    return state.statement, params


def copy_item_rows(
    job_filter: JobFilter, chunk_rows: int, statement_timeout_ms: int
) -> Iterator[list[memoryview]]:
    """PostgreSQL: yield the items CSV's data rows (bytes without their LF)
    in lists of ``chunk_rows``, from one ``COPY`` in a read transaction of
    its own, under a ``statement_timeout`` of ``statement_timeout_ms``. Ends
    the transaction (and so the ``COPY``, if unfinished) when finished or
    closed.
    """
    if db.session().in_transaction():
        db.session.rollback()  # a fresh snapshot, not one left by earlier work
    try:
        connection = db.session.connection()
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        statement, params = _driver_statement(copy_items_select(job_filter), connection.dialect)
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY ({statement}) TO STDOUT (FORMAT csv)", params) as copy:
            rows: list[memoryview] = []
            append = rows.append
            for data in copy:  # one CopyData message per row, ending in LF (outside any quotes)
                append(data[:-1])
                if len(rows) >= chunk_rows:
                    yield rows
                    rows = []
                    append = rows.append
            if rows:
                yield rows
    finally:
        db.session.rollback()
