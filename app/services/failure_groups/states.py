"""Rules of the group lifecycle that need no database: substates on read,
version order (SemVer 2.0.0), and the regression rule.

Pure functions, each with its SQL twin where a query needs the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.models.failure_group import FailureGroup, GroupState, GroupSubstate

#: How long a group stays ``new`` after it was first seen.
NEW_PERIOD = timedelta(hours=24)


def effective_substate(state: str, substate: str | None, first_seen: datetime, now: datetime) -> str | None:
    """The substate to show: stored ``new`` reads ``ongoing`` once the group
    was first seen :data:`NEW_PERIOD` ago (so nothing runs at the 24 h mark);
    ``None`` for resolved and ignored groups."""
    if state != GroupState.UNRESOLVED:
        return None
    if substate == GroupSubstate.NEW and first_seen <= now - NEW_PERIOD:
        return GroupSubstate.ONGOING.value
    return substate


def substate_before(event: Any, first_seen: datetime) -> str | None:
    """The substate a group had just before a timeline ``event``
    (:class:`~app.models.failure_group.FailureGroupEvent`) changed it, as
    :func:`effective_substate` read it then: an event stored with ``new``
    more than :data:`NEW_PERIOD` after ``first_seen`` was ``ongoing``."""
    return effective_substate(event.from_state, event.from_substate, first_seen, event.at)


def substate_sql(now: datetime) -> sa.ColumnElement[Any]:
    """:func:`effective_substate` as an SQL expression on ``failure_groups``."""
    return sa.case(
        (FailureGroup.state != GroupState.UNRESOLVED.value, sa.null()),
        (
            sa.and_(FailureGroup.substate == GroupSubstate.NEW.value, FailureGroup.first_seen <= now - NEW_PERIOD),
            GroupSubstate.ONGOING.value,
        ),
        else_=FailureGroup.substate,
    )


# --- SemVer 2.0.0 ------------------------------------------------------------------------

# The regular expression suggested by semver.org (section "Is there a suggested
# regular expression (RegEx) to check a SemVer string?").
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?",
    re.ASCII,  # SemVer's digits are ASCII; \d alone also takes "٣"
)


def is_semver(version: object) -> bool:
    """Whether ``version`` is a SemVer 2.0.0 version string (``1.4.0``,
    ``2.0.0-rc.1+build.5``; not ``v1.4.0``, not ``1.4``)."""
    return isinstance(version, str) and _SEMVER.fullmatch(version) is not None


def _precedence_key(version: str) -> tuple[Any, ...]:
    match = _SEMVER.fullmatch(version)
    assert match is not None
    major, minor, patch, pre, _build = match.groups()
    if pre is None:
        # A release has higher precedence than any of its pre-releases (§11.3).
        pre_key: tuple[Any, ...] = (1,)
    else:
        # §11.4: numeric identifiers compare numerically and below
        # alphanumeric ones, which compare in ASCII order; a longer list wins
        # when all before are equal (tuple comparison does exactly that).
        pre_key = (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return (int(major), int(minor), int(patch), pre_key)


def compare_versions(a: str | None, b: str | None) -> int | None:
    """SemVer 2.0.0 precedence (semver.org §11): ``-1`` if ``a`` precedes
    ``b``, ``0`` if equal in precedence (build metadata is ignored), ``1`` if
    it follows, and ``None`` when either is missing or not SemVer: unordered."""
    if not is_semver(a) or not is_semver(b):
        return None
    key_a, key_b = _precedence_key(a), _precedence_key(b)  # type: ignore[arg-type]
    return (key_a > key_b) - (key_a < key_b)


def by_precedence(versions: Iterable[str]) -> list[str]:
    """``versions`` oldest first by SemVer 2.0.0 precedence (semver.org §11):
    ``["1.4.0", "1.0.0", "1.5.0-rc.1", "1.5.0"]`` -> ``["1.0.0", "1.4.0",
    "1.5.0-rc.1", "1.5.0"]``. Versions of equal precedence (differing only in
    build metadata) keep text order; versions that are not SemVer follow
    the SemVer ones, in text order, as they cannot be ordered by the rule."""
    listed = list(versions)
    semver = sorted((v for v in listed if is_semver(v)), key=lambda v: (_precedence_key(v), v))
    return semver + sorted(v for v in listed if not is_semver(v))


def is_regression(
    resolved_in_version: str | None,
    worker_version: str | None,
    *,
    resolved_in_worker: str | None = None,
    worker_name: str | None = None,
) -> bool:
    """Whether an occurrence from ``worker_name`` at ``worker_version``
    reopens a group resolved (optionally) in ``resolved_in_version`` of the
    worker ``resolved_in_worker``.

    Always, unless the group was resolved in a version and the occurrence
    comes from an older version (SemVer 2.0.0 precedence) of the same
    worker: another worker's versions do not order against it, so any
    failure from one is a comeback. ``resolved_in_worker`` ``""`` is the
    workers that send no name (``worker_name`` ``None``); ``None`` (a group
    resolved in a version before workers' names counted) takes any
    worker's older version. An unordered pair (a missing or non-SemVer
    version) is a regression: better to reopen than to miss a comeback.
    """
    if resolved_in_version is None:
        return True
    if resolved_in_worker is not None and (worker_name or "") != resolved_in_worker:
        return True
    return compare_versions(worker_version, resolved_in_version) != -1
