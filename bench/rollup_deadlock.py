"""Reproduce the one deadlock the summary rollups' key order cannot prevent.

Run it on a throwaway PostgreSQL (it drops and re-creates the ``public``
schema)::

    scripts/with-postgres .venv/bin/python bench/rollup_deadlock.py

Two jobs fail on the same two groups. Job 1's failure is moved an hour back
(its group-rollup rows move with it), job 2's stays in this hour. Then, on
two connections whose backends share a rollup shard (``pg_backend_pid() %
8``), as two recorders at the turn of an hour would:

1. both re-fail their job (``UPDATE processing_jobs``): job 1's current
   groups move to this hour's rows (grain 2 of groups A and B, locked);
   job 2 already counts there, so nothing moves;
2. job 2's recorder ends its job's occurrences: it locks A's all-time and
   day rows, then waits for A's hour row, which job 1's recorder holds;
3. job 1's recorder ends its occurrences: it waits for A's all-time row.

PostgreSQL aborts one of them with ``deadlock_detected`` (40P01) after
``deadlock_timeout`` (1 s). Prints which, and exits 0 when the deadlock was
reproduced (1 if not). docs/summary-counts.md says why the API replays the
victim's transaction (``app.unit_of_work.replayed_write_transaction``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_schema, loopback_database_url  # noqa: E402

DETAILS = {"errors": [
    {"code": "schema.required", "message": "missing required property 'code'", "pointer": "/entities/3"},
    {"code": "unit.not_ucum", "message": "unit is not a valid UCUM code", "pointer": "/entities/5/unit"},
]}


def _failing_jobs(url: str) -> tuple[str, str]:
    """Two jobs failing on the same two groups; the first failed an hour ago."""
    import sqlalchemy as sa

    from app import create_app
    from app.extensions import db
    from app.models import ProcessingJob
    from app.models.types import utcnow
    from app.registry import get_failure_recorder
    from app.services.processing_jobs.lifecycle import create_job

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        jobs = [create_job(f"deadlock-{n}", "entity_extraction") for n in (1, 2)]
        for job in jobs:
            get_failure_recorder().record_validation_failure(job.id, "first report", DETAILS)
        db.session.execute(sa.update(ProcessingJob).where(ProcessingJob.id == jobs[0].id)
                           .values(completed_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
        ids = (str(jobs[0].id), str(jobs[1].id))
        db.engine.dispose()
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="throwaway PostgreSQL on loopback (default: TEST_DATABASE_URL)")
    args = parser.parse_args()
    url = loopback_database_url(parser, args)
    fresh_schema(url)
    first, second = _failing_jobs(url)

    import psycopg

    dsn = url.replace("+psycopg", "")
    opened: list[psycopg.Connection] = []
    while True:  # two backends on one shard
        connection = psycopg.connect(dsn)
        same = [c for c in opened if c.info.backend_pid % 8 == connection.info.backend_pid % 8]
        opened.append(connection)
        if same:
            one, two = same[0], connection
            break
    refail = "UPDATE processing_jobs SET completed_at = now() WHERE id = %s"
    end = "UPDATE failure_occurrences SET is_current = false WHERE job_id = %s AND is_current"
    one.execute(refail, (first,))
    two.execute(refail, (second,))
    errors: dict[str, Exception] = {}
    waiting = threading.Event()

    def job_two_ends() -> None:
        waiting.set()
        try:
            two.execute(end, (second,))
        except psycopg.Error as error:
            errors["job 2's recorder"] = error

    thread = threading.Thread(target=job_two_ends)
    thread.start()
    waiting.wait()
    # Until job 2's statement waits on the row job 1's recorder holds.
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                                  (two.info.backend_pid,)).fetchone()[0]:
            pass
    try:
        one.execute(end, (first,))
    except psycopg.Error as error:
        errors["job 1's recorder"] = error
    thread.join()
    for connection in opened:
        connection.close()
    for who, error in errors.items():
        print(f"{who}: {type(error).__name__} (SQLSTATE {error.sqlstate})")
    reproduced = any(error.sqlstate == "40P01" for error in errors.values())
    print("deadlock reproduced" if reproduced else "no deadlock")
    return 0 if reproduced else 1


if __name__ == "__main__":
    sys.exit(main())
