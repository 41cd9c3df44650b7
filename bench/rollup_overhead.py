"""What the summary rollups' triggers (migrations 0015, 0019 and 0022) cost the
recorder, worst case: concurrent writers whose jobs all share one rollup key
(same hour, status, job type) and one failure group, so they meet on the
same rollup rows.

Run it on a throwaway PostgreSQL (it drops and re-creates the ``public``
schema)::

    scripts/with-postgres .venv/bin/python bench/rollup_overhead.py

Service level, no HTTP, in the style of bench/grouping_overhead.py:
``--concurrency`` threads, each with its own connection, create 400 jobs
then record ``validation_failed`` reports on them for ``--seconds`` per
phase, alternating phases with the rollup triggers enabled (as shipped) and
disabled (``ALTER TABLE ... DISABLE TRIGGER``: the recorder before them),
``--rounds`` times. ``--triggers`` picks which: ``jobs`` (0015's, on
``processing_jobs``), ``groups`` (0019's, on ``failure_occurrences`` and
``processing_jobs``), ``pairs`` (0022's top-codes rollups, on both) or
``all``. Prints failures per second of each phase
and the ratio on/off. Jobs of the "on" phases have a job type of their own;
at the end their rollups are compared with a count of those jobs, and the
group rollup with their current occurrences (exact or exit 1).

``--purge N`` then times the retention purge of N finished jobs (inserted by
one ``INSERT ... SELECT``, completed a year ago) with the group rollup's
``BEFORE DELETE`` row trigger disabled and enabled, in turn, ``--rounds``
times: what that trigger costs a purge.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import fresh_schema, loopback_database_url, record_in_threads  # noqa: E402

ITEMS = [
    {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/3/value/unit"},
]
#: (table, trigger) of each set ``--triggers`` can switch off.
TRIGGERS = {
    "jobs": [("processing_jobs", name) for name in ("job_rollups_insert", "job_rollups_update", "job_rollups_delete")],
    "groups": [("failure_occurrences", f"job_group_rollups_{event}") for event in ("insert", "update", "delete")]
    + [("processing_jobs", "job_group_rollups_job_update"), ("processing_jobs", "job_group_rollups_job_delete")],
    # The top codes' pair rollups (migration 0022).
    "pairs": [("processing_jobs", f"job_code_pair_rollups_{event}") for event in ("insert", "update", "delete")]
    + [("failure_occurrences", f"job_group_code_rollups_{event}") for event in ("insert", "update", "delete")]
    + [("processing_jobs", "job_group_code_rollups_job_update")],
}
TRIGGERS["all"] = TRIGGERS["jobs"] + TRIGGERS["groups"] + TRIGGERS["pairs"]
#: What ``--purge`` switches: the group rollup's delete trigger alone.
PURGE_TRIGGERS = "group delete"
TRIGGERS[PURGE_TRIGGERS] = [("processing_jobs", "job_group_rollups_job_delete")]


def _set_triggers(app, which: str, enabled: bool) -> None:
    from app.extensions import db

    with app.app_context(), db.engine.begin() as connection:
        for table, name in TRIGGERS[which]:
            connection.exec_driver_sql(f"ALTER TABLE {table} {'ENABLE' if enabled else 'DISABLE'} TRIGGER {name}")


def _phase(app, which: str, triggers: bool, concurrency: int, seconds: float, round_number: int) -> int:
    _set_triggers(app, which, triggers)
    return record_in_threads(app, concurrency, seconds, ITEMS, prefix=f"bench-{round_number}",
                             job_type="bench_on" if triggers else "bench_off")

def _purge_rounds(app, jobs: int, rounds: int) -> None:
    import time
    from datetime import datetime, timedelta, timezone

    from app.extensions import db
    from app.services.retention import purge_finished_jobs

    seconds: dict[bool, list[float]] = {True: [], False: []}
    for round_number in range(rounds):
        for enabled in (False, True):
            _set_triggers(app, PURGE_TRIGGERS, enabled)
            with app.app_context(), db.engine.begin() as connection:
                connection.exec_driver_sql(
                    "INSERT INTO processing_jobs (id, document_id, job_type, status, created_at, updated_at, completed_at)"
                    " SELECT gen_random_uuid(), 'purge-' || n, 'bench_purge', 'Completed', now() - interval '400 days',"
                    " now() - interval '400 days', now() - interval '400 days' FROM generate_series(1, %(n)s) AS n",
                    {"n": jobs})
            with app.app_context():
                began = time.perf_counter()
                counts = purge_finished_jobs(datetime.now(timezone.utc) - timedelta(days=365), batch_size=1000)
                took = time.perf_counter() - began
                db.session.remove()
            seconds[enabled].append(took)
            print(f"purge round {round_number + 1} delete trigger={'on ' if enabled else 'off'}: "
                  f"{counts.processing_jobs:,} jobs in {took:.2f} s", flush=True)
    on, off = statistics.median(seconds[True]), statistics.median(seconds[False])
    print(f"purge median: with the delete trigger {on:.2f} s, without {off:.2f} s, "
          f"{(on - off) / jobs * 1e6:.0f} us a job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--triggers", choices=sorted(set(TRIGGERS) - {PURGE_TRIGGERS}), default="all", help="which rollups' triggers to switch")
    parser.add_argument("--purge", type=int, default=0, help="then time purging this many finished jobs")
    args = parser.parse_args()
    url = loopback_database_url(parser, args)
    fresh_schema(url)

    from app import create_app
    from app.extensions import db
    from app.models.job_rollup import JobCodeRollup

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": args.concurrency + 2}})
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for round_number in range(args.rounds):
        for triggers in (False, True):
            count = _phase(app, args.triggers, triggers, args.concurrency, args.seconds, round_number)
            rate = count / args.seconds
            rates[triggers].append(rate)
            print(f"round {round_number + 1} triggers={'on ' if triggers else 'off'}: {rate:8.1f} failures/s", flush=True)
    _set_triggers(app, args.triggers, True)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"median: with the {args.triggers} rollup triggers {on:.1f}/s, without {off:.1f}/s, ratio {on / off:.2f}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with app.app_context(), db.engine.connect() as connection:
        direct = dict(connection.exec_driver_sql(
            "SELECT status, count(*) FROM processing_jobs WHERE job_type = 'bench_on' GROUP BY status").all())
        rolled = {grain: dict(connection.exec_driver_sql(
            "SELECT status, sum(jobs)::bigint FROM job_count_rollups WHERE job_type = 'bench_on' AND grain = %(g)s"
            " GROUP BY status HAVING sum(jobs) <> 0", {"g": grain}).all()) for grain in (0, 1, 2)}
        # The code rollup, at each of its grains (weeks too: migration 0026).
        coded_direct = dict(connection.exec_driver_sql(
            "SELECT item ->> 'code', count(DISTINCT j.id) FROM processing_jobs AS j CROSS JOIN LATERAL"
            " jsonb_array_elements(CASE WHEN jsonb_typeof(j.error_details -> 'errors') = 'array'"
            " THEN j.error_details -> 'errors' ELSE '[]'::jsonb END) AS item"
            " WHERE j.job_type = 'bench_on' AND jsonb_typeof(item -> 'code') = 'string' GROUP BY 1").all())
        coded = {grain: dict(connection.exec_driver_sql(
            "SELECT code, sum(jobs)::bigint FROM job_code_rollups WHERE job_type = 'bench_on' AND grain = %(g)s"
            " GROUP BY code HAVING sum(jobs) <> 0", {"g": int(grain)}).all()) for grain in JobCodeRollup.grains}
        shards = connection.exec_driver_sql(
            "SELECT count(DISTINCT shard) FROM job_count_rollups WHERE job_type = 'bench_on'").scalar_one()
        current = dict(connection.exec_driver_sql(
            "SELECT o.group_id, count(*) FROM failure_occurrences AS o JOIN processing_jobs AS j ON j.id = o.job_id"
            " WHERE o.is_current AND j.job_type = 'bench_on' GROUP BY o.group_id").all())
        grouped = {grain: dict(connection.exec_driver_sql(
            "SELECT group_id, sum(jobs)::bigint FROM job_group_rollups WHERE job_type = 'bench_on' AND grain = %(g)s"
            " GROUP BY group_id HAVING sum(jobs) <> 0", {"g": grain}).all()) for grain in (0, 1, 2)}
        # The pair rollups: a one-code report writes no pair of two codes,
        # and each group's current jobs once per code.
        paired = connection.exec_driver_sql(
            "SELECT count(*) FROM job_code_pair_rollups WHERE job_type = 'bench_on' AND jobs <> 0").scalar_one()
        group_coded = {grain: dict(connection.exec_driver_sql(
            "SELECT group_id, sum(jobs)::bigint FROM job_group_code_rollups WHERE job_type = 'bench_on'"
            " AND grain = %(g)s GROUP BY group_id HAVING sum(jobs) <> 0", {"g": grain}).all()) for grain in (0, 1, 2)}
        db.engine.dispose()
    exact = all(rows == direct for rows in rolled.values()) and all(rows == coded_direct for rows in coded.values())
    exact_groups = all(rows == current for rows in grouped.values())
    exact_pairs = paired == 0 and all(rows == current for rows in group_coded.values())
    print(f"rollups of the 'on' jobs: {direct}, codes {coded_direct}, at every grain: {exact}; shards used: {shards}")
    print(f"group rollup of the 'on' jobs: current jobs per group {current} at every grain: {exact_groups}")
    print(f"pair rollups of the 'on' jobs: no pair of codes ({paired} rows), the groups' current jobs at every grain:"
          f" {exact_pairs}")
    if not exact or not exact_groups or not exact_pairs:
        sys.exit(1)
    if args.purge:
        _purge_rounds(app, args.purge, args.rounds)


if __name__ == "__main__":
    main()
