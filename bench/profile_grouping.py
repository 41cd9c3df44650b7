"""What the failure-grouping hook costs one worker report, in this process.

Run it on a throwaway PostgreSQL (it drops and re-creates the ``public``
schema)::

    scripts/with-postgres .venv/bin/python bench/profile_grouping.py [--items 1|2]

The app as bench/profile_record.py runs it (production settings, Flask's
test client, no HTTP server), sending reports of one error item (the hot
group of bench/load.py's grouping rounds) or of two (bench/load.py's body).
Blocks of 300 reports with the recorder's grouping hook and with a no-op in
its place (bench/ungrouped_app.py's), in turn, so both see the same machine.
Prints per report: this process's CPU with and without the hook, the CPU
spent inside the hook, PostgreSQL's CPU (its server processes, from
``/proc``: the statement's own work) with and without, and then a cProfile
of the hook alone (own time, so the top items are the hook's own work).
CPU clocks move far less with the machine's other load than bench/load.py's
throughputs (docs/benchmarks.md, "Grouping overhead on the record path").
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import loopback_database_url, postmaster_pid, tree_cpu_seconds  # noqa: E402 (bench/ is on sys.path)
from load_generator import DETAILS, JobPicker  # noqa: E402
from load_grouping import HOT_DETAILS  # noqa: E402
from profile_record import prepare  # noqa: E402

BLOCK = 300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--items", type=int, choices=(1, 2), default=1, help="error items per report")
    parser.add_argument("--blocks", type=int, default=5, help=f"blocks of {BLOCK} reports each way")
    parser.add_argument("--top", type=int, default=20, help="functions listed by own time")
    parser.add_argument(
        "--no-group-rollup-triggers", action="store_true",
        help="disable the occurrences' group rollup triggers (what they cost; the rollup is then wrong)",
    )
    parser.add_argument(
        "--no-pair-rollup-triggers", action="store_true",
        help="disable the top codes' pair rollup triggers (migration 0022; what they cost; those rollups are "
             "then wrong)",
    )
    args = parser.parse_args()
    url = loopback_database_url(parser, args)

    app, token, ids = prepare(url, 1_000)
    postgres = postmaster_pid(url)
    if args.no_group_rollup_triggers:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as connection:
            for trigger in ("job_group_rollups_insert", "job_group_rollups_update"):
                connection.execute(f"ALTER TABLE failure_occurrences DISABLE TRIGGER {trigger}")
    if args.no_pair_rollup_triggers:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as connection:
            for table, trigger in (("failure_occurrences", "job_group_code_rollups_insert"),
                                   ("failure_occurrences", "job_group_code_rollups_update"),
                                   ("processing_jobs", "job_group_code_rollups_job_update"),
                                   ("processing_jobs", "job_code_pair_rollups_update")):
                connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    from app.services.processing_jobs import failure_recorder

    hook = failure_recorder.group_recorded_failure
    inside = [0.0]

    def timed_hook(*hook_args, **hook_kwargs):  # noqa: ANN002, ANN003, ANN202
        started = time.process_time()
        try:
            return hook(*hook_args, **hook_kwargs)
        finally:
            inside[0] += time.process_time() - started

    details = HOT_DETAILS if args.items == 1 else DETAILS
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    client, picker = app.test_client(), JobPicker(ids)

    def send(count: int) -> None:
        for _ in range(count):
            job_id, n = picker.next()
            body = json.dumps({"error_message": f"Entity validation failed (run {n})", "error_details": details,
                               "error_format": "normalized"})
            response = client.post(f"/api/v1/processing-jobs/{job_id}/validation-failure", data=body,
                                   headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"HTTP {response.status_code}: {response.get_data(as_text=True)[:300]}")

    failure_recorder.group_recorded_failure = timed_hook
    send(2 * BLOCK)  # warm up: imports, pool, prepared statements, caches; every job failed once
    inside[0] = 0.0
    cpu, server = {"on": 0.0, "off": 0.0}, {"on": 0.0, "off": 0.0}
    for _ in range(args.blocks):
        for name in ("off", "on"):
            failure_recorder.group_recorded_failure = timed_hook if name == "on" else (lambda *a, **k: [])
            started, server_started = time.process_time(), tree_cpu_seconds(postgres)
            send(BLOCK)
            cpu[name] += time.process_time() - started
            server[name] += tree_cpu_seconds(postgres) - server_started
    n = args.blocks * BLOCK
    ms = {name: value * 1000 / n for name, value in cpu.items()}
    pg = {name: value * 1000 / n for name, value in server.items()}
    print(f"{args.items}-item reports, {args.blocks} blocks of {BLOCK} each way; per report:")
    print(f"  app CPU: no-op hook {ms['off']:.2f} ms, hook {ms['on']:.2f} ms; inside the hook "
          f"{inside[0] * 1000 / n:.3f} ms")
    print(f"  PostgreSQL CPU: no-op hook {pg['off']:.2f} ms, hook {pg['on']:.2f} ms")
    print(f"  (app + PostgreSQL) without / with the hook: {(ms['off'] + pg['off']) / (ms['on'] + pg['on']):.0%}")

    profiler = cProfile.Profile(time.process_time)
    failure_recorder.group_recorded_failure = lambda *a, **k: profiler.runcall(hook, *a, **k)
    send(1_000)
    failure_recorder.group_recorded_failure = hook
    print("\nthe hook under cProfile (CPU clock), functions by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
