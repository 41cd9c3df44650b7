"""Where a worker report's time goes: a cProfile of the record path.

Run it on a throwaway PostgreSQL (it drops and re-creates the ``public``
schema)::

    scripts/with-postgres .venv/bin/python bench/profile_record.py

The app runs as bench/load.py's gunicorn runs it (``APP_ENV=production``,
``LOG_LEVEL=WARNING``, metrics in multiprocess mode), but in this process,
through Flask's test client: no HTTP server and no other thread, so the
profile is the app's own work, request by request, and the figures hardly
depend on what else the machine runs. Each request is bench/load.py's: ``POST
/api/v1/processing-jobs/<id>/validation-failure`` with a worker token, a
new message and a 2-item normalized envelope, round-robin over the jobs.
(py-spy, which samples a running gunicorn, cannot attach in every sandbox;
cProfile needs nothing but the interpreter.)

Prints the wall and CPU time per request without the profiler, then the
time per request inside each part of the path (inclusive, from the profile:
``cumtime`` of the part's entry point) by the wall clock (waits for
PostgreSQL included) and by this process's CPU clock (the Python work), and
the functions with the most time of their own by each clock. With
``--floor``, also the CPU per report of bench/minimal_app.py's Flask floor,
in this process and in turn with the app: a ratio that, unlike
bench/load.py's throughputs, other work on the machine hardly moves.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_schema, loopback_database_url, metrics_directory  # noqa: E402 (bench/ is on sys.path)
from load_generator import JobPicker, record_failure_body  # noqa: E402

#: The parts of the path: label -> (file suffix, function name) of its entry point.
PARTS = {
    "whole request (Flask test client)": ("flask/testing.py", "open"),
    "WSGI app: Flask dispatch and hooks": ("flask/app.py", "wsgi_app"),
    "before_request: token check (SELECT worker_tokens)": ("app/auth/guards.py", "enforce_access"),
    "before_request: NUL/control check of the input": ("app/request_input.py", "refuse_unstorable_input"),
    "view": ("app/api/views.py", "record_validation_failure"),
    "  body: read JSON": ("app/api/json_body.py", "read_json_body"),
    "  body: OpenAPI schema check": ("app/api/contract.py", "validate_request"),
    "  write_transaction block (claim, record, answer, commit)": ("app/api/views.py", "_answer"),
    "    recorder: payload check and normalisation": ("failure_recorder.py", "_check_payload"),
    "    recorder: SELECT ... FOR UPDATE (driver)": ("failure_rows.py", "lock_job"),
    "    recorder: the job's UPDATE (driver)": ("failure_rows.py", "set_failure"),
    "    recorder: the history row's INSERT (driver)": ("failure_rows.py", "append_history"),
    "    failure groups (all)": ("failure_groups/recording.py", "group_recorded_failure"),
    "      end the job's current occurrences": ("failure_groups/recording.py", "end_current_occurrences"),
    "      the group write, all groups of a report": ("failure_groups/hits_statement.py", "record_hits"),
    "    ORM flush (whatever is left to flush)": ("sqlalchemy/orm/session.py", "flush"),
    "    COMMIT": ("sqlalchemy/orm/session.py", "commit"),
    "    answer: job_to_json": ("app/web/serializers.py", "job_to_json"),
    "  jsonify the answer": ("flask/json/__init__.py", "jsonify"),
    "after_request: request id, metrics, log line": ("app/observability/__init__.py", "finish_request"),
    "teardown: session close": ("app/extensions.py", "release_session"),
    "psycopg: statements (all)": ("psycopg/cursor.py", "execute"),
}



def prepare(url: str, jobs: int) -> tuple[object, str, list[str]]:
    """A production-configured app on ``url``, a worker token and ``jobs`` Pending jobs."""
    fresh_schema(url)
    os.environ.update({
        "APP_ENV": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_hex(32),
        "LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": metrics_directory("bench-profile-metrics-"),
    })
    from app import create_app
    from app.extensions import db
    from app.models import ProcessingJob
    from app.services.worker_tokens import create_worker_token

    app = create_app()
    with app.app_context():
        pending = [ProcessingJob(document_id=f"bench-doc-{n}") for n in range(jobs)]
        db.session.add_all(pending)
        db.session.commit()
        ids = [str(job.id) for job in pending]
        token, _ = create_worker_token("bench-profile")
        db.session.remove()
    return app, token, ids


def send(client, token: str, picker: JobPicker, count: int) -> float:  # noqa: ANN001
    """Send ``count`` reports; the wall time per request in ms. Exits on a non-200 answer."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.perf_counter()
    for _ in range(count):
        job_id, n = picker.next()
        response = client.post(
            f"/api/v1/processing-jobs/{job_id}/validation-failure", data=record_failure_body(n), headers=headers
        )
        if response.status_code != 200:
            raise SystemExit(f"HTTP {response.status_code}: {response.get_data(as_text=True)[:500]}")
    return (time.perf_counter() - started) * 1000 / count


