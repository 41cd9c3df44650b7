"""Grouping a batch of stored failures at once: the backfill's write path.

The recorder groups one failure per transaction
(:func:`app.services.failure_groups.recording.record_failure_occurrences`:
a statement or two per group hit, and a group-row ``UPDATE`` whenever
``last_seen`` moves by a second). A backfill walks failures oldest first,
so nearly every occurrence moved ``last_seen``: the group row of a big group
was rewritten hundreds of times in one transaction, each update slower than
the last (every version of the row stays until the commit), and the batch
took seconds. Here a batch's occurrences are written set-based: one
``SELECT`` of the groups, one of the (group, job) pairs already counted, one
multi-row ``INSERT`` of the occurrences, the counter and hourly upserts (one row per
key, summed in Python first) and one conditional ``UPDATE`` per group row
(its oldest, newest and most severe occurrence of the batch), each sent as
one ``executemany``.
Groups in a state an occurrence can change (resolved, ignored) get every
occurrence through the recorder's rules, in time order, as the recorder
would have applied them.

The counts are the recorder's: ``jobs`` grows once per (group, job) never
counted before, ``current_jobs`` for the job's current failure, on the
job's own counter shard. Runs in the caller's transaction, which holds the
batch's job row locks; never commits.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models.failure_group import FailureGroup, FailureGroupCount, FailureGroupHourly, FailureOccurrence
from app.models.failure_group import PURGED_TITLE, SEVERITY_ORDER, GroupState
from app.services.failure_groups.daily import add_to_closed_days
from app.services.failure_groups.recording import LAST_SEEN_RESOLUTION, failure_hits, touch_group
from app.services.failure_groups.signals import note_metric
from app.services.failure_groups.group_rows import create_group
from app.services.failure_groups.write_statements import (
    GROUP_STATE_COLUMNS,
    SAMPLE_MESSAGE_MAX_LENGTH,
    Hit,
    dialect_insert,
    hour_of,
    job_shard,
    random_shard,
    severity_rank,
)


@dataclass
class _GroupHits:
    """The occurrences a batch adds to one group, in the batch's (time) order."""

    hits: list[tuple[datetime, Hit, Any]] = field(default_factory=list)  # (at, hit, failure row)


