"""The grouping rounds of bench/load.py: what failure grouping costs the
record path end to end, when every request hits the same group.

Two gunicorn servers with the same settings (gunicorn.conf.py) are up at the
same time on the same database: the app (``wsgi:app``) and the same app with
the grouping hook replaced by a no-op (bench/ungrouped_app.py). For
``--grouping-rounds`` rounds, ``--concurrency`` closed-loop clients POST a
validation failure of one error item -- always the same code and pointer, so
every request of the grouped server hits one group (the hot-row worst case)
-- to one server for 5 s, then to the other, on the same jobs. The ratio of
their throughputs (target >= 0.85, issue #12) is taken from slices run one
right after the other, so a change of the machine's other load touches both
nearly alike.

Afterwards the hot group's counters are checked against its occurrences and
against the grouped server's answered requests: the grouped server grouped
every report, exactly once, and the other none.

A third slice in each round (not a target) separates what the hot row
costs from what grouping costs: the grouped server again, on jobs of their
own, each job always failing with a code of its own
(``bench.own_group.<n>``), so each report does the same work as a hot one
(it ends the job's occurrence in a group and adds one there) but no two
jobs share a group row. Hot / own groups near 100 % means the one hot group
serialises nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import child_processes, postmaster_pid, tree_cpu_seconds
from load_generator import Client, JobPicker, PhaseResult, Tally, closed_loop
from load_servers import start_gunicorn

from tests.live_server import free_port

#: The code of the one error item every request of the grouping rounds sends.
HOT_CODE = "bench.hot_group"
HOT_DETAILS = {
    "errors": [
        {
            "code": HOT_CODE,
            "severity": "error",
            "message": "unit is not a valid UCUM code",
            "pointer": "/entities/3/value/unit",
        }
    ]
}
#: Prefix of the codes of the "own group" slices: one group per job.
OWN_CODE = "bench.own_group."
SLICE_SECONDS = 5.0
#: Ratio of throughputs (grouped / ungrouped) the issue asks for.
TARGET = 0.85


def hot_worker(
    host: str, port: int, picker: JobPicker, tally: Tally, own_group: dict[str, int] | None = None
) -> Callable[[], None]:
    """A closed-loop client POSTing a one-item failure of the hot group, or,
    with ``own_group`` (job id -> number), of a group of the job's own."""
    client = Client(host, port)

    def work() -> None:
        job_id, n = picker.next()
        details = HOT_DETAILS
        if own_group is not None:
            details = {"errors": [{**HOT_DETAILS["errors"][0], "code": f"{OWN_CODE}{own_group[job_id]}"}]}
        body = json.dumps(
            {
                "error_message": f"Entity validation failed: 1 error (run {n})",
                "error_details": details,
                "error_format": "normalized",
            }
        ).encode()
        started = time.monotonic()
        try:
            status = client.request("POST", f"/api/v1/processing-jobs/{job_id}/validation-failure", body)
        except OSError as exc:
            tally.fail(type(exc).__name__)
            return
        if status == 200:
            tally.ok(time.monotonic() - started)
        else:
            tally.fail(f"http {status}")

    work.close = client.close  # type: ignore[attr-defined]
    return work


def hot_group_counts(dsn: str) -> tuple[int, int, int]:
    """The hot group's occurrences from its counters, from its occurrence
    rows, and its groups (0 before any grouped request, then 1)."""
    import psycopg

    with psycopg.connect(dsn) as connection:
        groups = connection.execute("SELECT count(*) FROM failure_groups WHERE code = %s", (HOT_CODE,)).fetchone()[0]
        counted = connection.execute(
            "SELECT coalesce(sum(c.occurrences), 0) FROM failure_group_counts c"
            " JOIN failure_groups g ON g.id = c.group_id WHERE g.code = %s",
            (HOT_CODE,),
        ).fetchone()[0]
        rows = connection.execute(
            "SELECT count(*) FROM failure_occurrences o JOIN failure_groups g ON g.id = o.group_id"
            " WHERE g.code = %s",
            (HOT_CODE,),
        ).fetchone()[0]
    return int(counted), int(rows), int(groups)


