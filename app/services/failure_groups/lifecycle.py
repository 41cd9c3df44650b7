"""The group lifecycle: resolve, ignore, reopen -- and the state changes
an occurrence makes on its own (regression, wake-up).

Every state change is a ``failure_group_events`` row and an audit row
(``groups.<reason>``), both written in the transaction that makes the change,
the audit row first: if it cannot be written, nothing changes. Each public
function is one ``with write_transaction():`` block (or joins the caller's).
``docs/failure-groups.md`` has the rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.errors import FieldError, InvalidFieldsError, field_error
from app.extensions import db
from app.models.failure_group import (
    VERSION_MAX_LENGTH,
    FailureGroup,
    FailureGroupCount,
    FailureGroupEvent,
    FailureOccurrence,
    GroupState,
    GroupSubstate,
    IgnoreMode,
)
from app.models.types import utcnow
from app.services.access import add_audit_event
from app.services.failure_groups.errors import (
    GroupChangedMeanwhileError,
    GroupNotFoundError,
    InvalidGroupTransitionError,
)
from app.services.failure_groups.queries import parse_group_id
from app.services.failure_groups.signals import note_metric
from app.services.failure_groups.states import by_precedence, compare_versions, effective_substate, is_semver
from app.services.failure_groups.worker import check_worker
from app.services.json_values import has_unseen_character
from app.unit_of_work import write_transaction

#: Each action's refusal (the 422 ``detail``, RFC 9457), the same whichever
#: check finds the fault: the API's schema check (``app.api.failure_groups``)
#: or a rule here.
RESOLUTION_REFUSED = "The resolution is not valid; nothing was changed."
IGNORE_REFUSED = "The ignore condition is not valid; nothing was changed."
REOPEN_REFUSED = "The reopen request is not valid; nothing was changed."

#: Most occurrences an "ignore until N more" may wait for.
MAX_IGNORE_OCCURRENCES = 1_000_000_000

SYSTEM_ACTOR = "system"


def change_state(
    group: FailureGroup,
    to_state: GroupState,
    to_substate: GroupSubstate | None,
    *,
    actor: str,
    reason: str,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> FailureGroupEvent:
    """Move ``group`` (loaded under a row lock in the caller's transaction)
    to a new state: audit row first, then the timeline event, then the change.

    Clears the fields of the state left (``resolved_*``, ``ignore*``); the
    caller sets those of the state entered. ``reason`` is a word
    (``resolved``, ``ignored``, ``reopened``, ``regressed``, ``woken``); the
    audit action is ``groups.<reason>``.
    """
    facts = {k: v for k, v in (details or {}).items() if v is not None}
    add_audit_event(
        actor,
        f"groups.{reason}",
        {"group_id": group.id, "from": group.state, "to": to_state.value, **facts},
        1,
    )
    event = FailureGroupEvent(
        group_id=group.id,
        at=at,
        actor=actor[:200],
        reason=reason,
        from_state=group.state,
        from_substate=effective_substate(group.state, group.substate, group.first_seen, at),
        to_state=to_state.value,
        to_substate=to_substate.value if to_substate else None,
        details=facts or None,
    )
    db.session.add(event)
    group.state = to_state.value
    group.substate = to_substate.value if to_substate else None
    group.state_changed_at = at
    group.resolved_by = group.resolved_at = group.resolved_in_version = group.resolved_in_worker = None
    group.ignore_mode = group.ignored_by = group.ignored_at = group.ignore_until = None
    group.ignore_until_occurrences = group.ignore_base_occurrences = None
    if reason in ("regressed", "woken"):
        note_metric(reason)
    return event


def total_occurrences(group_id: int) -> int:
    """The group's exact occurrence count (sum of its counter shards)."""
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(FailureGroupCount.occurrences), 0)).where(
            FailureGroupCount.group_id == group_id
        )
    )
    return int(total or 0)


def lock_group(group_id: object, *, recorder: bool = False) -> FailureGroup:
    """Load a group under a row lock (SQLite: the writer lock), as it is now.

    An operator's state change takes ``FOR UPDATE``: it waits for the
    reports that have already read the group (their lookup and their
    occurrences' foreign key hold ``FOR KEY SHARE``), whose failures then
    come before it, and reports that read it later wait for it and see its
    new state (:func:`~app.services.failure_groups.hits_statement.record_hits`).
    A report's own state check (``recorder``) takes ``FOR NO KEY UPDATE``,
    which ``FOR KEY SHARE`` does not conflict with: two reports each holding
    the key share of their occurrences, each then asking ``FOR UPDATE``,
    deadlocked (a trial: 37 of 40 concurrent failures on a group resolved in
    a version were 503s). PostgreSQL's row-level locks, section 13.3.2.

    Raises:
        GroupNotFoundError: no such group (or ``group_id`` is not a group id).
    """
    key = parse_group_id(group_id)
    lock: Any = {"key_share": True} if recorder else True  # FOR NO KEY UPDATE, or FOR UPDATE
    group = db.session.get(FailureGroup, key, with_for_update=lock, populate_existing=True)
    if group is None:
        raise GroupNotFoundError(group_id)
    return group


