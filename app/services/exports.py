"""The exports of job errors and extracted entities, streamed in constant memory.

Three exports, each over the jobs a :class:`~app.services.processing_jobs.job_filter.JobFilter`
chooses, newest first (the order of ``/jobs``):

* job errors, one row per error item (:data:`ITEM_COLUMNS`): one row per
  item of a job's normalized error-details envelope (``docs/error-details.md``),
  in the worker's order; a job with no items -- details free-form, absent,
  or an envelope with an empty ``errors`` -- gets one row whose item columns
  are empty and whose ``message`` is the job's ``error_message``;
* job errors, one row per job (:data:`JOB_ERROR_COLUMNS`): ``error_details``
  whole and the envelope's ``error_count``;
* extracted entities of ``Completed`` jobs (:data:`ENTITY_COLUMNS`), in the
  worker's order within a job.

``error_details`` counts as a normalized envelope when ``error_format`` is
not ``free-form`` (or is NULL: jobs from before formats were recorded), and
it is a JSON object whose ``schema_version`` is the integer 1 and whose
``errors`` is an array (:func:`~app.services.error_details.envelope_errors`,
and its SQL twin ``is_envelope_sql``). A worker may declare
``free-form`` for a value shaped like an envelope: it is stored as sent and
exported as free-form.

CSV follows RFC 4180 through the standard ``csv`` module (a field holding a
comma, quote or line break is quoted, quotes doubled, so a multi-line
message stays one cell), rows end in CRLF, and the text starts with a UTF-8
byte-order mark so that Excel reads it as UTF-8 rather than in the ANSI code
page. Every cell of worker- or client-supplied text goes through
:func:`neutralise_formula` (OWASP "CSV Injection"); values the server makes
(job ids, statuses, timestamps, numbers) are written as they are. NDJSON
(one JSON object per ``\\n``-terminated line, UTF-8) keeps the original
strings: it is read by programs, not spreadsheets.

Streaming: one ``SELECT`` of the needed columns (Core rows, not ORM objects)
in a read transaction of its own, executed with ``yield_per``. On
PostgreSQL that is a server-side (named) cursor read with ``FETCH FORWARD
n``; on SQLite the ``sqlite3`` cursor steps through the result as it is
read. One chunk of text is yielded per batch of :data:`STREAM_BATCH_SIZE`
rows, so memory is bounded by the batch size, not by the export. The items
export expands the envelope in SQL (``jsonb_array_elements`` /
``json_each``), so the database sends flat text columns.

On PostgreSQL the one-row-per-item CSV (the big one: about three rows a
job) is written by the server instead: one ``COPY (SELECT <the same rows,
cells formatted and neutralised in SQL>) TO STDOUT (FORMAT csv)``
(:func:`copy_items_select`), its parameters bound by SQLAlchemy's own bind
processors and merged client-side by psycopg (``COPY`` takes no server-side
parameters). The server's CSV differs from the ``csv`` module's in two
ways, both undone here: ``COPY`` ends rows in LF (each ``CopyData`` message
holds exactly one row, PostgreSQL protocol docs, "COPY Operations", so its
last byte is swapped for CRLF), and it quotes an empty string as ``""``
(empty strings are sent as NULL instead, written as an empty unquoted
field, as ``csv`` does). Rows are handed on as they arrive, in chunks of
:data:`COPY_CHUNK_ROWS`. Being one statement, the ``COPY`` runs under its
own ``statement_timeout`` (``EXPORT_STATEMENT_TIMEOUT_MS``, default 10 min):
the longest a download may hold its connection, however slowly the client
reads. bench/export_benchmark.py compares both paths with a bare ``COPY``.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from app.config import DEFAULT_EXPORT_STATEMENT_TIMEOUT_MS
from app.extensions import db
from app.models import ExtractedEntity, JobStatus, ProcessingJob
from app.models.types import UTCDateTime
from app.services.error_details import envelope_errors, is_envelope_sql
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.pagination import newest_first
from app.timestamps import rfc3339

#: Rows read from the database per fetch, and per chunk of the response.
#: bench/export_benchmark.py measured no gain from larger batches.
STREAM_BATCH_SIZE = 1000

#: PostgreSQL items CSV: rows per chunk of the response on the ``COPY`` path.
COPY_CHUNK_ROWS = 2_000

#: Called once when an export stream ends -- read to the end, closed early
#: (the client went away) or failed -- with the number of data rows handed
#: out (the CSV header not counted). The read transaction is over by then,
#: so the callback may write (an audit event, say) through ``db.session``.
OnFinish = Callable[[int], None]


class ExportRows(StrEnum):
    """Rows of a job-error export: one per error item or one per job (the
    ``rows`` query parameter, :func:`app.web.query.parse_rows`)."""

    ITEMS = "items"  # one row per error item (the default)
    JOBS = "jobs"  # one row per job


#: Columns of the one-row-per-error-item export, in order.
ITEM_COLUMNS = (
    "job_id", "document_id", "status", "completed_at", "code", "severity", "pointer", "message",
)
#: Columns of the one-row-per-job export, in order.
JOB_ERROR_COLUMNS = (
    "job_id", "document_id", "job_type", "status", "error_message", "completed_at", "error_details",
    "error_count",
)
#: Columns of the entities export, in order.
ENTITY_COLUMNS = (
    "job_id", "document_id", "completed_at", "position", "entity_type", "text", "code", "code_system",
    "confidence", "page", "span_start", "span_end", "attributes",
)

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would evaluate as a formula.

    Cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return get
    the prefix (OWASP "CSV Injection"); others are returned unchanged.
    """
    return "'" + cell if cell.startswith(_FORMULA_PREFIXES) else cell


