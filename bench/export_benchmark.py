"""Export benchmark: the job-error CSV export against PostgreSQL's own COPY.

Run it on a throwaway PostgreSQL (scripts/with-postgres starts one and sets
TEST_DATABASE_URL)::

    scripts/with-postgres /tmp/probe/bin/python bench/export_benchmark.py [--jobs 200000]

It drops and re-creates the ``public`` schema of that database (loopback
only), migrates it with the app's migrations, loads ``--jobs`` failed jobs
with COPY (90 % ``Validation_Failed`` with a normalized envelope of 1-5
items, 10 % ``Failed`` without details; a few messages with commas, quotes
or a leading ``=``), then measures, in this one process:

1. ``copy``: ``COPY (<the export's own SELECT: one row per error item, same
   filter and order>) TO STDOUT (FORMAT csv)`` read through psycopg -- what
   the database alone can deliver;
2. ``cursor``: the same SELECT through a psycopg server-side cursor, rows
   fetched and dropped -- the ceiling of any export built on Python rows;
3. ``export``: ``GET /exports/job-errors.csv`` (the default: one row per
   item, the dashboard's default filter) through the Flask test client,
   signed in as a ``support`` account, reading the streamed body to the
   end; on PostgreSQL this is the export's ``COPY`` path;
3b. ``export (Python path)``: the same rows from
   :func:`app.services.exports.iter_job_errors_csv` with ``use_copy=False``
   (server-side cursor, ``csv`` module), as SQLite exports, for comparison;
4. ``export (tracemalloc)``: the same with tracemalloc on, for the peak of
   Python allocations (tracemalloc slows Python down, so phase 3 is timed
   without it).

Phases 1 to 3 alternate ``--runs`` times after a warm-up COPY, so on a
shared machine all meet the same load; the best run of each is kept and
the export/COPY ratio of each round is printed too, with the load average.

Rows per second are data rows (the header not counted), checked against a
``count(*)`` of the same rows. Peak RSS is ``ru_maxrss`` of the process
(``getrusage``) before and after the exports. Targets: export >= half of
COPY's rows/s; peak memory < 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_schema, loopback_database_url, signed_in_client  # noqa: E402 (bench/ is on sys.path as the script's folder)
MB = 1024 * 1024

CODES = [
    ("schema.required", "missing required property 'code'", "/entities/{n}"),
    ("schema.maxLength", "must be at most 200 character(s) long", "/entities/{n}/text"),
    ("unit.not_ucum", "unit is not a valid UCUM code (e.g. mg/dL, mmol/L, 10*3/uL)",
     "/entities/{n}/value/unit"),
    ("code.unknown_icd10cm", "code is not in ICD-10-CM 2025", "/entities/{n}/code"),
    ("pydantic.string_too_long", "String should have at most 200 characters", "/entities/{n}/text"),
    ("fhir.code-invalid", "The code provided is not in the value set", "/entry/{n}/resource/code/coding/0"),
    ("schema.minimum", "must be at least 0", "/entities/{n}/span/start"),
]
SEVERITIES = ["error"] * 8 + ["warning", "fatal"]
MESSAGES = [
    "Entity validation failed: {k} problem(s)",
    "Entity validation failed, see \"details\" ({k} items)",
    "=worker output rejected ({k})",
]


def _rows(jobs: int, seed: int):
    """Yield COPY rows of ``processing_jobs`` and count the export rows they make."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for n in range(jobs):
        created = start + timedelta(seconds=n * 3)
        completed = created + timedelta(seconds=rng.randint(5, 300))
        if rng.random() < 0.1:
            message = f"Worker crashed: exit code {rng.randint(1, 139)}"
            status, details, fmt = "Failed", None, None
        else:
            k = rng.randint(1, 5)
            items = []
            for _ in range(k):
                code, text, pointer = rng.choice(CODES)
                items.append({"code": code, "severity": rng.choice(SEVERITIES), "message": text,
                              "pointer": pointer.format(n=rng.randint(0, 40))})
            details = json.dumps({"schema_version": 1, "errors": items, "error_count": k, "truncated": False})
            status, message, fmt = "Validation_Failed", rng.choice(MESSAGES).format(k=k), "normalized"
        yield (uuid.UUID(int=rng.getrandbits(128), version=4), f"bench/doc-{n:08d}.pdf", "entity_extraction",
               status, message, details, fmt, created, created, completed, completed)