#: Occurrences :func:`recent_worker_names` reads: the newest, so a large
#: group costs what a small one does.
RECENT_OCCURRENCES = 1000


def recent_worker_names(group_id: int) -> list[tuple[str, int]]:
    """The ``worker.name`` of the group's newest :data:`RECENT_OCCURRENCES`
    occurrences and how many each sent, most first (ties by name); ``""``
    stands for workers that send no name. Empty for a group without any."""
    recent = (
        sa.select(FailureOccurrence.worker_name).where(FailureOccurrence.group_id == group_id)
        .order_by(FailureOccurrence.occurred_at.desc(), FailureOccurrence.id.desc()).limit(RECENT_OCCURRENCES)
        .subquery()
    )
    name = sa.func.coalesce(recent.c.worker_name, "")
    rows = db.session.execute(sa.select(name, sa.func.count()).group_by(name).order_by(sa.func.count().desc(), name))
    return [(worker, int(count)) for worker, count in rows]


def recent_worker_versions(group_id: int) -> dict[str, list[str]]:
    """Worker name (``""``: none sent) -> the versions it sent in the
    group's newest :data:`RECENT_OCCURRENCES` occurrences, oldest first by
    SemVer 2.0.0 precedence (``by_precedence``; the unordered ones last)."""
    recent = (
        sa.select(FailureOccurrence.worker_name, FailureOccurrence.worker_version)
        .where(FailureOccurrence.group_id == group_id)
        .order_by(FailureOccurrence.occurred_at.desc(), FailureOccurrence.id.desc()).limit(RECENT_OCCURRENCES)
        .subquery()
    )
    found: dict[str, set[str]] = {}
    for name, version in db.session.execute(sa.select(recent.c.worker_name, recent.c.worker_version).distinct()):
        versions = found.setdefault(name or "", set())
        if version:
            versions.add(version)
    return {name: by_precedence(versions) for name, versions in found.items()}


def _unseen_faults(group_id: int, version: str, worker: str | None) -> list[FieldError]:
    """An operator's resolve in ``version`` of ``worker`` that cannot be
    what they meant (the form's ``check_seen``): a worker none of the
    group's recent occurrences came from (a typo: no occurrence of the real
    worker's would then be older), or a version not newer than the newest
    of that worker's recent versions (its next failure would reopen the
    group at once). ``[]`` when neither, or the group has no occurrence."""
    seen = recent_worker_versions(group_id)
    if worker is None or not seen:
        return []
    if worker not in seen:
        lately = ", ".join(name or "(no name)" for name in seen)
        return [field_error("/worker", f"no recent failure of this group came from this worker (lately: {lately}); "
                                       "check the name")]
    ordered = [v for v in seen[worker] if is_semver(v)]
    if ordered and compare_versions(version, ordered[-1]) != 1:
        return [field_error("/in_version", f"must be newer than {ordered[-1]}, the newest version of "
                                           f"{worker or 'the workers that send no name'} this group failed on "
                                           "lately: its next failure would reopen the group at once. Enter the "
                                           "version with the fix, or resolve without a version")]
    return []


def usual_worker_name(group_id: int) -> str | None:
    """The name most of the group's recent occurrences came from
    (:func:`recent_worker_names`; ``""``: workers without a name), the
    worker a version resolves by default; ``None`` for a group without any."""
    names = recent_worker_names(group_id)
    return names[0][0] if names else None


def resolution_errors(in_version: object, in_worker: object) -> list[FieldError]:
    """What is wrong with a resolve's ``in_version`` and ``worker``, each
    field's first fault, both at once (``[]`` when nothing).

    ``in_version``: 1 to :data:`VERSION_MAX_LENGTH` characters without
    surrounding spaces, no control, format or lone surrogate characters,
    SemVer 2.0.0 (only those order later occurrences). ``worker``: only
    beside ``in_version``, and a worker name by
    :func:`~app.services.failure_groups.worker.check_worker`'s rule.
    Pointers are RFC 6901, into the request body.
    """
    errors: list[FieldError] = []
    version_fault = _version_fault(in_version)
    if version_fault:
        errors.append(field_error("/in_version", version_fault))
    if in_worker is not None:
        if in_version is None:
            errors.append(field_error(
                "/worker", "names the worker whose version in_version is: give it with in_version only"))
        else:
            worker_faults = check_worker({"name": in_worker})[2]
            if worker_faults:
                errors.append(field_error("/worker", worker_faults[0]["detail"]))
    return errors


