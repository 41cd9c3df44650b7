"""Reading the audit log: filtered, a page at a time, and per job.

Keyset ("seek") pagination on ``(occurred_at, id)``, newest first, as the
job list does (:mod:`app.services.processing_jobs.pagination`): no
``OFFSET`` and no ``COUNT(*)``, so the thousandth page costs what the first
does. Writing the log is :mod:`app.services.access`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from app.errors import InvalidQueryError, parameter_error
from app.extensions import db
from app.models.access import AuditEvent

#: The actions the app writes (``action`` of :class:`AuditEvent`), for the
#: audit page's choices; the filter accepts any action text.
KNOWN_ACTIONS = (
    "access.denied",
    "auth.sign_in",
    "auth.sign_out",
    "export.entities.csv",
    "export.job_errors.csv",
    "export.job_errors.ndjson",
    "groups.ignored",
    "groups.regressed",
    "groups.reopened",
    "groups.resolved",
    "groups.woken",
    "jobs.acknowledge",
    "jobs.purge",
    "jobs.requeue",
    "jobs.unacknowledge",
    "seen.api.entities",
    "seen.api.failures",
    "seen.api.groups",
    "seen.api.jobs",
    "seen.group",
    "seen.groups",
    "seen.job",
    "seen.jobs",
    "tokens.create",
    "tokens.revoke",
    "tokens.rotate",
    "users.create",
    "users.disable",
    "users.enable",
    "users.set_password",
)


#: The actions that record who saw error details (``seen.job``, ``seen.api.jobs`` ...), not a change.
VIEW_ACTION_PREFIX = "seen."


@dataclass(frozen=True)
class AuditQuery:
    """Which audit events to list.

    Attributes:
        actor: exactly this actor (user name, token name or ``cli``), or ``None``.
        action: exactly this action; one ending in ``.*`` (``jobs.*``) keeps
            every action starting with what comes before the ``*``; ``None``: all.
        time_from: events at or after this (aware UTC), or ``None``.
        time_to: events before this (exclusive), or ``None``.
        hide_views: leave out :data:`VIEW_ACTION_PREFIX` rows (who saw a
            job, a group or an API answer), which outnumber the changes.
    """

    actor: str | None = None
    action: str | None = None
    time_from: datetime | None = None
    time_to: datetime | None = None
    hide_views: bool = False

    def where(self) -> list[sa.ColumnElement[bool]]:
        """SQL conditions for this query (backend-neutral)."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.actor is not None:
            conditions.append(AuditEvent.actor == self.actor)
        if self.action is not None:
            if self.action.endswith(".*"):
                prefix = self.action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                conditions.append(AuditEvent.action.like(prefix + "%", escape="\\"))
            else:
                conditions.append(AuditEvent.action == self.action)
        if self.time_from is not None:
            conditions.append(AuditEvent.occurred_at >= self.time_from)
        if self.time_to is not None:
            conditions.append(AuditEvent.occurred_at < self.time_to)
        if self.hide_views:
            conditions.append(AuditEvent.action.not_like(VIEW_ACTION_PREFIX + "%"))
        return conditions


@dataclass
class AuditPage:
    """One page of audit events, newest first, and the next page's cursor (or ``None``)."""

    events: list[AuditEvent] = field(default_factory=list)
    next_cursor: str | None = None


def _encode_cursor(at: datetime, event_id: uuid.UUID) -> str:
    raw = f"{at.isoformat()}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        at_text, event_id = raw.split("|")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at.astimezone(timezone.utc), uuid.UUID(event_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidQueryError(
            "The cursor is not valid; start again from the first page.",
            [parameter_error("cursor", "is not a cursor of this page")],
        ) from None


def list_audit_events(query: AuditQuery, *, limit: int, cursor: str | None = None) -> AuditPage:
    """One page of the audit events ``query`` chooses, newest first.

    Args:
        query: which events.
        limit: page size (the caller caps it).
        cursor: ``next_cursor`` of the previous page, or ``None`` for the first.

    Raises:
        InvalidQueryError: the cursor is not one this function made (``/cursor``).
    """
    conditions = query.where()
    if cursor:
        at, event_id = _decode_cursor(cursor)
        conditions.append(
            sa.tuple_(AuditEvent.occurred_at, AuditEvent.id)
            < sa.tuple_(sa.literal(at, AuditEvent.occurred_at.type), sa.literal(event_id, AuditEvent.id.type))
        )
    statement = (
        sa.select(AuditEvent)
        .where(*conditions)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit + 1)
    )
    events = list(db.session.scalars(statement))
    next_cursor = None
    if len(events) > limit:
        events = events[:limit]
        next_cursor = _encode_cursor(events[-1].occurred_at, events[-1].id)
    return AuditPage(events, next_cursor)