def prepare_database(url: str, jobs: int, seed: int) -> None:
    """Fresh schema, the app's migrations, then ``jobs`` failed jobs by COPY."""
    import psycopg


    fresh_schema(url)
    columns = ("id, document_id, job_type, status, error_message, error_details, error_format, "
               "created_at, started_at, completed_at, updated_at")
    with psycopg.connect(_dsn(url)) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY processing_jobs ({columns}) FROM STDIN") as copy:
                for row in _rows(jobs, seed):
                    copy.write_row(row)
        connection.execute("ANALYZE processing_jobs")


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def copy_select(url: str) -> str:
    """The items export's own SELECT (the dashboard's default filter: failures,
    not acknowledged), compiled for PostgreSQL with its values inline."""
    import sqlalchemy as sa

    from app.web.query import DEFAULT_DASHBOARD_ACKNOWLEDGED, DEFAULT_DASHBOARD_STATUSES
    from app.services.exports import job_error_items_select
    from app.services.exports.queries import driver_statement
    import psycopg
    from app.services.processing_jobs.job_filter import JobFilter

    job_filter = JobFilter(statuses=DEFAULT_DASHBOARD_STATUSES, acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED)
    engine = sa.create_engine(url)
    try:
        statement = job_error_items_select(job_filter, "postgresql")
        with engine.connect() as connection:  # the server version decides some of the SQL
            # As the export sends its COPY: the values through each type's
            # bind processor, merged by psycopg (SQLAlchemy has no literal
            # form for a JSONB value such as the item positions' [-1]).
            text, params = driver_statement(statement, connection.dialect)
            return psycopg.ClientCursor(connection.connection.driver_connection).mogrify(text, params)
    finally:
        engine.dispose()


def measure_copy(url: str, select: str) -> tuple[int, int, float]:
    """(rows, bytes, seconds) of COPY (select) TO STDOUT (FORMAT csv)."""
    import psycopg

    with psycopg.connect(_dsn(url)) as connection, connection.cursor() as cursor:
        rows = size = 0
        began = time.perf_counter()
        with cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT csv)") as copy:
            for data in copy:
                size += len(data)
                rows += bytes(data).count(b"\n")  # the generated data has no line break in a cell
        return rows, size, time.perf_counter() - began


def measure_cursor(url: str, select: str, batch_size: int) -> tuple[int, int, float]:
    """(rows, 0, seconds) of the same SELECT through a psycopg server-side
    cursor, rows fetched and dropped: the ceiling of any export that reads
    Python rows, before formatting a single cell."""
    import psycopg

    with psycopg.connect(_dsn(url)) as connection:
        began = time.perf_counter()
        with connection.cursor(name="bench_export") as cursor:
            cursor.execute(select)
            rows = 0
            while batch := cursor.fetchmany(batch_size):
                rows += len(batch)
        return rows, 0, time.perf_counter() - began


def expected_rows(url: str, select: str) -> int:
    import psycopg

    with psycopg.connect(_dsn(url)) as connection:
        return connection.execute(f"SELECT count(*) FROM ({select}) AS rows").fetchone()[0]


