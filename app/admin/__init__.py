"""Administration pages, blueprint ``admin`` under ``/admin`` (admins only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, render_template, request

from app.auth.guards import requires
from app.models.access import AuditEvent, Permission
from app.services import audit_log
from app.timestamps import format_utc
from app.web.audit_query import AUDIT_FILTER_PARAMETERS, audit_query_from_args
from app.web.list_heading import FilterChip, ListHeading, href, query_pairs, with_changes
from app.web.query import parse_limit, refuse_unknown_parameters

bp = Blueprint("admin", __name__, url_prefix="/admin")

#: Audit events per page when the query has no ``limit``.
AUDIT_PAGE_SIZE = 100

#: Keys of an event's facts shown as links, not chips.
_LINKED_KEYS = frozenset({"job_ids", "job_id", "group_ids", "group_id", "bulk_action_id"})
#: Facts shown first, in this order (what happened, and why); the others
#: follow by name. PostgreSQL's jsonb keeps keys by length, SQLite's JSON as
#: written, so the stored order made one event read differently on each (a trial).
_FIRST_KEYS = ("outcome", "reason", "from", "to", "as", "scope", "method", "path", "format")
_FIRST_RANK = {key: n for n, key in enumerate(_FIRST_KEYS)}


@dataclass(frozen=True)
class AuditRow:
    """One event as the page shows it: its facts as ``(key, value)`` chips
    (nested objects flattened, lists joined with ``, ``) and the job, group
    and bulk-action ids it names, which become links."""

    event: AuditEvent
    chips: list[tuple[str, str]]
    job_ids: list[str]
    group_ids: list[str]
    bulk_action_ids: list[str]


def fact_chips(facts: Any) -> list[tuple[str, str]]:
    """An event's facts (its ``filter`` column) as readable ``key = value``
    pairs: ``{"scope": "filter", "query": {"status": ["Failed"]}}`` ->
    ``[("scope", "filter"), ("status", "Failed")]``; ids that become links
    are left out. Keys in :data:`_FIRST_KEYS` order, then by name, at each
    level: the same on both databases, whatever order was stored."""
    chips: list[tuple[str, str]] = []
    if not isinstance(facts, dict):
        return [] if facts is None else [("value", _text(facts))]
    by_rank = sorted(facts.items(), key=lambda item: (_FIRST_RANK.get(item[0], len(_FIRST_RANK)), str(item[0])))
    for key, value in by_rank:
        if key in _LINKED_KEYS:
            continue
        if isinstance(value, dict):
            chips.extend(fact_chips(value))
        elif isinstance(value, list):
            chips.append((str(key), ", ".join(_text(v) for v in value)))
        else:
            chips.append((str(key), _text(value)))
    return chips


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def action_suggestions(action: str | None) -> list[str]:
    """Actions or families (``export.*``) to try when ``action`` names none
    that is known: ``exports`` and ``exports.*`` find nothing (actions are
    ``export.…``). ``[]`` for a known action, a ``.*`` family some known
    action starts with, or no action. Matched by the word before the first
    dot, a trailing ``s`` left out, either way a prefix; when no family is
    close, every family (a typo such as ``bogus`` is told what exists)."""
    if not action or action in audit_log.KNOWN_ACTIONS:
        return []
    if action.endswith(".*") and any(known.startswith(action[:-1]) for known in audit_log.KNOWN_ACTIONS):
        return []
    families = sorted({known.split(".")[0] for known in audit_log.KNOWN_ACTIONS})
    stem = action.split(".")[0].lower().rstrip("s")
    close = [family for family in families if stem and (family.startswith(stem) or stem.startswith(family))]
    return [f"{family}.*" for family in close or families]


def audit_heading(list_path: str, args: Any, query: audit_log.AuditQuery) -> ListHeading:
    """The audit page's heading with one removable chip per active filter
    (who, action, from, before), as ``/jobs`` and ``/groups`` have them: a
    trial found a date filter told only inside the form's fields."""
    pairs = query_pairs(args.items(multi=True))

    def without(name: str) -> str:
        return href(list_path, with_changes(pairs, {name: []}))

    chips = [FilterChip(label, value, without(name)) for label, value, name in (
        ("who", query.actor, "actor"),
        ("action", query.action, "action"),
        ("from", query.time_from and format_utc(query.time_from), "from"),
        ("before", query.time_to and format_utc(query.time_to), "to"),
        ("views", "hidden" if query.hide_views else None, "views"),
    ) if value]
    return ListHeading(title="Audit log", chips=chips)


@bp.get("/audit")
@requires(Permission.ADMINISTER)
def list_audit_events() -> str:
    """Audit events, newest first, a page at a time: who signed in or out,
    exported, requeued or acknowledged what, resolved, ignored or reopened
    which failure group, and the account and token commands; and who saw
    which job's or group's error details (``seen.*``). Query: ``actor``, ``action`` (``jobs.*`` for a family),
    ``from``, ``to`` (RFC 3339), ``views=hide`` (no ``seen.*`` rows), ``cursor``, ``limit`` (1 to ``MAX_PAGE_SIZE``,
    default 100). A bad or unknown parameter is a 400 page naming it."""
    refuse_unknown_parameters(request.args, (*AUDIT_FILTER_PARAMETERS, "cursor", "limit"))
    query = audit_query_from_args(request.args)
    limit = parse_limit(request.args.get("limit"), default=AUDIT_PAGE_SIZE, maximum=current_app.config["MAX_PAGE_SIZE"])
    cursor = request.args.get("cursor") or None
    page = audit_log.list_audit_events(query, limit=limit, cursor=cursor)
    kept = [(k, v) for k, v in request.args.items(multi=True) if k in (*AUDIT_FILTER_PARAMETERS, "limit") and v]
    rows = []
    for event in page.events:
        ids = audit_log.linked_ids(event.filter)
        rows.append(AuditRow(event, fact_chips(event.filter), ids["job_ids"], ids["group_ids"], ids["bulk_action_ids"]))
    return render_template(
        "admin/audit.html",
        rows=rows,
        query=query,
        heading=audit_heading(request.path, request.args, query),
        known_actions=audit_log.KNOWN_ACTIONS,
        next_page=f"?{urlencode([*kept, ('cursor', page.next_cursor)])}" if page.next_cursor else None,
        first_page=f"?{urlencode(kept)}" if cursor else None,
        # The same filter with each suggested action instead (shown when nothing matched).
        suggestions=[(action, "?" + urlencode([*((k, v) for k, v in kept if k != "action"), ("action", action)]))
                     for action in action_suggestions(query.action)] if not rows else [],
    )
