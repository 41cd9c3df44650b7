"""Query-string parsing for every blueprint: one reading of the job filter,
the page, and the export's ``rows``.

The services take plain values (a :class:`~app.services.processing_jobs.job_filter.JobFilter`,
an ``int`` limit, an :class:`~app.services.exports.ExportRows`); turning the
strings of a URL or a form into them -- parameter names, defaults, the
wording of a 400 that names the parameter (and tells to write ``+`` as
``%2B`` in a URL) -- is the web's business, done here once so that the
API, the dashboard, its bulk actions and the exports accept the same query.

Times (``from``/``to``) are read by :mod:`app.web.query_time`, the audit
page's filter by :mod:`app.web.audit_query`, the failure-group filter by
:mod:`app.web.group_query`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from app.errors import InvalidQueryError, parameter_error
from app.models import JobStatus
from app.models.job_status import FAILURE_STATUSES, UnknownStatusError, parse_status
from app.models.processing_job import DOCUMENT_ID_MAX_LENGTH, JOB_TYPE_MAX_LENGTH
from app.request_input import whole_number
from app.services.exports import ExportItems, ExportRows
from app.services.json_values import clean_text, controls_from_escapes
from app.services.processing_jobs.job_filter import (
    FILTERS,
    AcknowledgedFilter,
    JobFilter,
    ValueKind,
)
from app.services.processing_jobs.pagination import Cursor
from app.web.query_time import is_full_date, parse_range_bound, time_order_problems

#: ``limit`` when the query has none.
DEFAULT_PAGE_SIZE = 50

#: Longest ``q`` and ``error_code`` accepted, in characters.
MAX_SEARCH_LENGTH = 200

#: Longest exact-text filter accepted, in characters: the longest value a
#: job can hold, so a longer one is refused (400) rather than matching nothing.
EXACT_MAX_LENGTHS = {"document_id": DOCUMENT_ID_MAX_LENGTH, "document_id_prefix": DOCUMENT_ID_MAX_LENGTH,
                     "job_type": JOB_TYPE_MAX_LENGTH}

#: Query-string names of the filter, as the dashboard, the exports,
#: ``GET /api/v1/processing-jobs`` and the bulk-action forms read them
#: (``cursor`` and ``limit`` choose a page, not jobs: :func:`read_page`).
#: Read off :class:`JobFilter`'s fields: a filter added there reaches every reader.
FILTER_PARAMETERS = tuple(spec.parameter for _name, spec, _default in FILTERS)

#: Largest failure-group id accepted in ``group`` (the column is a 32-bit integer).
MAX_GROUP_ID = 2**31 - 1


#: The parameters ``/jobs`` takes: the filter and the page (what its own
#: forms and links build; :func:`refuse_unknown_parameters`).
JOB_LIST_PARAMETERS = (*FILTER_PARAMETERS, "cursor", "limit")


def refuse_unknown_parameters(names: Iterable[str], known: Iterable[str]) -> None:
    """Refuse a dashboard page's query parameter that the page does not read,
    as the API does (:func:`app.api.contract.refuse_unknown_query_parameters`):
    a typo such as ``/groups?error_cod=x`` would otherwise list everything
    as if filtered. ``known`` must hold every name the page's own forms and
    links send.

    Raises:
        InvalidQueryError: one ``parameter`` error per unknown name (a name
            that is not printable is not echoed), ``detail`` listing what the
            page takes; the 400 page links to the same page without them.
    """
    allowed = set(known)
    unknown = list(dict.fromkeys(name for name in names if name not in allowed))
    if unknown:
        raise InvalidQueryError(
            f"Unknown query parameter{'s' if len(unknown) > 1 else ''}; this page takes "
            + (f"only: {', '.join(sorted(allowed))}." if allowed else "none."),
            [parameter_error(name if name.isprintable() else "", "is not a parameter of this page")
             for name in unknown],
        )


def raise_problems(problems: list[InvalidQueryError]) -> None:
    """Raise one :class:`InvalidQueryError` for all of ``problems`` (nothing
    when there are none): ``errors`` names every bad parameter, ``detail``
    describes the first."""
    if problems:
        raise InvalidQueryError(problems[0].detail, [e for p in problems for e in p.errors])


_Read = TypeVar("_Read")


def read_or_note(
    problems: list[InvalidQueryError], reader: Callable[..., _Read], *args: Any, **kwargs: Any
) -> _Read | None:
    """``reader(*args, **kwargs)``, or ``None`` with its :class:`InvalidQueryError`
    added to ``problems``: a list page reads every parameter before it
    refuses, so its 400 names each bad one at once (:func:`raise_problems`),
    as the job list always did, not one per attempt."""
    try:
        return reader(*args, **kwargs)
    except InvalidQueryError as problem:
        problems.append(problem)
        return None


class QueryArgs(Protocol):
    """The read side of a multi-valued query string (Werkzeug's ``MultiDict``)."""

    def get(self, key: str, default: None = None) -> str | None: ...

    def getlist(self, key: str) -> list[str]: ...


#: What the dashboard (and so its exports and bulk actions) shows without a
#: ``status`` parameter: the failures.
DEFAULT_DASHBOARD_STATUSES = (JobStatus.VALIDATION_FAILED, JobStatus.FAILED)
assert set(DEFAULT_DASHBOARD_STATUSES) == FAILURE_STATUSES

#: Acknowledged failures are resolved: the dashboard hides them unless asked.
DEFAULT_DASHBOARD_ACKNOWLEDGED = AcknowledgedFilter.EXCLUDE


def parse_group_id(raw: str, parameter: str = "group") -> int:
    """A failure-group id from a query parameter or a path: ASCII digits, 1 to :data:`MAX_GROUP_ID`.

    Raises:
        InvalidQueryError: anything else; names ``parameter``.
    """
    value = whole_number(raw.strip(), MAX_GROUP_ID)
    if value:  # 0 is no id
        return value
    raise InvalidQueryError(
        f"{parameter} must be a failure-group id (a whole number from 1 to {MAX_GROUP_ID}).",
        [parameter_error(parameter, f"must be a whole number from 1 to {MAX_GROUP_ID}")],
    )


def job_filter_from_args(
    args: QueryArgs,
    *,
    default_statuses: Sequence[JobStatus] = (),
    default_acknowledged: AcknowledgedFilter = AcknowledgedFilter.INCLUDE,
) -> JobFilter:
    """Build a filter from a query string's (or form's) :data:`FILTER_PARAMETERS`.

    The one place the parameters are read, filter by filter as
    :data:`~app.services.processing_jobs.job_filter.FILTERS` declares them,
    so the dashboard, its bulk actions, the exports and the API accept the
    same query. An absent or empty parameter leaves its filter at its
    default.

    Args:
        args: the query string or form.
        default_statuses: the statuses without a ``status`` parameter
            (``status=all``: every status).
        default_acknowledged: ``acknowledged`` when absent.

    Values, by kind: ``status`` canonical names or worker words, repeatable
    or comma-separated; ``time_field`` ``created`` or ``completed``;
    ``from``/``to`` RFC 3339 date-times with an offset, the range half-open
    (``from <= time < to``); ``error_code`` and ``q`` at most
    :data:`MAX_SEARCH_LENGTH` characters; ``acknowledged`` ``exclude``,
    ``include`` or ``only``; exact text for ``document_id`` and ``job_type``
    (at most :data:`EXACT_MAX_LENGTHS` characters: 200 and 64);
    ``group`` a failure-group id (1 to :data:`MAX_GROUP_ID`): the jobs
    currently failing on that group.

    Raises:
        InvalidQueryError: an unknown status, time field or acknowledged
            value; a time that is not RFC 3339; ``from`` after ``to``; an
            over-long ``q``, ``error_code``, ``document_id`` or ``job_type``; a ``group`` that is not a
            group id. ``errors`` names every bad parameter (``status``,
            ``from``, ...); ``detail`` describes the first.
    """
    defaults: dict[str, Any] = {"statuses": tuple(default_statuses), "acknowledged": default_acknowledged}
    values: dict[str, Any] = {}
    problems: list[InvalidQueryError] = []
    for name, spec, default in FILTERS:
        default = defaults.get(name, default)
        try:
            values[name] = _READERS[spec.kind](args.getlist(spec.parameter), spec.parameter, default)
        except InvalidQueryError as exc:
            problems.append(exc)
            values[name] = default
    start, end = values["time_from"], values["time_to"]
    problems.extend(time_order_problems(start, end, to_is_date=is_full_date(args.get("to"))))
    raise_problems(problems)
    return JobFilter(**values)


def dashboard_filter(args: QueryArgs) -> JobFilter:
    """The job filter of ``args`` with the dashboard's defaults (failures,
    acknowledged hidden; a ``status`` of empty values only: every status):
    the list, its summary, its bulk actions and the exports of what it shows.

    Raises:
        InvalidQueryError: a parameter is wrong (names it).
    """
    given = args.getlist("status")
    # Only empty statuses (the filter form with no box ticked) are every
    # status, as /jobs reads them (it redirects them to status=all): an
    # export of such a query held only the failures while its audit row
    # read "status = " (a trial).
    every_status = bool(given) and not any(given)
    return job_filter_from_args(
        args, default_statuses=() if every_status else DEFAULT_DASHBOARD_STATUSES,
        default_acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED,
    )


def filter_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs that make up a filter (:data:`FILTER_PARAMETERS`),
    in their order, empty values left out: what a bulk-action form carries."""
    return [(k, v) for k, v in pairs if k in FILTER_PARAMETERS and v]


def _parse_statuses(values: Iterable[str], default: Sequence[JobStatus]) -> tuple[JobStatus, ...]:
    parsed: list[JobStatus] = []
    words = [w.strip() for value in values for w in value.split(",") if w.strip()]
    if words == ["all"]:
        words = []
    elif not words:
        parsed = list(default)
    elif "all" in words:
        # "all" beside statuses is no status, and saying "unknown status"
        # of a word the message itself offers misled a trial.
        raise InvalidQueryError(
            "'all' stands alone: send status=all by itself, or only the statuses wanted.",
            [parameter_error("status", "must be 'all' alone, or statuses without 'all'")],
        )
    unknown = []
    for word in words:
        try:
            status = parse_status(word)
        except UnknownStatusError:
            unknown.append(word)
            continue
        if status not in parsed:
            parsed.append(status)
    if unknown:
        allowed = ", ".join(s.value for s in JobStatus)
        raise InvalidQueryError(
            f"Unknown status; use one of {allowed}, or 'all'.",
            [parameter_error("status", f"must be one of {allowed}, or 'all'")],
        )
    return tuple(parsed)


_Choice = TypeVar("_Choice", bound=StrEnum)


def _parse_choice(raw: str | None, choices: type[_Choice], parameter: str, default: _Choice) -> _Choice:
    if not raw:
        return default
    try:
        return choices(raw)
    except ValueError:
        allowed = ", ".join(c.value for c in choices)
        raise InvalidQueryError(
            f"{parameter} must be one of {allowed}.", [parameter_error(parameter, f"must be one of {allowed}")]
        ) from None


def parse_search(raw: str | None, parameter: str) -> str | None:
    """A search or code parameter: trimmed, ``None`` when absent or blank.

    Raises:
        InvalidQueryError: longer than :data:`MAX_SEARCH_LENGTH` characters; names ``parameter``.
    """
    if raw is None or not raw.strip():
        return None
    _refuse_longer_than(raw, MAX_SEARCH_LENGTH, parameter)
    return clean_text(raw.strip())


def _refuse_longer_than(raw: str, limit: int, parameter: str) -> None:
    """Raise the 400 of a value over ``limit`` characters, naming ``parameter``
    (the one wording of the search, code, document and audit parameters)."""
    if len(raw) > limit:
        raise InvalidQueryError(
            f"{parameter} must be at most {limit} characters.",
            [parameter_error(parameter, f"must be at most {limit} characters")],
        )


def _first(values: list[str]) -> str | None:
    """The first value, as ``MultiDict.get`` reads a parameter given twice."""
    return values[0] if values else None


def _read_choice(values: list[str], parameter: str, default: StrEnum) -> StrEnum:
    return _parse_choice(_first(values), type(default), parameter, default)


def _read_time(values: list[str], parameter: str, default: datetime | None) -> datetime | None:
    raw = _first(values)
    return parse_range_bound(raw, parameter, end=parameter == "to") if raw else default


def _read_exact(values: list[str], parameter: str, default: str | None) -> str | None:
    # The same text rule as stored values, so a filter with NUL matches
    # what was stored (and PostgreSQL is never sent a NUL).
    raw = _first(values)
    if not raw:
        return default
    _refuse_longer_than(raw, EXACT_MAX_LENGTHS.get(parameter, MAX_SEARCH_LENGTH), parameter)
    return clean_text(raw)


def _read_search(values: list[str], parameter: str, default: str | None) -> str | None:
    found = parse_search(_first(values), parameter)
    # The pages show a stored control character as its escape (\u001b) and
    # no query parameter may hold it raw: the escape typed finds it.
    return controls_from_escapes(found) if found is not None else default


def _read_group_id(values: list[str], parameter: str, default: int | None) -> int | None:
    raw = _first(values)
    return parse_group_id(raw, parameter) if raw else default


#: One reader per :class:`ValueKind`: ``(values, parameter, default) -> value``,
#: raising :class:`InvalidQueryError` that names the parameter.
_READERS: dict[ValueKind, Callable[[list[str], str, Any], Any]] = {
    ValueKind.STATUSES: lambda values, _parameter, default: _parse_statuses(values, default),
    ValueKind.CHOICE: _read_choice,
    ValueKind.TIME: _read_time,
    ValueKind.EXACT: _read_exact,
    ValueKind.SEARCH: _read_search,
    ValueKind.GROUP_ID: _read_group_id,
}


def parse_limit(raw: str | None, *, default: int = DEFAULT_PAGE_SIZE, maximum: int) -> int:
    """Parse the ``limit`` query parameter.

    Returns:
        ``default`` when absent; otherwise an integer from 1 to ``maximum``.

    Raises:
        InvalidQueryError: not an integer, or out of range.
    """
    if raw is None or raw == "":
        return min(default, maximum)
    value = whole_number(raw, maximum) or 0
    if not value:
        raise InvalidQueryError(
            f"limit must be a whole number from 1 to {maximum}.",
            [parameter_error("limit", f"must be a whole number from 1 to {maximum}")],
        )
    return value

@dataclass(frozen=True)
class PageRequest:
    """Which page of a listing: ``limit`` jobs after ``cursor`` (``None``: the first page)."""

    limit: int
    cursor: str | None


def read_page(
    args: QueryArgs, *, maximum: int, cursor_reader: Callable[[str], object] | None = None
) -> PageRequest:
    """Read ``limit`` (:func:`parse_limit`) and ``cursor`` (opaque; absent or
    empty means the first page) from a query string.

    ``cursor_reader`` (the listing's cursor decoder, which raises
    :class:`InvalidQueryError` for a token it did not make) checks the cursor
    here, so a 400 names a bad cursor beside the other bad parameters (read
    with :func:`read_or_note`) rather than only once they are mended. The
    listing decodes it again: what it holds depends on the rest of the query.

    Raises:
        InvalidQueryError: a bad ``limit``, a cursor ``cursor_reader``
            refuses, or both (every error named).
    """
    problems: list[InvalidQueryError] = []
    limit = read_or_note(problems, parse_limit, args.get("limit"), maximum=maximum)
    cursor = args.get("cursor") or None
    if cursor is not None and cursor_reader is not None:
        read_or_note(problems, cursor_reader, cursor)
    raise_problems(problems)
    assert limit is not None  # parse_limit returned, or raise_problems raised
    return PageRequest(limit, cursor)


def read_job_list(
    args: QueryArgs, read_filter: Callable[[], JobFilter], *, maximum: int
) -> tuple[JobFilter, PageRequest]:
    """A page of the job list's query: ``read_filter()`` (the caller's
    defaults) and :func:`read_page` (its cursor checked by
    :meth:`~app.services.processing_jobs.pagination.Cursor.decode`), every
    bad parameter named in one 400. For ``/jobs`` and the API's list alike.

    Raises:
        InvalidQueryError: a bad filter parameter, ``limit`` or ``cursor``.
    """
    problems: list[InvalidQueryError] = []
    job_filter = read_or_note(problems, read_filter)
    wanted = read_or_note(problems, read_page, args, maximum=maximum, cursor_reader=Cursor.decode)
    raise_problems(problems)
    assert job_filter is not None and wanted is not None  # else raise_problems raised
    return job_filter, wanted


def parse_rows(raw: str | None) -> ExportRows:
    """Parse the ``rows`` query parameter of a job-error export (absent or empty: ``items``).

    Raises:
        InvalidQueryError: not ``items`` or ``jobs``; names ``/rows``.
    """
    if not raw:
        return ExportRows.ITEMS
    try:
        return ExportRows(raw)
    except ValueError:
        allowed = ", ".join(r.value for r in ExportRows)
        raise InvalidQueryError(
            f"rows must be one of {allowed}.", [parameter_error("rows", f"must be one of {allowed}")]
        ) from None


def parse_items(raw: str | None) -> ExportItems:
    """Parse the ``items`` query parameter of a one-row-per-item export
    (absent or empty: ``matching``, only the items with the filter's
    ``error_code``; ``all``: every item of the jobs the filter chooses).

    Raises:
        InvalidQueryError: not ``matching`` or ``all``; names ``items``.
    """
    if not raw:
        return ExportItems.MATCHING
    try:
        return ExportItems(raw)
    except ValueError:
        allowed = ", ".join(i.value for i in ExportItems)
        raise InvalidQueryError(
            f"items must be one of {allowed}.", [parameter_error("items", f"must be one of {allowed}")]
        ) from None
