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

from urllib.parse import parse_qs, parse_qsl, urlsplit

from flask import current_app, request, url_for
from werkzeug.datastructures import MultiDict

from app.dashboard.group_list_query import GROUP_LIST_PARAMETERS, group_list_from_args
from app.errors import ServiceError
from app.redirects import page_endpoint, safe_redirect_target
from app.request_input import query_string_faults
from app.web.list_heading import href
from app.web.query import JOB_LIST_PARAMETERS, dashboard_filter, read_job_list, refuse_unknown_parameters

#: The pages a group is opened from with ``back``.
_OPENERS = frozenset({"dashboard.list_groups", "dashboard.list_jobs"})


def group_back(raw: str | None) -> str | None:
    """``raw`` when it is the groups list or the jobs list on this site (a
    path :func:`~app.redirects.safe_redirect_target` follows) with a query
    that list reads, else ``None``: another page, a foreign URL, junk or a
    query the list would refuse (a re-check: ``/groups?back=/jobs`` was
    followed to a 400 page) gives the plain back link."""
    target = safe_redirect_target(raw, "") if raw else ""
    parts = urlsplit(target)
    endpoint = page_endpoint(parts.path) if target else None
    if endpoint not in _OPENERS or not _list_reads(endpoint, parts.query):
        return None
    return target


def _list_reads(endpoint: str, query: str) -> bool:
    # The list's own readers, as its view runs them: a bad query is a 400 there.
    if query_string_faults(query.encode("utf-8")):
        return False
    args = MultiDict(parse_qsl(query, keep_blank_values=True))
    maximum = current_app.config["MAX_PAGE_SIZE"]
    try:
        if endpoint == "dashboard.list_groups":
            refuse_unknown_parameters(args, GROUP_LIST_PARAMETERS)
            group_list_from_args(args, maximum=maximum)
        else:
            refuse_unknown_parameters(args, JOB_LIST_PARAMETERS)
            read_job_list(args, lambda: dashboard_filter(args), maximum=maximum)
    except ServiceError:
        return False
    return True


def back_target_and_label(back: str | None) -> tuple[str, str]:
    """The group page's back link: ``back`` (from :func:`group_back`) or the
    groups list, and its words ("Failure groups", "Search results" for the
    jobs list of a search, else "Failed jobs")."""
    if back is None or page_endpoint(urlsplit(back).path) == "dashboard.list_groups":
        return back or url_for("dashboard.list_groups"), "Failure groups"
    query = parse_qs(urlsplit(back).query)
    # "Failed jobs" is the list's default; a chosen status may list others.
    return back, "Search results" if query.get("q") else "Jobs" if query.get("status") else "Failed jobs"


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
