"""Where a failure group's page leads back to: the list of groups (or the
jobs list, or a search's results) it was opened from, with that page's
filter, sort and position.

The groups list and the jobs list add ``back`` (their own path and query)
to each group link; the group page keeps it on its own links and in its action
forms (a hidden field), so "← Failure groups" returns to the filtered view
the operator came from even after a resolve or an ignore (a trial: it went
to the plain ``/groups``, first page, unresolved).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import request, url_for

from app.redirects import page_endpoint, safe_redirect_target
from app.web.list_heading import href

#: The pages a group is opened from with ``back``.
_OPENERS = frozenset({"dashboard.list_groups", "dashboard.list_jobs"})


def group_back(raw: str | None) -> str | None:
    """``raw`` when it is the groups list or the jobs list on this site (a
    path :func:`~app.redirects.safe_redirect_target` follows), else
    ``None``: another page, a foreign URL or junk gives the plain back link."""
    target = safe_redirect_target(raw, "") if raw else ""
    if not target or page_endpoint(urlsplit(target).path) not in _OPENERS:
        return None
    return target


def back_target_and_label(back: str | None) -> tuple[str, str]:
    """The group page's back link: ``back`` (from :func:`group_back`) or the
    groups list, and its words ("Failure groups", "Search results" for the
    jobs list of a search, else "Failed jobs")."""
    if back is None or page_endpoint(urlsplit(back).path) == "dashboard.list_groups":
        return back or url_for("dashboard.list_groups"), "Failure groups"
    return back, "Search results" if parse_qs(urlsplit(back).query).get("q") else "Failed jobs"


def this_list_as_back() -> list[tuple[str, str]]:
    """The ``back`` pair a group link on this page (the groups list, the
    search) carries: this page's path and query; none on the plain
    ``/groups``, where the default back link goes anyway."""
    here = safe_redirect_target(request.full_path.rstrip("?"), "")
    return [("back", here)] if here and request.query_string else []


def group_page(group_id: int, back: str | None, *pairs: tuple[str, str | None]) -> str:
    """The group page's URL with ``pairs`` (a cursor) and ``back`` kept."""
    kept = [(name, value) for name, value in [*pairs, ("back", back)] if value]
    return href(url_for("dashboard.show_group", group_id=group_id), kept)
