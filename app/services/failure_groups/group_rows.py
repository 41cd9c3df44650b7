"""Find or create a failure group's row, on both backends.

Group creation is ``INSERT ... ON CONFLICT DO NOTHING`` on the group's
``(grouping_version, fingerprint)``, so concurrent creators of one group
end up with its one row; the created group gets its ``created`` timeline
event and metric. Runs in the caller's transaction and never commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models.failure_group import FailureGroup, FailureGroupEvent, GroupState, GroupSubstate
from app.services.failure_groups.fingerprint import GroupKey
from app.services.failure_groups.lifecycle import SYSTEM_ACTOR
from app.services.failure_groups.signals import note_metric
from app.services.failure_groups.write_statements import (
    GROUP_STATE_COLUMNS,
    SAMPLE_MESSAGE_MAX_LENGTH,
    dialect_insert,
)


def _find_group(version: int, fingerprint: str) -> sa.Row[Any] | None:
    table = FailureGroup.__table__
    return db.session.execute(
        sa.select(*(table.c[name] for name in GROUP_STATE_COLUMNS))
        .where(table.c.grouping_version == version, table.c.fingerprint == fingerprint)
    ).one_or_none()


def create_group(key: GroupKey, version: int, at: datetime) -> bool:
    """Create the group of ``key`` unless it exists: ``INSERT ... ON
    CONFLICT DO NOTHING``. A concurrent creator of the same group makes the
    insert wait (PostgreSQL's unique index; SQLite has one writer) and then
    do nothing, so both end up with the one row. Returns whether this call
    created it (and then adds its ``created`` timeline event)."""
    table = FailureGroup.__table__
    inserted = db.session.execute(
        dialect_insert(table)
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


def group_for(key: GroupKey, version: int, at: datetime) -> tuple[sa.Row[Any], bool]:
    """The group of ``key`` (its :data:`GROUP_STATE_COLUMNS`) and whether it
    was created now: a ``SELECT``
    (the common case: one statement), else :func:`create_group` and a
    ``SELECT`` (which sees the row, ours or the concurrent creator's)."""
    group = _find_group(version, key.fingerprint)
    if group is not None:
        return group, False
    created = create_group(key, version, at)
    group = _find_group(version, key.fingerprint)
    assert group is not None
    return group, created
