"""Fixed Python cost of a signed-in dashboard request (issue #14, "fast pages").

Run it on a throwaway PostgreSQL (scripts/with-postgres sets TEST_DATABASE_URL)::

    scripts/with-postgres .venv/bin/python bench/request_overhead.py

It drops and re-creates the ``public`` schema of that database (loopback
only), records a few validation failures (so ``/jobs``, ``/jobs/<id>`` and
``/groups`` have a handful of rows), signs a Flask test client in as a
viewer, then for ``--runs`` rounds (after ``--warmup``), interleaved page by
page, GETs each page once and measures, per request:

* ``page``: wall time of ``client.get`` (perf_counter_ns);
* ``sql``: wall time spent inside the DBAPI (SQLAlchemy's
  ``before_cursor_execute`` / ``after_cursor_execute``, summed over the
  request's statements: the session load, the page's queries, any session
  write; plus the dialect's commit, rollback and pool pre-ping round trips);
* ``fixed``: page - sql, the Python cost around the queries;
* ``CPU``: the thread's CPU time for the request (``thread_time_ns``), which
  other processes' load disturbs less than wall time.

Besides the app's pages, two signed-in pages with no queries of their own
measure the fixed cost alone: ``/_bench/layout`` (the dashboard layout
around an empty block) and ``/_bench/nothing`` (an empty 200).

Prints, per page, median page ms, median SQL ms, their ratio, the median
fixed ms and CPU ms, plus the load average. ``--phases`` adds CPU ms per
request phase (session load, hooks, view, template, teardown).
``--app-root DIR`` measures another checkout's app (run it alternately with
this one for a before/after). ``--profile PATH`` also runs the first page
``--runs`` more times under cProfile and prints the top functions.
Ratios are only comparable within one run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# --app-root DIR measures another checkout's app (e.g. main, for "before"),
# alternating runs so that both see the same machine load.
if "--app-root" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--app-root") + 1]).resolve()
sys.path.insert(0, str(ROOT))

from common import fresh_schema, loopback_database_url, signed_in_client  # noqa: E402 (bench/ is on sys.path)


def seed(app) -> int:  # noqa: ANN001 (a Flask app)
    """Record 12 validation failures over 6 codes; return one job's id."""
    from app.extensions import db
    from app.registry import get_failure_recorder
    from app.services.processing_jobs.lifecycle import create_job

    with app.app_context():
        recorder = get_failure_recorder()
        job_ids = []
        for n in range(12):
            job = create_job(f"doc-{n:07d}")
            items = [{"code": f"code.c{n % 6}", "message": f"message {n % 6}", "pointer": f"/entities/{n}"}]
            recorder.record_validation_failure(job.id, f"failure {n}", {"errors": items})
            job_ids.append(job.id)
        db.session.remove()
    return job_ids[0]


def add_fixed_cost_pages(app) -> None:  # noqa: ANN001 (a Flask app)
    """Two signed-in pages with no queries of their own, for the fixed cost:
    ``/_bench/layout`` renders the dashboard layout (base.html) around an
    empty content block; ``/_bench/nothing`` answers an empty 200."""
    from flask import render_template

    from app.auth.guards import requires
    from app.models.access import Permission

    empty = app.jinja_env.from_string("{% extends 'base.html' %}")  # compiled once, as a file template is

    @requires(Permission.VIEW_JOBS)
    def layout() -> str:
        return render_template(empty)

    @requires(Permission.VIEW_JOBS)
    def nothing() -> str:
        return ""

    app.add_url_rule("/_bench/layout", "bench_layout", layout)
    app.add_url_rule("/_bench/nothing", "bench_nothing", nothing)


class SqlClock:
    """Sums the wall time the DBAPI spends on statements, commits and rollbacks."""

    def __init__(self, engine) -> None:  # noqa: ANN001 (an Engine)
        import sqlalchemy as sa

        self.ns = 0
        self.statements = 0
        self._started: int | None = None
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)
        # Commit, rollback and pool pre-ping round trips: wrap the dialect's do_* methods.
        dialect = engine.dialect
        for name in ("do_rollback", "do_commit", "do_begin", "do_ping"):
            original = getattr(dialect, name)
            setattr(dialect, name, self._timed(original))

    def _timed(self, function):  # noqa: ANN001, ANN202
        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter_ns()
            try:
                return function(*args, **kwargs)
            finally:
                self.ns += time.perf_counter_ns() - started
        return timed

    def _before(self, *_args) -> None:  # noqa: ANN002
        self._started = time.perf_counter_ns()

    def _after(self, *_args) -> None:  # noqa: ANN002
        if self._started is not None:
            self.ns += time.perf_counter_ns() - self._started
            self.statements += 1
            self._started = None


