"""Search benchmark: the header's search box (``/search``, ``/jobs?q=``) on a large table.

Run it on a throwaway PostgreSQL (scripts/with-postgres starts one and sets
TEST_DATABASE_URL)::

    scripts/with-postgres .venv/bin/python bench/search_benchmark.py --jobs 1000000

It drops and re-creates the ``public`` schema of that database (loopback
only), builds it with the app's migrations (so the ``pg_trgm`` index of
migration 0008 is there) and loads the jobs of ``bench/dashboard_benchmark.py``
(same generator, same seed: 85 % failures with 1-6 error items from 40
codes, document ids ``doc-0001234``), then ``VACUUM (ANALYZE)``.

Then it measures (``--runs`` rounds after ``--warmup``, scenarios interleaved
round by round), for search terms that are rare, common, absent, an id, an
id prefix and part of a document id:

* the service: :func:`pagination.list_jobs` of ``JobFilter(text=term)`` over
  every status, acknowledged included (what ``/search`` leads to), first
  page of 50, in its own session as one request;
* the pages through the Flask test client, signed in as an admin:
  ``GET /search?q=<id or unique prefix>`` (a redirect to the job) and
  ``GET /jobs?q=<term>&status=all&acknowledged=include`` (the results).

Prints median, p95 and max in ms, the number of jobs each term matches,
and writes ``EXPLAIN (ANALYZE, BUFFERS)`` of each list query to ``--plans``
(default /tmp/search-plans.txt). Target: every page under 100 ms median;
exits 1 when one misses it.

Earlier failures (migration 0020): after the load, ``--earlier-percent`` of
the failed jobs (default 10) get the searchable text of another job's
failure as their ``earlier_search_text``, as if they had failed with it,
been requeued and failed again; one in a thousand of those also holds
:data:`EARLIER_ONLY_TERM`, which no current failure holds. The search reads
both texts, so the common terms match those jobs too.

Old matches only: after the load, the :data:`OLD_ONLY_COUNT` oldest failed
jobs get :data:`OLD_ONLY_TERM` at the end of their message (a code a worker
stopped sending long ago). A search for it finds nothing among the newest
jobs, which is the case a walk of the time index handles worst.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import loopback_database_url, signed_in_client  # noqa: E402 (bench/ is on sys.path as the script's folder)
from dashboard_benchmark import _dsn, machine_facts, prepare_database, summary  # noqa: E402

TARGET_MS = 100.0
PAGE_SIZE = 50

#: label -> search term (text terms; the id terms are read from the data).
TEXT_TERMS = {
    "rare code": "code.unknown_atc",
    "common code": "schema.required",
    "message words": "not in ICD-10-CM",
    "pointer": "/entities/17/code",
    "crash message": "terminology server",
    "document, 100 jobs": "doc-00123",
    "absent": "Z99.89X",
}
#: A code found only in earlier failures (see the module docstring).
EARLIER_ONLY_TERM = "code.retired_vendor_rule"
#: In the messages of the oldest failed jobs only (:func:`give_old_term`).
OLD_ONLY_TERM = "code.withdrawn_2019_rule"
#: How many: 0.5 % of a million jobs.
OLD_ONLY_COUNT = 5_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="throwaway PostgreSQL on loopback (default: TEST_DATABASE_URL)")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs to load (default 1000000)")
    parser.add_argument("--runs", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--plans", default="/tmp/search-plans.txt", help="where the EXPLAIN output goes")
    parser.add_argument("--seed", type=int, default=20250301)
    parser.add_argument("--skip-load", action="store_true", help="reuse the jobs already loaded")
    parser.add_argument("--earlier-percent", type=int, default=10,
                        help="failed jobs given an earlier failure after the load (default 10)")
    args = parser.parse_args()
    url = loopback_database_url(parser, args)

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if not args.skip_load:
        print(f"loading {args.jobs:,} jobs ...", flush=True)
        phases = prepare_database(url, args.jobs, args.seed)
        print("  " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()), flush=True)
        if args.earlier_percent:
            began = time.perf_counter()
            given = give_earlier_failures(url, args.earlier_percent)
            print(f"  earlier failures for {given:,} jobs {time.perf_counter() - began:.1f} s", flush=True)
        began = time.perf_counter()
        given = give_old_term(url)
        print(f"  {OLD_ONLY_TERM} in the oldest {given:,} failed jobs {time.perf_counter() - began:.1f} s", flush=True)

    import psycopg
    import sqlalchemy as sa

    from app import create_app
    from app.extensions import db
    from app.models import ProcessingJob
    from app.services.processing_jobs import pagination
    from app.services.processing_jobs.job_filter import AcknowledgedFilter, JobFilter
    from app.web.query import DEFAULT_DASHBOARD_ACKNOWLEDGED, DEFAULT_DASHBOARD_STATUSES

    for key, value in machine_facts(url).items():
        print(f"{key}: {value}")
    with psycopg.connect(_dsn(url)) as connection:
        total, size = connection.execute(
            "SELECT count(*), pg_size_pretty(pg_relation_size('ix_processing_jobs_search_text')) FROM processing_jobs"
        ).fetchone()
    print(f"jobs: {total:,}; search index ix_processing_jobs_search_text: {size}")

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        # A job in the middle of the table, for the id and prefix searches.
        some_id = db.session.execute(
            sa.select(ProcessingJob.id).order_by(ProcessingJob.created_at).offset(total // 2).limit(1)
        ).scalar_one()
        db.session.remove()
    terms = {**TEXT_TERMS, "only in earlier failures": EARLIER_ONLY_TERM, "only in the oldest jobs": OLD_ONLY_TERM, "document, 1 job": f"doc-{total * 7 // 9:07d}", "full job id": str(some_id), "id prefix, 8 digits": str(some_id)[:8]}

    def search_filter(term: str) -> JobFilter:
        return JobFilter(text=term, acknowledged=AcknowledgedFilter.INCLUDE)

    matches: dict[str, int] = {}
    with app.app_context():
        for label, term in terms.items():
            matches[label] = db.session.execute(
                sa.select(sa.func.count()).select_from(ProcessingJob).where(*search_filter(term).where())
            ).scalar_one()
            db.session.remove()
    for label, term in terms.items():
        print(f"  {label:<22} {term!r:<42} matches {matches[label]:,} jobs ({matches[label] / total:.3%})")

    # The plain list of failures, measured in the same rounds: a yardstick
    # for how busy the machine was (docs/benchmarks.md has it unloaded).
    reference = JobFilter(statuses=DEFAULT_DASHBOARD_STATUSES, acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED)
    service: dict[str, Callable[[], object]] = {
        "list: failures, no search (reference)": lambda: pagination.list_jobs(reference, limit=PAGE_SIZE),
        **{f"list: {label}": (lambda term=term: pagination.list_jobs(search_filter(term), limit=PAGE_SIZE))
           for label, term in terms.items()},
    }
    pages = {
        "GET /jobs (reference, no search)": "/jobs",
        **{f"GET /jobs?q=<{label}>": "/jobs?" + urlencode({"q": term, "status": "all", "acknowledged": "include"})
           for label, term in terms.items()},
    }
    redirects = {
        "GET /search?q=<full job id>": "/search?" + urlencode({"q": terms["full job id"]}),
        "GET /search?q=<id prefix, 8 digits>": "/search?" + urlencode({"q": terms["id prefix, 8 digits"]}),
        "GET /search?q=<rare code> (redirect to the list)": "/search?" + urlencode({"q": terms["rare code"]}),
    }
    client = signed_in_client(app, "admin")
    for path in pages.values():
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code} {response.headers.get('Location')}")
    for name, path in redirects.items():
        response = client.get(path)
        expected = "/jobs?" if "list" in name else "/jobs/"
        if response.status_code != 302 or not response.headers["Location"].startswith(expected):
            raise SystemExit(f"{path} answered {response.status_code} {response.headers.get('Location')}")

    samples: dict[str, list[float]] = {name: [] for name in [*service, *pages, *redirects]}
    for round_ in range(args.warmup + args.runs):
        with app.app_context():
            for name, call in service.items():
                began = time.perf_counter()
                call()
                elapsed = time.perf_counter() - began
                db.session.remove()
                if round_ >= args.warmup:
                    samples[name].append(elapsed)
        for name, path in [*pages.items(), *redirects.items()]:
            began = time.perf_counter()
            response = client.get(path)
            elapsed = time.perf_counter() - began
            assert response.status_code in (200, 302)
            if round_ >= args.warmup:
                samples[name].append(elapsed)

    print()
    print(f"{args.runs} timed runs each after {args.warmup} warm-up rounds; ms")
    width = max(len(name) for name in samples) + 2
    print(f"{'scenario':<{width}}{'median':>9}{'p95':>9}{'max':>9}  target")
    missed = []
    for name, values in samples.items():
        median, p95, worst = summary(values)
        verdict = ""
        if name.startswith("GET") and "reference" not in name:
            verdict = "met" if median < TARGET_MS else "MISSED"
            if verdict == "MISSED":
                missed.append(name)
        print(f"{name:<{width}}{median:>9.1f}{p95:>9.1f}{worst:>9.1f}  {verdict}")

    with app.app_context(), open(args.plans, "w") as out:
        out.write(f"EXPLAIN (ANALYZE, BUFFERS) of the statements of the search's first page, {total:,} jobs\n")
        for label, term in terms.items():
            # The statements list_jobs sends (a search: the window, then
            # the older matches only when the window did not fill the page).
            sent: list[tuple[str, object]] = []

            def keep(_conn, _cursor, statement, parameters, *_rest):  # noqa: ANN001, ANN202
                if statement.lstrip().startswith(("SELECT", "WITH")):
                    sent.append((statement, parameters))

            sa.event.listen(db.engine, "before_cursor_execute", keep)
            try:
                pagination.list_jobs(search_filter(term), limit=PAGE_SIZE)
            finally:
                sa.event.remove(db.engine, "before_cursor_execute", keep)
            db.session.remove()
            out.write(f"\n=== {label}: {term!r}\n")
            for statement, parameters in sent:
                plan = db.session.connection().exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                ).scalars().all()
                db.session.remove()
                out.write("\n".join(plan) + "\n\n")
    print(f"\nplans: {args.plans}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if missed else 0


def give_earlier_failures(url: str, percent: int) -> int:
    """Give every ``100 // percent``-th failed job (in id order) the text of the
    next one's failure, without its document id, as its earlier failures'
    text; one in a thousand of them also :data:`EARLIER_ONLY_TERM`. Then
    ``VACUUM (ANALYZE)``. Returns how many jobs got one."""
    import psycopg

    every = max(100 // percent, 1)
    with psycopg.connect(_dsn(url), autocommit=True) as connection:
        connection.execute("SET statement_timeout = 0")
        given = connection.execute(
            """
            WITH numbered AS (
              SELECT id, substr(search_text, strpos(search_text, chr(31)) + 1) AS text,
                     row_number() OVER (ORDER BY id) AS n
              FROM processing_jobs WHERE error_message IS NOT NULL)
            UPDATE processing_jobs AS job
            SET earlier_search_text = CASE WHEN a.n %% (%(every)s * 1000) = 0
                                           THEN %(term)s || chr(30) ELSE '' END || b.text
            FROM numbered AS a JOIN numbered AS b ON b.n = a.n + 1
            WHERE job.id = a.id AND a.n %% %(every)s = 0
            """,
            {"every": every, "term": EARLIER_ONLY_TERM},
        ).rowcount
        connection.execute("VACUUM (ANALYZE) processing_jobs")
    return given


def give_old_term(url: str) -> int:
    """Append :data:`OLD_ONLY_TERM` to the message of the
    :data:`OLD_ONLY_COUNT` oldest failed jobs, then ``VACUUM (ANALYZE)``.
    Returns how many jobs got it."""
    import psycopg

    with psycopg.connect(_dsn(url), autocommit=True) as connection:
        connection.execute("SET statement_timeout = 0")
        given = connection.execute(
            """
            UPDATE processing_jobs SET error_message = error_message || ' (' || %(term)s || ')'
            WHERE id IN (SELECT id FROM processing_jobs WHERE error_message IS NOT NULL
                         ORDER BY created_at, id LIMIT %(count)s)
            """,
            {"term": OLD_ONLY_TERM, "count": OLD_ONLY_COUNT},
        ).rowcount
        connection.execute("VACUUM (ANALYZE) processing_jobs")
    return given


if __name__ == "__main__":
    sys.exit(main())
