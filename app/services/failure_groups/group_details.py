"""Reading one failure group's page and a job's groups: the group's
distribution by job type and worker version, its timeline and the
actions on its jobs, its sample
occurrences (keyset pages) and current jobs, and the group of each error
item of a job's failures (the lists, filters and counts are in
:mod:`app.services.failure_groups.queries`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from app.extensions import db
from app.models.bulk_action import BulkAction, BulkActionJob, BulkActionState
from app.models.failure_group import FailureGroup, FailureGroupCount, FailureGroupEvent, FailureOccurrence
from app.models.job_rollup import Grain, JobGroupRollup
from app.models.job_status import FAILURE_STATUSES
from app.services.failure_groups.fingerprint import GROUPING_VERSION


#: Most of a group's bulk actions its page lists (newest first).
GROUP_ACTIONS_SHOWN = 20


def group_bulk_actions(group_id: int, limit: int = GROUP_ACTIONS_SHOWN) -> list[BulkAction]:
    """The requeues and acknowledgements of every job failing on the group
    (``/groups/<id>``'s actions), newest first, at most ``limit``; one
    still awaiting its confirmation (``pending``, nothing changed) is left out."""
    return list(
        db.session.scalars(
            sa.select(BulkAction)
            .where(BulkAction.group_id == group_id, BulkAction.state != BulkActionState.PENDING.value)
            .order_by(BulkAction.created_at.desc(), BulkAction.id)
            .limit(limit)
        )
    )


def group_distribution(group_id: int) -> dict[str, dict[str, int]]:
    """Occurrences of a group by job type and by worker version (``""``: none sent)."""
    result: dict[str, dict[str, int]] = {"job_types": {}, "worker_versions": {}}
    for name, column in (("job_types", FailureGroupCount.job_type), ("worker_versions", FailureGroupCount.worker_version)):
        total = sa.func.sum(FailureGroupCount.occurrences)
        rows = db.session.execute(
            sa.select(column, total)
            .where(FailureGroupCount.group_id == group_id)
            .group_by(column)
            .order_by(total.desc(), column)
        )
        result[name] = {value: int(count) for value, count in rows if count}
    return result


def group_timeline(group_id: int) -> list[FailureGroupEvent]:
    """The group's state changes (creation included), oldest first."""
    return list(
        db.session.scalars(
            sa.select(FailureGroupEvent)
            .where(FailureGroupEvent.group_id == group_id)
            .order_by(FailureGroupEvent.at, FailureGroupEvent.id)
        )
    )


@dataclass(frozen=True)
class ItemGroup:
    """The failure group an error item fell in: its id and title."""

    id: int
    title: str


def item_groups(failure_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[int | None, ItemGroup]]:
    """The groups of each failure's error items under the current grouping:
    failure id -> item position (0-based index in the envelope's
    ``errors``; ``None`` for a failure without items, grouped by its
    message) -> group. Failures recorded before grouping (or not grouped)
    are absent. One query, on the occurrences' ``failure_id``."""
    result: dict[uuid.UUID, dict[int | None, ItemGroup]] = {}
    if not failure_ids:
        return result
    rows = db.session.execute(
        sa.select(FailureOccurrence.failure_id, FailureOccurrence.item_positions, FailureGroup.id, FailureGroup.title)
        .join(FailureGroup, FailureGroup.id == FailureOccurrence.group_id)
        .where(FailureOccurrence.failure_id.in_(list(failure_ids)), FailureGroup.grouping_version == GROUPING_VERSION)
    )
    for failure_id, positions, group_id, title in rows:
        groups = result.setdefault(failure_id, {})
        for position in positions or [None]:
            groups[position] = ItemGroup(group_id, title)
    return result


#: How many of the other groups a group action's question names.
OTHER_GROUPS_NAMED = 5


@dataclass(frozen=True)
class OtherGroups:
    """Of a group action's frozen selection: ``jobs`` that fail now on
    ``groups`` other groups too (acting on a job takes it off every group's
    "failing now", not only this one's), and ``named``: the
    :data:`OTHER_GROUPS_NAMED` of them holding most of those jobs, as
    ``(group id, title, jobs of the selection failing on it)``."""

    jobs: int
    groups: int
    named: tuple[tuple[int, str, int], ...] = ()


def selection_in_other_groups(bulk_id: uuid.UUID, group_id: int) -> OtherGroups:
    """How many jobs of the frozen selection ``bulk_id`` fail now on groups
    other than ``group_id``, on how many such groups, and which hold most of
    them (a trial read "9 of these jobs also fail now on 8 other groups"
    and could not tell which). Two passes over the selection and the
    current occurrences' job index."""
    occurrence = FailureOccurrence
    others = (
        sa.select(occurrence.job_id, occurrence.group_id)
        .select_from(BulkActionJob)
        .join(occurrence, occurrence.job_id == BulkActionJob.job_id)
        # The partial index's own predicate (WHERE is_current), so the job index is used.
        .where(BulkActionJob.bulk_action_id == bulk_id, occurrence.is_current, occurrence.group_id != group_id)
        .subquery()
    )
    jobs, groups = db.session.execute(
        sa.select(sa.func.count(sa.distinct(others.c.job_id)), sa.func.count(sa.distinct(others.c.group_id)))
    ).one()
    if not jobs:
        return OtherGroups(0, 0)
    count = sa.func.count(sa.distinct(others.c.job_id))
    named = db.session.execute(
        sa.select(FailureGroup.id, FailureGroup.title, count)
        .join(others, others.c.group_id == FailureGroup.id)
        .group_by(FailureGroup.id, FailureGroup.title)
        .order_by(count.desc(), FailureGroup.id)
        .limit(OTHER_GROUPS_NAMED)
    ).all()
    return OtherGroups(int(jobs), int(groups), tuple((int(i), title, int(n)) for i, title, n in named))


def current_job_ids(group_id: int) -> sa.Select:
    """A SELECT of the ids of the jobs currently failing on the group (their
    current failure has an item in it); on the partial index of current
    occurrences."""
    return sa.select(FailureOccurrence.job_id).where(
        FailureOccurrence.group_id == group_id, FailureOccurrence.is_current
    )


def unacknowledged_current_job_count(group_id: int) -> int:
    """How many jobs failing on the group now are not acknowledged: what
    "Acknowledge all" would act on. Exact, from ``job_group_rollups``'
    all-time rows (one range of its key, which starts with the group), so a
    group of 500,000 failing jobs costs what a small one does."""
    rollup = JobGroupRollup.__table__
    return int(db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(rollup.c.jobs), 0)).where(
            rollup.c.group_id == group_id,
            rollup.c.grain == int(Grain.ALL),
            rollup.c.acknowledged.is_(False),
            rollup.c.status.in_(sorted(status.value for status in FAILURE_STATUSES)),
        )
    ))


def sample_occurrences(
    group_id: int, *, limit: int = 20, before: tuple[datetime, int] | None = None
) -> tuple[list[FailureOccurrence], tuple[datetime, int] | None]:
    """The group's occurrences, newest first, ``limit`` at a time; pass the
    returned key as ``before`` for the next page (``None``: no more)."""
    statement = sa.select(FailureOccurrence).where(FailureOccurrence.group_id == group_id)
    if before is not None:
        at, last_id = before
        statement = statement.where(
            sa.or_(
                FailureOccurrence.occurred_at < at,
                sa.and_(FailureOccurrence.occurred_at == at, FailureOccurrence.id < last_id),
            )
        )
    rows = list(
        db.session.scalars(
            statement.order_by(FailureOccurrence.occurred_at.desc(), FailureOccurrence.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1].occurred_at, rows[-1].id) if more else None)
