"""Folding the summary rollups' shards of past days and hours, and the
failure groups' counter shards, into one row per key.

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

The groups' counters (``failure_group_counts``, sharded by job:
:func:`app.services.failure_groups.write_statements.job_shard`) have no
time in their key; :func:`compact_counters` folds them the same way, a
range of groups at a time. A job's next write to a group lands in its
shard's row again, created anew: the sums stay exact, and a group that is
quiet now keeps one row per key.

Run once a day by the bulk worker's periodic task after the daily roll-up
(:func:`app.services.bulk_queue.roll_up_days`), and by ``flask groups
roll-up-days``. SQLite has one writer at a time and writes the rollups'
shard 0 only: the same fold there finds nothing to move in them, and
removes the rows at 0; its counters are sharded by job as on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models.failure_group import FailureGroupCount
from app.models.job_rollup import COARSE_TO_FINE, ROLLUP_MODELS, Grain
from app.services.summary_ranges import bucket_number
from app.unit_of_work import write_transaction

#: The rollups folded, each with its shards.
ROLLUPS = ROLLUP_MODELS
#: How long after its end a day or an hour is folded: by then the writers
#: of its own time have long committed.
SETTLED_AFTER = timedelta(hours=2)
#: Longest the fold waits for a row lock (PostgreSQL ``lock_timeout``).
LOCK_WAIT = "100ms"
#: The rows of one past bucket, in the fold's statements.
_BUCKET = "grain = :grain AND created_bucket = :bucket"
#: The all-time rows, in the fold's statements.
_ALL_TIME = f"grain = {int(Grain.ALL)}"
#: The columns by whose values each rollup's all-time rows are folded, a
#: range at a time: the first key column after the grain that varies, then
#: the one that splits a value with too many rows (none: the table's
#: all-time rows are few, folded at once). At 10,000,000 jobs one code's
#: all-time pairs are up to 39,482 rows, the largest group's codes 39,626
#: (docs/benchmarks.md).
ALL_TIME_CHUNK_COLUMNS: dict[str, tuple[str, ...]] = {
    "job_count_rollups": (),
    "job_code_rollups": ("code",),
    "job_group_rollups": ("group_id",),
    "job_code_pair_rollups": ("filter_code", "code"),
    "job_group_code_rollups": ("group_id", "code"),
}
#: Rows to fold per all-time transaction, at most (a single value of the
#: last chunk column may hold more): a writer of one of them waits for the
#: whole transaction. At 10,000,000 jobs a range of 100 codes' pairs, about
#: 500,000 rows, ran past the 15 s statement timeout.
ALL_TIME_FOLD_ROWS = 5_000
#: Groups whose counters one fold takes (one transaction, a few
#: milliseconds of row locks).
COUNTER_FOLD_GROUPS = 500
#: The counter rows of a range of groups, in the fold's statements.
_GROUP_RANGE = "group_id BETWEEN :first AND :last"
#: What a counter row counts (summed by the fold).
COUNTER_VALUES = ("occurrences", "jobs", "current_jobs")


@dataclass
class Compaction:
    """What a fold (:func:`compact_rollups`, :func:`compact_counters`) did.

    Attributes:
        buckets: sets of rows folded, each in a transaction of its own:
            a past (table, grain, bucket), or a range of groups' counters.
        rows_before: their rows before.
        rows_after: their rows after.
        skipped: sets given up on because a writer held a row (folded by
            a later run): ``(table, grain, bucket)``, or ``(table, first
            value, last value)`` of a range of groups' counters or of
            all-time rows.
    """

    buckets: int = 0
    rows_before: int = 0
    rows_after: int = 0
    skipped: list[tuple[str, Any, Any]] = field(default_factory=list)


def compact_rollups(now: datetime) -> Compaction:
    """Fold the shards of every week, day and hour that ended :data:`SETTLED_AFTER`
    before ``now`` (aware UTC) into shard 0, then those of the all-time
    rows, and remove rows at 0.

    Each bucket of each table is one transaction; the all-time rows of a
    table are folded a range of its :data:`ALL_TIME_CHUNK_COLUMNS` values
    at a time, about :data:`ALL_TIME_FOLD_ROWS` rows each. Every writer still
    adds to the all-time rows: its next delta lands in its shard's row,
    created anew, so a key written since has its shards again, and a quiet
    one keeps one row.

    Returns:
        A :class:`Compaction` whose ``skipped`` entries are ``(table,
        grain, bucket)`` for a day or an hour, and ``(table, first value,
        last value)`` for a range of all-time rows (``(table, None, None)``
        for a table folded whole, ``(table, (value, first), (value,
        last))`` for a range within one value of the first column).
    """
    result = Compaction()
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    for model in ROLLUPS:
        table = model.__table__
        untidy = sa.or_(table.c.jobs == 0, table.c.shard != 0)
        for grain in (grain for grain in COARSE_TO_FINE if grain in model.grains):
            # The first bucket not yet settled: its end is less than SETTLED_AFTER ago.
            settled = bucket_number(now - SETTLED_AFTER, grain)
            buckets = db.session.scalars(
                sa.select(table.c.created_bucket).distinct()
                .where(table.c.grain == int(grain), table.c.created_bucket < settled, untidy)
                .order_by(table.c.created_bucket)
            ).all()
            db.session.rollback()  # the folds are transactions of their own
            _fold_sets(result, table, postgresql, [
                (_BUCKET, {"grain": int(grain), "bucket": bucket}, (table.name, int(grain), bucket))
                for bucket in buckets
            ])
        _fold_sets(result, table, postgresql, _all_time_sets(table, ALL_TIME_CHUNK_COLUMNS[table.name], untidy))
    return result


def _all_time_sets(
    table: sa.Table, columns: tuple[str, ...], untidy: Any, *, within: tuple[str, Any] | None = None,
) -> list[tuple[str, dict[str, Any], tuple]]:
    """The fold's sets of a table's all-time rows that have something to
    fold: ranges of the first of ``columns``' values of about
    :data:`ALL_TIME_FOLD_ROWS` rows, a value with more split by the next
    column; the whole grain when ``columns`` is empty. ``within``: the
    (column, value) these rows are of (a split value)."""
    where = [table.c.grain == int(Grain.ALL), untidy]
    condition = _ALL_TIME
    parameters: dict[str, Any] = {}
    if within is not None:
        where.append(table.c[within[0]] == within[1])
        condition += f" AND {within[0]} = :value"
        parameters["value"] = within[1]
    if not columns:
        found = db.session.scalar(sa.select(sa.literal(1)).where(*where).limit(1)) is not None
        db.session.rollback()  # the folds are transactions of their own
        return [(condition, parameters, (table.name, None, None))] if found else []
    column = table.c[columns[0]]
    counts = db.session.execute(
        sa.select(column, sa.func.count()).where(*where).group_by(column).order_by(column)
    ).all()
    db.session.rollback()
    sets: list[tuple[str, dict[str, Any], tuple]] = []
    ranged = f"{condition} AND {columns[0]} BETWEEN :first AND :last"

    def add(first: Any, last: Any) -> None:
        name = (table.name, first, last) if within is None else (table.name, (within[1], first), (within[1], last))
        sets.append((ranged, {**parameters, "first": first, "last": last}, name))

    start = None
    rows = 0
    for value, count in counts:
        if count > ALL_TIME_FOLD_ROWS and len(columns) > 1:
            if start is not None:
                add(start, previous)
                start, rows = None, 0
            sets.extend(_all_time_sets(table, columns[1:], untidy, within=(columns[0], value)))
            continue
        if start is not None and rows + count > ALL_TIME_FOLD_ROWS:
            add(start, previous)
            start, rows = None, 0
        if start is None:
            start = value
        rows += count
        previous = value
    if start is not None:
        add(start, previous)
    return sets


def compact_counters() -> Compaction:
    """Fold the failure groups' counter shards (``failure_group_counts``)
    into shard 0 of each (group, job type, worker version), a range of
    :data:`COUNTER_FOLD_GROUPS` groups per transaction.

    The counters are cumulative, with no time in their key, so every row
    may still be written; the fold takes the same care as for a past
    bucket (rows locked in key order, :data:`LOCK_WAIT` at most, a range a
    writer holds is left for the next run). ``/groups?sort=job_count`` sums
    every group's rows: at 10,000,000 jobs, 133,253 rows for 18,873 groups
    before a fold (docs/benchmarks.md).

    Returns:
        A :class:`Compaction` whose ``skipped`` entries are
        ``("failure_group_counts", first group id, last group id)``.
    """
    result = Compaction()
    table = FailureGroupCount.__table__
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    group_ids = db.session.scalars(
        sa.select(table.c.group_id).distinct().where(table.c.shard != 0).order_by(table.c.group_id)
    ).all()
    db.session.rollback()  # the folds are transactions of their own
    ranges = [(group_ids[start], group_ids[min(start + COUNTER_FOLD_GROUPS, len(group_ids)) - 1])
              for start in range(0, len(group_ids), COUNTER_FOLD_GROUPS)]
    _fold_sets(result, table, postgresql, [
        (_GROUP_RANGE, {"first": first, "last": last}, (table.name, first, last)) for first, last in ranges
    ], COUNTER_VALUES)
    return result


def _fold_sets(
    result: Compaction, table: sa.Table, postgresql: bool, sets: list[tuple[str, dict[str, Any], tuple]],
    values: tuple[str, ...] = ("jobs",),
) -> None:
    """Fold each ``(where, parameters, name)`` of ``sets`` with :func:`_fold`,
    adding to ``result``; a set a writer holds a row of (the lock wait ran
    out) goes to ``result.skipped`` as ``name``."""
    for where, parameters, name in sets:
        try:
            folded = _fold(table, postgresql, parameters, where, values)
        except OperationalError as error:
            if not _is_lock_timeout(error):
                raise
            result.skipped.append(name)
            continue
        if folded is None:
            continue  # another run folded it first: nothing to report twice
        before, after = folded
        result.buckets += 1
        result.rows_before += before
        result.rows_after += after


def _key_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [column for column in table.primary_key.columns if column.name != "shard"]


def _fold(
    table: sa.Table, postgresql: bool, parameters: dict[str, Any], where: str = _BUCKET,
    values: tuple[str, ...] = ("jobs",),
) -> tuple[int, int] | None:
    """Fold the shard rows ``where`` selects (SQL with ``parameters``) in a
    transaction of its own, then remove their keys' rows left with every
    one of ``values`` at 0; ``(rows before, rows after)``, or ``None`` when
    another run folded them first (PostgreSQL)."""
    rows = sa.text(where)
    count = sa.select(sa.func.count()).select_from(table).where(rows)
    with write_transaction():
        if postgresql:
            db.session.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
        before = db.session.scalar(count, parameters) or 0
        folded = db.session.execute(
            sa.text(_fold_sql(table, where, values) if postgresql else _fold_sql_sqlite(table, where, values)),
            parameters,
        ).rowcount
        if postgresql and folded == 0:
            # ``before`` was counted before the fold's locks: a run that got
            # them first has folded these rows meanwhile (an SRE trial saw
            # two of three runs at once report the same fold).
            return None
        if not postgresql:
            db.session.execute(sa.delete(table).where(rows, table.c.shard != 0), parameters)
        # Rows at 0 (after the fold, only shard 0 is left), locked in key
        # order as the fold's are.
        at_zero = sa.and_(rows, *(table.c[name] == 0 for name in values))
        locked = sa.select(*table.primary_key.columns).where(at_zero).order_by(*table.primary_key.columns)
        if postgresql:
            locked = locked.with_for_update()
        zero = locked.subquery("zero")
        db.session.execute(
            sa.delete(table).where(sa.tuple_(*table.primary_key.columns).in_(sa.select(*zero.c)), at_zero),
            parameters,
        )
        after = db.session.scalar(count, parameters) or 0
    return before, after


def _fold_sql(table: sa.Table, where: str = _BUCKET, values: tuple[str, ...] = ("jobs",)) -> str:
    """PostgreSQL: lock the shard rows ``where`` selects (SQL on the
    table's columns) in key order, delete them, and add their ``values`` to
    shard 0 of their key, in one statement (a writer's later delta lands in a
    new row of its shard, folded next time)."""
    keys = [column.name for column in _key_columns(table)]
    columns = ", ".join(keys)
    pk = ", ".join(keys + ["shard"])
    matched = " AND ".join(f"t.{name} = locked.{name}" for name in keys + ["shard"])
    return f"""
WITH locked AS (
  SELECT {pk} FROM {table.name}
  WHERE {where} AND shard <> 0
  ORDER BY {pk}
  FOR UPDATE
), moved AS (
  DELETE FROM {table.name} AS t USING locked WHERE {matched}
  RETURNING {", ".join(f"t.{name}" for name in keys + list(values))}
)
INSERT INTO {table.name} ({columns}, shard, {", ".join(values)})
SELECT {columns}, 0, {", ".join(f"sum({name})" for name in values)} FROM moved GROUP BY {columns} ORDER BY {columns}
ON CONFLICT ({pk}) DO UPDATE SET {", ".join(f"{name} = {table.name}.{name} + EXCLUDED.{name}" for name in values)}
"""


def _fold_sql_sqlite(table: sa.Table, where: str = _BUCKET, values: tuple[str, ...] = ("jobs",)) -> str:
    """SQLite (one writer at a time, so two statements): add the ``values``
    of the shard rows ``where`` selects to shard 0 of their key; the caller
    then deletes them."""
    keys = ", ".join(column.name for column in _key_columns(table))
    # "WHERE" before ON CONFLICT: SQLite's parser needs it after a SELECT.
    return f"""
INSERT INTO {table.name} ({keys}, shard, {", ".join(values)})
SELECT {keys}, 0, {", ".join(f"sum({name})" for name in values)} FROM {table.name}
WHERE {where} AND shard <> 0
GROUP BY {keys}
ON CONFLICT ({keys}, shard) DO UPDATE SET {", ".join(f"{name} = {name} + excluded.{name}" for name in values)}
"""


def _is_lock_timeout(error: OperationalError) -> bool:
    # SQLSTATE 55P03 lock_not_available: lock_timeout ran out.
    return getattr(error.orig, "sqlstate", None) == "55P03"
