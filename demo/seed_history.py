"""Play the demo's 14 days of history into a fresh demo database (``make demo``).

Reads the plan written by ``demo/generate_corpus.py`` and, batch by batch,
oldest first:

1. runs the reference worker over the batch's folder against the running
   server (over HTTP, as a real worker), reporting the batch's
   ``"worker": {"name", "version"}``;
2. carries out the plan's operator actions due after the batch (resolve the
   groups of a code, optionally in a version) through the JSON API;
3. ages everything recorded so far by the hours until the next batch:
   every timestamp of the job, failure and failure-group tables moves back
   by the same whole number of hours, so hourly rollups stay on hour
   boundaries and "first seen 13 days ago" is what the pages show.

Step 3 rewrites timestamps in the database directly. It exists only for
this demo: it refuses to run with ``APP_ENV=production`` and on anything
but the SQLite demo database unless ``--any-database`` is given.

Usage (scripts/demo does this)::

    python demo/seed_history.py --plan DIR --api-url URL   # WORKER_TOKEN in the environment
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models.types import UTCDateTime  # noqa: E402
from app.worker.client import WorkerApiClient  # noqa: E402
from app.worker.runner import run_worker  # noqa: E402

#: Tables whose timestamps are not part of the story: accounts, tokens,
#: sessions and idempotency keys keep their real times (a session aged by
#: days would have expired).
NOT_AGED = frozenset({
    "users", "worker_tokens", "server_sessions", "idempotency_records", "bulk_actions", "bulk_action_jobs",
    "alembic_version",
})


def age_everything(hours: int) -> int:
    """Move every timestamp of the story's tables back by ``hours``; returns rows changed.

    Rows whose primary key holds a timestamp (the hourly rollups) are moved
    oldest first, so a row never lands on a key that is still taken.
    """
    if hours <= 0:
        return 0
    delta = timedelta(hours=hours)
    changed = 0
    for table in db.metadata.sorted_tables:
        if table.name in NOT_AGED:
            continue
        stamps = [c for c in table.columns if isinstance(c.type, UTCDateTime)]
        if not stamps:
            continue
        keys = list(table.primary_key.columns)
        order = [c for c in keys if c in stamps] or keys
        rows = db.session.execute(sa.select(*keys, *stamps).order_by(*[c.asc() for c in order])).all()
        for row in rows:
            values = {c.name: getattr(row, c.name) - delta for c in stamps if getattr(row, c.name) is not None}
            if not values:
                continue
            where = [k == getattr(row, k.name) for k in keys]
            db.session.execute(sa.update(table).where(*where).values(**values))
            changed += 1
    db.session.commit()
    return changed


def _groups_of_code(client: WorkerApiClient, code: str) -> list[dict[str, Any]]:
    answer = client.session.get(
        f"{client.base_url}/failure-groups", params={"code": code, "state": "unresolved", "limit": 200},
        timeout=client.timeout,
    )
    answer.raise_for_status()
    return answer.json()["items"]


def carry_out(client: WorkerApiClient, action: dict[str, Any]) -> int:
    """Resolve every unresolved group of ``action["code"]`` (in ``in_version`` when given)."""
    body = {"in_version": action["in_version"]} if action.get("in_version") else {}
    groups = _groups_of_code(client, action["code"])
    for group in groups:
        answer = client.session.post(
            f"{client.base_url}/failure-groups/{group['id']}/{action['action']}", json=body, timeout=client.timeout
        )
        answer.raise_for_status()
    return len(groups)


def seed(plan_dir: Path, api_url: str, token: str) -> None:
    """Play ``plan_dir/plan.json`` against the server at ``api_url`` (see the module doc)."""
    plan = json.loads((plan_dir / "plan.json").read_text(encoding="utf-8"))
    batches = plan["batches"]
    client = WorkerApiClient(api_url, retries=2, backoff=0.2, token=token)
    started = time.monotonic()
    documents = 0
    try:
        for index, batch in enumerate(batches):
            documents += len(run_worker(client, plan_dir / batch["folder"], worker=batch["worker"]))
            for action in plan["actions"]:
                if action["after"] == batch["folder"]:
                    resolved = carry_out(client, action)
                    print(f"    {action['action']} {action['code']}"
                          f"{' in ' + action['in_version'] if action.get('in_version') else ''}: {resolved} group(s)")
            following = batches[index + 1]["hours_ago"] if index + 1 < len(batches) else 0
            age_everything(batch["hours_ago"] - following)
    finally:
        client.session.close()
    print(f"    {documents} documents in {len(batches)} batches over {batches[0]['hours_ago'] // 24} days,"
          f" {time.monotonic() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, required=True, help="folder written by demo/generate_corpus.py")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", default=os.environ.get("WORKER_TOKEN"), help="worker token (or WORKER_TOKEN)")
    parser.add_argument("--any-database", action="store_true", help="allow a database other than SQLite")
    args = parser.parse_args()
    if not args.token:
        parser.error("a worker token is needed: --token or WORKER_TOKEN")
    if os.environ.get("APP_ENV") == "production":
        parser.error("refusing to rewrite timestamps with APP_ENV=production")
    app = create_app()
    if not args.any_database and not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        parser.error("refusing to rewrite timestamps outside an SQLite demo database (--any-database to insist)")
    with app.app_context():
        seed(args.plan, args.api_url, args.token)


if __name__ == "__main__":
    main()