def record_batch_occurrences(items: Sequence[tuple[Any, Any, bool]], version: int) -> int:
    """Group a batch of stored failures under grouping ``version``, in the open transaction.

    Args:
        items: ``(failure, job, current)`` oldest failure first: ``failure``
            a row with ``id, job_id, recorded_at, error_message,
            error_details, error_format, worker_name, worker_version``;
            ``job`` a row with ``id, job_type`` (locked by the caller);
            ``current`` whether the failure is the job's current one.
        version: a grouping version this code implements.

    Returns:
        The number of occurrences written (one per failure and group hit).

    Raises:
        UnknownGroupingVersionError: ``version`` is not implemented.
    """
    grouped = [(failure, job, current, failure_hits(
        failure.error_message, failure.error_details, failure.error_format, version
    )) for failure, job, current in items]
    keys: dict[str, Any] = {}  # fingerprint -> GroupKey
    earliest: dict[str, datetime] = {}
    for failure, _, _, hits in grouped:
        for fingerprint, hit in hits.items():
            keys.setdefault(fingerprint, hit.key)
            earliest.setdefault(fingerprint, failure.recorded_at)
    if not keys:
        return 0
    groups = _groups(version, list(keys))
    for fingerprint in sorted(set(keys) - set(groups)):  # the recorder's lock order: by fingerprint
        create_group(keys[fingerprint], version, earliest[fingerprint])
    if len(groups) < len(keys):
        groups = _groups(version, list(keys))
    seen = _counted_pairs([g.id for g in groups.values()], sorted({job.id for _, job, _, _ in grouped}))

    occurrences: list[dict[str, Any]] = []
    counters: dict[tuple[int, str, str, int], list[int]] = {}
    hourly: dict[tuple[int, datetime], int] = {}
    per_group: dict[int, _GroupHits] = {}
    for failure, job, current, hits in grouped:
        for fingerprint, hit in sorted(hits.items()):
            group_id = groups[fingerprint].id
            occurrences.append({
                "group_id": group_id, "failure_id": failure.id, "job_id": job.id, "occurred_at": failure.recorded_at,
                "job_type": job.job_type, "worker_name": failure.worker_name,
                "worker_version": failure.worker_version, "severity": hit.severity, "item_count": hit.item_count,
                "item_positions": hit.positions, "is_current": current,
            })
            new_job = (group_id, job.id) not in seen
            seen.add((group_id, job.id))
            counter = counters.setdefault(
                (group_id, job.job_type, failure.worker_version or "", job_shard(job.id)), [0, 0, 0]
            )
            counter[0] += 1
            counter[1] += int(new_job)
            counter[2] += int(current)
            hour = (group_id, hour_of(failure.recorded_at))
            hourly[hour] = hourly.get(hour, 0) + 1
            per_group.setdefault(group_id, _GroupHits()).hits.append((failure.recorded_at, hit, failure))

    connection = db.session.connection()
    db.session.flush()  # the groups' "created" events
    connection.execute(sa.insert(FailureOccurrence.__table__), occurrences)
    _add_counts(counters, hourly)
    by_id = {group.id: group for group in groups.values()}
    moving: list[dict[str, Any]] = []
    for group_id in sorted(per_group):  # the recorder's lock order on group rows: by id
        group, batch = by_id[group_id], per_group[group_id]
        if group.state == GroupState.UNRESOLVED:
            moving.append(_bounds(group_id, batch))
            for _ in batch.hits:
                note_metric("occurrence", group.state)
        else:
            _apply_state_rules(group, batch)
    if moving:
        connection.execute(_move_bounds_statement(), moving)
    return len(occurrences)


def _groups(version: int, fingerprints: list[str]) -> dict[str, Any]:
    """The existing groups of ``fingerprints`` under ``version``: fingerprint
    -> row of ``GROUP_STATE_COLUMNS`` and ``fingerprint``."""
    table = FailureGroup.__table__
    rows = db.session.execute(
        sa.select(*(table.c[name] for name in GROUP_STATE_COLUMNS), table.c.fingerprint).where(
            table.c.grouping_version == version, table.c.fingerprint.in_(fingerprints)
        )
    )
    return {row.fingerprint: row for row in rows}


def _counted_pairs(group_ids: list[int], job_ids: list[uuid.UUID]) -> set[tuple[int, uuid.UUID]]:
    """The (group, job) pairs among these that already have an occurrence:
    those jobs are already in the group's "jobs ever" count."""
    table = FailureOccurrence.__table__
    rows = db.session.execute(
        sa.select(table.c.group_id, table.c.job_id)
        .where(table.c.group_id.in_(group_ids), table.c.job_id.in_(job_ids))
        .distinct()
    )
    return {(group_id, job_id) for group_id, job_id in rows}


def _add_counts(counters: dict[tuple[int, str, str, int], list[int]], hourly: dict[tuple[int, datetime], int]) -> None:
    """Upsert the summed counter and hourly deltas, one row each, in key order
    (a fixed lock order against concurrent recorders)."""
    counts = FailureGroupCount.__table__
    statement = dialect_insert(counts)
    statement = statement.on_conflict_do_update(
        index_elements=["group_id", "job_type", "worker_version", "shard"],
        set_={name: counts.c[name] + statement.excluded[name] for name in ("occurrences", "jobs", "current_jobs")},
    )
    db.session.connection().execute(statement, [
        {"group_id": key[0], "job_type": key[1], "worker_version": key[2], "shard": key[3],
         "occurrences": values[0], "jobs": values[1], "current_jobs": values[2]}
        for key, values in sorted(counters.items())
    ])
    table = FailureGroupHourly.__table__
    rolled = dialect_insert(table)
    rolled = rolled.on_conflict_do_update(
        index_elements=["group_id", "hour", "shard"],
        set_={"occurrences": table.c.occurrences + rolled.excluded.occurrences},
    )
    shard = random_shard()
    db.session.connection().execute(rolled, [
        {"group_id": group_id, "hour": hour, "shard": shard, "occurrences": count}
        for (group_id, hour), count in sorted(hourly.items())
    ])
    # Past hours of days already rolled up: their daily rows too.
    add_to_closed_days(hourly)