class PhaseClock:
    """CPU time (``thread_time_ns``) per phase of a Flask request: session
    load and save, ``before_request`` / ``after_request`` hooks, the view
    (with its template), the template alone, and the teardowns."""

    def __init__(self, app) -> None:  # noqa: ANN001 (a Flask app)
        import flask.templating

        self.ns: dict[str, int] = {}
        self._wrap(app.session_interface, "open_session", "session load")
        self._wrap(app.session_interface, "save_session", "session save")
        self._wrap(app, "preprocess_request", "before_request")
        self._wrap(app, "dispatch_request", "view")
        self._wrap(app, "process_response", "after_request")
        self._wrap(app, "do_teardown_request", "teardown_request")
        self._wrap(app, "do_teardown_appcontext", "teardown_appcontext")
        self._wrap(flask.templating, "_render", "template")

    def _wrap(self, owner, name: str, label: str) -> None:  # noqa: ANN001
        original = getattr(owner, name)

        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.thread_time_ns()
            try:
                return original(*args, **kwargs)
            finally:
                self.ns[label] = self.ns.get(label, 0) + time.thread_time_ns() - started

        setattr(owner, name, timed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--app-root", metavar="DIR", help="the checkout whose app to measure (default: this one)")
    parser.add_argument("--phases", action="store_true", help="also print CPU ms per request phase")
    parser.add_argument("--profile", metavar="PATH", help="also profile the first page; write pstats to PATH")
    args = parser.parse_args()
    url = loopback_database_url(parser, args)
    fresh_schema(url)

    from app import create_app
    from app.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    add_fixed_cost_pages(app)
    job_id = seed(app)
    client = signed_in_client(app, "viewer")
    pages = [f"/jobs/{job_id}", "/groups?sort=first_seen", "/jobs", "/_bench/layout", "/_bench/nothing", "/readyz"]
    with app.app_context():
        clock = SqlClock(db.engine)
    phases = PhaseClock(app) if args.phases else None
    phase_samples: dict[str, dict[str, list[int]]] = {page: {} for page in pages}
    for page in pages:
        response = client.get(page)
        if response.status_code != 200:
            print(f"{page}: HTTP {response.status_code}", file=sys.stderr)
            return 1

    samples: dict[str, list[tuple[int, int, int, int]]] = {page: [] for page in pages}
    for round_ in range(args.warmup + args.runs):
        for page in pages:
            clock.ns, clock.statements = 0, 0
            if phases is not None:
                phases.ns.clear()
            cpu_started = time.thread_time_ns()
            started = time.perf_counter_ns()
            response = client.get(page)
            elapsed = time.perf_counter_ns() - started
            cpu = time.thread_time_ns() - cpu_started
            assert response.status_code == 200, (page, response.status_code)
            if round_ >= args.warmup:
                samples[page].append((elapsed, clock.ns, clock.statements, cpu))
                if phases is not None:
                    for label, ns in phases.ns.items():
                        phase_samples[page].setdefault(label, []).append(ns)

    print(f"app: {ROOT}; load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{args.runs} runs after {args.warmup} warm-up, viewer session, PostgreSQL")
    print(f"{'page':<28} {'page ms':>8} {'SQL ms':>7} {'ratio':>6} {'fixed ms':>9} {'CPU ms':>7} {'stmts':>6}")
    for page in pages:
        rows = samples[page]
        page_ms = statistics.median(r[0] for r in rows) / 1e6
        sql_ms = statistics.median(r[1] for r in rows) / 1e6
        fixed_ms = statistics.median(r[0] - r[1] for r in rows) / 1e6
        statements = statistics.median(r[2] for r in rows)
        cpu_ms = statistics.median(r[3] for r in rows) / 1e6
        label = page if len(page) <= 28 else page[:19] + "<id>"
        print(f"{label:<28} {page_ms:8.2f} {sql_ms:7.2f} {page_ms / sql_ms:6.2f} {fixed_ms:9.2f} {cpu_ms:7.2f} "
              f"{statements:6.0f}")
    if phases is not None:
        print("CPU ms per phase (median):")
        for page in pages:
            label = page if len(page) <= 28 else page[:19] + "<id>"
            print(f"  {label:<28} " + ", ".join(
                f"{name} {statistics.median(values) / 1e6:.2f}" for name, values in phase_samples[page].items()))

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.runs):
            client.get(pages[0])
        profiler.disable()
        profiler.dump_stats(args.profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
