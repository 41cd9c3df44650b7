"""The exports' SELECTs, built from the column tables, and how they are read.

One ``SELECT`` of the needed columns (Core rows, not ORM objects) in a read
transaction of its own, executed with ``yield_per`` (:func:`batches`); on
PostgreSQL the items CSV is one ``COPY`` of :func:`copy_items_select`
instead (:func:`copy_item_rows`). See docs/exports.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from app.extensions import POSTGRESQL_READ_AUTOCOMMIT, db
from app.models import JobStatus
from app.services.error_details import is_envelope_sql
from app.services.exports.columns import (
    DEFAULT_GROUP_URL_PREFIX,
    DEFAULT_JOB_URL_PREFIX,
    ENTITIES,
    ENTITY_EXPORT,
    ITEM_EXPORT,
    JOB_ERROR_EXPORT,
    JOBS,
    Column,
    Sources,
    item_group_sql,
    item_in_group_sql,
    job_groups_lateral,
)
from app.services.processing_jobs.filter_sql import SEARCHED_ITEM_FIELDS, escape_like, id_prefix_range
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.pagination import newest_first

Batch = Sequence[sa.Row[Any]]
Records = list[tuple[Any, ...]]
Statement = Callable[[JobFilter, str], sa.Select[Any]]

#: Fields of an error item the items export reads: the item's own, then its
#: ``entity`` object's (``entity_type`` is ``entity.type``).
_ITEM_FIELDS = {
    "code": ("code",),
    "severity": ("severity",),
    "pointer": ("pointer",),
    "message": ("message",),
    "entity_type": ("entity", "type"),
    "entity_code": ("entity", "code"),
}


def _json_path(path: tuple[str, ...]) -> str:
    """SQLite JSON path of a field path: ``("entity", "type")`` -> ``$.entity.type``."""
    return "$." + ".".join(path)


@dataclass(frozen=True)
class ItemRows:
    """Which item rows the items export writes, and how; the one-row-per-job
    export reads ``job_url_prefix`` alone.

    Attributes:
        matching_only: with the filter's ``error_code``, only the items with
            that code; with its ``group``, only the items in that failure
            group; with its search ``q``, only the items that hold the text,
            or every item of a job none of whose items holds it (found by
            its id, document id or message) (the default). ``False``: every
            item of the jobs the filter chooses. Without any of the three,
            every item either way.
        job_url_prefix: ``job_url`` is this and the job id, in both
            job-error exports
            (:data:`~app.services.exports.columns.DEFAULT_JOB_URL_PREFIX`).
        group_url_prefix: ``group_url`` is this and the group id, in the
            items export
            (:data:`~app.services.exports.columns.DEFAULT_GROUP_URL_PREFIX`).
    """

    matching_only: bool = True
    job_url_prefix: str = DEFAULT_JOB_URL_PREFIX
    group_url_prefix: str = DEFAULT_GROUP_URL_PREFIX


@dataclass(frozen=True)
class _ItemTable:
    """One expansion of each job's envelope items: ``item`` (a table-valued
    function of ``processing_jobs.error_details``), the item's fields by
    :data:`_ITEM_FIELDS` name, its position order (from 1 on PostgreSQL,
    from 0 on SQLite), and two conditions on the item: ``has_code(code)``
    (a string ``code`` equal to it) and ``holds_text(text)`` (one of its
    searched string fields holds ``text``, case-insensitively and
    literally: the item-level twin of
    :class:`~app.services.processing_jobs.filter_sql.job_text_matches`)."""

    item: sa.FromClause
    fields: dict[str, sa.ColumnElement[Any]]
    order: sa.ColumnElement[Any]
    has_code: Callable[[str], sa.ColumnElement[bool]]
    holds_text: Callable[[str], sa.ColumnElement[bool]]


#: The searched fields of an item as paths (``entity.type`` -> ``("entity", "type")``).
_SEARCHED_PATHS = tuple(tuple(field.split(".")) for field in SEARCHED_ITEM_FIELDS)


def _item_table(dialect: str, name: str) -> _ItemTable:
    """The items of each job's envelope, as :class:`_ItemTable`, aliased ``name``.

    Item fields are read only from object items (an item of another type
    gives NULLs), entity fields only from an object ``entity``.
    """
    details = JOBS.c.error_details
    envelope = is_envelope_sql(details, JOBS.c.error_format, dialect)
    if dialect == "postgresql":
        document = sa.type_coerce(details, JSONB)
        elements = sa.func.jsonb_array_elements(sa.case((envelope, document["errors"])))
        item = elements.table_valued(sa.column("value", JSONB), with_ordinality="ordinal")
        item = item.render_derived(name)  # AS name(value, ordinal)
        fields = {field: item.c.value[path].astext for field, path in _ITEM_FIELDS.items()}
        order = item.c.ordinal

        def has_code(code: str) -> sa.ColumnElement[bool]:
            return item.c.value.op("@>")(sa.literal({"code": code}, JSONB))

        def string(path: tuple[str, ...]) -> sa.ColumnElement[Any]:
            return sa.case((sa.func.jsonb_typeof(item.c.value[path]) == "string", item.c.value[path].astext))
    else:
        elements = sa.func.json_each(sa.case((envelope, details)), "$.errors")
        item = elements.table_valued("value", "type", "key").alias(name)
        fields = {
            field: sa.case((item.c.type == "object", sa.func.json_extract(item.c.value, _json_path(path))))
            for field, path in _ITEM_FIELDS.items()
        }
        order = item.c.key

        def has_code(code: str) -> sa.ColumnElement[bool]:
            return sa.and_(
                item.c.type == "object",
                sa.func.json_type(item.c.value, "$.code") == "text",
                sa.func.json_extract(item.c.value, "$.code") == code,
            )

        def string(path: tuple[str, ...]) -> sa.ColumnElement[Any]:
            # CASE, not AND: json_extract() raises on an item that is a bare string.
            json_path = _json_path(path)
            return sa.case((item.c.type == "object", sa.case(
                (sa.func.json_type(item.c.value, json_path) == "text", sa.func.json_extract(item.c.value, json_path)),
            )))

    def holds_text(text: str) -> sa.ColumnElement[bool]:
        # ILIKE on PostgreSQL is the search's LIKE on lower-cased text (UTF-8
        # database); SQLite's is lower() LIKE lower(), ASCII letters folded,
        # as the search's scan there.
        pattern = sa.literal(f"%{escape_like(text)}%", sa.Text)
        return sa.or_(*(string(path).ilike(pattern, escape="\\") for path in _SEARCHED_PATHS))

    return _ItemTable(item, fields, order, has_code, holds_text)


def _item_sources(dialect: str, options: ItemRows) -> tuple[sa.FromClause, Sources, _ItemTable]:
    """The items of each job's envelope as a table joined to ``processing_jobs``.

    Returns ``(from clause, sources with the item fields, the item table)``.
    A LEFT JOIN keeps a job without items as one row with NULL items, and
    ``message`` falls back to the job's ``error_message`` there.
    """
    table = _item_table(dialect, "item")
    fields, order = dict(table.fields), table.order
    fields["message"] = sa.case((order.is_(None), JOBS.c.error_message), else_=fields["message"])
    position = order - 1 if dialect == "postgresql" else order  # ordinality counts from 1, json_each's key from 0
    sources = Sources(dialect, fields, job_url_prefix=options.job_url_prefix,
                      group_url_prefix=options.group_url_prefix, item_position=position)
    if dialect == "postgresql":
        job_groups = job_groups_lateral(JOBS)
        key = sa.cast(sa.func.coalesce(position, -1), sa.Text)
        group = sa.cast(job_groups.c.groups.op("->>")(key), sa.Integer)
        return (
            JOBS.outerjoin(job_groups, sa.true()).outerjoin(table.item, sa.true()),
            replace(sources, item_group=group), table,
        )
    sources = replace(sources, item_group=item_group_sql(sources))
    return JOBS.outerjoin(table.item, sa.true()), sources, table


def _matches_search(dialect: str, table: _ItemTable, text: str) -> sa.ColumnElement[bool]:
    """The search's rule for item rows: an item that holds ``text`` itself,
    or any row of a job none of whose items holds it but whose id, document
    id or message does (the job itself matched: all of it is written). A
    job the search found by a failure it had before a requeue has no row:
    nothing of its current failure matched (its history has that failure)."""
    others = _item_table(dialect, "searched_item")
    any_item_holds = sa.select(sa.literal(1)).select_from(others.item).where(others.holds_text(text)).exists()
    pattern = sa.literal(f"%{escape_like(text)}%", sa.Text)
    job_itself = [JOBS.c.document_id.ilike(pattern, escape="\\"), JOBS.c.error_message.ilike(pattern, escape="\\")]
    ids = id_prefix_range(text)
    if ids is not None:
        job_itself.append(JOBS.c.id.between(*ids))
    return sa.or_(table.holds_text(text), sa.and_(sa.not_(any_item_holds), sa.or_(*job_itself)))


def _selected(columns: Sequence[Column], sources: Sources) -> list[sa.ColumnElement[Any]]:
    return [column.sql(sources).label(column.name) for column in columns]


def _items_query(
    cells: Callable[[Sources], list[sa.ColumnElement[Any]]],
    job_filter: JobFilter,
    dialect: str,
    options: ItemRows,
) -> sa.Select[Any]:
    joined, sources, table = _item_sources(dialect, options)
    conditions = job_filter.where()
    if options.matching_only and job_filter.error_code is not None:
        conditions.append(table.has_code(job_filter.error_code))
    if options.matching_only and job_filter.text is not None:
        conditions.append(_matches_search(dialect, table, job_filter.text))
    if options.matching_only and job_filter.group_id is not None:
        conditions.append(item_in_group_sql(sources, job_filter.group_id))
    return (
        sa.select(*cells(sources))
        .select_from(joined)
        .where(*conditions)
        .order_by(*newest_first(job_filter), table.order)
    )


def job_error_items_select(
    job_filter: JobFilter, dialect: str, options: ItemRows = ItemRows()
) -> sa.Select[Any]:
    """The SELECT behind the one-row-per-item export, for ``dialect``
    (``"postgresql"`` or ``"sqlite"``); bench/export_benchmark.py hands the
    same statement to PostgreSQL's COPY.

    Columns as :data:`~app.services.exports.columns.ITEM_EXPORT` reads them
    (``job_id`` as text, ``completed_at`` plain ``DateTime``: naive on
    SQLite); jobs newest first by the filter's time, items in the worker's
    order; with the filter's ``error_code``, ``group`` or ``q`` only the
    matching items unless ``options`` says otherwise (:class:`ItemRows`).
    """
    return _items_query(lambda sources: _selected(ITEM_EXPORT, sources), job_filter, dialect, options)


def copy_items_select(job_filter: JobFilter, options: ItemRows = ItemRows()) -> sa.Select[Any]:
    """PostgreSQL: :func:`job_error_items_select`'s rows as the text cells the
    Python path writes (each column's ``copy_sql``), ready for
    ``COPY ... (FORMAT csv)``; same filter, rows and order.
    """
    def cells(sources: Sources) -> list[sa.ColumnElement[Any]]:
        return [column.copy_sql(sources) for column in ITEM_EXPORT]  # type: ignore[misc]

    return _items_query(cells, job_filter, "postgresql", options)


def jobs_select(job_filter: JobFilter, dialect: str, options: ItemRows = ItemRows()) -> sa.Select[Any]:
    """The SELECT of the one-row-per-job export; of ``options``, only the
    ``job_url`` prefix applies (one row per job, whatever the items)."""
    return (
        sa.select(*_selected(JOB_ERROR_EXPORT, Sources(dialect, {}, job_url_prefix=options.job_url_prefix)))
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

#: Connection options of an export's read transaction (app.extensions).
_IN_TRANSACTION = {POSTGRESQL_READ_AUTOCOMMIT: False}


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
        # A transaction, not the session's read autocommit: the named cursor
        # and SET LOCAL need one.
        connection = db.session.connection(execution_options=_IN_TRANSACTION)
        result = connection.execute(
            statement(job_filter, connection.dialect.name), execution_options={"yield_per": batch_size}
        )
        try:
            yield from result.partitions()
        finally:
            result.close()
    finally:
        db.session.rollback()


def driver_statement(statement: sa.Select[Any], dialect: sa.Dialect) -> tuple[str, dict[str, Any]]:
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
    job_filter: JobFilter, chunk_rows: int, statement_timeout_ms: int, options: ItemRows = ItemRows()
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
        # A transaction, not the session's read autocommit: the named cursor
        # and SET LOCAL need one.
        connection = db.session.connection(execution_options=_IN_TRANSACTION)
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        statement, params = driver_statement(copy_items_select(job_filter, options), connection.dialect)
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