def compare_with_floor(url: str, client, token: str, picker: JobPicker, requests: int) -> None:  # noqa: ANN001
    """CPU per report of the app and of the Flask floors (bench/minimal_app.py), in this process.

    Five blocks of each, taken in turn, so all see the same machine: the app,
    the floor sending the app's statements (``minimal_app.app``) and the
    floor from before failure groups (``minimal_app.classic_app``). This
    process's CPU clock hardly depends on what else the machine runs, unlike
    bench/load.py's throughputs; it leaves out PostgreSQL's and the HTTP
    clients' CPU, which they share, so under gunicorn the throughput ratio
    is closer to 1 than this CPU ratio.
    """
    os.environ["BENCH_DSN"] = url.replace("postgresql+psycopg://", "postgresql://", 1)
    import minimal_app

    targets = {"app": client, "floor": minimal_app.app.test_client(),
               "classic floor": minimal_app.classic_app.test_client()}
    for name in ("floor", "classic floor"):
        send(targets[name], token, picker, 200)  # warm up: its connection, prepared statements
    blocks = 5
    per_block = max(1, requests // blocks)
    cpu = dict.fromkeys(targets, 0.0)
    for _ in range(blocks):
        for name, target in targets.items():
            started = time.process_time()
            send(target, token, picker, per_block)
            cpu[name] += time.process_time() - started
    n = blocks * per_block
    print(f"\nCPU per report in this process, {blocks} blocks of {per_block} in turn: "
          f"app {cpu['app'] * 1000 / n:.2f} ms, Flask floor (the app's statements) {cpu['floor'] * 1000 / n:.2f} ms "
          f"(floor / app {cpu['floor'] / cpu['app']:.0%}), classic floor (lock, update, history) "
          f"{cpu['classic floor'] * 1000 / n:.2f} ms (classic floor / app {cpu['classic floor'] / cpu['app']:.0%})")


def cumulative_ms(stats: pstats.Stats, suffix: str, name: str, requests: int) -> float:
    """``cumtime`` per request of the functions named ``name`` in files ending ``suffix`` (ms)."""
    total = 0.0
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if function == name and filename.replace(os.sep, "/").endswith(suffix):
            total += ct
    return total * 1000 / requests


def own_by_owner(stats: pstats.Stats, requests: int) -> dict[str, float]:
    """Own time per request (ms) summed by where the code lives: an installed
    package (``sqlalchemy``, ``psycopg``, ``flask``, ...), ``app``, this
    benchmark, the standard library, or built-ins."""
    totals: dict[str, float] = {}
    for (filename, _line, _function), (_cc, _nc, own, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        parts = Path(filename).parts
        if "site-packages" in parts:
            owner = parts[parts.index("site-packages") + 1].removesuffix(".py")
        elif filename == "~" or filename.startswith("<"):
            owner = "built-ins (C functions, isinstance, dict.get ...)"
        elif Path(filename).is_relative_to(ROOT / "app"):
            owner = "app (this project)"
        elif Path(filename).is_relative_to(ROOT):
            owner = "bench (this script)"
        else:
            owner = "standard library"
        totals[owner] = totals.get(owner, 0.0) + own * 1000 / requests
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--requests", type=int, default=2_000, help="reports per measurement")
    parser.add_argument("--jobs", type=int, default=1_000, help="jobs the reports go round")
    parser.add_argument("--top", type=int, default=25, help="functions listed by own time")
    parser.add_argument("--dump", type=Path, help="also write the CPU profile here (pstats format)")
    parser.add_argument(
        "--floor", action="store_true",
        help="also time bench/minimal_app.py (the Flask floor) in this process, in turn with the app",
    )
    args = parser.parse_args()
    url = loopback_database_url(parser, args)

    app, token, ids = prepare(url, args.jobs)
    client = app.test_client()
    picker = JobPicker(ids)
    send(client, token, picker, min(200, args.requests))  # warm up: imports, pool, caches
    plain = send(client, token, picker, args.requests)
    cpu_started = time.process_time()
    send(client, token, picker, args.requests)
    plain_cpu = (time.process_time() - cpu_started) * 1000 / args.requests
    if args.floor:
        # Before the profiles: their statistics, kept alive, would slow every
        # garbage collection of what follows (the app allocates more, so it
        # would be charged more).
        compare_with_floor(url, client, token, picker, args.requests)
    profiles = {}
    for clock, timer in (("wall", time.perf_counter), ("cpu", time.process_time)):
        profiler = cProfile.Profile(timer)
        profiler.enable()
        send(client, token, picker, args.requests)
        profiler.disable()
        profiles[clock] = pstats.Stats(profiler)

    if args.dump:
        profiles["cpu"].dump_stats(args.dump)
    print(f"{args.requests} reports a measurement, {len(ids)} jobs; per request without the profiler: "
          f"{plain:.2f} ms wall, {plain_cpu:.2f} ms CPU of this process")
    print("(wall time includes waiting for PostgreSQL; CPU time is the Python work; "
          "both under cProfile below, which adds its own overhead)")
    whole = {
        clock: cumulative_ms(stats, *PARTS["whole request (Flask test client)"], args.requests)
        for clock, stats in profiles.items()
    }
    print(f"\n{'part of the path (inclusive)':62} {'wall ms':>8} {'CPU ms':>7} {'CPU share':>9}")
    for label, (suffix, name) in PARTS.items():
        wall = cumulative_ms(profiles["wall"], suffix, name, args.requests)
        cpu = cumulative_ms(profiles["cpu"], suffix, name, args.requests)
        print(f"{label:62} {wall:8.3f} {cpu:7.3f} {cpu / whole['cpu']:9.0%}")
    print(f"\nown CPU time by where the code lives (ms per request; share of {whole['cpu']:.2f} ms):")
    for owner, ms in sorted(own_by_owner(profiles["cpu"], args.requests).items(), key=lambda kv: -kv[1]):
        print(f"  {ms:6.3f} {ms / whole['cpu']:5.1%}  {owner}")
    for clock in ("cpu", "wall"):
        stats = profiles[clock]
        print(f"\nfunctions with the most {clock} time of their own "
              f"(ms per request; share of the request's {whole[clock]:.2f} ms):")
        rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
        for (filename, line, function), (_cc, calls, own, _ct, _callers) in rows[: args.top]:
            where = "/".join(Path(filename).parts[-2:]) if filename != "~" else "(built-in)"
            ms = own * 1000 / args.requests
            print(f"  {ms:6.3f} {ms / whole[clock]:5.1%}  {calls / args.requests:6.1f} calls/req  "
                  f"{function} ({where}:{line})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
