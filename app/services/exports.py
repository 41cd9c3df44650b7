"""Rows of the job-error exports, streamed (constant memory).

CSV follows RFC 4180 via the standard ``csv`` module; cells that a
spreadsheet would read as a formula are neutralised per OWASP's "CSV
Injection" guidance (a leading ``'`` before ``=``, ``+``, ``-``, ``@``, tab or
carriage return). NDJSON (one JSON object per line) keeps the original strings.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from app.models import ProcessingJob
from app.services.processing_jobs.jobs import JobFilter, iter_jobs
from app.timestamps import rfc3339

#: Columns of the one-row-per-job export, in order.
JOB_ERROR_COLUMNS = (
    "job_id", "document_id", "job_type", "status", "error_message", "completed_at", "error_details",
)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def job_error_record(job: ProcessingJob) -> dict[str, Any]:
    """One export record: the :data:`JOB_ERROR_COLUMNS` of ``job``.

    ``completed_at`` is RFC 3339 UTC; ``error_details`` stays a JSON value.
    """
    return {
        "job_id": str(job.id),
        "document_id": job.document_id,
        "job_type": job.job_type,
        "status": job.status,
        "error_message": job.error_message,
        "completed_at": rfc3339(job.completed_at),
        "error_details": job.error_details,
    }


def neutralise_formula(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would evaluate (OWASP CSV injection)."""
    return "'" + cell if cell.startswith(_FORMULA_PREFIXES) else cell


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return neutralise_formula(value)


def iter_job_errors_csv(job_filter: JobFilter) -> Iterator[str]:
    """Yield the CSV export: a UTF-8 BOM (so Excel reads UTF-8), the header,
    then one CRLF-terminated row per job; ``error_details`` is JSON text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(JOB_ERROR_COLUMNS)
    yield "\ufeff" + take()
    for job in iter_jobs(job_filter):
        record = job_error_record(job)
        writer.writerow([_csv_cell(record[column]) for column in JOB_ERROR_COLUMNS])
        yield take()


def iter_job_errors_ndjson(job_filter: JobFilter) -> Iterator[str]:
    """Yield the NDJSON export: one JSON object (:func:`job_error_record`) per line."""
    for job in iter_jobs(job_filter):
        yield json.dumps(job_error_record(job), ensure_ascii=False, sort_keys=False) + "\n"
