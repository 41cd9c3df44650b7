"""Reading the failure-group filters from a query string (the API's
``GET /api/v1/failure-groups`` and the ``/groups`` pages read the same names).
"""

from __future__ import annotations

from typing import Any

from app.errors import InvalidQueryError, parameter_error
from app.models.failure_group import GroupState, GroupSubstate
from app.request_input import whole_number
from app.services.failure_groups.fingerprint import KNOWN_VERSIONS
from app.services.failure_groups.queries import SORTS, GroupFilter
from app.services.json_values import clean_text
from app.web.query import QueryArgs, raise_problems, read_or_note
from app.web.query_time import read_time_range

#: Query-string names of the group filter (``sort``, ``limit`` and
#: ``cursor`` choose the order and the page, not groups).
GROUP_FILTER_PARAMETERS = (
    "state", "substate", "code", "job_type", "worker_version", "from", "to", "grouping_version", "failing",
)
MAX_TEXT_LENGTH = 200


def _words(args: QueryArgs, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    words: list[str] = []
    for value in args.getlist(name):
        for word in value.split(","):
            word = word.strip()
            if not word or word in words:
                continue
            if word not in allowed:
                raise InvalidQueryError(
                    f"{name} must be one of {', '.join(allowed)}.",
                    [parameter_error(name, "must be one of " + ", ".join(allowed))],
                )
            words.append(word)
    return tuple(words)


def query_text(raw: str | None, name: str) -> str | None:
    """One free-text query parameter of a group filter (``code``,
    ``job_type``, ``worker_version``): stripped, ``None`` when absent or
    blank, NUL and lone surrogates as U+FFFD (:func:`clean_text`).

    Raises:
        InvalidQueryError: over :data:`MAX_TEXT_LENGTH` characters (400,
            naming the parameter ``name``).
    """
    if raw is None or not raw.strip():
        return None
    if len(raw) > MAX_TEXT_LENGTH:
        raise InvalidQueryError(
            f"{name} must be at most {MAX_TEXT_LENGTH} characters.",
            [parameter_error(name, f"must be at most {MAX_TEXT_LENGTH} characters")],
        )
    return clean_text(raw.strip())


def _text(args: QueryArgs, name: str) -> str | None:
    return query_text(args.get(name), name)


def read_failing(args: QueryArgs) -> bool:
    """``failing``: ``1`` keeps the groups with jobs failing on them now
    (``current_jobs`` above 0, whatever their state); absent or empty:
    every group.

    Raises:
        InvalidQueryError: any other value, naming ``failing``.
    """
    raw = args.get("failing")
    if raw not in (None, "", "1"):  # empty, as every other parameter: no filter
        raise InvalidQueryError("failing takes 1 (groups with jobs failing now) or nothing.",
                                [parameter_error("failing", "must be 1, or left out")])
    return raw == "1"


def group_filter_from_args(args: QueryArgs) -> GroupFilter:
    """The :class:`GroupFilter` of a query string.

    ``state``/``substate``: repeatable or comma-separated words (``state=all``:
    every state, as without it);
    ``code``, ``job_type``, ``worker_version``: exact values; ``from``/``to``:
    RFC 3339 date-times or dates bounding ``last_seen``; ``grouping_version``: one of
    the implemented versions (default: the current one); ``failing``
    (:func:`read_failing`).

    Raises:
        InvalidQueryError: a bad value, naming its parameter.
    """
    # Every parameter read before refusing, so the 400 names each bad one
    # (the job list's rule; a trial saw one fault a request).
    problems: list[InvalidQueryError] = []
    shared = shared_filter_fields(args, problems)
    version = read_or_note(problems, _grouping_version, args)
    states = read_or_note(problems, _words, args, "state", (*(s.value for s in GroupState), "all")) or ()
    substates = read_or_note(problems, _words, args, "substate", tuple(s.value for s in GroupSubstate)) or ()
    code = read_or_note(problems, _text, args, "code")
    raise_problems(problems)
    return GroupFilter(
        # "all" (every state, as on the dashboard's /groups) is the same as no state.
        states=() if "all" in states else tuple(states),
        substates=substates,
        code=code,
        grouping_version=version,
        **shared,
    )


def shared_filter_fields(args: QueryArgs, problems: list[InvalidQueryError]) -> dict[str, Any]:
    """The :class:`GroupFilter` fields the API and ``/groups`` read alike:
    ``from``/``to`` (``seen_from``/``seen_to``, bounding ``last_seen``;
    :func:`~app.web.query_time.read_time_range`), ``job_type``,
    ``worker_version`` (:func:`query_text`) and ``failing``
    (:func:`read_failing`), as keyword arguments. A bad one is added to
    ``problems`` (its field then ``None``), for the caller to refuse with
    the rest (:func:`~app.web.query.raise_problems`)."""
    seen_from, seen_to, time_problems = read_time_range(args)
    problems.extend(time_problems)
    fields: dict[str, Any] = {"seen_from": seen_from, "seen_to": seen_to}
    for name in ("job_type", "worker_version"):
        fields[name] = read_or_note(problems, _text, args, name)
    fields["failing"] = bool(read_or_note(problems, read_failing, args))
    return fields


def _grouping_version(args: QueryArgs) -> int | None:
    raw_version = args.get("grouping_version")
    if not raw_version:
        return None
    version = whole_number(raw_version, max(KNOWN_VERSIONS))
    if version not in KNOWN_VERSIONS:
        allowed = ", ".join(str(v) for v in KNOWN_VERSIONS)
        raise InvalidQueryError(
            f"grouping_version must be one of {allowed}.",
            [parameter_error("grouping_version", f"must be one of {allowed}")],
        )
    return version


def group_sort_from_args(args: QueryArgs) -> str:
    """``sort``: one of :data:`~app.services.failure_groups.queries.SORTS` (default ``last_seen``).

    Raises:
        InvalidQueryError: another value.
    """
    sort = args.get("sort") or "last_seen"
    if sort not in SORTS:
        raise InvalidQueryError(
            "sort must be one of " + ", ".join(SORTS) + ".", [parameter_error("sort", "must be one of " + ", ".join(SORTS))]
        )
    return sort
