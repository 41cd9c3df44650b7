"""The write path: a recorded failure's occurrences, counters and group state.

Runs inside the caller's transaction (the failure recorder's, a requeue's,
a backfill batch's) and never commits. The caller holds the job's row lock,
so two failures of one job never run here at once; different jobs hitting
one group do, and meet only on rows built not to serialise them
(``docs/failure-groups.md``, "Exact counts without a hot row").
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import JobFailure, ProcessingJob
from app.models.job_status import FAILURE_STATUSES, JobStatus
from app.models.failure_group import (
    COUNTER_SHARDS,
    SEVERITY_ORDER,
    FailureGroup,
    FailureGroupCount,
    FailureGroupEvent,
    FailureGroupHourly,
    FailureOccurrence,
    GroupState,
    GroupSubstate,
    IgnoreMode,
)
from app.services.failure_groups.fingerprint import GROUPING_VERSION, GroupKey, positioned_failure_keys
from app.services.failure_groups.lifecycle import SYSTEM_ACTOR, change_state, lock_group, total_occurrences
from app.services.failure_groups.signals import note_metric
from app.services.failure_groups.states import is_regression

#: ``last_seen`` is written at most this often per group: the group row is
#: not rewritten by every occurrence of a hot group.
LAST_SEEN_RESOLUTION = timedelta(seconds=1)
SAMPLE_MESSAGE_MAX_LENGTH = 1000

_random = random.SystemRandom()


@dataclass
class _Hit:
    """The items of one failure that fell in one group."""

    key: GroupKey
    item_count: int
    severity: str
    #: The items' 0-based indexes in ``errors`` (none: the failure's message).
    positions: list[int]


def _rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else SEVERITY_ORDER.index("error")


def _insert(table: sa.Table) -> Any:
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _add(table: sa.Table, keys: dict[str, Any], increments: dict[str, int]) -> None:
    """Upsert adding ``increments`` to the row at ``keys`` (created at those values)."""
    statement = _insert(table).values(**keys, **increments)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + statement.excluded[name] for name in increments},
    )
    db.session.execute(statement)


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def group_recorded_failure(job: ProcessingJob, failure: JobFailure, previous_status: JobStatus) -> list[int]:
    """The recorder's hook: the job's previous failure stops being current,
    and ``failure`` (just added, not yet flushed) is grouped as its current one.

    A job has current occurrences only while it is failed (a requeue, a
    completion and the purge end them), so the ending is skipped when the
    job's ``previous_status`` (its status before this change, which the
    recorder read under the row lock) was not a failure. Returns the ids of
    the groups hit.
    """
    if previous_status in FAILURE_STATUSES:
        end_current_occurrences([job.id])
    return record_failure_occurrences(job, failure, current=True)


def record_failure_occurrences(
    job: ProcessingJob,
    failure: JobFailure,
    *,
    current: bool,
    version: int = GROUPING_VERSION,
) -> list[int]:
    """Group every error item of ``failure`` (a failure of ``job``) under
    grouping ``version``, in the open transaction.

    Creates missing groups race-free, adds one occurrence per group hit,
    adds to the group's counters and hourly rollup, applies the regression
    and wake-up rules, and moves ``last_seen``/``severity``/``sample_message``.
    ``current`` says whether the failure is the job's current one (the
    recorder: always; a backfill: only for the job's latest failure while it
    is still failed). Returns the ids of the groups hit, one occurrence each.

    Raises:
        UnknownGroupingVersionError: ``version`` is not implemented.
    """
    if failure.id is None:
        failure.id = uuid.uuid4()
    at = failure.recorded_at
    hits: dict[str, _Hit] = {}
    keys = positioned_failure_keys(
        failure.error_message, failure.error_details, failure.error_format, version=version
    )
    for position, key in keys:
        hit = hits.get(key.fingerprint)
        if hit is None:
            hit = hits[key.fingerprint] = _Hit(key, 1, key.severity, [])
        else:
            hit.item_count += 1
            if _rank(key.severity) > _rank(hit.severity):
                hit.severity = key.severity
        if position is not None:
            hit.positions.append(position)
    db.session.flush()  # the failure row, which occurrences reference
    # A fixed order (by fingerprint, then by group id) for every lock taken
    # below, so two failures hitting the same groups cannot deadlock.
    grouped: list[tuple[FailureGroup, bool, _Hit]] = []
    for _, hit in sorted(hits.items()):
        if _postgresql():
            group, created = _record_in_group(version, hit, job, failure, current), False
            if group is None:  # a new fingerprint: create the group, then record
                created = _create_group(hit.key, version, at)
                group = _record_in_group(version, hit, job, failure, current)
                assert group is not None
        else:
            group, created = _group_for(hit.key, version, at)
            _add_occurrence(group.id, created, job, failure, hit, current)
        grouped.append((group, created, hit))
    grouped.sort(key=lambda entry: entry[0].id)
    for group, created, hit in grouped:
        state = group.state if created else _touch_group(group, hit, failure, at)
        note_metric("occurrence", state)
    return [group.id for group, _, _ in grouped]


def _record_in_group(
    version: int, hit: _Hit, job: ProcessingJob, failure: JobFailure, current: bool
) -> FailureGroup | None:
    """PostgreSQL, one statement: read the group of ``hit`` and, if it
    exists, insert the occurrence and add to its counter and hourly rollup
    (data-modifying CTEs, each an ``INSERT ... SELECT`` from the group row,
    so nothing is written when the group does not exist yet). All parts see
    the snapshot from before the statement, so the "job seen before in this
    group" check does not see the new occurrence. Returns the group, or
    ``None`` when it does not exist.
    """
    parameters = {
        "version": version,
        "fingerprint": hit.key.fingerprint,
        "failure_id": failure.id,
        "job_id": job.id,
        "occurred_at": failure.recorded_at,
        "job_type": job.job_type,
        "worker_name": failure.worker_name,
        "worker_version": failure.worker_version,
        "counted_version": failure.worker_version or "",
        "severity": hit.severity,
        "item_count": hit.item_count,
        "item_positions": hit.positions,
        "is_current": current,
        "current_jobs": int(current),
        "count_shard": _random.randrange(COUNTER_SHARDS),
        "hour": _hour(failure.recorded_at),
        "hour_shard": _random.randrange(COUNTER_SHARDS),
    }
    return db.session.scalars(_record_in_group_statement(), parameters).one_or_none()


@functools.cache
def _record_in_group_statement() -> sa.Select[tuple[FailureGroup]]:
    """The statement of :func:`_record_in_group`, built once (with bound
    parameters): building its CTEs costs more than running it."""
    groups = FailureGroup.__table__
    occurrences = FailureOccurrence.__table__
    counts = FailureGroupCount.__table__
    hourly = FailureGroupHourly.__table__
    target = sa.and_(
        groups.c.grouping_version == sa.bindparam("version", type_=sa.Integer),
        groups.c.fingerprint == sa.bindparam("fingerprint", type_=groups.c.fingerprint.type),
    )

    def value(name: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
        return sa.bindparam(name, type_=column.type)

    new_occurrence = postgresql.insert(occurrences).from_select(
        ["group_id", "failure_id", "job_id", "occurred_at", "job_type", "worker_name", "worker_version",
         "severity", "item_count", "item_positions", "is_current"],
        sa.select(
            groups.c.id,
            value("failure_id", occurrences.c.failure_id),
            value("job_id", occurrences.c.job_id),
            value("occurred_at", occurrences.c.occurred_at),
            value("job_type", occurrences.c.job_type),
            value("worker_name", occurrences.c.worker_name),
            value("worker_version", occurrences.c.worker_version),
            value("severity", occurrences.c.severity),
            value("item_count", occurrences.c.item_count),
            value("item_positions", occurrences.c.item_positions),
            value("is_current", occurrences.c.is_current),
        ).where(target),
    ).cte("new_occurrence")
    seen = (
        sa.select(occurrences.c.id)
        .where(occurrences.c.group_id == groups.c.id, occurrences.c.job_id == sa.bindparam("job_id"))
        .exists()
    )
    counted = postgresql.insert(counts).from_select(
        ["group_id", "job_type", "worker_version", "shard", "occurrences", "jobs", "current_jobs"],
        sa.select(
            groups.c.id,
            value("job_type", counts.c.job_type),
            value("counted_version", counts.c.worker_version),
            value("count_shard", counts.c.shard),
            sa.literal(1, counts.c.occurrences.type),
            sa.case((seen, 0), else_=1),
            value("current_jobs", counts.c.current_jobs),
        ).where(target),
    )
    counted = counted.on_conflict_do_update(
        index_elements=["group_id", "job_type", "worker_version", "shard"],
        set_={name: counts.c[name] + counted.excluded[name] for name in ("occurrences", "jobs", "current_jobs")},
    ).cte("counted")
    rolled = postgresql.insert(hourly).from_select(
        ["group_id", "hour", "shard", "occurrences"],
        sa.select(
            groups.c.id,
            value("hour", hourly.c.hour),
            value("hour_shard", hourly.c.shard),
            sa.literal(1, hourly.c.occurrences.type),
        ).where(target),
    )
    rolled = rolled.on_conflict_do_update(
        index_elements=["group_id", "hour", "shard"],
        set_={"occurrences": hourly.c.occurrences + rolled.excluded.occurrences},
    ).cte("rolled")
    return (
        sa.select(FailureGroup)
        .where(target)
        .add_cte(new_occurrence)
        .add_cte(counted)
        .add_cte(rolled)
        .execution_options(populate_existing=True)
    )


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _add_occurrence(
    group_id: int, created: bool, job: ProcessingJob, failure: JobFailure, hit: _Hit, current: bool
) -> None:
    """SQLite: insert the occurrence and add to the group's counter and
    hourly rollup (PostgreSQL does it in one statement: :func:`_record_in_group`).

    "Jobs ever" grows when the job had no earlier occurrence in the group
    (no race: the caller holds the job's row lock).
    """
    occurrences = FailureOccurrence.__table__
    counts = FailureGroupCount.__table__
    hourly = FailureGroupHourly.__table__
    occurrence = {
        "group_id": group_id,
        "failure_id": failure.id,
        "job_id": job.id,
        "occurred_at": failure.recorded_at,
        "job_type": job.job_type,
        "worker_name": failure.worker_name,
        "worker_version": failure.worker_version,
        "severity": hit.severity,
        "item_count": hit.item_count,
        "item_positions": hit.positions,
        "is_current": current,
    }
    count_key = {
        "group_id": group_id,
        "job_type": job.job_type,
        "worker_version": failure.worker_version or "",
        "shard": _random.randrange(COUNTER_SHARDS),
    }
    hour_key = {"group_id": group_id, "hour": _hour(failure.recorded_at), "shard": _random.randrange(COUNTER_SHARDS)}
    seen = (
        sa.select(occurrences.c.id)
        .where(occurrences.c.group_id == group_id, occurrences.c.job_id == job.id)
        .exists()
    )
    new_job = created or not db.session.scalar(sa.select(seen))
    db.session.execute(sa.insert(occurrences).values(**occurrence))
    _add(counts, count_key, {"occurrences": 1, "jobs": int(new_job), "current_jobs": int(current)})
    _add(hourly, hour_key, {"occurrences": 1})


def end_current_occurrences(job_ids: Sequence[uuid.UUID]) -> int:
    """The jobs' current occurrences stop being current (a newer failure, a
    requeue, a completion, a purge), and their groups' ``current_jobs``
    counters go down; in the open transaction. Returns how many ended.

    On PostgreSQL one statement (the UPDATE and the counter upsert as CTEs).
    """
    if not job_ids:
        return 0
    table = FailureOccurrence.__table__
    counts = FailureGroupCount.__table__
    ending = (
        sa.update(table)
        .where(table.c.job_id.in_(list(job_ids)), table.c.is_current.is_(True))
        .values(is_current=False)
        .returning(table.c.group_id, table.c.job_type, table.c.worker_version)
    )
    if _postgresql():
        ended = ending.cte("ended")
        version = sa.func.coalesce(ended.c.worker_version, "")
        lowered = postgresql.insert(counts).from_select(
            ["group_id", "job_type", "worker_version", "shard", "occurrences", "jobs", "current_jobs"],
            sa.select(
                ended.c.group_id,
                ended.c.job_type,
                version,
                sa.literal(_random.randrange(COUNTER_SHARDS), sa.SmallInteger),
                sa.literal(0, sa.BigInteger),
                sa.literal(0, sa.BigInteger),
                -sa.func.count(),
            ).group_by(ended.c.group_id, ended.c.job_type, version),
        )
        lowered = lowered.on_conflict_do_update(
            index_elements=["group_id", "job_type", "worker_version", "shard"],
            set_={"current_jobs": counts.c.current_jobs + lowered.excluded.current_jobs},
        ).cte("lowered")
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(ended).add_cte(lowered)) or 0)
    rows = db.session.execute(ending).all()
    deltas: dict[tuple[int, str, str], int] = {}
    for group_id, job_type, worker_version in rows:
        key = (group_id, job_type, worker_version or "")
        deltas[key] = deltas.get(key, 0) + 1
    for (group_id, job_type, worker_version), count in sorted(deltas.items()):
        _add(
            counts,
            {
                "group_id": group_id,
                "job_type": job_type,
                "worker_version": worker_version,
                "shard": _random.randrange(COUNTER_SHARDS),
            },
            {"occurrences": 0, "jobs": 0, "current_jobs": -count},
        )
    return len(rows)


def _find_group(version: int, fingerprint: str) -> FailureGroup | None:
    return db.session.scalars(
        sa.select(FailureGroup)
        .where(FailureGroup.grouping_version == version, FailureGroup.fingerprint == fingerprint)
        .execution_options(populate_existing=True)
    ).one_or_none()


def _create_group(key: GroupKey, version: int, at: datetime) -> bool:
    """Create the group of ``key`` unless it exists: ``INSERT ... ON
    CONFLICT DO NOTHING``. A concurrent creator of the same group makes the
    insert wait (PostgreSQL's unique index; SQLite has one writer) and then
    do nothing, so both end up with the one row. Returns whether this call
    created it (and then adds its ``created`` timeline event)."""
    table = FailureGroup.__table__
    inserted = db.session.execute(
        _insert(table)
        .values(
            grouping_version=version,
            fingerprint=key.fingerprint,
            title=key.title,
            code=key.code,
            pointer_pattern=key.pointer_pattern,
            entity_type=key.entity_type,
            sample_message=key.message[:SAMPLE_MESSAGE_MAX_LENGTH],
            severity=key.severity,
            state=GroupState.UNRESOLVED.value,
            substate=GroupSubstate.NEW.value,
            first_seen=at,
            last_seen=at,
            state_changed_at=at,
        )
        .on_conflict_do_nothing(index_elements=["grouping_version", "fingerprint"])
        .returning(table.c.id)
    ).scalar()
    if inserted is None:
        return False
    db.session.add(
        FailureGroupEvent(
            group_id=inserted,
            at=at,
            actor=SYSTEM_ACTOR,
            reason="created",
            from_state=None,
            to_state=GroupState.UNRESOLVED.value,
            to_substate=GroupSubstate.NEW.value,
        )
    )
    note_metric("created")
    return True


def _group_for(key: GroupKey, version: int, at: datetime) -> tuple[FailureGroup, bool]:
    """The group of ``key`` and whether it was created now: a ``SELECT``
    (the common case: one statement), else :func:`_create_group` and a
    ``SELECT`` (which sees the row, ours or the concurrent creator's)."""
    group = _find_group(version, key.fingerprint)
    if group is not None:
        return group, False
    created = _create_group(key, version, at)
    group = _find_group(version, key.fingerprint)
    assert group is not None
    return group, created


def _wakes(group: FailureGroup, at: datetime) -> bool:
    if group.ignore_mode == IgnoreMode.UNTIL_DATE:
        return group.ignore_until is not None and at >= group.ignore_until
    if group.ignore_mode == IgnoreMode.UNTIL_OCCURRENCES:
        base = group.ignore_base_occurrences or 0
        return total_occurrences(group.id) >= base + (group.ignore_until_occurrences or 0)
    return False


def _touch_group(group: FailureGroup, hit: _Hit, failure: JobFailure, at: datetime) -> str:
    """Apply the state rules for one occurrence at ``at``; return the state after it.

    The group row is read without a lock; it is locked only when the
    occurrence may change its state (resolved; ignored with a condition).
    Occurrences older than the state change (a backfill) change nothing.
    """
    state = group.state
    needs_lock = (state == GroupState.RESOLVED and at > group.state_changed_at) or (
        state == GroupState.IGNORED
        and at > group.state_changed_at
        and (
            group.ignore_mode == IgnoreMode.UNTIL_OCCURRENCES
            or (group.ignore_mode == IgnoreMode.UNTIL_DATE and group.ignore_until is not None and at >= group.ignore_until)
        )
    )
    if needs_lock:
        group = lock_group(group.id)
        state = group.state
        if state == GroupState.RESOLVED and at > group.state_changed_at:
            if is_regression(group.resolved_in_version, failure.worker_version):
                change_state(
                    group, GroupState.UNRESOLVED, GroupSubstate.REGRESSED, actor=SYSTEM_ACTOR, reason="regressed",
                    at=at,
                    details={
                        "job_id": str(failure.job_id),
                        "worker_version": failure.worker_version,
                        "resolved_in_version": group.resolved_in_version,
                    },
                )
        elif state == GroupState.IGNORED and at > group.state_changed_at and _wakes(group, at):
            change_state(
                group, GroupState.UNRESOLVED, GroupSubstate.ONGOING, actor=SYSTEM_ACTOR, reason="woken", at=at,
                details={"job_id": str(failure.job_id), "mode": group.ignore_mode},
            )
        state = group.state
    _move_last_seen(group, hit, at)
    return state


def _move_last_seen(group: FailureGroup, hit: _Hit, at: datetime) -> None:
    """Move ``last_seen`` (and the sample) forward, ``first_seen`` back,
    ``severity`` up -- one conditional UPDATE that matches, and so locks the
    row, only when one of them changes by more than the resolution. Skipped
    when the values just read show there is nothing to change (other
    writers only ever move them the same way)."""
    higher = [s for s in SEVERITY_ORDER if _rank(s) < _rank(hit.severity)]
    if group.last_seen >= at - LAST_SEEN_RESOLUTION and group.first_seen <= at and group.severity not in higher:
        return
    group_id = group.id
    table = FailureGroup.__table__
    later = table.c.last_seen < at - LAST_SEEN_RESOLUTION
    db.session.execute(
        sa.update(table)
        .where(table.c.id == group_id, sa.or_(later, table.c.first_seen > at, table.c.severity.in_(higher)))
        .values(
            last_seen=sa.case((table.c.last_seen < at, at), else_=table.c.last_seen),
            sample_message=sa.case(
                (table.c.last_seen < at, hit.key.message[:SAMPLE_MESSAGE_MAX_LENGTH]), else_=table.c.sample_message
            ),
            first_seen=sa.case((table.c.first_seen > at, at), else_=table.c.first_seen),
            severity=sa.case((table.c.severity.in_(higher), hit.severity), else_=table.c.severity)
            if higher
            else table.c.severity,
        )
        .execution_options(synchronize_session=False)
    )


def rebuild_counts_check(group_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Recount ``occurrences``, ``jobs`` and ``current_jobs`` of groups from
    ``failure_occurrences`` (slow: for tests and ``flask groups check``)."""
    result: dict[int, dict[str, int]] = {}
    for group_id in group_ids:
        rows = db.session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(sa.distinct(FailureOccurrence.job_id)),
                sa.func.coalesce(sa.func.sum(sa.case((FailureOccurrence.is_current, 1), else_=0)), 0),
            ).where(FailureOccurrence.group_id == group_id)
        ).one()
        result[group_id] = {"occurrences": rows[0], "jobs": rows[1], "current_jobs": int(rows[2])}
    return result
