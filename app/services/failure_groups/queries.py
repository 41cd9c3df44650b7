"""Reading failure groups: lists with filters and keyset pages, one group
and its exact counts (its page's distributions, timeline and jobs are in
:mod:`app.services.failure_groups.group_details`, the hourly series in
:mod:`app.services.failure_groups.series`).

Counts come from the write-time counters (``failure_group_counts``,
``failure_group_hourly``), never from scanning occurrences, so they are
exact and cheap at any number of jobs.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from app.errors import InvalidQueryError, parameter_error
from app.extensions import db
from app.models.failure_group import FailureGroup, FailureGroupCount
from app.models.failure_group import FailureOccurrence, GroupState, GroupSubstate
from app.models.types import utcnow
from app.services.failure_groups.errors import GroupNotFoundError
from app.services.failure_groups.fingerprint import GROUPING_VERSION
from app.services.failure_groups.states import NEW_PERIOD, effective_substate

#: ``job_count``: jobs affected ever; ``current_job_count``: jobs failing on
#: the group now (a trial: the worst current problem was not on top).
SORTS = ("last_seen", "first_seen", "job_count", "current_job_count")
#: The counter column each count sort sums.
_COUNT_SORTS = {"job_count": "jobs", "current_job_count": "current_jobs"}
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class GroupFilter:
    """Which groups to list. Empty tuples and ``None`` mean "any".

    ``seen_from``/``seen_to`` bound ``last_seen`` (``from <= last_seen < to``,
    aware datetimes); ``job_type``/``worker_version`` keep groups with at
    least one occurrence from that job type / worker version;
    ``grouping_version`` defaults to the current one; ``failing`` keeps
    groups with at least one job whose current failure is on them (the
    ``current_jobs`` counters).

    ``states`` and ``substates`` (a substate is of an unresolved group)
    must both hold by default, as the API's two parameters mean them; with
    ``either_state`` a group in one of the ``states`` or in one of the
    ``substates`` is kept, as /groups' one State filter means its boxes
    ("regressed" and "resolved": both kinds).
    """

    states: tuple[str, ...] = ()
    substates: tuple[str, ...] = ()
    either_state: bool = False
    code: str | None = None
    job_type: str | None = None
    worker_version: str | None = None
    seen_from: datetime | None = None
    seen_to: datetime | None = None
    grouping_version: int | None = None
    failing: bool = False


@dataclass
class GroupCounts:
    """Exact counts of one group: jobs ever, jobs currently failing, occurrences."""

    job_count: int = 0
    current_job_count: int = 0
    occurrence_count: int = 0


@dataclass
class GroupView:
    """A group with what pages and the API show beside its columns."""

    group: FailureGroup
    substate: str | None
    counts: GroupCounts
    worker_versions: list[str] = field(default_factory=list)

    @property
    def job_count(self) -> int:
        """Jobs that ever failed on the group."""
        return self.counts.job_count

    @property
    def current_job_count(self) -> int:
        """Jobs whose current failure is on the group."""
        return self.counts.current_job_count

    @property
    def occurrence_count(self) -> int:
        """Failures recorded on the group."""
        return self.counts.occurrence_count


@dataclass
class GroupPage:
    """One keyset page: ``items`` and the cursor of the next page (``None`` at the end)."""

    items: list[GroupView]
    next_cursor: str | None


def group_counts(group_ids: Sequence[int]) -> dict[int, GroupCounts]:
    """Exact counts of each group (absent groups count zero), summed over
    the counter shards."""
    counts = {group_id: GroupCounts() for group_id in group_ids}
    if not counts:
        return counts
    rows = db.session.execute(
        sa.select(
            FailureGroupCount.group_id,
            sa.func.sum(FailureGroupCount.jobs),
            sa.func.sum(FailureGroupCount.current_jobs),
            sa.func.sum(FailureGroupCount.occurrences),
        )
        .where(FailureGroupCount.group_id.in_(list(counts)))
        .group_by(FailureGroupCount.group_id)
    )
    for group_id, jobs, current, occurrences in rows:
        counts[group_id] = GroupCounts(int(jobs or 0), int(current or 0), int(occurrences or 0))
    return counts


def _worker_versions(group_ids: Sequence[int]) -> dict[int, list[str]]:
    versions: dict[int, list[str]] = {group_id: [] for group_id in group_ids}
    if not versions:
        return versions
    total = sa.func.sum(FailureGroupCount.occurrences)
    rows = db.session.execute(
        sa.select(FailureGroupCount.group_id, FailureGroupCount.worker_version, total)
        .where(FailureGroupCount.group_id.in_(list(versions)), FailureGroupCount.worker_version != "")
        .group_by(FailureGroupCount.group_id, FailureGroupCount.worker_version)
        .order_by(FailureGroupCount.group_id, total.desc(), FailureGroupCount.worker_version)
    )
    for group_id, version, _ in rows:
        versions[group_id].append(version)
    return versions


def _views(groups: Sequence[FailureGroup], now: datetime) -> list[GroupView]:
    ids = [g.id for g in groups]
    counts = group_counts(ids)
    versions = _worker_versions(ids)
    return [
        GroupView(g, effective_substate(g.state, g.substate, g.first_seen, now), counts[g.id], versions[g.id])
        for g in groups
    ]


def parse_group_id(group_id: object) -> int:
    """A group id as an int: a positive 32-bit integer, or its decimal string.

    Raises:
        GroupNotFoundError: anything else (it names no group).
    """
    if isinstance(group_id, str) and group_id.isascii() and group_id.isdecimal() and len(group_id) < 11:
        group_id = int(group_id)
    if isinstance(group_id, int) and not isinstance(group_id, bool) and 0 < group_id < 2**31:
        return group_id
    raise GroupNotFoundError(group_id)


def require_group(group_id: int | None) -> None:
    """Check that a filter's ``group`` names a group (one primary-key read;
    ``None``, no group filter, passes): a list, a summary or an export
    filtered by a group that does not exist is a 404, as the group's own
    page is, not an empty answer that reads as "nothing fails on it".

    Raises:
        GroupNotFoundError: no group has this id.
    """
    if group_id is not None and db.session.get(FailureGroup, parse_group_id(group_id)) is None:
        raise GroupNotFoundError(group_id)


def get_group(group_id: object, *, now: datetime | None = None) -> GroupView:
    """One group with its counts.

    Raises:
        GroupNotFoundError: no group has this id (or it is not one).
    """
    key = parse_group_id(group_id)
    group = db.session.get(FailureGroup, key)
    if group is None:
        raise GroupNotFoundError(group_id)
    return _views([group], now or utcnow())[0]


def _filtered(group_filter: GroupFilter, now: datetime) -> sa.Select:
    version = group_filter.grouping_version or GROUPING_VERSION
    statement = sa.select(FailureGroup).where(FailureGroup.grouping_version == version)
    in_states = FailureGroup.state.in_(group_filter.states) if group_filter.states else None
    if in_states is not None and not (group_filter.either_state and group_filter.substates):
        statement = statement.where(in_states)
    if group_filter.substates:
        conditions = []
        new_since = now - NEW_PERIOD
        unresolved = FailureGroup.state == GroupState.UNRESOLVED.value
        for substate in group_filter.substates:
            if substate == GroupSubstate.NEW:
                conditions.append(sa.and_(unresolved, FailureGroup.substate == "new", FailureGroup.first_seen > new_since))
            elif substate == GroupSubstate.ONGOING:
                conditions.append(
                    sa.and_(
                        unresolved,
                        sa.or_(
                            FailureGroup.substate == "ongoing",
                            sa.and_(FailureGroup.substate == "new", FailureGroup.first_seen <= new_since),
                        ),
                    )
                )
            elif substate == GroupSubstate.REGRESSED:
                conditions.append(sa.and_(unresolved, FailureGroup.substate == "regressed"))
        in_substates = sa.or_(*conditions) if conditions else sa.false()
        either = group_filter.either_state and in_states is not None
        statement = statement.where(sa.or_(in_states, in_substates) if either else in_substates)
    if group_filter.code is not None:
        statement = statement.where(FailureGroup.code == group_filter.code)
    if group_filter.seen_from is not None:
        statement = statement.where(FailureGroup.last_seen >= group_filter.seen_from)
    if group_filter.seen_to is not None:
        statement = statement.where(FailureGroup.last_seen < group_filter.seen_to)
    if group_filter.job_type is not None or group_filter.worker_version is not None:
        counted = sa.select(FailureGroupCount.group_id).where(FailureGroupCount.group_id == FailureGroup.id)
        if group_filter.job_type is not None:
            counted = counted.where(FailureGroupCount.job_type == group_filter.job_type)
        if group_filter.worker_version is not None:
            counted = counted.where(FailureGroupCount.worker_version == group_filter.worker_version)
        statement = statement.where(counted.exists())
    if group_filter.failing:
        statement = statement.where(_current_jobs_of_group() > 0)
    return statement


def _current_jobs_of_group() -> sa.ScalarSelect:
    """The group's jobs failing now, summed over its counter shards (correlated to ``FailureGroup``)."""
    return (
        sa.select(sa.func.coalesce(sa.func.sum(FailureGroupCount.current_jobs), 0))
        .where(FailureGroupCount.group_id == FailureGroup.id)
        .scalar_subquery()
    )


