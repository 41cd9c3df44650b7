"""The export streams: CSV and NDJSON text, chunk by chunk, in constant memory.

One chunk of text is yielded per batch of :data:`STREAM_BATCH_SIZE` rows
(or :data:`COPY_CHUNK_ROWS` rows of PostgreSQL's ``COPY``), so memory is
bounded by the batch size, not by the export. Formats and paths are
described in docs/exports.md.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from functools import partial

from app.config import DEFAULT_EXPORT_STATEMENT_TIMEOUT_MS
from app.extensions import db
from app.services.exports import queries
from app.services.exports.columns import ENTITY_EXPORT, ITEM_EXPORT, JOB_ERROR_EXPORT, Column
from app.services.exports.queries import Batch, ItemRows, Records
from app.services.exports.cells import file_escaped
from app.services.processing_jobs.job_filter import JobFilter

#: Rows read from the database per fetch, and per chunk of the response.
#: bench/export_benchmark.py measured no gain from larger batches.
STREAM_BATCH_SIZE = 1000

#: PostgreSQL items CSV: rows per chunk of the response on the ``COPY`` path.
COPY_CHUNK_ROWS = 2_000

#: Called once when an export stream ends -- read to the end, closed early
#: (the client went away) or failed -- with the number of data rows handed
#: out (the CSV header not counted) and whether the stream reached its end
#: (``False``: closed early or failed, so the file is cut short). The read
#: transaction is over by then, so the callback may write (an audit event,
#: say) through ``db.session``.
OnFinish = Callable[[int, bool], None]


class ExportRows(StrEnum):
    """Rows of a job-error export: one per error item or one per job (the
    ``rows`` query parameter, :func:`app.web.query.parse_rows`)."""

    ITEMS = "items"  # one row per error item (the default)
    JOBS = "jobs"  # one row per job


class ExportItems(StrEnum):
    """Which items a one-row-per-item export writes when the filter names an
    ``error_code`` (the ``items`` query parameter, :func:`app.web.query.parse_items`)."""

    MATCHING = "matching"  # only the items with that code (the default)
    ALL = "all"  # every item of the jobs the filter chooses


#: The file name of each job-error export, before its timestamp: the two
#: kinds of rows must not overwrite each other in a Downloads folder.
EXPORT_FILE_NAMES = {ExportRows.ITEMS: "job-errors-per-item", ExportRows.JOBS: "job-errors-per-job"}


def _stream(
    batches: Iterator[Batch],
    records: Callable[[Batch], Records],
    render: Callable[[Records], str],
    preamble: str,
    on_finish: OnFinish | None,
) -> Iterator[str]:
    """Yield ``preamble`` and one rendered chunk per batch; report the row
    count and whether the last chunk was handed out.

    The query runs before anything is yielded, so a database that cannot
    answer fails the response before its first byte. ``on_finish`` is called
    from ``finally``: when the rows run out, when the consumer closes the
    generator (a WSGI server does when the client goes away) and on an
    error. A generator that was never started runs nothing, so it is not
    called then.
    """
    row_count, complete = 0, False
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
        complete = True
    finally:
        batches.close()  # ends the read transaction before the callback runs
        if on_finish is not None:
            on_finish(row_count, complete)


def _same(rows: Records) -> Records:
    return rows


def _join_copy_rows(rows: Records) -> str:
    """``COPY`` rows without their LF, as CSV text with CRLF row ends and
    the acting control characters and the bidi controls escaped as the
    Python path's cells have them (:func:`~app.services.exports.cells.file_escaped`): only worker text
    can hold one, and the escape (``\\u001b``) holds no character that CSV
    quotes, so doing it on the whole text gives the same bytes."""
    return file_escaped((b"\r\n".join(rows) + b"\r\n").decode("utf-8"))  # type: ignore[arg-type]


def _csv_renderer(columns: Sequence[Column]) -> tuple[str, Callable[[Records], str]]:
    """The BOM and header line, and a function writing records as RFC 4180 CSV text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def render(records: Records) -> str:
        writer.writerows(records)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    return "\ufeff" + render([tuple(column.name for column in columns)]), render


#: U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR as JSON escapes.
_LINE_SEPARATORS = {0x2028: "\\u2028", 0x2029: "\\u2029"}


def _ndjson_renderer(columns: Sequence[Column]) -> Callable[[Records], str]:
    names = tuple(column.name for column in columns)

    def render(records: Records) -> str:
        # json leaves DEL and the C1 controls (CSI...) as they are, and a
        # terminal that prints the file would act on them: written as JSON
        # escapes (only strings can hold them), the lines read back the same.
        # U+2028 and U+2029 too: a line reader that follows Unicode's line
        # breaks (Python's str.splitlines, JavaScript's old parsers) split
        # a record at them (a trial). JSON allows them only in strings.
        # The bidi controls as well: a terminal printing the file reversed
        # the text after an override (file_escaped).
        text = file_escaped("".join([json.dumps(dict(zip(names, r)), ensure_ascii=False) + "\n" for r in records]))
        return text.translate(_LINE_SEPARATORS) if "\u2028" in text or "\u2029" in text else text

    return render


