"""Play the demo's 13 days of history into a fresh demo database (``make demo``).

Reads the plan written by ``demo/generate_corpus.py`` and, batch by batch,
oldest first:

1. runs the reference worker over the batch's folder against the running
   server (over HTTP, as a real worker), reporting the batch's
   ``"worker": {"name", "version"}``;
2. carries out the plan's operator actions due after the batch (resolve the
   groups of a code, optionally in a version) with the lifecycle service;
3. moves what the batch wrote back to when the batch happened: every
   timestamp of the job, failure and failure-group tables written during
   the batch moves back by its whole number of hours, so hourly rollups
   stay on hour boundaries and "first seen 13 days ago" is what the pages show.
   The audit row of each group state change the batch made (a resolve, a
   regression) moves with it, to the very time of its timeline event, so
   ``/admin/audit`` and ``/groups/<id>`` give one time for one change. The
   rest of the audit log keeps its real times (the account and token made
   before the history; anyone signing in while it plays).

Step 3 rewrites timestamps in the database directly. It exists only for
this demo: it refuses to run with ``APP_ENV=production`` and on anything
but the SQLite demo database unless ``--any-database`` is given.

Usage (scripts/demo does this)::

    python demo/seed_history.py --plan DIR --api-url URL [--generate]   # WORKER_TOKEN in the environment
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict, deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import AuditEvent, FailureGroupEvent, GroupState  # noqa: E402
from app.models.types import UTCDateTime, utcnow  # noqa: E402
from app.services.failure_groups import daily as daily_rollup  # noqa: E402
from app.services.failure_groups import lifecycle as group_lifecycle  # noqa: E402
from app.services.failure_groups import queries  # noqa: E402
from app.worker.client import WorkerApiClient  # noqa: E402
from app.worker.runner import run_worker  # noqa: E402

#: Tables whose timestamps are not part of the story: accounts, tokens,
#: sessions and idempotency keys keep their real times (a session aged by
#: days would have expired). The audit log is not aged by the hour either:
#: its ``users.create`` and ``tokens.create`` (written by scripts/demo just
#: before the first batch, in the hour that batch's ageing starts from) keep
#: theirs, and only the rows of the story's state changes move, each with its
#: event (:func:`move_state_change_audits`).
NOT_AGED = frozenset({
    "users", "worker_tokens", "server_sessions", "idempotency_records", "bulk_actions", "bulk_action_jobs",
    "audit_events", "alembic_version",
    # The daily rollup is summed again from the aged hours (seed()).
    "failure_group_daily", "failure_group_daily_state",
})


def age_batch(since: datetime, hours: int) -> int:
    """Move back by ``hours`` every timestamp written since ``since``: the
    rows the batch just recorded (jobs, failures, occurrences, hourly
    rollups, group events) and the columns it touched on older rows (a
    group's ``last_seen``). Returns the values moved.

    Every earlier batch was moved back by at least an hour, so whatever is
    at or after ``since`` floored to the hour was written by this batch.
    Rows whose primary key holds a timestamp (the hourly rollups) move
    oldest first, so a row never lands on a key still taken.
    """
    if hours <= 0:
        return 0
    delta = timedelta(hours=hours)
    threshold = since.replace(minute=0, second=0, microsecond=0)
    # Before the events move: their times at or after the threshold say which are this batch's.
    moved = move_state_change_audits(since, threshold, delta)
    for table in db.metadata.sorted_tables:
        if table.name in NOT_AGED:
            continue
        keys = list(table.primary_key.columns)
        for column in (c for c in table.columns if isinstance(c.type, UTCDateTime)):
            rows = db.session.execute(
                sa.select(*keys, column).where(column >= threshold).order_by(column.asc())
            ).all()
            for row in rows:
                where = [k == getattr(row, k.name) for k in keys]
                db.session.execute(sa.update(table).where(*where).values({column.name: row[-1] - delta}))
            moved += len(rows)
    db.session.commit()
    return moved


def move_state_change_audits(since: datetime, threshold: datetime, delta: timedelta) -> int:
    """Give the audit row of each group state change made since ``since``
    the time its timeline event will have once moved back by ``delta``.
    Returns the rows moved; nothing is committed.

    The batch's events are those at or after ``threshold`` (see
    :func:`age_batch`); their audit rows, those written since ``since``.
    ``change_state`` writes both in one transaction, but each reads the clock
    on its own (a regression's event even takes its failure's time), so
    shifting the audit row by ``delta`` alone would leave it milliseconds,
    sometimes a displayed second, off its event. Rows and events of one
    group and reason (``groups.<reason>``) pair up in writing order; an
    audit row left without an event keeps its real time.
    """
    written = db.session.execute(
        sa.select(AuditEvent.id, AuditEvent.action, AuditEvent.filter)
        .where(AuditEvent.occurred_at >= since, AuditEvent.action.like("groups.%"))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    waiting: defaultdict[tuple[str, object], deque] = defaultdict(deque)
    for row in written:
        waiting[(row.action, (row.filter or {}).get("group_id"))].append(row.id)
    events = db.session.execute(
        sa.select(FailureGroupEvent.group_id, FailureGroupEvent.reason, FailureGroupEvent.at)
        .where(FailureGroupEvent.at >= threshold)
        .order_by(FailureGroupEvent.id)
    ).all()
    moved = 0
    for event in events:
        audit_ids = waiting.get((f"groups.{event.reason}", event.group_id))
        if audit_ids:  # "created" is on the timeline only: no audit row
            db.session.execute(
                sa.update(AuditEvent).where(AuditEvent.id == audit_ids.popleft()).values(occurred_at=event.at - delta)
            )
            moved += 1
    return moved


#: Who resolves groups in the demo's history (the timeline and the audit log show it).
DEMO_OPERATOR = "demo-operator"


def carry_out(action: dict[str, Any]) -> int:
    """Resolve every unresolved group of ``action["code"]`` (in ``in_version``
    when given), through the lifecycle service the dashboard uses."""
    group_filter = queries.GroupFilter(states=(GroupState.UNRESOLVED.value,), code=action["code"])
    views = queries.list_groups(group_filter, limit=200).items
    for view in views:
        group_lifecycle.resolve_group(view.group.id, DEMO_OPERATOR, in_version=action.get("in_version"), via="demo")
    return len(views)


def seed(plan_dir: Path, api_url: str, token: str) -> None:
    """Play ``plan_dir/plan.json`` against the server at ``api_url`` (see the module doc)."""
    plan = json.loads((plan_dir / "plan.json").read_text(encoding="utf-8"))
    batches = plan["batches"]
    client = WorkerApiClient(api_url, retries=2, backoff=0.2, token=token)
    started = time.monotonic()
    documents = 0
    try:
        for batch in batches:
            since = utcnow()
            documents += len(run_worker(client, plan_dir / batch["folder"], worker=batch["worker"]))
            for action in plan["actions"]:
                if action["after"] == batch["folder"]:
                    resolved = carry_out(action)
                    print(f"    {action['action']} {action['code']}"
                          f"{' in ' + action['in_version'] if action.get('in_version') else ''}: {resolved} group(s)")
            age_batch(since, batch["hours_ago"])
        # The batches' hours moved into days already rolled up.
        daily_rollup.rebuild_closed_days()
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
    parser.add_argument("--generate", action="store_true",
                        help="first write the plan with demo/generate_corpus.py (seed 12) into --plan, in this process")
    args = parser.parse_args()
    if not args.token:
        parser.error("a worker token is needed: --token or WORKER_TOKEN")
    if os.environ.get("APP_ENV") == "production":
        parser.error("refusing to rewrite timestamps with APP_ENV=production")
    app = create_app()
    if not args.any_database and not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        parser.error("refusing to rewrite timestamps outside an SQLite demo database (--any-database to insist)")
    if args.generate:
        # One process for both: the ICD-10-CM table loads once (seconds).
        from demo.generate_corpus import generate

        generate(args.plan)
        print(f"    generated the plan in {args.plan}")
    with app.app_context():
        seed(args.plan, args.api_url, args.token)


if __name__ == "__main__":
    main()
