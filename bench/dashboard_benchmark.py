"""Dashboard benchmark: ``/jobs`` and its aggregates on a large table.

Run it on a throwaway PostgreSQL (scripts/with-postgres starts one and sets
TEST_DATABASE_URL)::

    scripts/with-postgres /tmp/probe/bin/python bench/dashboard_benchmark.py --jobs 1000000

It drops and re-creates the ``public`` schema of that database (loopback
only), builds it with the app's migrations, then loads ``--jobs`` jobs with
COPY, in ``created_at`` order as a live system inserts them:

* 85 % failures: 88 % of them ``Validation_Failed`` with a normalized
  envelope of 1-6 items whose codes come from 40 codes with a Zipf
  (s = 1.5) distribution, 12 % ``Failed`` with a free-form message (half
  with free-form details); 5 % of the failures older than three days are
  acknowledged;
* the rest ``Completed`` (13 %), ``Pending`` (1 %) and ``Processing`` (1 %);
* ``created_at`` uniform over the last 90 days, ``completed_at`` 2 s to
  15 min later, document ids ``doc-0001234``.

The non-primary-key indexes are dropped for the load and re-created from
their own ``pg_indexes`` definitions (the same indexes the migrations made,
built in one pass), then ``VACUUM (ANALYZE)`` (autovacuum's steady state).

Then, in this one process, it measures (``--runs`` rounds after
``--warmup`` rounds; the scenarios interleaved round by round so that noise
from other processes spreads over all of them):

* service calls in an app context: :func:`pagination.list_jobs` (first page of the
  default filter; page 501 reached by following ``next_cursor``; a page 90 %
  down the listing; first page filtered by a rare and by a common
  ``error_code``) and :func:`dashboard_stats.summarize` (default filter, both
  codes), each call in its own session as a request would;
* the page ``GET /jobs?...`` through the Flask test client, signed in as an
  admin (list + template; the page frames its summary), and the summary it
  frames, ``GET /jobs/summary?...`` (the counts, top codes and chart: list
  of ``summarize`` + template), each twice per round: **cold**, with the
  summary cache emptied first (the first view of a filter, or one after
  ``DASHBOARD_STATS_TTL`` ran out), and **warm**, straight after.

Prints median, p95 and max in ms and writes ``EXPLAIN (ANALYZE, BUFFERS)`` of
every statement the scenarios send to ``--plans`` (default
/tmp/dashboard-plans.txt), flagging a ``Seq Scan on processing_jobs``.
Target: each page under 50 ms median, cold and warm (the summary is
reported beside them: it is the counts, a request of its own). Exits 1 when
a page misses it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_schema, loopback_database_url, signed_in_client  # noqa: E402 (bench/ is on sys.path as the script's folder)
TARGET_MS = 50.0
PAGE_SIZE = 50  # the dashboard's default limit (app.web.query.DEFAULT_PAGE_SIZE)

#: 40 codes, most frequent first (Zipf rank order).
CODES = [
    ("schema.required", "missing required property 'code'", "/entities/{n}"),
    ("code.unknown_icd10cm", "code is not in ICD-10-CM 2025", "/entities/{n}/code"),
    ("unit.not_ucum", "unit is not a valid UCUM code", "/entities/{n}/value/unit"),
    ("schema.maxLength", "must be at most 200 character(s) long", "/entities/{n}/text"),
    ("pydantic.string_too_long", "String should have at most 200 characters", "/entities/{n}/text"),
    ("span.out_of_range", "span ends after the end of the document", "/entities/{n}/span/end"),
    ("fhir.code-invalid", "The code provided is not in the value set", "/entry/{n}/resource/code/coding/0"),
    ("schema.type", "must be a number", "/entities/{n}/confidence"),
    ("entity.low_confidence", "confidence below the accepted 0.5", "/entities/{n}/confidence"),
    ("code.unknown_snomed", "code is not in SNOMED CT (2025-03)", "/entities/{n}/code"),
    ("schema.enum", "must be one of the allowed values", "/entities/{n}/entity_type"),
    ("pydantic.missing", "Field required", "/entities/{n}/span"),
    ("fhir.required", "Minimum required = 1, but only found 0", "/entry/{n}/resource/status"),
    ("schema.minimum", "must be at least 0", "/entities/{n}/span/start"),
    ("code.unknown_loinc", "code is not in LOINC 2.78", "/entities/{n}/code"),
    ("span.overlap", "span overlaps the previous entity", "/entities/{n}/span"),
    ("pydantic.float_parsing", "Input should be a valid number", "/entities/{n}/confidence"),
    ("schema.pattern", "does not match the required pattern", "/entities/{n}/code"),
    ("date.in_future", "date is after the document date", "/entities/{n}/value"),
    ("fhir.value", "The value is not valid for its type", "/entry/{n}/resource/valueQuantity/value"),
    ("code.unknown_rxnorm", "code is not in RxNorm", "/entities/{n}/code"),
    ("schema.additionalProperties", "must not have additional properties", "/entities/{n}"),
    ("pydantic.literal_error", "Input should be 'condition', 'medication' or 'lab'", "/entities/{n}/entity_type"),
    ("entity.duplicate", "same entity already extracted at this span", "/entities/{n}"),
    ("unit.incompatible", "unit is not compatible with the LOINC code", "/entities/{n}/value/unit"),
    ("fhir.structure", "Unknown element", "/entry/{n}/resource"),
    ("schema.format", "must be a valid date", "/entities/{n}/value"),
    ("pydantic.int_parsing", "Input should be a valid integer", "/entities/{n}/span/page"),
    ("span.page_missing", "page is beyond the document's page count", "/entities/{n}/span/page"),
    ("fhir.invariant", "Constraint failed: the quantity has a unit", "/entry/{n}/resource/valueQuantity"),
    ("code.deprecated_icd10cm", "code was retired from ICD-10-CM", "/entities/{n}/code"),
    ("schema.minItems", "must have at least 1 item", "/entities"),
    ("pydantic.extra_forbidden", "Extra inputs are not permitted", "/entities/{n}"),
    ("date.before_birth", "date is before the patient's birth date", "/entities/{n}/value"),
    ("fhir.business-rule", "The medication is not active", "/entry/{n}/resource"),
    ("schema.maximum", "must be <= 1", "/entities/{n}/confidence"),
    ("pydantic.value_error", "Value error, span is empty", "/entities/{n}/span"),
    ("fhir.not-found", "Referenced resource not found", "/entry/{n}/resource/subject"),
    ("fhir.duplicate", "Duplicate entry", "/entry/{n}"),
    ("code.unknown_atc", "code is not in ATC 2025", "/entities/{n}/code"),
]
CODE_WEIGHTS = [1 / rank**1.5 for rank in range(1, len(CODES) + 1)]
ITEM_COUNTS, ITEM_COUNT_WEIGHTS = [1, 2, 3, 4, 5, 6], [30, 25, 18, 12, 9, 6]
SEVERITIES = ["error"] * 8 + ["warning", "fatal"]
JOB_TYPES = ["entity_extraction"] * 8 + ["fhir_validation", "icd10_coding"]
CRASHES = [
    "Worker crashed: exit code 137 (out of memory)",
    "Timeout after 300 s waiting for the terminology server",
    "OCR failed: page 3 is not a readable image",
    "Model server answered 503 Service Unavailable",
    "Document could not be decoded as PDF",
]
ACKNOWLEDGERS = ["ops.alice", "ops.bruno", "ops.chen"]

#: Indexes of processing_jobs that back no constraint (all but the primary
#: key), dropped for the load and re-created from these definitions.
INDEX_QUERY = """
SELECT i.indexname, i.indexdef FROM pg_indexes AS i
WHERE i.schemaname = 'public' AND i.tablename = 'processing_jobs'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c
                  WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)