def run_grouping_rounds(
    args: argparse.Namespace, url: str, dsn: str, host: str, port: int, job_ids: list[str], redis_url: str
) -> tuple[list[PhaseResult], dict[str, tuple[bool, str]]]:
    """Grouping on (the app already serving on ``port``) and off (a second
    gunicorn started here) in turn, ``args.grouping_rounds`` x 5 s each.

    Returns both phases' results (slices summed) and the checks: the ratio
    against :data:`TARGET`, and the hot group's counts against the requests
    the grouped server answered.
    """
    print(f"grouping rounds: grouping on and off in turn, {args.grouping_rounds} x {SLICE_SECONDS:.0f} s each, "
          "every request on one group ...", flush=True)
    off_port = free_port()
    off_log = Path(tempfile.gettempdir()) / f"bench-gunicorn-ungrouped-{off_port}.log"
    off_server = start_gunicorn(url, off_port, args, off_log, ratelimit_storage=redis_url,
                                app_module="bench.ungrouped_app:app")
    on_tally, off_tally, warm_on, own_tally = Tally(), Tally(), Tally(), Tally()
    on_seconds = off_seconds = own_seconds = 0.0
    before = hot_group_counts(dsn)
    # Half the jobs for the hot and ungrouped slices, half for the own-group
    # slices, so no job moves between the hot group and its own.
    shared, own_jobs = job_ids[: len(job_ids) // 2], job_ids[len(job_ids) // 2:]
    own_group = {job_id: n for n, job_id in enumerate(own_jobs)}
    try:
        picker, own_picker = JobPicker(shared), JobPicker(own_jobs)
        closed_loop(args.concurrency, 2.0, 2_000, lambda: hot_worker(host, off_port, picker, Tally()))  # warm up
        closed_loop(args.concurrency, 2.0, 2_000, lambda: hot_worker(host, port, picker, warm_on))
        # Each own-job fails once first (its group is created then, not in a timed slice).
        closed_loop(args.concurrency, 60.0, len(own_jobs),
                    lambda: hot_worker(host, port, own_picker, Tally(), own_group))
        # CPU per request of each server and of PostgreSQL, per slice (not
        # a target): what the throughput ratio is made of.
        grouped = [pid for pid in child_processes(os.getpid(), b"gunicorn") if pid != off_server.pid]
        servers = {"on": grouped, "off": [off_server.pid]}
        postgres = postmaster_pid(dsn)
        cpu = {name: [0.0, 0.0] for name in ("on", "off")}  # app, PostgreSQL

        def timed(name: str, run: Callable[[], float]) -> float:
            app_before, pg_before = tree_cpu_seconds(servers[name]), tree_cpu_seconds(postgres)
            seconds = run()
            cpu[name][0] += tree_cpu_seconds(servers[name]) - app_before
            cpu[name][1] += tree_cpu_seconds(postgres) - pg_before
            return seconds

        for _ in range(args.grouping_rounds):
            on_seconds += timed("on", lambda: closed_loop(args.concurrency, SLICE_SECONDS, args.max_requests,
                                                          lambda: hot_worker(host, port, picker, on_tally)))
            off_seconds += timed("off", lambda: closed_loop(args.concurrency, SLICE_SECONDS, args.max_requests,
                                                            lambda: hot_worker(host, off_port, picker, off_tally)))
            own_seconds += closed_loop(args.concurrency, SLICE_SECONDS, args.max_requests,
                                       lambda: hot_worker(host, port, own_picker, own_tally, own_group))
    finally:
        off_server.terminate()
        off_server.wait(timeout=60)
    counted, rows, groups = hot_group_counts(dsn)
    grouped = len(warm_on.latencies) + len(on_tally.latencies)
    on = PhaseResult("grouping rounds: grouping on", on_seconds, on_tally)
    off = PhaseResult("grouping rounds: grouping off", off_seconds, off_tally)
    own = PhaseResult("grouping rounds: on, each job its own group", own_seconds, own_tally)
    ratio = on.throughput / off.throughput if off.throughput else 0.0
    if own.throughput:
        print(f"(not a target) one hot group / each job its own group: {on.throughput / own.throughput:.0%}; "
              f"own groups / grouping off: {own.throughput / off.throughput:.0%}", flush=True)
    answered = {"on": len(on_tally.latencies), "off": len(off_tally.latencies)}
    if all(answered.values()) and servers["on"] and postgres:
        per = {name: [value * 1000 / answered[name] for value in cpu[name]] for name in cpu}
        print(f"(not a target) CPU per request, app + PostgreSQL: grouping on {per['on'][0]:.2f} + "
              f"{per['on'][1]:.2f} ms, grouping off {per['off'][0]:.2f} + {per['off'][1]:.2f} ms "
              f"(off / on: {sum(per['off']) / sum(per['on']):.0%})", flush=True)
    checks = {
        f"grouping on >= {TARGET:.0%} of grouping off, one hot group (grouping rounds)": (
            ratio >= TARGET, f"{ratio:.0%} ({on.throughput:.1f} vs {off.throughput:.1f} req/s)"
        ),
        "hot group: one group, counters = occurrences = grouped requests": (
            groups == 1 and counted - before[0] == rows - before[1] == grouped
            and warm_on.errors + on_tally.errors + own_tally.errors == 0,
            f"{groups} group, {counted - before[0]} counted, {rows - before[1]} rows, {grouped} requests",
        ),
    }
    return [on, off, own], checks
