"""What one report with many error codes costs the recorder, against one with
as many items of one code, in the same run.

A job with k codes writes about k * k rows to the two pair rollups
(migration 0022) unless it is wide (more than ``WIDE_JOB_ITEMS`` items,
migration 0028: then none). This records, on fresh jobs, for each shape in
turn (``--rounds`` times):

* ``one code``: ``--items`` items of one code (one group);
* ``distinct codes``: ``--items`` items of as many codes (as many groups);

each time the first report, a second one with other codes (every pair and
group-code row of the first is taken away and the second's added), and the
second again (nothing changes). Prints milliseconds per report.

    scripts/with-postgres .venv/bin/python bench/wide_reports.py
    .venv/bin/python bench/wide_reports.py --database-url sqlite:////tmp/wide.sqlite3

On PostgreSQL it drops and re-creates the ``public`` schema: a throwaway
database only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import fresh_schema, loopback_database_url  # noqa: E402


def _details(items: int, distinct: bool, tag: str) -> dict[str, Any]:
    return {"schema_version": 1, "errors": [
        {"code": f"code.{tag}.{i if distinct else 0}", "message": "bad value", "pointer": f"/entities/{i}/code",
         "severity": "error", "entity": {"type": "Condition"}} for i in range(items)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="throwaway PostgreSQL on loopback, or an SQLite file (default: TEST_DATABASE_URL)")
    parser.add_argument("--items", type=int, default=200, help="items per report (default 200, the most kept)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if (args.database_url or "").startswith("sqlite"):
        url = args.database_url
    else:
        url = loopback_database_url(parser, args)
        fresh_schema(url)

    from flask_migrate import upgrade

    from app import create_app
    from app.registry import get_failure_recorder
    from app.services.processing_jobs.lifecycle import create_job

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        upgrade()
        recorder = get_failure_recorder()
        print(f"{args.items} items per report, ms: first / other codes / the same again")
        for _ in range(args.rounds):
            for label, distinct in (("one code", False), ("distinct codes", True)):
                tag = uuid.uuid4().hex[:8]
                job = create_job(f"doc-{tag}", "entity_extraction")
                times = []
                for details in (_details(args.items, distinct, tag), _details(args.items, distinct, tag + "b"),
                                _details(args.items, distinct, tag + "b")):
                    start = time.perf_counter()
                    recorder.record_validation_failure(job.id, "failed", details)
                    times.append((time.perf_counter() - start) * 1000)
                print(f"  {label:>14}: " + " / ".join(f"{t:7.0f}" for t in times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