def measure_export(client, path: str) -> tuple[int, int, float]:
    """(rows, bytes, seconds) of reading ``path``'s streamed body to the end."""
    began = time.perf_counter()
    response = client.get(path, buffered=False)
    if response.status_code != 200:
        raise SystemExit(f"{path} answered {response.status_code}")
    rows = size = 0
    for chunk in response.response:
        size += len(chunk)
        rows += chunk.count(b"\r\n")
    response.close()
    return rows - 1, size, time.perf_counter() - began  # minus the header


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="throwaway PostgreSQL on loopback (default: TEST_DATABASE_URL)")
    parser.add_argument("--jobs", type=int, default=200_000, help="failed jobs to load (default 200000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side; the best is kept")
    parser.add_argument("--seed", type=int, default=20250301)
    parser.add_argument("--skip-load", action="store_true", help="reuse the jobs already loaded")
    args = parser.parse_args()
    url = loopback_database_url(parser, args)

    if not args.skip_load:
        began = time.perf_counter()
        print(f"loading {args.jobs} jobs ...", flush=True)
        prepare_database(url, args.jobs, args.seed)
        print(f"  loaded in {time.perf_counter() - began:.1f} s", flush=True)
    select = copy_select(url)
    expected = expected_rows(url, select)
    print(f"export rows (one per error item): {expected}", flush=True)

    from app import create_app
    from app.web.query import DEFAULT_DASHBOARD_ACKNOWLEDGED, DEFAULT_DASHBOARD_STATUSES
    from app.extensions import db
    from app.services.exports import STREAM_BATCH_SIZE, iter_job_errors_csv
    from app.services.processing_jobs.job_filter import JobFilter

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    client = signed_in_client(app, "support")
    path = "/exports/job-errors.csv"
    default = JobFilter(statuses=DEFAULT_DASHBOARD_STATUSES, acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED)

    def measure_python_path() -> tuple[int, int, float]:
        with app.app_context():
            began = time.perf_counter()
            rows = size = 0
            for chunk in iter_job_errors_csv(default, use_copy=False):
                data = chunk.encode("utf-8")
                size += len(data)
                rows += data.count(b"\r\n")
            db.session.remove()
            return rows - 1, size, time.perf_counter() - began

    measure_copy(url, select)  # warm the cache: both sides then read from memory
    load_before = os.getloadavg()[0]
    rss_before = maxrss_mb()
    copies, cursors, exports, pythons = [], [], [], []
    for _ in range(args.runs):  # interleaved, so every side meets the same load on a shared machine
        copies.append(measure_copy(url, select))
        cursors.append(measure_cursor(url, select, STREAM_BATCH_SIZE))
        exports.append(measure_export(client, path))
        pythons.append(measure_python_path())
    rss_after = maxrss_mb()
    load_after = os.getloadavg()[0]
    for rows, _size, _seconds in copies + cursors + exports + pythons:
        if rows != expected:
            raise SystemExit(f"row count mismatch: {rows} != {expected}")

    tracemalloc.start()
    traced = measure_export(client, path)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    copy_rows, copy_bytes, copy_s = min(copies, key=lambda r: r[2])
    export_rows, export_bytes, export_s = min(exports, key=lambda r: r[2])
    cursor_rows, _bytes, cursor_s = min(cursors, key=lambda r: r[2])
    copy_rate, export_rate = copy_rows / copy_s, export_rows / export_s
    print()
    print(f"{'phase':<24}{'rows':>10}{'MB':>9}{'seconds':>10}{'rows/s':>12}")
    print(f"{'copy (psycopg)':<24}{copy_rows:>10}{copy_bytes / MB:>9.1f}{copy_s:>10.2f}{copy_rate:>12,.0f}")
    print(f"{'cursor (psycopg, bare)':<24}{cursor_rows:>10}{'-':>9}{cursor_s:>10.2f}"
          f"{cursor_rows / cursor_s:>12,.0f}")
    print(f"{'export (test client)':<24}{export_rows:>10}{export_bytes / MB:>9.1f}{export_s:>10.2f}"
          f"{export_rate:>12,.0f}")
    python_rows, python_bytes, python_s = min(pythons, key=lambda r: r[2])
    print(f"{'export (Python path)':<24}{python_rows:>10}{python_bytes / MB:>9.1f}{python_s:>10.2f}"
          f"{python_rows / python_s:>12,.0f}")
    print(f"{'export (tracemalloc)':<24}{traced[0]:>10}{traced[1] / MB:>9.1f}{traced[2]:>10.2f}"
          f"{traced[0] / traced[2]:>12,.0f}")
    print()
    pairs = sorted((e[0] / e[2]) / (c[0] / c[2]) for c, e in zip(copies, exports))
    print(f"rounds: {args.runs}, interleaved (best kept); every run: "
          + ", ".join(f"copy {r / s:,.0f}" for r, _b, s in copies) + "; "
          + ", ".join(f"export {r / s:,.0f}" for r, _b, s in exports) + " rows/s")
    print(f"export / COPY of each round: {', '.join(f'{p:.2f}' for p in pairs)}")
    print(f"load average (1 min) on {os.cpu_count()} CPUs: {load_before:.1f} before, {load_after:.1f} after")
    print(f"tracemalloc peak during an export: {peak / MB:.1f} MB")
    print(f"peak RSS (ru_maxrss): {rss_before:.0f} MB before the exports, {rss_after:.0f} MB after")
    ratio = export_rate / copy_rate
    speed_ok, memory_ok = ratio >= 0.5, max(peak / MB, rss_after) < 200
    print(f"target export >= 0.5 x COPY: {ratio:.2f} x -> {'met' if speed_ok else 'MISSED'}")
    print(f"target peak memory < 200 MB: {'met' if memory_ok else 'MISSED'}")
    return 0 if speed_ok and memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