def _version_fault(in_version: object) -> str | None:
    if in_version is None:
        return None
    # The unseen characters first: str.strip() takes U+001F or U+2028 off the
    # ends too, which was told "without surrounding spaces" (a re-check).
    if isinstance(in_version, str) and has_unseen_character(in_version):
        return "must not hold control, format or line-separator characters, or unpaired UTF-16 surrogates"
    if (
        not isinstance(in_version, str)
        or not in_version.strip()
        or in_version != in_version.strip()
        or len(in_version) > VERSION_MAX_LENGTH
    ):
        return f"must be 1 to {VERSION_MAX_LENGTH} characters without surrounding spaces"
    if not is_semver(in_version):
        # Only a SemVer version orders later occurrences (is_regression): any
        # other would resolve as if no version were given, silently.
        return ("must be a SemVer 2.0.0 version such as 1.5.0 or 2.0.0-rc.1 (semver.org): "
                "only those order the later occurrences")
    return None


def _run(group_id: int, action: Any, verb: str, seen_state_at: datetime | None) -> FailureGroup:
    """``action(group)`` on the group locked, in one write transaction. The
    action reads the time of its change once the group is locked, after the
    reports the lock waited for: read before, ``resolved_at`` came before
    failures that committed ahead of the resolve and so did not reopen it
    (a trial: 6 occurrences between the stamp and the change).

    Raises:
        GroupChangedMeanwhileError: ``seen_state_at`` is given and is not the
            group's ``state_changed_at`` (the page acted from was stale).
    """
    with write_transaction():
        group = lock_group(group_id)
        if seen_state_at is not None and group.state_changed_at != seen_state_at:
            last = db.session.execute(
                sa.select(FailureGroupEvent.actor, FailureGroupEvent.reason)
                .where(FailureGroupEvent.group_id == group.id)
                .order_by(FailureGroupEvent.at.desc(), FailureGroupEvent.id.desc()).limit(1)
            ).first()
            raise GroupChangedMeanwhileError(group.id, group.state, verb, group.state_changed_at,
                                             *(last or (None, None)))
        action(group)
    return group


def resolve_group(
    group_id: int,
    actor: str,
    *,
    in_version: str | None = None,
    in_worker: str | None = None,
    worker_emptied: bool = False,
    check_seen: bool = False,
    via: str = "dashboard",
    now: datetime | None = None,
    seen_state_at: datetime | None = None,
) -> FailureGroup:
    """Mark a group resolved (from ``unresolved`` or ``ignored``), by
    ``actor``, now, optionally *in version* ``in_version`` of the worker
    named ``in_worker``: later occurrences from an older SemVer version of
    that worker do not reopen it; any other worker's do
    (:func:`~app.services.failure_groups.states.is_regression`).

    ``in_worker`` defaults to :func:`usual_worker_name`, the worker most of
    the group's recent occurrences came from; ``""`` when those sent no
    name (then only nameless workers' older versions leave it resolved).
    With ``worker_emptied`` (a form whose worker field the operator
    emptied) there is no default: a group with a usual worker is refused,
    as filling it in would resolve in the worker just removed, and "any
    worker" is no rule (a version is of one worker).

    Resolving does not touch jobs.

    Raises:
        GroupNotFoundError: no such group.
        InvalidGroupTransitionError: already resolved.
        InvalidFieldsError: ``in_version`` blank, too long, with control,
            format or lone surrogate characters, or not SemVer 2.0.0;
            ``in_worker`` without ``in_version``, or not a worker name
            (:func:`~app.services.failure_groups.worker.check_worker`'s rule);
            ``worker_emptied`` beside ``in_version`` for a group with a
            usual worker (pointer ``/worker``); with ``check_seen``, an
            unseen worker or a version not newer than its newest seen.
        GroupChangedMeanwhileError: ``seen_state_at`` (the
            ``state_changed_at`` the actor's page showed) is not the group's
            now; the same for :func:`ignore_group` and :func:`reopen_group`.
    """
    errors = resolution_errors(in_version, in_worker)
    if errors:
        raise InvalidFieldsError(RESOLUTION_REFUSED, errors)
    version, worker = in_version, in_worker

    def resolve(group: FailureGroup) -> None:
        at = now or utcnow()  # once locked (_run)
        if group.state == GroupState.RESOLVED:
            raise InvalidGroupTransitionError(group.id, group.state, "resolved")
        of = worker if worker is not None or version is None else usual_worker_name(group.id)
        if worker is None and version is not None and worker_emptied and of:
            raise InvalidFieldsError(RESOLUTION_REFUSED, [field_error(
                "/worker", f"enter the worker {version} is a version of (lately: {of}); a version is of one worker")])
        faults = _unseen_faults(group.id, version, of) if check_seen and version is not None else []
        if faults:
            raise InvalidFieldsError(RESOLUTION_REFUSED, faults)
        change_state(
            group, GroupState.RESOLVED, None, actor=actor, reason="resolved", at=at,
            details={"in_version": version, "of_worker": of, "via": via},
        )
        group.resolved_by = actor[:200]
        group.resolved_at = at
        group.resolved_in_version = version
        group.resolved_in_worker = of

    return _run(group_id, resolve, "resolved", seen_state_at)