@dataclass(frozen=True)
class StillFailing:
    """Resolved groups that still have jobs failing now: ``groups`` of them,
    ``jobs`` distinct jobs (a job failing on two of them counts once)."""

    groups: int
    jobs: int


def resolved_still_failing(group_filter: GroupFilter, *, now: datetime | None = None) -> StillFailing:
    """The resolved groups matching ``group_filter`` (its states replaced by
    ``resolved``) that still have jobs whose current failure is on them:
    failures from before the resolve (which touches no job) and failures
    from workers older than the fixed version, which by the version rule do
    not reopen a group resolved in a version
    (:func:`~app.services.failure_groups.states.is_regression`), so the
    default (unresolved) list would not show them. Exact: the groups are
    chosen on the ``current_jobs`` counters, the jobs counted distinct on
    the partial index of current occurrences."""
    scoped = GroupFilter(**{**group_filter.__dict__, "states": (GroupState.RESOLVED.value,), "substates": (),
                            "failing": True})
    ids = _filtered(scoped, now or utcnow()).with_only_columns(FailureGroup.id).subquery("still_failing")
    groups = db.session.scalar(sa.select(sa.func.count()).select_from(ids)) or 0
    if not groups:
        return StillFailing(0, 0)
    jobs = db.session.scalar(
        sa.select(sa.func.count(sa.distinct(FailureOccurrence.job_id)))
        .where(FailureOccurrence.group_id.in_(sa.select(ids.c.id)), FailureOccurrence.is_current)
    ) or 0
    return StillFailing(int(groups), int(jobs))


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str | None) -> tuple[Any, int]:
    """The sort value and group id a cursor of :func:`list_groups` (made for
    ``sort``) holds: ``(count or aware UTC datetime, id)``. ``sort=None``
    (the query's own ``sort`` is bad) checks the cursor against the sort it
    was made for, so a 400 names a bad cursor beside a bad sort.

    Raises:
        InvalidQueryError: not a cursor this listing made, or one made for
            another ``sort`` (each names ``cursor``).
    """
    bad = InvalidQueryError(  # the job list's words (a re-check found two wordings)
        "The cursor is not valid; start again from the first page.",
        [parameter_error("cursor", "is not a cursor this list returned (its next page link or next_cursor)")],
    )
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        # RecursionError: a crafted cursor of a thousand nested arrays (a trial's 500).
        raise bad from None
    # The id is an INTEGER column and a count a BIGINT: a value beyond them
    # would reach the database as a bind it refuses (a 500), not a 400.
    if (not isinstance(raw, list) or len(raw) != 3 or raw[0] not in SORTS or type(raw[2]) is not int
            or not 0 <= raw[2] < 2**31):
        raise bad
    if sort is None:
        sort = raw[0]
    if raw[0] != sort:
        # Said as the job list says it (a trial): the cursor is one, of another order.
        raise InvalidQueryError(
            f"The cursor was made for sort={raw[0]}, not sort={sort}; start again from the first page.",
            [parameter_error("cursor", f"was made for sort={raw[0]}")],
        )
    value = raw[1]
    if sort in _COUNT_SORTS:
        if type(value) is not int or not 0 <= value < 2**63:
            raise bad
        return value, raw[2]
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise bad
        # In UTC here: an offset can carry 9999-12-31T23:59-01:00 past the
        # last year a datetime holds, which failed when the query bound it.
        parsed = parsed.astimezone(timezone.utc)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    return parsed, raw[2]