def _text_cell(value: Any) -> str:
    """A CSV cell of worker-supplied text: ``None`` empty, JSON values as JSON
    text (keys sorted), then :func:`neutralise_formula`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return neutralise_formula(value)


def _json_cell(value: Any) -> str:
    """A CSV cell holding a JSON value as JSON text (keys sorted), strings
    included (``"text"`` with its quotes, so it reads apart from ``text``
    or a number); ``None`` (no value) empty; then :func:`neutralise_formula`."""
    if value is None:
        return ""
    return neutralise_formula(json.dumps(value, ensure_ascii=False, sort_keys=True))


# -- queries ---------------------------------------------------------------------------

_jobs = ProcessingJob.__table__
_entities = ExtractedEntity.__table__
_UTC_DATETIME = UTCDateTime()


def _item_columns(
    dialect: str,
) -> tuple[sa.FromClause, list[sa.ColumnElement[Any]], sa.ColumnElement[Any]]:
    """The items of each job's envelope as a table joined to ``processing_jobs``.

    Returns ``(from clause, [code, severity, pointer, message], item order)``.
    A LEFT JOIN keeps a job without items as one row with NULL items, and
    ``message`` falls back to the job's ``error_message`` there. Item fields
    are read only from object items (an item of another type gives NULLs).
    """
    details = _jobs.c.error_details
    envelope = is_envelope_sql(details, _jobs.c.error_format, dialect)
    if dialect == "postgresql":
        document = sa.type_coerce(details, JSONB)
        elements = sa.func.jsonb_array_elements(sa.case((envelope, document["errors"])))
        item = elements.table_valued(sa.column("value", JSONB), with_ordinality="ordinal")
        item = item.render_derived("item")  # AS item(value, ordinal)
        fields = [item.c.value[name].astext for name in ("code", "severity", "pointer", "message")]
        order = item.c.ordinal
    else:
        elements = sa.func.json_each(sa.case((envelope, details)), "$.errors")
        item = elements.table_valued("value", "type", "key").alias("item")
        fields = [
            sa.case((item.c.type == "object", sa.func.json_extract(item.c.value, f"$.{name}")))
            for name in ("code", "severity", "pointer", "message")
        ]
        order = item.c.key
    fields[3] = sa.case((order.is_(None), _jobs.c.error_message), else_=fields[3])
    return _jobs.outerjoin(item, sa.true()), fields, order


def job_error_items_select(job_filter: JobFilter, dialect: str) -> sa.Select[Any]:
    """The SELECT behind the one-row-per-item export, for ``dialect``
    (``"postgresql"`` or ``"sqlite"``); bench/export_benchmark.py hands the
    same statement to PostgreSQL's COPY.

    Columns ``id`` (text), ``document_id``, ``status``, ``completed_at``
    (plain ``DateTime``: naive on SQLite), ``code``, ``severity``,
    ``pointer``, ``message``; jobs newest first by the filter's time, items
    in the worker's order.
    """
    joined, (code, severity, pointer, message), order = _item_columns(dialect)
    # The id as text and completed_at without UTCDateTime: both per-row
    # conversions cost more than the rest of the fetch (bench/export_benchmark.py);
    # _JobHead converts them once per job instead.
    return (
        sa.select(
            sa.cast(_jobs.c.id, sa.String).label("id"), _jobs.c.document_id, _jobs.c.status,
            sa.type_coerce(_jobs.c.completed_at, sa.DateTime(timezone=True)).label("completed_at"),
            code.label("code"), severity.label("severity"), pointer.label("pointer"),
            message.label("message"),
        )
        .select_from(joined)
        .where(*job_filter.where())
        .order_by(*newest_first(job_filter), order)
    )


#: Code points of :data:`_FORMULA_PREFIXES`: ``ascii()`` of the first
#: character is the cheapest test PostgreSQL has (no substring is built).
_FORMULA_CODE_POINTS = tuple(ord(prefix) for prefix in _FORMULA_PREFIXES)


def _sql_text_cell(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """PostgreSQL twin of :func:`_text_cell` for a text column: NULL for NULL
    or ``''`` (so COPY writes an empty unquoted field, as ``csv`` does), else
    :func:`neutralise_formula` as a CASE on the first character's code point."""
    return sa.case(
        (sa.func.ascii(value).in_(_FORMULA_CODE_POINTS), sa.literal("'", sa.Text) + value),
        else_=sa.func.nullif(value, ""),
    )


