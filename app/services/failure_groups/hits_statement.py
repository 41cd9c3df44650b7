"""PostgreSQL's statements of the failure-group write path.

:func:`record_hits`: one statement for all the groups a failure hits (the
occurrences, the counters and the hourly rollups as data-modifying CTEs,
and, for a job that was failing, the ending of its current occurrences);
:func:`end_current_statement`: the ending alone (a requeue, a completion,
the purge). Both are built once with bound parameters and run in the
caller's transaction; SQLite's counterparts are in
:mod:`app.services.failure_groups.write_statements`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.extensions import db
from app.models import JobFailure, ProcessingJob
from app.models.failure_group import FailureGroup, FailureGroupCount, FailureGroupHourly
from app.models.failure_group import FailureOccurrence
from app.services.driver_statements import DriverStatement
from app.services.failure_groups.write_statements import (
    GROUP_STATE_COLUMNS,
    GroupStateRow,
    Hit,
    hour_of,
    job_shard,
    occurrence_values,
    random_shard,
)


def record_hits(
    version: int, hits: Sequence[Hit], job: ProcessingJob, failure: JobFailure, current: bool, *,
    end_previous: bool = False,
) -> dict[str, GroupStateRow]:
    """PostgreSQL, one statement for all ``hits`` of one failure: read their
    groups and, for each that exists, insert the occurrence and add to its
    counter and hourly rollup (data-modifying CTEs over the hits, each an
    ``INSERT ... SELECT`` from the found groups, so nothing is written for a
    group that does not exist yet). All parts see the snapshot from before
    the statement, so the "job seen before in this group" check does not see
    the new occurrence. Returns the found groups'
    :data:`GROUP_STATE_COLUMNS`, by fingerprint; a hit whose group does not
    exist is missing from it.

    The rows are locked in one order by every writer (counter and hourly
    shards by group id), so reports hitting the same groups cannot deadlock.

    With ``end_previous`` (only for a ``current`` failure) the same
    statement first ends the job's current occurrences (one round trip
    instead of two for a job that was failing): an ``UPDATE`` CTE whose rows
    lower ``current_jobs`` in the same counter upsert that adds the new
    occurrences, summed per counter row (one statement may not upsert a row
    twice). In a group the job fails on again, its current occurrence stays
    current with the new failure's contents and the old contents become a
    history row (:func:`_handed_over_occurrences`). It runs even when no group
    exists, so the caller must not ask for it again on the retry.

    Raises:
        ValueError: ``end_previous`` for a failure that is not ``current``.
    """
    if end_previous and not current:
        raise ValueError("end_previous needs a current failure: a kept occurrence stays current")
    values = occurrence_values(job, failure, current)
    parameters = {
        "version": version,
        "hits": [
            {"fingerprint": hit.key.fingerprint, "item_count": hit.item_count, "severity": hit.severity,
             "positions": hit.positions}
            for hit in hits
        ],
        # Prefixed: an UPDATE in the statement (``end_previous``) would SET
        # every column whose name is a key of the parameters.
        **{f"occ_{name}": v for name, v in values.items()},
        "counted_version": failure.worker_version or "",
        "current_jobs": int(current),
        "count_shard": job_shard(job.id),
        "hour": hour_of(failure.recorded_at),
        "hour_shard": random_shard(),
    }
    # Sent as compiled SQL on the session's connection (the caller has
    # flushed the failure): SQLAlchemy's per-execution work on a cached
    # statement cost more Python than the rest of the hook
    # (docs/failure-groups.md, "What it costs the recorder").
    rows = _RECORD_HITS[end_previous].rows(db.session.connection(), parameters)
    return {row.pop("fingerprint"): GroupStateRow(**row) for row in rows}


@functools.cache
def record_hits_statement(end_previous: bool) -> sa.Select[Any]:
    """The statement of :func:`record_hits`, built once (with bound
    parameters; the hits are one JSONB array of objects, read by
    ``jsonb_to_recordset``): building its CTEs costs more than running it."""
    groups = FailureGroup.__table__
    occurrences = FailureOccurrence.__table__
    counts = FailureGroupCount.__table__
    hourly = FailureGroupHourly.__table__
    hit = (
        sa.func.jsonb_to_recordset(sa.bindparam("hits", type_=postgresql.JSONB))
        .table_valued(
            sa.column("fingerprint", groups.c.fingerprint.type),
            sa.column("item_count", occurrences.c.item_count.type),
            sa.column("severity", occurrences.c.severity.type),
            sa.column("positions", postgresql.JSONB),
            name="hit",
        )
        .render_derived(with_types=True)
    )
    # Each hit's group by the unique index, one lookup per hit: a LATERAL
    # subquery with LIMIT is never flattened into a join, which the planner
    # (guessing 100 rows for the function) could make a scan of every group.
    # FOR KEY SHARE (the lock the occurrences' foreign key takes anyway):
    # behind an operator's state change (FOR UPDATE, lifecycle.lock_group)
    # it waits and reads the row as committed, so the state rules see the
    # resolve or ignore. Read from the statement's snapshot, a report that
    # waited only in its foreign-key check went on with the state from
    # before, and committed after the resolve without reopening it (a trial:
    # 6 of 20 bursts). It does not wait for other reports (their locks are
    # key share, or no-key updates).
    group = (
        sa.select(*(groups.c[name] for name in GROUP_STATE_COLUMNS), groups.c.fingerprint)
        .where(
            groups.c.grouping_version == sa.bindparam("version", type_=sa.Integer),
            groups.c.fingerprint == hit.c.fingerprint,
        )
        .limit(1)  # unique anyway
        .with_for_update(read=True, key_share=True)
        .lateral("hit_group")
    )
    # The groups of the hits that exist, read once (each CTE below reads it).
    found = (
        sa.select(
            *(group.c[name] for name in GROUP_STATE_COLUMNS),
            group.c.fingerprint,
            hit.c.item_count.label("hit_item_count"),
            hit.c.severity.label("hit_severity"),
            hit.c.positions.label("hit_positions"),
        )
        .select_from(hit)
        .join(group, sa.true())
        .cte("found")
    )

    def value(name: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
        return sa.bindparam(name, type_=column.type)

    columns = ["group_id", "failure_id", "job_id", "occurred_at", "job_type", "worker_name", "worker_version",
               "severity", "item_count", "item_positions", "is_current"]
    if end_previous:
        kept, ended, snapshot = _handed_over_occurrences(found, value)
        # The kept occurrences' previous contents, read as the statement's
        # snapshot has them, become history rows; the semi-join on ``kept``
        # inserts each after its row took the new failure, so the unique
        # (failure_id, group_id) never holds both.
        history = sa.select(*(snapshot.c[name] for name in columns[:-1]), sa.false()).where(
            snapshot.c.id.in_(sa.select(kept.c.id))
        )
        fresh_condition = found.c.id.not_in(sa.select(kept.c.group_id))
    else:
        history, fresh_condition = None, sa.true()
    fresh = sa.select(
        found.c.id,
        value("occ_failure_id", occurrences.c.failure_id),
        value("occ_job_id", occurrences.c.job_id),
        value("occ_occurred_at", occurrences.c.occurred_at),
        value("occ_job_type", occurrences.c.job_type),
        value("occ_worker_name", occurrences.c.worker_name),
        value("occ_worker_version", occurrences.c.worker_version),
        found.c.hit_severity,
        found.c.hit_item_count,
        found.c.hit_positions,
        value("occ_is_current", occurrences.c.is_current),
    ).where(fresh_condition)
    new_occurrence = postgresql.insert(occurrences).from_select(
        columns, fresh if history is None else sa.union_all(history, fresh)
    ).cte("new_occurrence")
    # "The job was seen in this group before": one probe of the (group,
    # job) index per group hit. Written as EXISTS, the planner (guessing
    # 100 hits from jsonb_to_recordset) chose to hash all the job's
    # occurrences instead, found by a scan of that whole index, which
    # grows with the group (docs/benchmarks.md, "The hot group, session
    # 18"); a LIMIT 1 subquery is never hashed.
    seen = (
        sa.select(occurrences.c.id)
        .where(occurrences.c.group_id == found.c.id, occurrences.c.job_id == value("occ_job_id", occurrences.c.job_id))
        .limit(1)
        .scalar_subquery()
        .is_not(None)
    )
    added = sa.select(
        found.c.id.label("group_id"),
        value("occ_job_type", counts.c.job_type).label("job_type"),
        value("counted_version", counts.c.worker_version).label("worker_version"),
        # Constants inline (literal_column): bound literals inside this
        # UNION inside a CTE lost their values to the compiled cache.
        sa.literal_column("1", counts.c.occurrences.type).label("occurrences"),
        sa.case((seen, sa.literal_column("0", counts.c.jobs.type)),
                else_=sa.literal_column("1", counts.c.jobs.type)).label("jobs"),
        value("current_jobs", counts.c.current_jobs).label("current_jobs"),
    )
    shard = value("count_shard", counts.c.shard)
    if end_previous:
        # Every current occurrence of the job (as the snapshot has them)
        # stops being current: the kept ones too, whose group ``added``
        # counts in again (the same +1 and -1 as an ending and a new
        # occurrence).
        lowered = sa.select(
            snapshot.c.group_id,
            snapshot.c.job_type,
            sa.func.coalesce(snapshot.c.worker_version, sa.literal_column("''", counts.c.worker_version.type)),
            sa.literal_column("0", counts.c.occurrences.type),
            sa.literal_column("0", counts.c.jobs.type),
            sa.literal_column("-1", counts.c.current_jobs.type),
        ).where(snapshot.c.job_id == value("occ_job_id", occurrences.c.job_id), snapshot.c.is_current)
        deltas = sa.union_all(added, lowered).subquery("deltas")
        rows = (
            sa.select(
                deltas.c.group_id, deltas.c.job_type, deltas.c.worker_version, shard,
                sa.func.sum(deltas.c.occurrences), sa.func.sum(deltas.c.jobs), sa.func.sum(deltas.c.current_jobs),
            )
            .group_by(deltas.c.group_id, deltas.c.job_type, deltas.c.worker_version)
            # One lock order for every writer (docstring of record_hits).
            .order_by(deltas.c.group_id, deltas.c.job_type, deltas.c.worker_version)
        )
    else:
        # One row per group already (one job type and version per report).
        deltas = added.subquery("deltas")
        rows = sa.select(
            deltas.c.group_id, deltas.c.job_type, deltas.c.worker_version, shard,
            deltas.c.occurrences, deltas.c.jobs, deltas.c.current_jobs,
        ).order_by(deltas.c.group_id)  # one lock order for every writer (docstring of record_hits)
    counted = postgresql.insert(counts).from_select(
        ["group_id", "job_type", "worker_version", "shard", "occurrences", "jobs", "current_jobs"], rows
    )
    counted = counted.on_conflict_do_update(
        index_elements=["group_id", "job_type", "worker_version", "shard"],
        set_={name: counts.c[name] + counted.excluded[name] for name in ("occurrences", "jobs", "current_jobs")},
    ).cte("counted")
    rolled = postgresql.insert(hourly).from_select(
        ["group_id", "hour", "shard", "occurrences"],
        sa.select(
            found.c.id,
            value("hour", hourly.c.hour),
            value("hour_shard", hourly.c.shard),
            sa.literal_column("1", hourly.c.occurrences.type),
        ).order_by(found.c.id),
    )
    rolled = rolled.on_conflict_do_update(
        index_elements=["group_id", "hour", "shard"],
        set_={"occurrences": hourly.c.occurrences + rolled.excluded.occurrences},
    ).cte("rolled")
    statement = sa.select(*(found.c[name] for name in GROUP_STATE_COLUMNS), found.c.fingerprint)
    if end_previous:
        statement = statement.add_cte(found).add_cte(kept).add_cte(ended)  # found first: the others read it
    return statement.add_cte(new_occurrence).add_cte(counted).add_cte(rolled)


#: The columns of an occurrence :func:`_handed_over_occurrences` gives the
#: new failure's values (the rest stay: group, job, the flag).
_HANDED_OVER = ("failure_id", "occurred_at", "job_type", "worker_name", "worker_version")
_HIT_COLUMNS = {"severity": "hit_severity", "item_count": "hit_item_count", "item_positions": "hit_positions"}


def _handed_over_occurrences(found: Any, value: Callable[[str, Any], Any]) -> tuple[Any, Any, Any]:
    """The ending of a failing job's current occurrences in
    :func:`record_hits_statement`: ``kept``, an ``UPDATE`` CTE giving the
    new failure's contents to the current occurrence of each group it hits
    again (returning ``id``, ``group_id``); ``ended``, one that ends the
    others (reading ``kept``'s ids, so it runs after it); and ``snapshot``, the occurrences table under an alias for
    reading the rows as they were before the statement (every part of one
    statement sees the same snapshot).

    A kept occurrence stays current; its previous contents go back into the
    history as a new row (the caller's ``INSERT``). So a job that re-fails on
    the same group, the common case, never flips the flag: the rollup
    triggers on ``failure_occurrences`` (migrations 0019 and 0022) count a
    change of ``is_current``, group or job, and find none, where an ending
    and a new occurrence made them write a -1 and a +1 that cancel
    (docs/benchmarks.md, "The hot group, session 18"). Occurrences,
    counters and rollups come out the same either way; only which row id
    stands for the current occurrence differs. (PostgreSQL fires each
    statement-level trigger once for both ``UPDATE`` CTEs, with the rows of
    both.)
    """
    occurrences = FailureOccurrence.__table__
    current = sa.and_(
        occurrences.c.job_id == value("occ_job_id", occurrences.c.job_id), occurrences.c.is_current
    )
    changes = {name: value(f"occ_{name}", occurrences.c[name]) for name in _HANDED_OVER}
    changes.update({name: found.c[hit] for name, hit in _HIT_COLUMNS.items()})
    # The job's current occurrences (its partial index), ranked per group:
    # a second one in a group (none should exist) is ended below rather
    # than given the same failure, which the unique (failure_id, group_id)
    # would refuse on every later report of the job.
    mine = (
        sa.select(
            occurrences.c.id,
            occurrences.c.group_id,
            sa.func.row_number().over(partition_by=occurrences.c.group_id, order_by=occurrences.c.id.desc())
            .label("rank"),
        )
        .where(current)
        .cte("mine")
    )
    kept = (
        sa.update(occurrences)
        .where(occurrences.c.id == mine.c.id, mine.c.rank == 1, mine.c.group_id == found.c.id)
        .values(**changes)
        .returning(occurrences.c.id, occurrences.c.group_id)
        .cte("kept")
    )
    ended = (
        sa.update(occurrences)
        .where(current, occurrences.c.id.not_in(sa.select(kept.c.id)))
        .values(is_current=sa.false())  # inline: see the constants in record_hits_statement
        .returning(occurrences.c.id)
        .cte("ended")
    )
    return kept, ended, occurrences.alias("o")


#: :func:`record_hits_statement`, without and with the ending of the job's
#: current occurrences, each compiled once per engine.
_RECORD_HITS = {end_previous: DriverStatement(record_hits_statement(end_previous)) for end_previous in (False, True)}


@functools.cache
def end_current_statement() -> sa.Select[tuple[int]]:
    """PostgreSQL, one statement: the current occurrences of the jobs in the
    expanding parameter ``job_ids`` stop being current, and their groups'
    ``current_jobs`` counters go down (an upsert into counter shard
    ``shard``, grouped by counter key so no row is hit twice). Returns the
    number of occurrences ended. Built once, with bound parameters: building
    the CTEs cost more than running them, on every failure of a failed job.
    """
    table = FailureOccurrence.__table__
    counts = FailureGroupCount.__table__
    ended = (
        sa.update(table)
        .where(table.c.job_id.in_(sa.bindparam("job_ids", expanding=True)), table.c.is_current)
        .values(is_current=False)
        .returning(table.c.group_id, table.c.job_type, table.c.worker_version)
        .cte("ended")
    )
    version = sa.func.coalesce(ended.c.worker_version, "")
    lowered = postgresql.insert(counts).from_select(
        ["group_id", "job_type", "worker_version", "shard", "occurrences", "jobs", "current_jobs"],
        sa.select(
            ended.c.group_id,
            ended.c.job_type,
            version,
            sa.bindparam("shard", type_=counts.c.shard.type),
            sa.literal(0, sa.BigInteger),
            sa.literal(0, sa.BigInteger),
            -sa.func.count(),
        ).group_by(ended.c.group_id, ended.c.job_type, version),
    )
    lowered = lowered.on_conflict_do_update(
        index_elements=["group_id", "job_type", "worker_version", "shard"],
        set_={"current_jobs": counts.c.current_jobs + lowered.excluded.current_jobs},
    ).cte("lowered")
    return sa.select(sa.func.count()).select_from(ended).add_cte(lowered)