def _apply_state_rules(group: Any, batch: _GroupHits) -> None:
    """The recorder's rules, occurrence by occurrence in time order, on a
    group that is not unresolved: any occurrence may change its state
    (regression, wake-up). The row is re-read between occurrences, as the
    recorder reads it per failure."""
    for at, hit, failure in batch.hits:
        state = touch_group(group, hit, failure, at)
        note_metric("occurrence", state)
        group = _groups_row(group.id)


def _bounds(group_id: int, batch: _GroupHits) -> dict[str, Any]:
    """The parameters of :func:`_move_bounds_statement` for a batch's
    occurrences of one group: its oldest and newest time, the newest item's
    message (the sample) and the highest severity."""
    newest_at, newest, _ = batch.hits[-1]
    severest = max((hit for _, hit, _ in batch.hits), key=lambda hit: severity_rank(hit.severity))
    return {
        "group_id": group_id,
        "first": batch.hits[0][0],
        "last": newest_at,
        "last_threshold": newest_at - LAST_SEEN_RESOLUTION,
        "sample": newest.key.message[:SAMPLE_MESSAGE_MAX_LENGTH],
        "title": newest.key.title,
        "rank": severity_rank(severest.severity),
        "severity": severest.severity,
    }


@functools.cache
def _move_bounds_statement() -> sa.Update:
    """One ``UPDATE`` (run for many groups at once) moving a group's
    ``first_seen`` back, ``last_seen`` (with the sample) forward and
    ``severity`` up, as the recorder's ``_move_last_seen`` does for one
    occurrence: conditional, so a row that would not change (``last_seen``
    within the resolution, nothing older or more severe) is not rewritten.
    The comparisons are on the row as it is when updated, so a concurrent
    recorder's move is never undone."""
    table = FailureGroup.__table__
    rank = sa.case(
        {name: position for position, name in enumerate(SEVERITY_ORDER)},
        value=table.c.severity,
        else_=SEVERITY_ORDER.index("error"),
    )
    last = sa.bindparam("last", type_=table.c.last_seen.type)
    first = sa.bindparam("first", type_=table.c.first_seen.type)
    higher = rank < sa.bindparam("rank", type_=sa.Integer)
    return (
        sa.update(table)
        .where(
            table.c.id == sa.bindparam("group_id", type_=table.c.id.type),
            sa.or_(
                table.c.last_seen < sa.bindparam("last_threshold", type_=table.c.last_seen.type),
                table.c.first_seen > first,
                higher,
            ),
        )
        .values(
            last_seen=sa.case((table.c.last_seen < last, last), else_=table.c.last_seen),
            sample_message=sa.case(
                (table.c.last_seen < last, sa.bindparam("sample", type_=table.c.sample_message.type)),
                else_=table.c.sample_message,
            ),
            # As the live recorder does: a purged message group's title comes back.
            title=sa.case((table.c.title.startswith(PURGED_TITLE), sa.bindparam("title", type_=table.c.title.type)),
                          else_=table.c.title),
            first_seen=sa.case((table.c.first_seen > first, first), else_=table.c.first_seen),
            severity=sa.case((higher, sa.bindparam("severity", type_=table.c.severity.type)), else_=table.c.severity),
        )
    )


def _groups_row(group_id: int) -> Any:
    table = FailureGroup.__table__
    return db.session.execute(
        sa.select(*(table.c[name] for name in GROUP_STATE_COLUMNS), table.c.fingerprint).where(table.c.id == group_id)
    ).one()