def iter_job_errors_csv(
    job_filter: JobFilter,
    rows: ExportRows = ExportRows.ITEMS,
    *,
    on_finish: OnFinish | None = None,
    batch_size: int | None = None,
    use_copy: bool | None = None,
    statement_timeout_ms: int = DEFAULT_EXPORT_STATEMENT_TIMEOUT_MS,
    items: ItemRows = ItemRows(),
) -> Iterator[str]:
    """Yield the job-error CSV of the jobs ``job_filter`` chooses, newest first.

    Args:
        job_filter: which jobs (the dashboard's filter).
        rows: ``items``: :data:`~app.services.exports.columns.ITEM_EXPORT`,
            one row per error item (docs/exports.md for jobs without items;
            with an ``error_code`` only the items with that code, unless
            ``items`` says otherwise);
            ``jobs``: :data:`~app.services.exports.columns.JOB_ERROR_EXPORT`,
            one row per job, ``error_details`` as JSON text (keys sorted),
            ``error_count`` the envelope's (empty when the details are not an
            envelope).
        on_finish: see :data:`OnFinish`; gets the number of data rows.
        batch_size: rows per fetch and per chunk (default :data:`STREAM_BATCH_SIZE`;
            on the ``COPY`` path rows per chunk, default :data:`COPY_CHUNK_ROWS`).
        use_copy: write ``rows=items`` with PostgreSQL's ``COPY``
            (docs/exports.md); default: on PostgreSQL. Both paths give the
            same bytes (tests/integration/test_exports_copy.py).
        statement_timeout_ms: the ``COPY``'s ``statement_timeout``, in
            milliseconds (the app passes ``EXPORT_STATEMENT_TIMEOUT_MS``): a
            download slower than this is cut off by the server.
        items: which items (``rows=items`` only) and the ``job_url`` prefix
            (both ``rows``; :class:`~app.services.exports.queries.ItemRows`).

    Yields:
        Text chunks: the first starts with a UTF-8 BOM and the header row;
        rows end in CRLF; text cells neutralised
        (:func:`~app.services.exports.cells.neutralise_formula`).

    Raises:
        sqlalchemy.exc.DBAPIError: the database failed (before the first
            chunk, or mid-stream: the body is then cut short).
        psycopg.Error: mid-stream on the ``COPY`` path, e.g. ``QueryCanceled``
            when the download outlives ``statement_timeout_ms``.
    """
    columns = ITEM_EXPORT if rows is ExportRows.ITEMS else JOB_ERROR_EXPORT
    header, render = _csv_renderer(columns)
    if use_copy is None:
        use_copy = db.engine.dialect.name == "postgresql"
    if use_copy and rows is ExportRows.ITEMS:
        chunk_rows = batch_size or COPY_CHUNK_ROWS
        batches = queries.copy_item_rows(job_filter, chunk_rows, statement_timeout_ms, items)
        return _stream(batches, _same, _join_copy_rows, header, on_finish)
    statement = partial(queries.job_error_items_select if rows is ExportRows.ITEMS else queries.jobs_select,
                        options=items)
    batches = queries.batches(job_filter, statement, batch_size or STREAM_BATCH_SIZE)
    return _stream(batches, queries.records(columns, csv=True), render, header, on_finish)


def iter_job_errors_ndjson(
    job_filter: JobFilter,
    rows: ExportRows = ExportRows.ITEMS,
    *,
    on_finish: OnFinish | None = None,
    batch_size: int | None = None,
    items: ItemRows = ItemRows(),
) -> Iterator[str]:
    """Yield the job-error NDJSON: one JSON object per line, keys the CSV's columns.

    Same rows, order and arguments as :func:`iter_job_errors_csv`. Strings
    are the stored ones (not neutralised); absent values ``null``;
    ``completed_at`` RFC 3339 UTC; with ``rows=jobs`` ``error_details`` is
    a JSON value and ``error_count`` an integer or ``null``.

    Raises:
        sqlalchemy.exc.DBAPIError: as :func:`iter_job_errors_csv`.
    """
    statement: queries.Statement
    if rows is ExportRows.ITEMS:
        columns, statement = ITEM_EXPORT, partial(queries.job_error_items_select, options=items)
    else:
        columns, statement = JOB_ERROR_EXPORT, partial(queries.jobs_select, options=items)
    batches = queries.batches(job_filter, statement, batch_size or STREAM_BATCH_SIZE)
    return _stream(batches, queries.records(columns, csv=False), _ndjson_renderer(columns), "", on_finish)


def iter_entities_csv(
    job_filter: JobFilter, *, on_finish: OnFinish | None = None, batch_size: int | None = None
) -> Iterator[str]:
    """Yield the CSV of the entities of ``Completed`` jobs matching ``job_filter``.

    The filter's statuses are replaced by ``Completed``
    (:func:`~app.services.exports.queries.entities_filter`); its other
    conditions apply. One row per entity
    (:data:`~app.services.exports.columns.ENTITY_EXPORT`), jobs newest first,
    entities in the worker's order (``position``). ``confidence`` is 0-1,
    ``page`` 1-based (empty when unknown), ``span_start``/``span_end`` 0-based
    character offsets (end exclusive), ``attributes`` JSON text (keys
    sorted). BOM, CRLF and neutralisation as :func:`iter_job_errors_csv`.

    Raises:
        sqlalchemy.exc.DBAPIError: as :func:`iter_job_errors_csv`.
    """
    header, render = _csv_renderer(ENTITY_EXPORT)
    batches = queries.batches(job_filter, queries.entities_select, batch_size or STREAM_BATCH_SIZE)
    return _stream(batches, queries.records(ENTITY_EXPORT, csv=True), render, header, on_finish)
