"""Folding the summary rollups' shards of past days and hours into one row per key.

On PostgreSQL every writer adds to the rollup row of its own shard
(``pg_backend_pid() % ROLLUP_SHARDS``, :mod:`app.models.job_rollup`), so a
busy key of a day is up to eight rows, and a row whose jobs all moved on
stays at 0. The summary of a long range sums every one of them: 40,776 day
rows for 28 days at 1,000,000 jobs, of which 12,454 keys (docs/benchmarks.md).
Once a day or an hour is past, few writes still reach its rows (a status
change of a job created then), so :func:`compact_rollups` folds each key's
shards into shard 0 and removes the rows at 0. The sums do not change: a
shard row is deleted and its jobs added to shard 0 in one statement.

Concurrency: a writer may still change a past bucket's row at any time.
The fold locks a bucket's shard rows in key order before it deletes them,
so a writer's delta is either in the row it deletes or lands in a row
inserted after. It waits at most :data:`LOCK_WAIT` for a lock, then gives
up on that bucket until the next run: a writer never waits longer for the
fold, and never loses a deadlock to it.

Run once a day by the bulk worker's periodic task after the daily roll-up
(:func:`app.services.bulk_queue.roll_up_days`), and by ``flask groups
roll-up-days``. SQLite has one writer at a time and writes shard 0 only:
the same fold there finds nothing to move, and removes the rows at 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models.job_rollup import Grain, JobCodeRollup, JobCountRollup, JobGroupRollup
from app.services.summary_counts import bucket_number
from app.unit_of_work import write_transaction

#: The rollups folded, each with its shards.
ROLLUPS = (JobCountRollup, JobCodeRollup, JobGroupRollup)
#: How long after its end a day or an hour is folded: by then the writers
#: of its own time have long committed.
SETTLED_AFTER = timedelta(hours=2)
#: Longest the fold waits for a row lock (PostgreSQL ``lock_timeout``).
LOCK_WAIT = "100ms"


@dataclass
class Compaction:
    """What :func:`compact_rollups` did.

    Attributes:
        buckets: past (table, grain, bucket) sets folded.
        rows_before: their rows before.
        rows_after: their rows after.
        skipped: buckets given up on because a writer held a row
            (folded by a later run).
    """

    buckets: int = 0
    rows_before: int = 0
    rows_after: int = 0
    skipped: list[tuple[str, int, int]] = field(default_factory=list)


def compact_rollups(now: datetime) -> Compaction:
    """Fold the shards of every day and hour that ended :data:`SETTLED_AFTER`
    before ``now`` (aware UTC) into shard 0, and remove rows at 0.

    Each bucket of each table is one transaction. All-time rows are left
    as they are: every writer adds to them.

    Returns:
        A :class:`Compaction`.
    """
    result = Compaction()
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    for model in ROLLUPS:
        table = model.__table__
        for grain in (Grain.DAY, Grain.HOUR):
            # The first bucket not yet settled: its end is less than SETTLED_AFTER ago.
            settled = bucket_number(now - SETTLED_AFTER, grain)
            untidy = sa.or_(table.c.jobs == 0, table.c.shard != 0)
            buckets = db.session.scalars(
                sa.select(table.c.created_bucket).distinct()
                .where(table.c.grain == int(grain), table.c.created_bucket < settled, untidy)
                .order_by(table.c.created_bucket)
            ).all()
            db.session.rollback()  # the folds are transactions of their own
            for bucket in buckets:
                try:
                    before, after = _fold(table, grain, bucket, postgresql)
                except OperationalError as error:
                    if not _is_lock_timeout(error):
                        raise
                    result.skipped.append((table.name, int(grain), bucket))
                    continue
                result.buckets += 1
                result.rows_before += before
                result.rows_after += after
    return result


def _key_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [column for column in table.primary_key.columns if column.name != "shard"]


def _fold(table: sa.Table, grain: Grain, bucket: int, postgresql: bool) -> tuple[int, int]:
    """Fold one bucket in its own transaction; ``(rows before, rows after)``."""
    in_bucket = sa.and_(table.c.grain == int(grain), table.c.created_bucket == bucket)
    count = sa.select(sa.func.count()).select_from(table).where(in_bucket)
    with write_transaction():
        if postgresql:
            db.session.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
        before = db.session.scalar(count) or 0
        db.session.execute(sa.text(_fold_sql(table) if postgresql else _fold_sql_sqlite(table)),
                           {"grain": int(grain), "bucket": bucket})
        if not postgresql:
            db.session.execute(sa.delete(table).where(in_bucket, table.c.shard != 0))
        # Rows at 0 (after the fold, only shard 0 is left), locked in key
        # order as the fold's are.
        locked = (sa.select(*table.primary_key.columns).where(in_bucket, table.c.jobs == 0)
                  .order_by(*table.primary_key.columns))
        if postgresql:
            locked = locked.with_for_update()
        zero = locked.subquery("zero")
        db.session.execute(sa.delete(table).where(
            sa.tuple_(*table.primary_key.columns).in_(sa.select(*zero.c)), table.c.jobs == 0))
        after = db.session.scalar(count) or 0
    return before, after


def _fold_sql(table: sa.Table) -> str:
    """PostgreSQL: lock the bucket's shard rows in key order, delete them,
    and add their jobs to shard 0 of their key, in one statement (a
    writer's later delta lands in a new row of its shard, folded next time)."""
    keys = [column.name for column in _key_columns(table)]
    columns = ", ".join(keys)
    pk = ", ".join(keys + ["shard"])
    matched = " AND ".join(f"t.{name} = locked.{name}" for name in keys + ["shard"])
    return f"""
WITH locked AS (
  SELECT {pk} FROM {table.name}
  WHERE grain = :grain AND created_bucket = :bucket AND shard <> 0
  ORDER BY {pk}
  FOR UPDATE
), moved AS (
  DELETE FROM {table.name} AS t USING locked WHERE {matched}
  RETURNING {", ".join(f"t.{name}" for name in keys)}, t.jobs
)
INSERT INTO {table.name} ({columns}, shard, jobs)
SELECT {columns}, 0, sum(jobs) FROM moved GROUP BY {columns} ORDER BY {columns}
ON CONFLICT ({pk}) DO UPDATE SET jobs = {table.name}.jobs + EXCLUDED.jobs
"""


def _fold_sql_sqlite(table: sa.Table) -> str:
    """SQLite (one writer at a time, so two statements): add the bucket's
    shard rows' jobs to shard 0 of their key; the caller then deletes them."""
    keys = ", ".join(column.name for column in _key_columns(table))
    # "WHERE" before ON CONFLICT: SQLite's parser needs it after a SELECT.
    return f"""
INSERT INTO {table.name} ({keys}, shard, jobs)
SELECT {keys}, 0, sum(jobs) FROM {table.name}
WHERE grain = :grain AND created_bucket = :bucket AND shard <> 0
GROUP BY {keys}
ON CONFLICT ({keys}, shard) DO UPDATE SET jobs = jobs + excluded.jobs
"""


def _is_lock_timeout(error: OperationalError) -> bool:
    # SQLSTATE 55P03 lock_not_available: lock_timeout ran out.
    return getattr(error.orig, "sqlstate", None) == "55P03"
