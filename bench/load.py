"""Load benchmark: the record-failure endpoint under gunicorn, against psycopg direct.

Run it on a throwaway PostgreSQL (scripts/with-postgres starts one and sets
TEST_DATABASE_URL)::

    scripts/with-postgres .venv/bin/python bench/load.py

It drops and re-creates the ``public`` schema of that database, migrates it,
seeds jobs, starts gunicorn with gunicorn.conf.py (``APP_ENV=production``) on
a free loopback port and runs four phases, each bounded in time and in
requests:

1. ``endpoint-peak``: ``--concurrency`` closed-loop clients POST
   ``/api/v1/processing-jobs/<id>/validation-failure`` (a new message each
   time, so every request locks, updates and appends history) as fast as
   answers come back;
2. ``mixed-peak``: the same, while the dashboard is read at
   ``--dashboard-rate`` page views per second (``GET /jobs`` and the summary
   it frames, ``GET /jobs/summary``);
3. ``endpoint-half-rate``: open loop at half the endpoint's throughput in
   phase 2 (its peak under the same mixed load), with the dashboard load;
   latency counted from each request's scheduled start (so a queue in front
   of the server is not hidden);
4. ``psycopg-direct``: the same lock-update-insert-commit written by hand with
   psycopg, one connection per client, at the same concurrency: the ceiling
   the database and this machine allow;
5. ``flask-floor`` (not a target; ``--no-floor`` skips it): the app's
   statements for the report, in one transaction, behind a bare Flask route under gunicorn with the app's
   worker settings (bench/minimal_app.py), to tell the framework's share of
   the gap from the app's;

and, before the app's server stops, ``--paired-rounds`` rounds (default 3)
of the endpoint alone, the Flask floor and the classic floor (the floor's
statements from before failure groups; not a target) in turn, 5 s each, all
servers up: phases 1 and 5 run minutes apart, so on a shared machine their ratio
also measures how the machine's other load changed; the paired ratio puts
each floor slice right after an endpoint slice.

``--grouping-rounds N`` (default 0) then runs N rounds of the app and the
same app with failure grouping off (bench/ungrouped_app.py, a second
gunicorn up at the same time), every request on one group, for the cost of
grouping on the whole HTTP path (target >= 85 %; bench/load_grouping.py);
``--grouping-only`` runs those rounds alone.

Access control: the script creates a worker token in that database with
``flask tokens create`` (unless ``--token`` is given) and sends it on every API
request; for the dashboard it creates a ``viewer`` account with
``flask users create --password-stdin`` and signs in through the ``/login``
form (with its CSRF token), so ``GET /jobs`` is measured as an operator sees it.

Prints throughput, p50/p95/p99 latency and error counts per phase and checks
the targets (the endpoint alone >= 60 % of the Flask floor's throughput in
the same run, from phases 1 and 5 and from the paired rounds; zero errors;
p99 < 50 ms at half rate). Traffic goes to
loopback only; the script stops by itself.

The clients and loops are in bench/load_generator.py, the database,
credentials and gunicorn processes in bench/load_servers.py; this file runs
the phases and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import loopback_database_url  # noqa: E402 (bench/ is on sys.path as the script's folder)
from load_generator import (  # noqa: E402
    Background,
    Client,
    JobPicker,
    PhaseResult,
    Tally,
    closed_loop,
    endpoint_worker,
    open_loop,
    psycopg_worker,
)
from load_grouping import run_grouping_rounds  # noqa: E402
from load_servers import (  # noqa: E402
    create_credentials,
    prepare_database,
    sign_in,
    start_gunicorn,
    start_minimal_app,
)
from tests.live_server import free_port, redis_server  # noqa: E402 (the suite's helpers; ROOT is on sys.path)


# Phases 1 and 5 each start after the same warm-up: every worker has
# imported, connected and filled its pool, and its statements are prepared.
# 2 s had left phase 1 (the first after the seed) measuring part of that.
WARM_UP_S = 5.0


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="throwaway PostgreSQL on loopback (default: TEST_DATABASE_URL)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="clients in the closed-loop phases")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--max-requests", type=int, default=50_000, help="cap per phase")
    parser.add_argument(
        "--dashboard-rate", type=float, default=5.0, help="GET /jobs per second beside the API load"
    )
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs the failures are recorded on")
    parser.add_argument(
        "--workers", type=int, default=0, help="WEB_CONCURRENCY (default: gunicorn.conf.py's)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="GUNICORN_THREADS (default: gunicorn.conf.py's)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--token",
        default=os.environ.get("BENCH_WORKER_TOKEN"),
        help="ignored (kept for old command lines): the schema is re-created, so the script "
        "makes its own worker token with `flask tokens create`",
    )
    parser.add_argument("--peak-only", action="store_true", help="phase 1 only (for sizing gunicorn)")
    parser.add_argument("--no-floor", action="store_true", help="skip phase 5, the Flask floor")
    parser.add_argument(
        "--paired-rounds", type=int, default=3,
        help="rounds of (endpoint, floor) taken in turn, 5 s each, for the paired ratio (0: none)",
    )
    parser.add_argument(
        "--grouping-rounds", type=int, default=0,
        help="rounds of (grouping on, grouping off) taken in turn, 5 s each, every request on one "
        "group (bench/load_grouping.py; 0: none)",
    )
    parser.add_argument(
        "--grouping-only", action="store_true", help="only the grouping rounds (3 unless --grouping-rounds)"
    )
    args = parser.parse_args()
    if args.grouping_only and not args.grouping_rounds:
        args.grouping_rounds = 3

    url = loopback_database_url(parser, args)
    # The sign-in limit is shared by gunicorn's workers (gunicorn.conf.py refuses
    # several workers counting it per process): a throwaway Redis holds it.
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder, redis_server(Path(folder)) as redis_url:
        return run(args, url, redis_url)


PAIRED_SLICE_SECONDS = 5.0


def run_paired(
    args: argparse.Namespace, host: str, port: int, dsn: str, job_ids: list[str]
) -> tuple[PhaseResult, PhaseResult, PhaseResult]:
    """Endpoint, Flask floor and classic floor in turn, ``--paired-rounds`` times 5 s each.

    Phases 1 and 5 run minutes apart; on a machine shared with other work
    their ratio moves with whatever else ran meanwhile. Here all servers are
    up, idle while another is measured, and each round measures one right
    after the other, so a change of load touches them nearly alike. The
    floor sends the app's statements (``minimal_app:app``); the classic
    floor, the four from before failure groups (``minimal_app:classic_app``),
    is measured beside it to compare the two definitions (not a target).
    Returns the endpoint's, the floor's and the classic floor's results,
    their slices summed.
    """
    print(f"paired: endpoint, Flask floor and classic floor in turn, {args.paired_rounds} x "
          f"{PAIRED_SLICE_SECONDS:.0f} s each ...", flush=True)
    servers = []
    ports = {}
    try:
        for name, target in (("floor", "app"), ("classic", "classic_app")):
            ports[name] = free_port()
            log = Path(tempfile.gettempdir()) / f"bench-gunicorn-{name}-{ports[name]}.log"
            servers.append(start_minimal_app(dsn, ports[name], log, target))
            closed_loop(args.concurrency, 2.0, 2_000,
                        lambda: endpoint_worker(host, ports[name], JobPicker(job_ids), Tally()))  # warm up
        ports["endpoint"] = port
        tallies = {name: Tally() for name in ("endpoint", "floor", "classic")}
        seconds = dict.fromkeys(tallies, 0.0)
        picker = JobPicker(job_ids)
        for _ in range(args.paired_rounds):
            for name in tallies:
                seconds[name] += closed_loop(
                    args.concurrency, PAIRED_SLICE_SECONDS, args.max_requests,
                    lambda: endpoint_worker(host, ports[name], picker, tallies[name]),
                )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=60)
    return (PhaseResult("paired: endpoint", seconds["endpoint"], tallies["endpoint"]),
            PhaseResult("paired: flask-floor", seconds["floor"], tallies["floor"]),
            PhaseResult("paired: classic floor (not a target)", seconds["classic"], tallies["classic"]))


def run(args: argparse.Namespace, url: str, redis_url: str) -> int:
    """The five phases on ``url`` (see the module's docstring); prints and returns 0."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    print(f"preparing the database: {args.jobs} jobs ...", flush=True)
    job_ids = prepare_database(url, args.jobs, failed=200)
    # The schema was just re-created: the token and account go in after it.
    token, username, password = create_credentials(url)
    if args.token:
        print("note: --token/BENCH_WORKER_TOKEN ignored; using a token created in the fresh database")
    Client.headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"bench-gunicorn-{port}.log"
    server = start_gunicorn(url, port, args, log_path, ratelimit_storage=redis_url)
    host = "127.0.0.1"
    results: list[PhaseResult] = []
    paired: tuple[PhaseResult, PhaseResult, PhaseResult] | None = None
    grouping: tuple[list[PhaseResult], dict[str, tuple[bool, str]]] | None = None
    try:
        if args.grouping_only:
            grouping = run_grouping_rounds(args, url, dsn, host, port, job_ids, redis_url)
            return report_grouping_only(args, *grouping)
        operator = sign_in(host, port, username, password)
        # Warm up: every worker imports, connects, fills its pool.
        warm = Tally()
        closed_loop(
            args.concurrency, WARM_UP_S, 5_000, lambda: endpoint_worker(host, port, JobPicker(job_ids), warm)
        )

        print("phase 1/5: endpoint alone, closed loop ...", flush=True)
        tally = Tally()
        picker = JobPicker(job_ids)
        seconds = closed_loop(
            args.concurrency,
            args.seconds,
            args.max_requests,
            lambda: endpoint_worker(host, port, picker, tally),
        )
        peak = PhaseResult("endpoint-peak", seconds, tally)
        results.append(peak)
        if args.peak_only:
            row = peak.rows()[0]
            print(
                f"endpoint-peak: {row['throughput_per_s']}/s p50 {row['p50_ms']} p99 {row['p99_ms']} "
                f"errors {row['errors']}"
            )
            return 0

        print("phase 2/5: endpoint + dashboard, closed loop ...", flush=True)
        tally, dashboard = Tally(), Tally()
        with Background(host, port, args.dashboard_rate, dashboard, operator):
            seconds = closed_loop(
                args.concurrency,
                args.seconds,
                args.max_requests,
                lambda: endpoint_worker(host, port, picker, tally),
            )
        mixed = PhaseResult("mixed-peak", seconds, tally, dashboard)
        results.append(mixed)

        half = mixed.throughput / 2
        print(
            f"phase 3/5: endpoint at half its mixed peak ({half:.0f}/s) + dashboard, open loop ...",
            flush=True,
        )
        tally, dashboard = Tally(), Tally()
        with Background(host, port, args.dashboard_rate, dashboard, operator):
            seconds = open_loop(
                half,
                args.seconds,
                args.max_requests,
                max(args.concurrency, 16),
                lambda: endpoint_worker(host, port, picker, tally),
            )
        results.append(PhaseResult("endpoint-half-rate", seconds, tally, dashboard))
        if args.paired_rounds and not args.no_floor:
            paired = run_paired(args, host, port, dsn, job_ids)
        if args.grouping_rounds:
            grouping = run_grouping_rounds(args, url, dsn, host, port, job_ids, redis_url)
    finally:
        server.terminate()
        server.wait(timeout=60)

    print("phase 4/5: psycopg direct, closed loop ...", flush=True)
    tally = Tally()
    picker = JobPicker(job_ids)
    seconds = closed_loop(
        args.concurrency, args.seconds, args.max_requests, lambda: psycopg_worker(dsn, picker, tally)
    )
    direct = PhaseResult("psycopg-direct", seconds, tally)
    results.append(direct)

    floor = None
    if not args.no_floor:
        print("phase 5/5: Flask floor (bench/minimal_app.py: the same transaction, nothing else) ...", flush=True)
        floor_port = free_port()
        floor_log = Path(tempfile.gettempdir()) / f"bench-gunicorn-floor-{floor_port}.log"
        floor_server = start_minimal_app(dsn, floor_port, floor_log)
        try:
            closed_loop(args.concurrency, WARM_UP_S, 5_000,
                        lambda: endpoint_worker(host, floor_port, JobPicker(job_ids), Tally()))  # warm up
            tally = Tally()
            picker = JobPicker(job_ids)
            seconds = closed_loop(
                args.concurrency, args.seconds, args.max_requests,
                lambda: endpoint_worker(host, floor_port, picker, tally),
            )
        finally:
            floor_server.terminate()
            floor_server.wait(timeout=60)
        floor = PhaseResult("flask-floor", seconds, tally)
        results.append(floor)

    if paired is not None:
        results.extend(paired)
    if grouping is not None:
        results.extend(grouping[0])
    rows = [row for result in results for row in result.rows()]
    print_rows(rows)
    ratio = peak.throughput / direct.throughput if direct.throughput else 0.0
    half_row = results[2].rows()[0]
    errors = sum(row["errors"] for row in rows)
    checks = {
        "zero errors": (errors == 0, str(errors)),
        "p99 < 50 ms at half rate": (half_row["p99_ms"] < 50, f"{half_row['p99_ms']} ms"),
    }
    share = paired_share = None
    if floor is not None and floor.throughput:
        share = peak.throughput / floor.throughput
        checks["endpoint alone >= 60% of the Flask floor (phases 1 and 5)"] = (share >= 0.60, f"{share:.0%}")
    if paired is not None and paired[1].throughput:
        paired_share = paired[0].throughput / paired[1].throughput
        checks["endpoint alone >= 60% of the Flask floor (paired rounds)"] = (
            paired_share >= 0.60, f"{paired_share:.0%}"
        )
    classic_share = None
    if paired is not None and paired[2].throughput:
        classic_share = paired[0].throughput / paired[2].throughput
    if grouping is not None:
        checks.update(grouping[1])
    print_checks(checks)
    if classic_share is not None:
        print(f"(not a target) endpoint / classic floor (lock, update, history; paired): {classic_share:.0%}")
    print(f"(not a target) endpoint / psycopg direct: {ratio:.0%}", end="")
    if floor is not None and direct.throughput and floor.throughput:
        print(f"; Flask floor / psycopg direct: {floor.throughput / direct.throughput:.0%}", end="")
    print()
    print(
        f"(gunicorn log: {log_path}; concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": rows, "ratio": ratio, "floor_share": share, "paired_floor_share": paired_share,
                 "paired_classic_floor_share": classic_share,
                 "checks": {k: v[0] for k, v in checks.items()}}, indent=2
            )
        )
    return 0


def print_rows(rows: list[dict]) -> None:
    """The phases' table: requests, errors, throughput and latency per row."""
    print()
    print(f"{'phase':44} {'ok':>7} {'err':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(
            f"{row['phase']:44} {row['requests_ok']:7d} {row['errors']:5d} {row['throughput_per_s']:8.1f} "
            f"{row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['p99_ms']:8.2f}"
        )


def print_checks(checks: dict[str, tuple[bool, str]]) -> None:
    """One ``PASS``/``MISS`` line per target, with its measured value."""
    print()
    for name, (passed, value) in checks.items():
        print(f"{'PASS' if passed else 'MISS'}  {name}: {value}")


def report_grouping_only(
    args: argparse.Namespace, results: list[PhaseResult], checks: dict[str, tuple[bool, str]]
) -> int:
    """Print (and with ``--json`` write) the grouping rounds' results alone; 0."""
    rows = [row for result in results for row in result.rows()]
    print_rows(rows)
    print_checks(checks)
    print(f"(concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "checks": {k: v[0] for k, v in checks.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
