"""The write path: a recorded failure's occurrences, counters and group state.

Runs inside the caller's transaction (the failure recorder's, a requeue's,
a backfill batch's) and never commits. The caller holds the job's row lock,
so two failures of one job never run here at once; different jobs hitting
one group do, and meet only on rows built not to serialise them
(``docs/failure-groups.md``, "Exact counts without a hot row").

Here: the recorder's hook, the grouping of one failure and the state rules
an occurrence applies (regressions, wake-ups, ``last_seen``), and the
ending of a job's current occurrences. The statements that write an
occurrence are in :mod:`app.services.failure_groups.hits_statement`
(PostgreSQL) and :mod:`app.services.failure_groups.write_statements`
(SQLite, and what both share).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import JobFailure, ProcessingJob
from app.models.job_status import FAILURE_STATUSES, JobStatus
from app.models.failure_group import (
    PURGED_TITLE,
    SEVERITY_ORDER,
    FailureGroup,
    FailureGroupCount,
    FailureOccurrence,
    GroupState,
    GroupSubstate,
    IgnoreMode,
)
from app.services.failure_groups.fingerprint import GROUPING_VERSION, positioned_failure_keys
from app.services.failure_groups.lifecycle import SYSTEM_ACTOR, change_state, lock_group, total_occurrences
from app.services.failure_groups.recorded import RecordedFailure
from app.services.failure_groups.signals import note_metric
from app.services.failure_groups.states import is_regression
from app.services.failure_groups.group_rows import create_group, group_for
from app.services.failure_groups.hits_statement import end_current_statement, record_hits
from app.services.failure_groups.write_statements import (
    SAMPLE_MESSAGE_MAX_LENGTH,
    Hit,
    add_occurrence,
    add_to_counter,
    on_postgresql,
    random_shard,
    job_shard,
    severity_rank,
)

#: ``last_seen`` is written at most this often per group: the group row is
#: not rewritten by every occurrence of a hot group.
LAST_SEEN_RESOLUTION = timedelta(seconds=1)


def group_recorded_failure(failure: RecordedFailure, previous_status: JobStatus) -> list[int]:
    """The recorder's hook: the job's previous failure stops being current,
    and ``failure`` (its ``job_failures`` row, just inserted) is grouped as
    its current one.

    A job has current occurrences only while it is failed (a requeue, a
    completion and the purge end them), so the ending is skipped when the
    job's ``previous_status`` (its status before this change, which the
    recorder read under the row lock) was not a failure. Returns the ids of
    the groups hit.
    """
    return record_failure_occurrences(
        failure.job, failure, current=True, end_previous=previous_status in FAILURE_STATUSES
    )


def record_failure_occurrences(
    job: ProcessingJob,
    failure: JobFailure,
    *,
    current: bool,
    version: int = GROUPING_VERSION,
    end_previous: bool = False,
) -> list[int]:
    """Group every error item of ``failure`` (a failure of ``job``) under
    grouping ``version``, in the open transaction.

    Creates missing groups race-free, adds one occurrence per group hit,
    adds to the group's counters and hourly rollup, applies the regression
    and wake-up rules, and moves ``last_seen``/``severity``/``sample_message``.
    ``current`` says whether the failure is the job's current one (the
    recorder: always; a backfill: only for the job's latest failure while it
    is still failed). With ``end_previous`` the job's current occurrences
    end first (:func:`end_current_occurrences`; on PostgreSQL inside the
    groups' statement). Returns the ids of the groups hit, one
    occurrence each.

    Raises:
        UnknownGroupingVersionError: ``version`` is not implemented.
    """
    if failure.id is None:
        failure.id = uuid.uuid4()
    at = failure.recorded_at
    hits = failure_hits(failure.error_message, failure.error_details, failure.error_format, version)
    db.session.flush()  # the failure row, which occurrences reference
    # A fixed order (by fingerprint, then by group id) for every lock taken
    # below, so two failures hitting the same groups cannot deadlock.
    grouped: list[tuple[Any, bool, Hit]] = []  # (GROUP_STATE_COLUMNS row, created, hit)
    postgresql = on_postgresql()
    if end_previous and (not postgresql or not hits or not current):
        end_current_occurrences([job.id])
        end_previous = False
    ordered = [hit for _, hit in sorted(hits.items())]
    if postgresql and ordered:
        # One statement for every group hit; a group that does not exist yet
        # is created (in fingerprint order) and recorded by a second one.
        found = record_hits(version, ordered, job, failure, current, end_previous=end_previous)
        missing = [hit for hit in ordered if hit.key.fingerprint not in found]
        created_now = {hit.key.fingerprint: create_group(hit.key, version, at) for hit in missing}
        if missing:
            found.update(record_hits(version, missing, job, failure, current))
        for hit in ordered:
            grouped.append((found[hit.key.fingerprint], created_now.get(hit.key.fingerprint, False), hit))
    else:
        for hit in ordered:
            group, created = group_for(hit.key, version, at)
            add_occurrence(group.id, created, job, failure, hit, current)
            grouped.append((group, created, hit))
    grouped.sort(key=lambda entry: entry[0].id)
    for group, created, hit in grouped:
        state = group.state if created else touch_group(group, hit, failure, at)
        note_metric("occurrence", state)
    return [group.id for group, _, _ in grouped]


def failure_hits(error_message: Any, error_details: Any, error_format: Any, version: int) -> dict[str, Hit]:
    """The groups a failure's items fall in under grouping ``version``, by
    fingerprint: each with its item count, highest severity and the items'
    positions in ``errors``."""
    hits: dict[str, Hit] = {}
    for position, key in positioned_failure_keys(error_message, error_details, error_format, version=version):
        hit = hits.get(key.fingerprint)
        if hit is None:
            hit = hits[key.fingerprint] = Hit(key, 1, key.severity, [])
        else:
            hit.item_count += 1
            if severity_rank(key.severity) > severity_rank(hit.severity):
                hit.severity = key.severity
        if position is not None:
            hit.positions.append(position)
    return hits


def end_current_occurrences(job_ids: Sequence[uuid.UUID]) -> int:
    """The jobs' current occurrences stop being current (a newer failure, a
    requeue, a completion, a purge), and their groups' ``current_jobs``
    counters go down; in the open transaction. Returns how many ended.

    On PostgreSQL one statement (the UPDATE and the counter upsert as CTEs).
    """
    if not job_ids:
        return 0
    if on_postgresql():
        return int(
            # On the session's connection: a Core statement on tables the ORM
            # never writes needs no autoflush nor ORM statement handling.
            db.session.connection().scalar(
                end_current_statement(), {"job_ids": list(job_ids), "shard": _ending_shard(job_ids)}
            )
            or 0
        )
    table = FailureOccurrence.__table__
    counts = FailureGroupCount.__table__
    ending = (
        sa.update(table)
        .where(table.c.job_id.in_(list(job_ids)), table.c.is_current)
        .values(is_current=False)
        .returning(table.c.group_id, table.c.job_type, table.c.worker_version)
    )
    rows = db.session.execute(ending).all()
    deltas: dict[tuple[int, str, str], int] = {}
    for group_id, job_type, worker_version in rows:
        key = (group_id, job_type, worker_version or "")
        deltas[key] = deltas.get(key, 0) + 1
    for (group_id, job_type, worker_version), count in sorted(deltas.items()):
        add_to_counter(
            counts,
            {
                "group_id": group_id,
                "job_type": job_type,
                "worker_version": worker_version,
                "shard": _ending_shard(job_ids),
            },
            {"occurrences": 0, "jobs": 0, "current_jobs": -count},
        )
    return len(rows)


def _ending_shard(job_ids: Sequence[uuid.UUID]) -> int:
    """The counter shard :func:`end_current_occurrences` lowers: one job's
    own shard (the one its next occurrence raises, see ``job_shard``), else
    one at random (a batch of jobs: requeue, purge)."""
    return job_shard(job_ids[0]) if len(job_ids) == 1 else random_shard()


def _wakes(group: FailureGroup, at: datetime) -> bool:
    if group.ignore_mode == IgnoreMode.UNTIL_DATE:
        return group.ignore_until is not None and at >= group.ignore_until
    if group.ignore_mode == IgnoreMode.UNTIL_OCCURRENCES:
        base = group.ignore_base_occurrences or 0
        return total_occurrences(group.id) >= base + (group.ignore_until_occurrences or 0)
    return False


def _may_reopen(group_id: int, failure: JobFailure) -> bool:
    """Whether ``failure`` may reopen the resolved group: not when it comes
    from an older version of the worker the group was resolved in. Read
    without a lock (the lock's holder checks again); a group no longer
    resolved may change, so it says yes."""
    row = db.session.execute(
        sa.select(FailureGroup.state, FailureGroup.resolved_in_version, FailureGroup.resolved_in_worker)
        .where(FailureGroup.id == group_id)
    ).one()
    return row.state != GroupState.RESOLVED or is_regression(
        row.resolved_in_version, failure.worker_version,
        resolved_in_worker=row.resolved_in_worker, worker_name=failure.worker_name)


def touch_group(group: Any, hit: Hit, failure: JobFailure, at: datetime) -> str:
    """Apply the state rules for one occurrence at ``at``; return the state after it.

    The group row was read under a key share (as committed, after any state
    change in progress); it is locked only when the occurrence may change
    its state or its ignore's count: resolved, unless the occurrence comes
    from an older version of the worker the group was resolved in (a trial:
    old workers still failing each took the lock in turn, and an operator's
    reopen waited behind them past the statement timeout); ignored with a
    condition. Occurrences older than the state change (a backfill, or a
    report that read the group while the change was made) reopen nothing,
    and one older than an ignore until N occurrences is added to the
    ignore's base: the N counts occurrences after the ignore only (a trial:
    such reports woke a group after 5 of 10).
    """
    state = group.state
    before_change = at <= group.state_changed_at
    until_occurrences = state == GroupState.IGNORED and group.ignore_mode == IgnoreMode.UNTIL_OCCURRENCES
    needs_lock = (state == GroupState.RESOLVED and not before_change and _may_reopen(group.id, failure)) or (
        until_occurrences
    ) or (
        state == GroupState.IGNORED
        and not before_change
        and group.ignore_mode == IgnoreMode.UNTIL_DATE and group.ignore_until is not None and at >= group.ignore_until
    )
    if needs_lock:
        group = lock_group(group.id, recorder=True)
        state = group.state
        if state == GroupState.RESOLVED and at > group.state_changed_at:
            if is_regression(group.resolved_in_version, failure.worker_version,
                             resolved_in_worker=group.resolved_in_worker, worker_name=failure.worker_name):
                change_state(
                    group, GroupState.UNRESOLVED, GroupSubstate.REGRESSED, actor=SYSTEM_ACTOR, reason="regressed",
                    at=at,
                    details={
                        "job_id": str(failure.job_id),
                        "worker_name": failure.worker_name or "",  # "": it sent none (kept: None is dropped)
                        "worker_version": failure.worker_version,
                        "resolved_in_version": group.resolved_in_version,
                        "resolved_in_worker": group.resolved_in_worker,
                    },
                )
        elif (state == GroupState.IGNORED and group.ignore_mode == IgnoreMode.UNTIL_OCCURRENCES
              and at <= group.state_changed_at):
            group.ignore_base_occurrences = (group.ignore_base_occurrences or 0) + 1
        elif state == GroupState.IGNORED and at > group.state_changed_at and _wakes(group, at):
            change_state(
                group, GroupState.UNRESOLVED, GroupSubstate.ONGOING, actor=SYSTEM_ACTOR, reason="woken", at=at,
                # The condition that was met, in full ("until 3 more occurrences" on the timeline).
                details={"job_id": str(failure.job_id), "mode": group.ignore_mode,
                         **({"occurrences": group.ignore_until_occurrences}
                            if group.ignore_until_occurrences is not None else {}),
                         **({"until": group.ignore_until.isoformat()} if group.ignore_until is not None else {})},
            )
        state = group.state
    _move_last_seen(group, hit, at)
    return state


def _move_last_seen(group: Any, hit: Hit, at: datetime) -> None:
    """Move ``last_seen`` (and the sample) forward, ``first_seen`` back,
    ``severity`` up -- one conditional UPDATE that matches, and so locks the
    row, only when one of them changes by more than the resolution. Skipped
    when the values just read show there is nothing to change (other
    writers only ever move them the same way)."""
    higher = _LOWER_SEVERITIES.get(hit.severity)
    if higher is None:
        higher = _lower_severities(hit.severity)
    if group.last_seen >= at - LAST_SEEN_RESOLUTION and group.first_seen <= at and group.severity not in higher:
        return  # the common case on a busy group: nothing built, nothing sent
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
            # A message group's title the retention purge took comes back with its next occurrence.
            title=sa.case((table.c.title.startswith(PURGED_TITLE), hit.key.title), else_=table.c.title),
            first_seen=sa.case((table.c.first_seen > at, at), else_=table.c.first_seen),
            severity=sa.case((table.c.severity.in_(higher), hit.severity), else_=table.c.severity)
            if higher
            else table.c.severity,
        )
        .execution_options(synchronize_session=False)
    )


def _lower_severities(severity: str) -> list[str]:
    """The severities below ``severity`` (an occurrence of ``severity``
    raises a group at one of them)."""
    return [s for s in SEVERITY_ORDER if severity_rank(s) < severity_rank(severity)]


#: :func:`_lower_severities` of each known severity, computed once.
_LOWER_SEVERITIES = {severity: _lower_severities(severity) for severity in SEVERITY_ORDER}


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