ORDER BY i.indexname
"""


# -- data ---------------------------------------------------------------------------------


def _rows(jobs: int, seed: int, now: datetime):
    """Yield COPY rows of ``processing_jobs``, oldest first."""
    rng = random.Random(seed)
    span = 90 * 86_400
    offsets = sorted((rng.random() * span for _ in range(jobs)), reverse=True)
    for n, offset in enumerate(offsets):
        created = now - timedelta(seconds=offset)
        started = completed = message = details = fmt = acked_at = acked_by = None
        draw = rng.random()
        if draw < 0.85:
            started = created + timedelta(seconds=rng.uniform(0.2, 3))
            completed = started + timedelta(seconds=min(900.0, 2 + rng.expovariate(1 / 40)))
            if rng.random() < 0.88:
                status, fmt = "Validation_Failed", "normalized"
                k = rng.choices(ITEM_COUNTS, ITEM_COUNT_WEIGHTS)[0]
                picked = rng.choices(CODES, CODE_WEIGHTS, k=k)
                items = [
                    {"code": code, "severity": rng.choice(SEVERITIES), "message": text,
                     "pointer": pointer.format(n=rng.randint(0, 60))}
                    for code, text, pointer in picked
                ]
                details = json.dumps({"schema_version": 1, "errors": items, "error_count": k, "truncated": False})
                names = ", ".join(dict.fromkeys(code for code, _t, _p in picked[:3]))
                more = ", …" if k > 3 else ""
                message = f"Entity validation failed: {k} error{'s' if k > 1 else ''} ({names}{more})"
            else:
                status, message = "Failed", rng.choice(CRASHES)
                if rng.random() < 0.5:
                    fmt = "free-form"
                    details = json.dumps({"exception": message.split(":")[0], "worker": f"worker-{rng.randint(1, 24)}",
                                          "attempt": rng.randint(1, 3)})
            if offset > 3 * 86_400 and rng.random() < 0.05:
                acked_at = completed + timedelta(hours=rng.uniform(1, 48))
                acked_by = rng.choice(ACKNOWLEDGERS)
        elif draw < 0.98:
            status = "Completed"
            started = created + timedelta(seconds=rng.uniform(0.2, 3))
            completed = started + timedelta(seconds=min(900.0, 2 + rng.expovariate(1 / 40)))
        elif draw < 0.99:
            status = "Pending"
        else:
            status = "Processing"
            started = created + timedelta(seconds=rng.uniform(0.2, 3))
        updated = acked_at or completed or started or created
        yield (uuid.UUID(int=rng.getrandbits(128), version=4), f"doc-{n:07d}", rng.choice(JOB_TYPES), status,
               message, details, fmt, created, started, completed, acked_at, acked_by, updated)


def prepare_database(url: str, jobs: int, seed: int) -> dict[str, float]:
    """Fresh schema by the app's migrations, then ``jobs`` jobs by COPY; returns phase seconds."""
    import psycopg


    phases: dict[str, float] = {}
    began = time.perf_counter()
    fresh_schema(url)
    phases["migrate"] = time.perf_counter() - began

    columns = ("id, document_id, job_type, status, error_message, error_details, error_format, "
               "created_at, started_at, completed_at, acknowledged_at, acknowledged_by, updated_at")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with psycopg.connect(_dsn(url), autocommit=True) as connection:
        indexes = connection.execute(INDEX_QUERY).fetchall()
        for name, _definition in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        began = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(f"COPY processing_jobs ({columns}) FROM STDIN") as copy:
            for row in _rows(jobs, seed, now):
                copy.write_row(row)
        phases["copy"] = time.perf_counter() - began
        began = time.perf_counter()
        connection.execute("SET maintenance_work_mem = '512MB'")
        for _name, definition in indexes:
            connection.execute(definition)
        phases["indexes"] = time.perf_counter() - began
        began = time.perf_counter()
        connection.execute("VACUUM (ANALYZE) processing_jobs")
        phases["vacuum analyze"] = time.perf_counter() - began
    return phases


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# -- measuring ----------------------------------------------------------------------------