def _sql_rfc3339(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """PostgreSQL twin of :func:`app.timestamps.rfc3339` (``isoformat`` of the
    UTC time: microseconds only when not zero, then ``Z``); NULL stays NULL."""
    text = sa.func.to_char(sa.func.timezone("UTC", value), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"', type_=sa.Text)
    return sa.func.replace(text, ".000000Z", "Z", type_=sa.Text)


def copy_items_select(job_filter: JobFilter) -> sa.Select[Any]:
    """PostgreSQL: :func:`job_error_items_select`'s rows as the text cells the
    Python path writes, ready for ``COPY ... (FORMAT csv)``.

    Canonical UUID text, neutralised worker text (``''`` as NULL),
    ``completed_at`` as RFC 3339; same filter and order.
    """
    joined, fields, order = _item_columns("postgresql")
    return (
        sa.select(
            sa.cast(_jobs.c.id, sa.Text), _sql_text_cell(_jobs.c.document_id), _jobs.c.status,
            _sql_rfc3339(_jobs.c.completed_at), *(_sql_text_cell(field) for field in fields),
        )
        .select_from(joined)
        .where(*job_filter.where())
        .order_by(*newest_first(job_filter), order)
    )


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


def _copy_item_rows(
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


def _jobs_statement(job_filter: JobFilter, dialect: str) -> sa.Select[Any]:
    return (
        sa.select(
            _jobs.c.id, _jobs.c.document_id, _jobs.c.job_type, _jobs.c.status, _jobs.c.error_message,
            _jobs.c.completed_at, _jobs.c.error_details, _jobs.c.error_format,
        )
        .where(*job_filter.where())
        .order_by(*newest_first(job_filter))
    )


def entities_filter(job_filter: JobFilter) -> JobFilter:
    """``job_filter`` with its statuses replaced by ``Completed`` alone (only
    completed jobs have entities)."""
    return replace(job_filter, statuses=(JobStatus.COMPLETED,))


def _entities_statement(job_filter: JobFilter, dialect: str) -> sa.Select[Any]:
    completed = entities_filter(job_filter)
    return (
        sa.select(
            _entities.c.job_id, _jobs.c.document_id, _jobs.c.completed_at, _entities.c.position,
            _entities.c.entity_type, _entities.c.text, _entities.c.code, _entities.c.code_system,
            _entities.c.confidence, _entities.c.page, _entities.c.span_start, _entities.c.span_end,
            _entities.c.attributes,
        )
        .join_from(_entities, _jobs, _entities.c.job_id == _jobs.c.id)
        .where(*completed.where())
        .order_by(*newest_first(completed), _entities.c.position)
    )


# -- records: a batch of database rows -> value tuples in the export's column order ----
#
# The CSV ones carry neutralised strings ("" for None, JSON values as JSON
# text); the NDJSON ones the stored values.

Batch = Sequence[sa.Row[Any]]
Records = list[tuple[Any, ...]]


class _JobHead:
    """The per-job cells of consecutive item rows, converted once per job.

    The items query reads the id as text (32 hex digits on SQLite, the
    dashed form on PostgreSQL) and ``completed_at`` without
    :class:`UTCDateTime`; here they become the canonical UUID text and, through
    ``UTCDateTime``'s own normalisation, RFC 3339 UTC.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self.job_id: str | None = None
        self.csv: tuple[str, ...] = ()
        self.raw: tuple[Any, ...] = ()

    def update(self, job_id: str, document_id: str, status: str, completed_at: datetime | None) -> None:
        self.job_id = job_id
        completed = rfc3339(_UTC_DATETIME.process_result_value(completed_at, self.dialect))
        # PostgreSQL's uuid text is already the canonical form; SQLite's is bare hex.
        canonical = job_id if len(job_id) == 36 else str(uuid.UUID(job_id))
        self.raw = (canonical, document_id, status, completed)
        self.csv = (self.raw[0], _text_cell(document_id), status, completed or "")


def _item_csv_records(head: _JobHead) -> Callable[[Batch], Records]:
    def records(batch: Batch) -> Records:
        out = []
        append, text = out.append, _text_cell
        for job_id, document_id, status, completed_at, code, severity, pointer, message in batch:
            if job_id != head.job_id:
                head.update(job_id, document_id, status, completed_at)
            append(head.csv + (text(code), text(severity), text(pointer), text(message)))
        return out

    return records


def _item_ndjson_records(head: _JobHead) -> Callable[[Batch], Records]:
    def records(batch: Batch) -> Records:
        out = []
        for job_id, document_id, status, completed_at, code, severity, pointer, message in batch:
            if job_id != head.job_id:
                head.update(job_id, document_id, status, completed_at)
            out.append(head.raw + (code, severity, pointer, message))
        return out

    return records


def _job_values(row: sa.Row[Any]) -> tuple[Any, ...]:
    details = row.error_details
    error_count = None
    if envelope_errors(details, row.error_format) is not None:
        error_count = details.get("error_count")
    return (
        str(row.id), row.document_id, row.job_type, row.status, row.error_message,
        rfc3339(row.completed_at), details, error_count,
    )


def _job_csv_records(batch: Batch) -> Records:
    out = []
    for row in batch:
        job_id, document_id, job_type, status, message, completed, details, count = _job_values(row)
        out.append((
            job_id, _text_cell(document_id), _text_cell(job_type), status, _text_cell(message),
            completed or "", _json_cell(details), "" if count is None else count,
        ))
    return out


def _job_ndjson_records(batch: Batch) -> Records:
    return [_job_values(row) for row in batch]


def _entity_csv_records(batch: Batch) -> Records:
    return [
        (
            str(job_id), _text_cell(document_id), rfc3339(completed_at) or "", position,
            _text_cell(entity_type), _text_cell(text), _text_cell(code), _text_cell(code_system), confidence,
            "" if page is None else page, span_start, span_end, _text_cell(attributes),
        )
        for (job_id, document_id, completed_at, position, entity_type, text, code, code_system, confidence,
             page, span_start, span_end, attributes) in batch
    ]


# -- streaming -------------------------------------------------------------------------

Statement = Callable[[JobFilter, str], sa.Select[Any]]


def _batches(job_filter: JobFilter, statement: Statement, batch_size: int) -> Iterator[Batch]:
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


def _stream(
    batches: Iterator[Batch],
    records: Callable[[Batch], Records],
    render: Callable[[Records], str],
    preamble: str,
    on_finish: OnFinish | None,
) -> Iterator[str]:
    """Yield ``preamble`` and one rendered chunk per batch; report the row count.

    The query runs before anything is yielded, so a database that cannot
    answer fails the response before its first byte. ``on_finish`` is called
    from ``finally``: when the rows run out, when the consumer closes the
    generator (a WSGI server does when the client goes away) and on an
    error. A generator that was never started runs nothing, so it is not
    called then.
    """
    row_count = 0
    try:
        first = True
        for batch in batches:
            rows = records(batch)
            text = render(rows)
            if first:
                text, first = preamble + text, False
            row_count += len(rows)
            yield text
        if first:  # no rows at all: the header alone
            yield preamble
    finally:
        batches.close()  # ends the read transaction before the callback runs
        if on_finish is not None:
            on_finish(row_count)


def _same(rows: Records) -> Records:
    return rows


def _join_copy_rows(rows: Records) -> str:
    """``COPY`` rows without their LF, as CSV text with CRLF row ends."""
    return (b"\r\n".join(rows) + b"\r\n").decode("utf-8")  # type: ignore[arg-type]


def _csv_renderer(columns: Sequence[str]) -> tuple[str, Callable[[Records], str]]:
    """The BOM and header line, and a function writing records as RFC 4180 CSV text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def render(records: Records) -> str:
        writer.writerows(records)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    return "\ufeff" + render([columns]), render


def _ndjson_renderer(columns: Sequence[str]) -> Callable[[Records], str]:
    def render(records: Records) -> str:
        return "".join([json.dumps(dict(zip(columns, r)), ensure_ascii=False) + "\n" for r in records])

    return render


def iter_job_errors_csv(
    job_filter: JobFilter,
    rows: ExportRows = ExportRows.ITEMS,
    *,
    on_finish: OnFinish | None = None,
    batch_size: int | None = None,
    use_copy: bool | None = None,
    statement_timeout_ms: int = DEFAULT_EXPORT_STATEMENT_TIMEOUT_MS,
) -> Iterator[str]:
    """Yield the job-error CSV of the jobs ``job_filter`` chooses, newest first.

    Args:
        job_filter: which jobs (the dashboard's filter).
        rows: ``items``: :data:`ITEM_COLUMNS`, one row per error item (see
            the module docstring for jobs without items); ``jobs``:
            :data:`JOB_ERROR_COLUMNS`, one row per job, ``error_details`` as
            JSON text (keys sorted), ``error_count`` the envelope's (empty
            when the details are not an envelope).
        on_finish: see :data:`OnFinish`; gets the number of data rows.
        batch_size: rows per fetch and per chunk (default :data:`STREAM_BATCH_SIZE`;
            on the ``COPY`` path rows per chunk, default :data:`COPY_CHUNK_ROWS`).
        use_copy: write ``rows=items`` with PostgreSQL's ``COPY`` (see the
            module docstring); default: on PostgreSQL. Both paths give the
            same bytes (tests/integration/test_exports_copy.py).
        statement_timeout_ms: the ``COPY``'s ``statement_timeout``, in
            milliseconds (the app passes ``EXPORT_STATEMENT_TIMEOUT_MS``): a
            download slower than this is cut off by the server.

    Yields:
        Text chunks: the first starts with a UTF-8 BOM and the header row;
        rows end in CRLF; text cells neutralised (:func:`neutralise_formula`).

    Raises:
        sqlalchemy.exc.DBAPIError: the database failed (before the first
            chunk, or mid-stream: the body is then cut short).
        psycopg.Error: mid-stream on the ``COPY`` path, e.g. ``QueryCanceled``
            when the download outlives ``statement_timeout_ms``.
    """
    header, render = _csv_renderer(ITEM_COLUMNS if rows is ExportRows.ITEMS else JOB_ERROR_COLUMNS)
    if use_copy is None:
        use_copy = db.engine.dialect.name == "postgresql"
    if use_copy and rows is ExportRows.ITEMS:
        batches = _copy_item_rows(job_filter, batch_size or COPY_CHUNK_ROWS, statement_timeout_ms)
        return _stream(batches, _same, _join_copy_rows, header, on_finish)
    if rows is ExportRows.ITEMS:
        statement, records = job_error_items_select, _item_csv_records(_JobHead(db.engine.dialect))
    else:
        statement, records = _jobs_statement, _job_csv_records
    batches = _batches(job_filter, statement, batch_size or STREAM_BATCH_SIZE)
    return _stream(batches, records, render, header, on_finish)


def iter_job_errors_ndjson(
    job_filter: JobFilter,
    rows: ExportRows = ExportRows.ITEMS,
    *,
    on_finish: OnFinish | None = None,
    batch_size: int | None = None,
) -> Iterator[str]:
    """Yield the job-error NDJSON: one JSON object per line, keys the CSV's columns.

    Same rows, order and arguments as :func:`iter_job_errors_csv`. Strings
    are the stored ones (not neutralised); absent values ``null``;
    ``completed_at`` RFC 3339 UTC; with ``rows=jobs`` ``error_details`` is
    a JSON value and ``error_count`` an integer or ``null``.

    Raises:
        sqlalchemy.exc.DBAPIError: as :func:`iter_job_errors_csv`.
    """
    if rows is ExportRows.ITEMS:
        head = _JobHead(db.engine.dialect)
        columns, statement, records = ITEM_COLUMNS, job_error_items_select, _item_ndjson_records(head)
    else:
        columns, statement, records = JOB_ERROR_COLUMNS, _jobs_statement, _job_ndjson_records
    batches = _batches(job_filter, statement, batch_size or STREAM_BATCH_SIZE)
    return _stream(batches, records, _ndjson_renderer(columns), "", on_finish)


def iter_entities_csv(
    job_filter: JobFilter, *, on_finish: OnFinish | None = None, batch_size: int | None = None
) -> Iterator[str]:
    """Yield the CSV of the entities of ``Completed`` jobs matching ``job_filter``.

    The filter's statuses are replaced by ``Completed`` (:func:`entities_filter`);
    its other conditions apply. One row per entity (:data:`ENTITY_COLUMNS`),
    jobs newest first, entities in the worker's order (``position``).
    ``confidence`` is 0-1, ``page`` 1-based (empty when unknown),
    ``span_start``/``span_end`` 0-based character offsets (end exclusive),
    ``attributes`` JSON text (keys sorted). BOM, CRLF and neutralisation as
    :func:`iter_job_errors_csv`.

    Raises:
        sqlalchemy.exc.DBAPIError: as :func:`iter_job_errors_csv`.
    """
    header, render = _csv_renderer(ENTITY_COLUMNS)
    batches = _batches(job_filter, _entities_statement, batch_size or STREAM_BATCH_SIZE)
    return _stream(batches, _entity_csv_records, render, header, on_finish)