def list_groups(
    group_filter: GroupFilter,
    *,
    sort: str = "last_seen",
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> GroupPage:
    """A keyset page of groups, most recent (``last_seen``, ``first_seen``),
    most jobs affected (``job_count``) or most jobs failing now
    (``current_job_count``) first, ties broken by id.

    Raises:
        InvalidQueryError: an unknown ``sort``, a ``limit`` out of 1 to
            :data:`MAX_PAGE_SIZE`, or a cursor not given out for this sort.
    """
    if sort not in SORTS:
        raise InvalidQueryError("Unknown sort.", [parameter_error("sort", "must be one of " + ", ".join(SORTS))])
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidQueryError("Bad page size.", [parameter_error("limit", f"must be 1 to {MAX_PAGE_SIZE}")])
    now = now or utcnow()
    statement = _filtered(group_filter, now)
    if sort in _COUNT_SORTS:
        # One aggregate over the counters joined to the groups, not a
        # correlated sum per group: with thousands of groups the per-group
        # subquery cost 120 ms at 1,000,000 jobs (docs/benchmarks.md).
        counted = FailureGroupCount.__table__.c[_COUNT_SORTS[sort]]
        sums = (
            sa.select(FailureGroupCount.group_id, sa.func.sum(counted).label("total"))
            .group_by(FailureGroupCount.group_id)
            .subquery("job_sums")
        )
        statement = statement.outerjoin(sums, sums.c.group_id == FailureGroup.id)
        key: sa.ColumnElement[Any] = sa.func.coalesce(sums.c.total, 0)
    else:
        key = FailureGroup.last_seen if sort == "last_seen" else FailureGroup.first_seen
    if cursor:
        value, last_id = decode_cursor(cursor, sort)
        statement = statement.where(sa.or_(key < value, sa.and_(key == value, FailureGroup.id < last_id)))
    statement = statement.add_columns(key).order_by(key.desc(), FailureGroup.id.desc()).limit(limit + 1)
    rows = db.session.execute(statement).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        group, value = rows[-1]
        encoded = int(value) if sort in _COUNT_SORTS else value.isoformat()
        next_cursor = _encode_cursor([sort, encoded, group.id])
    return GroupPage(_views([group for group, _ in rows], now), next_cursor)


def code_is_known(code: str, grouping_version: int | None = None) -> bool:
    """Whether any group of ``grouping_version`` (default: the current one)
    has exactly this ``code``: one probe of its (version, code) index."""
    version = grouping_version or GROUPING_VERSION
    return db.session.scalar(
        sa.select(FailureGroup.id).where(FailureGroup.grouping_version == version, FailureGroup.code == code).limit(1)
    ) is not None
