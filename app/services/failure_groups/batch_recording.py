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
multi-row ``INSERT`` of the occurrences, one upsert per counter and hourly
row touched (summed in Python first), and at most three conditional
``UPDATE`` of each group row (oldest, most severe and newest occurrence).
Groups in a state an occurrence can change (resolved, ignored) get every
occurrence through the recorder's rules, in time order, as the recorder
would have applied them.

The counts are the recorder's: ``jobs`` grows once per (group, job) never
counted before, ``current_jobs`` for the job's current failure, on the
job's own counter shard. Runs in the caller's transaction, which holds the
batch's job row locks; never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models.failure_group import FailureGroup, FailureGroupCount, FailureGroupHourly, FailureOccurrence
from app.models.failure_group import GroupState
from app.services.failure_groups.recording import failure_hits, touch_group
from app.services.failure_groups.signals import note_metric
from app.services.failure_groups.write_statements import (
    GROUP_STATE_COLUMNS,
    Hit,
    create_group,
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
    for group_id in sorted(per_group):  # the recorder's lock order on group rows: by id
        _apply_group_rules(by_id[group_id], per_group[group_id])
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


def _apply_group_rules(group: Any, batch: _GroupHits) -> None:
    """The recorder's rules on ``group`` for the batch's occurrences.

    A group that is not unresolved may change state with any occurrence, so
    each goes through :func:`touch_group` in time order (re-reading the row
    between them, as the recorder reads it per failure). An unresolved group
    only moves ``first_seen``, ``last_seen`` (with the sample) and
    ``severity``: its oldest, most severe and newest occurrence do that.
    """
    if group.state != GroupState.UNRESOLVED:
        for at, hit, failure in batch.hits:
            state = touch_group(group, hit, failure, at)
            note_metric("occurrence", state)
            group = _groups_row(group.id)
        return
    oldest = batch.hits[0]
    severest = max(batch.hits, key=lambda entry: severity_rank(entry[1].severity))
    newest = batch.hits[-1]
    for at, hit, failure in (oldest, severest, newest):
        touch_group(group, hit, failure, at)
    for _ in batch.hits:
        note_metric("occurrence", group.state)


def _groups_row(group_id: int) -> Any:
    table = FailureGroup.__table__
    return db.session.execute(
        sa.select(*(table.c[name] for name in GROUP_STATE_COLUMNS), table.c.fingerprint).where(table.c.id == group_id)
    ).one()