def names_job(job_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """SQL: the audit row's ``filter`` lists ``job_id`` in its ``job_ids``.

    PostgreSQL: ``filter -> 'job_ids' @> '["<id>"]'``, the expression of the
    GIN index ``ix_audit_events_job_ids`` (migration 0014), so it is answered
    from the index. SQLite: ``json_each`` over the array (a scan).
    """
    wanted = str(job_id)
    if db.session.get_bind().dialect.name == "postgresql":
        job_ids = sa.type_coerce(AuditEvent.filter, JSONB).op("->")(sa.literal_column("'job_ids'"))
        # A text cast to jsonb: the same plan, and printable in EXPLAIN tests.
        return sa.type_coerce(job_ids, JSONB).op("@>")(sa.cast(sa.literal(json.dumps([wanted])), JSONB))
    listed = sa.func.json_each(AuditEvent.filter, "$.job_ids").table_valued("value").alias("listed")
    return sa.and_(
        sa.func.json_type(AuditEvent.filter, "$.job_ids") == "array",
        sa.exists().select_from(listed).where(listed.c.value == wanted),
    )


def job_audit_events(job_id: uuid.UUID, since: datetime) -> list[AuditEvent]:
    """The ``jobs.*`` events (requeue, acknowledge) that name ``job_id`` in
    their ``job_ids``, oldest first: one job, or selected jobs.

    On PostgreSQL the test is ``filter -> 'job_ids' @> '["<id>"]'``, which
    the GIN index ``ix_audit_events_job_ids`` (``jsonb_path_ops``, migration
    0014) answers with a probe for this one id: its cost follows the number
    of rows naming the job, not the size of the log, so it stays flat at
    1,000,000 jobs and millions of audit rows. SQLite reads the job's
    lifetime of the log (``occurred_at >= since``, the job's creation)
    through ``ix_audit_events_occurred_at``.

    An action on every job of a filter or a group names the filter or the
    group, not the jobs, and is not found here: its jobs are in
    ``bulk_action_jobs`` (:func:`app.services.bulk_actions.job_bulk_actions`).
    """
    statement = (
        sa.select(AuditEvent)
        .where(AuditEvent.occurred_at >= since, AuditEvent.action.like("jobs.%"), names_job(job_id))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    )
    return list(db.session.scalars(statement))


def _job_ids(facts: Any) -> list[str]:
    ids = facts.get("job_ids") if isinstance(facts, dict) else None
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def linked_ids(facts: Any) -> dict[str, list[str]]:
    """The job, group and bulk-action ids an event's facts name, for links.

    Returns ``{"job_ids": [...], "group_ids": [...], "bulk_action_ids": [...]}``,
    each a list of strings in the order met, without repeats. Job ids come
    from ``job_ids``/``job_id`` (UUIDs); group ids from ``group_id``/``group_ids``
    (the ``groups.*`` actions and a group-wide ``jobs.*`` action write an
    integer) and from the ``group`` parameter of a filter's ``query``
    (a whole number 1 to 2**31-1, as the filter accepts); bulk-action ids
    from ``bulk_action_id`` (a UUID). Anything else is left out, so a link
    never carries text an event did not name as an id.
    """
    found: dict[str, list[str]] = {"job_ids": [], "group_ids": [], "bulk_action_ids": []}
    if not isinstance(facts, dict):
        return found
    query = facts.get("query") if isinstance(facts.get("query"), dict) else {}
    candidates = {
        "job_ids": _listed(facts, "job_ids", "job_id"),
        "group_ids": _listed(facts, "group_ids", "group_id") + _listed(query, "group"),
        "bulk_action_ids": _listed(facts, "bulk_action_id"),
    }
    for kind, values in candidates.items():
        valid = _group_id if kind == "group_ids" else _uuid_text
        for value in values:
            text = valid(value)
            if text is not None and text not in found[kind]:
                found[kind].append(text)
    return found


def _listed(facts: dict[str, Any], *keys: str) -> list[Any]:
    values: list[Any] = []
    for key in keys:
        value = facts.get(key)
        values.extend(value if isinstance(value, list) else [] if value is None else [value])
    return values


def _group_id(value: Any) -> str | None:
    # bool is an int subclass: True is not group 1.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
    else:
        return None
    return str(number) if 1 <= number <= 2**31 - 1 else None


def _uuid_text(value: Any) -> str | None:
    return str(uuid.UUID(value)) if isinstance(value, str) and _is_uuid(value) else None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