def ignore_group(
    group_id: int,
    actor: str,
    *,
    until: datetime | None = None,
    occurrences: int | None = None,
    via: str = "dashboard",
    now: datetime | None = None,
    seen_state_at: datetime | None = None,
) -> FailureGroup:
    """Ignore a group: forever (neither argument), until ``until`` (aware,
    in the future), or until ``occurrences`` more occurrences (1 or more).
    An ignored group wakes (``unresolved``/``ongoing``) when its condition
    is met by a new occurrence. Allowed from any state; on an ignored group
    it replaces the condition.

    Raises:
        GroupNotFoundError: no such group.
        InvalidGroupTransitionError: already ignored forever, or until the
            same date (nothing would change).
        InvalidFieldsError: both conditions, a naive or past date, N < 1.
    """
    asked_at = now or utcnow()
    errors = []
    if until is not None and occurrences is not None:
        errors.append(field_error("", "give either until or occurrences, not both"))
    if until is not None and (not isinstance(until, datetime) or until.tzinfo is None):
        errors.append(field_error("/until", "must be a date-time with a UTC offset"))
    elif until is not None and until <= asked_at:
        errors.append(field_error("/until", "must be in the future"))
    if occurrences is not None and (
        not isinstance(occurrences, int) or isinstance(occurrences, bool) or not 1 <= occurrences <= MAX_IGNORE_OCCURRENCES
    ):
        errors.append(field_error("/occurrences", f"must be an integer from 1 to {MAX_IGNORE_OCCURRENCES}"))
    if errors:
        raise InvalidFieldsError(IGNORE_REFUSED, errors)
    mode = IgnoreMode.UNTIL_DATE if until else IgnoreMode.UNTIL_OCCURRENCES if occurrences else IgnoreMode.FOREVER

    def ignore(group: FailureGroup) -> None:
        at = now or utcnow()  # once locked (_run)
        if (group.state == GroupState.IGNORED and group.ignore_mode == mode.value
                and mode != IgnoreMode.UNTIL_OCCURRENCES and group.ignore_until == until):
            # The same condition again (a double submit, two operators at
            # once) would only add an "ignored -> ignored" event and audit
            # row. "N more occurrences" again is a change: it counts from now.
            raise InvalidGroupTransitionError(group.id, group.state, "ignored the same way again")
        change_state(
            group, GroupState.IGNORED, None, actor=actor, reason="ignored", at=at,
            details={
                "mode": mode.value,
                "until": until.isoformat() if until else None,
                "occurrences": occurrences,
                "via": via,
            },
        )
        group.ignore_mode = mode.value
        group.ignored_by = actor[:200]
        group.ignored_at = at
        group.ignore_until = until
        group.ignore_until_occurrences = occurrences
        group.ignore_base_occurrences = total_occurrences(group.id) if occurrences else None

    return _run(group_id, ignore, "ignored", seen_state_at)


def reopen_group(
    group_id: int, actor: str, *, via: str = "dashboard", now: datetime | None = None,
    seen_state_at: datetime | None = None,
) -> FailureGroup:
    """Make a resolved or ignored group ``unresolved``/``ongoing`` again.

    Raises:
        GroupNotFoundError: no such group.
        InvalidGroupTransitionError: the group is already unresolved.
    """
    def reopen(group: FailureGroup) -> None:
        at = now or utcnow()  # once locked (_run)
        if group.state == GroupState.UNRESOLVED:
            raise InvalidGroupTransitionError(group.id, group.state, "reopened")
        change_state(
            group, GroupState.UNRESOLVED, GroupSubstate.ONGOING, actor=actor, reason="reopened", at=at,
            details={"via": via},
        )

    return _run(group_id, reopen, "reopened", seen_state_at)