def summary(samples: list[float]) -> tuple[float, float, float]:
    """(median, p95, max) in ms of samples in seconds (p95: nearest rank)."""
    ordered = sorted(samples)
    p95 = ordered[max(0, -(-95 * len(ordered) // 100) - 1)]
    return statistics.median(ordered) * 1000, p95 * 1000, ordered[-1] * 1000


def machine_facts(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(_dsn(url)) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
        shared_buffers = connection.execute("SHOW shared_buffers").fetchone()[0]
        work_mem = connection.execute("SHOW work_mem").fetchone()[0]
        jit = connection.execute("SHOW jit").fetchone()[0]
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu": cpu,
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "postgresql": version,
        "settings": f"shared_buffers={shared_buffers} work_mem={work_mem} jit={jit} (fsync=off, scripts/with-postgres)",
        "python": platform.python_version(),
    }


def data_facts(url: str, rare: str, common: str) -> list[str]:
    import psycopg

    lines = []
    with psycopg.connect(_dsn(url)) as connection:
        total, table = connection.execute(
            "SELECT count(*), pg_size_pretty(pg_table_size('processing_jobs')) FROM processing_jobs"
        ).fetchone()
        lines.append(f"jobs: {total:,}; table {table}")
        by_status = connection.execute(
            "SELECT status, count(*) FROM processing_jobs GROUP BY status ORDER BY count(*) DESC"
        ).fetchall()
        lines.append("per status: " + ", ".join(f"{s} {c:,}" for s, c in by_status))
        acked = connection.execute("SELECT count(*) FROM processing_jobs WHERE acknowledged_at IS NOT NULL").fetchone()[0]
        lines.append(f"acknowledged failures: {acked:,}")
        for label, code in (("rare", rare), ("common", common)):
            probe = json.dumps({"errors": [{"code": code}]})
            count = connection.execute(
                "SELECT count(*) FROM processing_jobs WHERE error_details @> %s::jsonb", (probe,)
            ).fetchone()[0]
            lines.append(f"{label} code {code}: in {count:,} jobs ({count / total:.2%})")
        sizes = connection.execute(
            "SELECT indexrelname, pg_size_pretty(pg_relation_size(indexrelid)) FROM pg_stat_user_indexes "
            "WHERE relname = 'processing_jobs' ORDER BY indexrelname"
        ).fetchall()
        lines.append("indexes: " + ", ".join(f"{n} {s}" for n, s in sizes))
    return lines


class Recorder:
    """Collects the statements (and parameters) an engine sends while on."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        import sqlalchemy as sa

        self.on = False
        self.statements: list[tuple[str, object]] = []

        @sa.event.listens_for(engine, "before_cursor_execute")
        def record(_conn, _cursor, statement, parameters, _context, _many):  # noqa: ANN001, ANN202
            if self.on:
                self.statements.append((statement, parameters))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="throwaway PostgreSQL on loopback (default: TEST_DATABASE_URL)")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs to load (default 1000000)")
    parser.add_argument("--runs", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--follow-pages", type=int, default=500, help="pages followed by next_cursor (default 500)")
    parser.add_argument("--plans", default="/tmp/dashboard-plans.txt", help="where the EXPLAIN output goes")
    parser.add_argument("--seed", type=int, default=20250301)
    parser.add_argument("--skip-load", action="store_true", help="reuse the jobs already loaded")
    args = parser.parse_args()
    url = loopback_database_url(parser, args)

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if not args.skip_load:
        print(f"loading {args.jobs:,} jobs ...", flush=True)
        phases = prepare_database(url, args.jobs, args.seed)
        print("  " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()), flush=True)

    import sqlalchemy as sa

    from app import create_app
    from app.extensions import db
    from app.models import ProcessingJob
    from app.services import dashboard_stats, top_codes
    from app.services.processing_jobs import pagination
    from app.services.processing_jobs.job_filter import JobFilter, TimeField
    from app.web.query import DEFAULT_DASHBOARD_ACKNOWLEDGED, DEFAULT_DASHBOARD_STATUSES

    rare, common = CODES[-1][0], CODES[0][0]
    facts = machine_facts(url)
    for key, value in facts.items():
        print(f"{key}: {value}")
    for line in data_facts(url, rare, common):
        print(line)

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    default = JobFilter(statuses=DEFAULT_DASHBOARD_STATUSES, acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED)
    by_rare = JobFilter(statuses=DEFAULT_DASHBOARD_STATUSES, acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED,
                             error_code=rare)
    by_common = JobFilter(statuses=DEFAULT_DASHBOARD_STATUSES, acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED,
                               error_code=common)

    with app.app_context():
        recorder = Recorder(db.engine)
        # Page 501: follow next_cursor from the first page, as a user paging would.
        cursor = None
        began = time.perf_counter()
        for _ in range(args.follow_pages):
            cursor = pagination.list_jobs(default, limit=PAGE_SIZE, cursor=cursor).next_cursor
            db.session.remove()
            if cursor is None:
                raise SystemExit("ran out of pages before --follow-pages")
        follow_s = time.perf_counter() - began
        page_cursor = cursor
        print(f"followed {args.follow_pages} pages by next_cursor in {follow_s:.2f} s "
              f"({follow_s / args.follow_pages * 1000:.1f} ms a page)", flush=True)
        # A page 90 % down the default listing: the (created_at, id) of the row there.
        matching = db.session.execute(
            sa.select(sa.func.count()).select_from(ProcessingJob).where(*default.where())
        ).scalar_one()
        position = int(matching * 0.9)
        at, job_id = db.session.execute(
            sa.select(ProcessingJob.created_at, ProcessingJob.id).where(*default.where())
            .order_by(*pagination.newest_first(default)).offset(position).limit(1)
        ).one()
        deep_cursor = pagination.Cursor(TimeField.CREATED, at, job_id).encode()
        db.session.remove()
        print(f"deep cursor: row {position:,} of {matching:,} in the default listing", flush=True)

    service: dict[str, Callable[[], object]] = {
        "list: first page": lambda: pagination.list_jobs(default, limit=PAGE_SIZE),
        f"list: page {args.follow_pages + 1} (next_cursor)": lambda: pagination.list_jobs(
            default, limit=PAGE_SIZE, cursor=page_cursor),
        "list: 90 % deep": lambda: pagination.list_jobs(default, limit=PAGE_SIZE, cursor=deep_cursor),
        f"list: error_code={rare} (rare)": lambda: pagination.list_jobs(by_rare, limit=PAGE_SIZE),
        f"list: error_code={common} (common)": lambda: pagination.list_jobs(by_common, limit=PAGE_SIZE),
        "summarize: default": lambda: dashboard_stats.summarize(default),
        f"summarize: error_code={rare}": lambda: dashboard_stats.summarize(by_rare),
        f"summarize: error_code={common}": lambda: dashboard_stats.summarize(by_common),
        "  status_counts: default": lambda: dashboard_stats.status_counts(default),
        "  top_error_codes: default": lambda: top_codes.top_error_codes(default),
        "  failures_over_time: default": lambda: dashboard_stats.failures_over_time(default),
        f"  status_counts: {rare}": lambda: dashboard_stats.status_counts(by_rare),
        f"  top_error_codes: {rare}": lambda: top_codes.top_error_codes(by_rare),
        f"  failures_over_time: {rare}": lambda: dashboard_stats.failures_over_time(by_rare),
        f"  status_counts: {common}": lambda: dashboard_stats.status_counts(by_common),
        f"  top_error_codes: {common}": lambda: top_codes.top_error_codes(by_common),
        f"  failures_over_time: {common}": lambda: dashboard_stats.failures_over_time(by_common),
    }
    pages = {
        "GET /jobs": "/jobs",
        f"GET /jobs?cursor=<page {args.follow_pages + 1}>": "/jobs?" + urlencode({"cursor": page_cursor}),
        "GET /jobs?cursor=<90 % deep>": "/jobs?" + urlencode({"cursor": deep_cursor}),
        f"GET /jobs?error_code={rare}": "/jobs?" + urlencode({"error_code": rare}),
        f"GET /jobs?error_code={common}": "/jobs?" + urlencode({"error_code": common}),
    }
    client = signed_in_client(app, "admin")
    for name, path in pages.items():
        response = client.get(path)
        if response.status_code != 200 or b"<table" not in response.data:
            raise SystemExit(f"{path} answered {response.status_code}")
    ttl = app.config["DASHBOARD_STATS_TTL"]
    print(f"DASHBOARD_STATS_TTL: {ttl} s", flush=True)
    summaries = {
        "GET /jobs/summary": "/jobs/summary",
        f"GET /jobs/summary?error_code={rare}": "/jobs/summary?" + urlencode({"error_code": rare}),
        f"GET /jobs/summary?error_code={common}": "/jobs/summary?" + urlencode({"error_code": common}),
    }
    for name, path in summaries.items():
        response = client.get(path)
        if response.status_code != 200 or b"<svg" not in response.data:
            raise SystemExit(f"{path} answered {response.status_code}")

    cold = {f"{name} (cold)": path for name, path in [*pages.items(), *summaries.items()]}
    warm = {f"{name} (warm)": path for name, path in [*pages.items(), *summaries.items()]}
    samples: dict[str, list[float]] = {name: [] for name in [*service, *cold, *warm]}
    with app.app_context():
        for round_ in range(args.warmup + args.runs):
            for name, call in service.items():
                began = time.perf_counter()
                call()
                elapsed = time.perf_counter() - began
                db.session.remove()  # each call in its own session, as one request
                if round_ >= args.warmup:
                    samples[name].append(elapsed)
    for round_ in range(args.warmup + args.runs):
        for (cold_name, path), warm_name in zip(cold.items(), warm):
            for name, clear in ((cold_name, True), (warm_name, False)):
                if clear:
                    with dashboard_stats._cache_lock:
                        dashboard_stats._cache.clear()
                began = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - began
                assert response.status_code == 200
                if round_ >= args.warmup:
                    samples[name].append(elapsed)

    print()
    print(f"{args.runs} timed runs each after {args.warmup} warm-up rounds; ms")
    width = max(len(name) for name in samples) + 2
    print(f"{'scenario':<{width}}{'median':>9}{'p95':>9}{'max':>9}  target")
    table = []
    for name, values in samples.items():
        median, p95, worst = summary(values)
        verdict = ""
        if name.startswith("GET /jobs/summary"):
            verdict = "(the counts: a request of its own)"
        elif name in cold or name in warm:
            verdict = "met" if median < TARGET_MS else "MISSED"
        table.append((name, median, p95, worst, verdict))
        print(f"{name:<{width}}{median:>9.1f}{p95:>9.1f}{worst:>9.1f}  {verdict}")

    # Plans: every statement each scenario sends, with its own parameters.
    seq_scans = []
    with app.app_context(), open(args.plans, "w") as out:
        out.write(f"EXPLAIN (ANALYZE, BUFFERS) of the dashboard's statements, {args.jobs:,} jobs\n")
        for name, call in service.items():
            if name.startswith(" "):
                continue
            recorder.statements.clear()
            recorder.on = True
            call()
            recorder.on = False
            db.session.remove()
            for statement, parameters in list(recorder.statements):
                if not statement.lstrip().upper().startswith(("SELECT", "WITH")) or "processing_jobs" not in statement:
                    continue
                plan = db.session.connection().exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                ).scalars().all()
                db.session.remove()
                text = "\n".join(plan)
                out.write(f"\n=== {name}\n{statement}\n-- parameters: {parameters!r}\n{text}\n")
                if "Seq Scan on processing_jobs" in text:
                    seq_scans.append(name)
    print()
    print(f"plans: {args.plans}")
    listing_seq = [name for name in seq_scans if name.startswith("list")]
    print("Seq Scan on processing_jobs in a list query: " + (", ".join(listing_seq) if listing_seq else "none"))
    print("Seq Scan on processing_jobs in a summarize query: "
          + (", ".join(sorted(set(seq_scans) - set(listing_seq))) or "none"))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    missed = [name for name, *_rest, verdict in table if verdict == "MISSED"]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
