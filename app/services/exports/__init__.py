"""The exports of job errors and extracted entities, streamed in constant memory.

Three exports over the jobs a
:class:`~app.services.processing_jobs.job_filter.JobFilter` chooses, newest
first: job errors one row per error item or one per job (CSV and NDJSON),
and the extracted entities of ``Completed`` jobs (CSV). How rows, CSV,
NDJSON, streaming and PostgreSQL's ``COPY`` path work, and how to add a
column: docs/exports.md.

* :mod:`~app.services.exports.columns`: each export's columns, one
  :class:`~app.services.exports.columns.Column` spec per column;
* :mod:`~app.services.exports.cells`: CSV cells and their SQL twins;
* :mod:`~app.services.exports.queries`: the SELECTs, the records, the reads;
* :mod:`~app.services.exports.streaming`: the ``iter_*`` streams the views use.
"""

from app.services.exports.cells import neutralise_formula
from app.services.exports.columns import ENTITY_COLUMNS, ITEM_COLUMNS, JOB_ERROR_COLUMNS
from app.services.exports.columns import DEFAULT_JOB_URL_PREFIX
from app.services.exports.queries import ItemRows, copy_items_select, entities_filter, job_error_items_select
from app.services.exports.streaming import (
    COPY_CHUNK_ROWS,
    EXPORT_FILE_NAMES,
    STREAM_BATCH_SIZE,
    ExportItems,
    ExportRows,
    OnFinish,
    iter_entities_csv,
    iter_job_errors_csv,
    iter_job_errors_ndjson,
)

__all__ = [
    "COPY_CHUNK_ROWS",
    "DEFAULT_JOB_URL_PREFIX",
    "EXPORT_FILE_NAMES",
    "ENTITY_COLUMNS",
    "ITEM_COLUMNS",
    "JOB_ERROR_COLUMNS",
    "STREAM_BATCH_SIZE",
    "ExportItems",
    "ExportRows",
    "ItemRows",
    "OnFinish",
    "copy_items_select",
    "entities_filter",
    "iter_entities_csv",
    "iter_job_errors_csv",
    "iter_job_errors_ndjson",
    "job_error_items_select",
    "neutralise_formula",
]
