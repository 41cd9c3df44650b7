"""What failure grouping costs the recorder, worst case: every failure hits
the same group (the hot-row case), from concurrent writers.

Run it on a throwaway PostgreSQL (it drops and re-creates the ``public``
schema)::

    scripts/with-postgres .venv/bin/python bench/grouping_overhead.py

Service level, no HTTP: ``--concurrency`` threads, each with its own
connection, record ``validation_failed`` reports on distinct jobs for
``--seconds`` per phase, alternating phases with grouping on (the shipped
recorder) and off (the grouping hook replaced by a no-op: what the recorder
cost before failure groups), ``--rounds`` times. Prints failures per second
of each phase and the ratio with/without (target: >= 0.85). Then checks the
group's counts are exact. bench/load.py measures the whole HTTP path.
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


def _phase(app, grouping: bool, concurrency: int, seconds: float) -> int:
    from app.services.processing_jobs import failure_recorder

    original = failure_recorder.group_recorded_failure
    if not grouping:
        failure_recorder.group_recorded_failure = lambda failure, **_: []
    try:
        return record_in_threads(app, concurrency, seconds, ITEMS, prefix="bench")
    finally:
        failure_recorder.group_recorded_failure = original

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = loopback_database_url(parser, args)
    fresh_schema(url)

    from app import create_app
    from app.extensions import db
    from app.services.failure_groups.queries import get_group
    from app.services.failure_groups.recording import rebuild_counts_check

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": args.concurrency + 2}})
    rates: dict[bool, list[float]] = {True: [], False: []}
    for round_number in range(args.rounds):
        for grouping in (False, True):
            count = _phase(app, grouping, args.concurrency, args.seconds)
            rate = count / args.seconds
            rates[grouping].append(rate)
            print(f"round {round_number + 1} grouping={'on ' if grouping else 'off'}: {rate:8.1f} failures/s", flush=True)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"median: with grouping {on:.1f}/s, without {off:.1f}/s, ratio {on / off:.2f} (target >= 0.85)")
    with app.app_context():
        from app.models import FailureGroup

        (group,) = db.session.query(FailureGroup).all()
        view = get_group(group.id)
        rebuilt = rebuild_counts_check([group.id])[group.id]
        exact = (view.occurrence_count, view.job_count, view.current_job_count) == (
            rebuilt["occurrences"], rebuilt["jobs"], rebuilt["current_jobs"]
        )
        print(f"group counts: {view.occurrence_count} occurrences, {view.job_count} jobs, "
              f"{view.current_job_count} current; exact: {exact}")
        db.engine.dispose()
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()
