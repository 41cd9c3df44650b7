"""The query string of ``/groups``: which groups, in which order.

Read by :func:`app.dashboard.groups_views.list_groups`; the API's own
reader of the same filter is :mod:`app.web.group_query`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime

from app.errors import InvalidQueryError, parameter_error
from app.models import GroupState, GroupSubstate
from app.services.failure_groups import queries
from app.web.group_query import query_text as _text, shared_filter_fields
from app.web.list_heading import FilterChip, ListHeading, Pairs, href, with_changes
from app.web.query import PageRequest, raise_problems, read_or_note, read_page

#: Sort orders of ``/groups`` (``sort=``), newest / largest first.
SORTS = ("last_seen", "current_job_count", "job_count", "first_seen")
SORT_LABELS = {"last_seen": "Last seen", "current_job_count": "Failing now", "job_count": "Jobs affected",
               "first_seen": "First seen"}
#: ``state=`` values: the states and the substates of ``unresolved``.
STATE_CHOICES = tuple(s.value for s in GroupState) + tuple(s.value for s in GroupSubstate)
#: The parameters ``/groups`` takes (its filter form, sort links and pages);
#: ``error_code`` is ``code`` under the name /jobs and the exports use.
GROUP_LIST_PARAMETERS = ("state", "from", "to", "code", "error_code", "job_type", "worker_version",
                         "failing", "sort", "cursor", "limit")


def group_list_from_args(args, *, maximum: int) -> tuple[queries.GroupFilter, str, PageRequest]:
    """The group filter, sort and page of a ``/groups`` query string.

    Parameters: ``state`` (repeatable: ``unresolved``, ``resolved``,
    ``ignored``, or a substate ``new``, ``ongoing``, ``regressed``; default
    ``unresolved``; ``all`` for every state), ``from``/``to`` (RFC 3339,
    bound ``last_seen``), ``job_type``, ``code`` (or ``error_code``, as
    /jobs names it; both at once must agree), ``worker_version``,
    ``failing=1`` (only groups with jobs failing now), ``sort``
    (:data:`SORTS`), ``limit`` (1 to ``maximum``) and ``cursor`` (checked
    against the sort, or against its own when the sort is bad).

    Raises:
        InvalidQueryError: a parameter is wrong (names it).
    """
    # Every parameter read before refusing, so the 400 names each bad one
    # (the job list's rule; a trial saw one fault a request).
    problems: list[InvalidQueryError] = []
    states, substates = read_or_note(problems, _states, args) or ((), ())
    sort = read_or_note(problems, _sort, args)
    shared = shared_filter_fields(args, problems)
    code = read_or_note(problems, _code, args)
    page = read_or_note(
        problems, read_page, args, maximum=maximum,
        cursor_reader=functools.partial(queries.decode_cursor, sort=sort),
    )
    raise_problems(problems)
    assert sort is not None and page is not None  # else raise_problems raised
    # Each box ticked adds its groups (either_state).
    group_filter = queries.GroupFilter(states=states, substates=substates, either_state=True, code=code, **shared)
    return group_filter, sort, page


def _states(args) -> tuple[tuple[GroupState, ...], tuple[GroupSubstate, ...]]:
    """The states and substates of ``state`` (default ``unresolved``;
    ``all``: none, so every group)."""
    # Each word once, in the order given (the chip says "resolved or new").
    words = list(dict.fromkeys(w.strip() for value in args.getlist("state") for w in value.split(",") if w.strip()))
    unknown = [w for w in words if w not in STATE_CHOICES and w != "all"]
    if unknown:
        allowed = ", ".join(STATE_CHOICES)
        raise InvalidQueryError(
            f"Unknown state; use one of {allowed}, or 'all'.",
            [parameter_error("state", f"must be one of {allowed}, or 'all'")],
        )
    if not words:
        words = [GroupState.UNRESOLVED.value]
    if "all" in words:
        return (), ()
    states = tuple(GroupState(w) for w in words if w in {s.value for s in GroupState})
    substates = tuple(GroupSubstate(w) for w in words if w in {s.value for s in GroupSubstate})
    # Each box adds its groups (``either_state``); a substate's condition
    # holds "unresolved" already, so it needs no state beside it.
    if substates and GroupState.UNRESOLVED in states:
        substates = ()  # "unresolved" already holds every substate
    return states, substates


def _sort(args) -> str:
    sort = args.get("sort") or SORTS[0]
    if sort not in SORTS:
        raise InvalidQueryError(
            f"sort must be one of {', '.join(SORTS)}.", [parameter_error("sort", f"must be one of {', '.join(SORTS)}")]
        )
    return sort


def _code(args) -> str | None:
    """``code``, or ``error_code`` (the name /jobs and the exports use)."""
    code, error_code = _text(args.get("code"), "code"), _text(args.get("error_code"), "error_code")
    if code and error_code and code != error_code:
        raise InvalidQueryError("code and error_code name the same filter; give one of them.",
                                [parameter_error("error_code", "must be left out when code is given")])
    return code or error_code


def group_list_heading(
    list_path: str, pairs: Pairs, group_filter: queries.GroupFilter, states: Sequence[str],
    *, time_text: Callable[[datetime], str],
) -> ListHeading:
    """The heading of ``/groups`` and its filter chips, as ``/jobs`` has them:
    one removable chip per filter away from the default (``states``: the
    ``state`` words asked for, default ``unresolved``), so a filtered list
    says so with its Filters panel folded (a phone).

    Args:
        list_path: the path of the list.
        pairs: the request's query pairs (:func:`~app.dashboard.links.query_pairs`).
        group_filter: the filter they make.
        states: the state words of the ``state`` parameters.
        time_text: how a time is written (``2026-11-29 21:16:35 UTC``).
    """

    def without(*names: str) -> str:
        return href(list_path, with_changes(pairs, {name: [] for name in (*names, "cursor")}))

    chips: list[FilterChip] = []
    if list(states) != [GroupState.UNRESOLVED.value]:
        # "all" beside other words is every state (a trial read "all or new").
        chips.append(FilterChip("state", "all" if "all" in states else " or ".join(states), without("state")))
    if group_filter.seen_from is not None:
        chips.append(FilterChip("last seen from", time_text(group_filter.seen_from), without("from")))
    if group_filter.seen_to is not None:
        chips.append(FilterChip("last seen before", time_text(group_filter.seen_to), without("to")))
    if group_filter.code is not None:
        chips.append(FilterChip("code", group_filter.code, without("code", "error_code")))
    if group_filter.job_type is not None:
        chips.append(FilterChip("type", group_filter.job_type, without("job_type")))
    if group_filter.worker_version is not None:
        chips.append(FilterChip("worker version", group_filter.worker_version, without("worker_version")))
    if group_filter.failing:
        chips.append(FilterChip("jobs failing now", "only", without("failing")))
    return ListHeading(title="Failure groups", chips=chips)
