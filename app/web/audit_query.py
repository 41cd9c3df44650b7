"""Reading the audit page's filter from a query string."""

from __future__ import annotations

from app.errors import InvalidQueryError, parameter_error
from app.services.audit_log import AuditQuery
from app.services.json_values import clean_text
from app.web.query import QueryArgs, raise_problems
from app.web.query_time import read_time_range

#: Query-string names of the audit page's filter (``cursor`` and ``limit`` choose a page).
AUDIT_FILTER_PARAMETERS = ("actor", "action", "from", "to", "views")

#: Longest ``actor`` (the audit log keeps 200 characters) and ``action`` accepted.
_AUDIT_TEXT_LIMITS = {"actor": 200, "action": 64}


def audit_query_from_args(args: QueryArgs) -> AuditQuery:
    """The audit page's filter: ``actor`` and ``action`` (exact; an action
    ending in ``.*`` is a prefix), ``from`` and ``to`` (RFC 3339, half-open),
    ``views=hide`` (leave out who-saw-what rows, ``seen.*``; absent or empty:
    keep them).

    Raises:
        InvalidQueryError: an over-long actor or action, a time that is not
            RFC 3339, ``from`` after ``to``, ``views`` other than ``hide``;
            names every bad parameter.
    """
    problems: list[InvalidQueryError] = []
    texts: dict[str, str | None] = {}
    for name, limit in _AUDIT_TEXT_LIMITS.items():
        raw = (args.get(name) or "").strip()
        texts[name] = clean_text(raw) if raw else None
        if len(raw) > limit:
            problems.append(InvalidQueryError(
                f"{name} must be at most {limit} characters.",
                [parameter_error(name, f"must be at most {limit} characters")],
            ))
    start, end, time_problems = read_time_range(args)
    problems.extend(time_problems)
    views = args.get("views") or ""
    if views not in ("", "hide"):
        problems.append(InvalidQueryError("views must be hide, or absent to list views too.",
                                          [parameter_error("views", "must be hide or absent")]))
    raise_problems(problems)
    return AuditQuery(actor=texts["actor"], action=texts["action"], time_from=start, time_to=end,
                      hide_views=views == "hide")
