"""Query-string parsing for every blueprint: one reading of the job filter,
the page, and the export's ``rows``.

The services take plain values (a :class:`~app.services.processing_jobs.job_filter.JobFilter`,
an ``int`` limit, an :class:`~app.services.exports.ExportRows`); turning the
strings of a URL or a form into them -- parameter names, defaults, the
wording of a 400 that names the parameter (and tells to write ``+`` as
``%2B`` in a URL) -- is the web's business, done here once so that the
API, the dashboard, its bulk actions and the exports accept the same query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from app.errors import InvalidQueryError, parameter_error
from app.models import JobStatus
from app.models.job_status import FAILURE_STATUSES, UnknownStatusError, parse_status
from app.services.exports import ExportRows
from app.services.json_values import clean_text
from app.services.processing_jobs.job_filter import AcknowledgedFilter, JobFilter, TimeField
from app.timestamps import EARLIEST_ACCEPTED, LATEST_ACCEPTED, rfc3339

#: ``limit`` when the query has none.
DEFAULT_PAGE_SIZE = 50

#: Longest ``q`` and ``error_code`` accepted, in characters.
MAX_SEARCH_LENGTH = 200

#: Query-string names of the filter, as the dashboard, the exports,
#: ``GET /api/v1/processing-jobs`` and the bulk-action forms read them
#: (``cursor`` and ``limit`` choose a page, not jobs: :func:`read_page`).
#: The one list: a filter added here reaches every reader.
FILTER_PARAMETERS = (
    "status", "time_field", "from", "to", "document_id", "job_type", "error_code", "q", "acknowledged",
)


class QueryArgs(Protocol):
    """The read side of a multi-valued query string (Werkzeug's ``MultiDict``)."""

    def get(self, key: str, default: None = None) -> str | None: ...

    def getlist(self, key: str) -> list[str]: ...


# RFC 3339 section 5.6 ``date-time``. Section 5.6's note lets a space stand for
# "T"; lower-case "t"/"z" are allowed by its ABNF (case-insensitive strings).
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)


def parse_rfc3339(raw: str, parameter: str) -> datetime:
    """Parse an RFC 3339 ``date-time`` (offset required) into aware UTC.

    Fractions beyond microseconds are cut; ``-00:00`` is read as UTC. A
    leap second (``:60``) is refused: Python cannot represent it.

    Raises:
        InvalidQueryError: not an RFC 3339 date-time, or outside
            :data:`~app.timestamps.EARLIEST_ACCEPTED` ..
            :data:`~app.timestamps.LATEST_ACCEPTED`; names ``parameter``.
    """
    match = _RFC3339.match(raw.strip())
    try:
        if match is None:
            raise ValueError("not RFC 3339")
        day, clock, fraction, offset = match.groups()
        fraction = (fraction or "0")[:6].ljust(6, "0")
        offset = "+00:00" if offset in ("Z", "z") else offset
        value = datetime.fromisoformat(f"{day}T{clock}.{fraction}{offset}")
    except ValueError:
        raise InvalidQueryError(
            f"{parameter} must be an RFC 3339 date-time with an offset, such as "
            "2026-11-29T21:16:35Z (write '+' in an offset as %2B in a URL).",
            [parameter_error(parameter, "must be an RFC 3339 date-time such as 2026-11-29T21:16:35Z")],
        ) from None
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        value = None
    if value is None or not EARLIEST_ACCEPTED <= value <= LATEST_ACCEPTED:
        earliest, latest = rfc3339(EARLIEST_ACCEPTED), rfc3339(LATEST_ACCEPTED)
        raise InvalidQueryError(
            f"{parameter} must be from {earliest} to {latest}.",
            [parameter_error(parameter, f"must be from {earliest} to {latest}")],
        )
    return value

#: What the dashboard (and so its exports and bulk actions) shows without a
#: ``status`` parameter: the failures.
DEFAULT_DASHBOARD_STATUSES = (JobStatus.VALIDATION_FAILED, JobStatus.FAILED)
assert set(DEFAULT_DASHBOARD_STATUSES) == FAILURE_STATUSES

#: Acknowledged failures are resolved: the dashboard hides them unless asked.
DEFAULT_DASHBOARD_ACKNOWLEDGED = AcknowledgedFilter.EXCLUDE


def job_filter_from_query(
    statuses: Iterable[str],
    document_id: str | None = None,
    job_type: str | None = None,
    default_statuses: Sequence[JobStatus] = (),
    *,
    time_field: str | None = None,
    time_from: str | None = None,
    time_to: str | None = None,
    error_code: str | None = None,
    q: str | None = None,
    acknowledged: str | None = None,
    default_acknowledged: AcknowledgedFilter = AcknowledgedFilter.INCLUDE,
) -> JobFilter:
    """Build a :class:`JobFilter` from query-string values (empty strings mean absent).

    Args:
        statuses: repeated ``status`` values; canonical names or worker
            words, also comma-separated. ``all`` means every status.
            Empty means ``default_statuses``.
        time_field: ``created`` (default) or ``completed``.
        time_from, time_to: RFC 3339 date-times with an offset; the range
            is half-open, ``from <= time < to``.
        error_code: an error-details item ``code``, at most
            :data:`MAX_SEARCH_LENGTH` characters.
        q: text to find in ``error_message``, at most
            :data:`MAX_SEARCH_LENGTH` characters.
        acknowledged: ``exclude``, ``include`` or ``only``; absent means
            ``default_acknowledged``.

    Raises:
        InvalidQueryError: an unknown status, time field or acknowledged
            value; a time that is not RFC 3339; ``from`` after ``to``; an
            over-long ``q`` or ``error_code``. ``errors`` names every bad
            parameter (``/status``, ``/from``, ...); ``detail`` describes
            the first.
    """
    problems: list[InvalidQueryError] = []

    def attempt(parse: Callable[[], Any], default: Any = None) -> Any:
        try:
            return parse()
        except InvalidQueryError as exc:
            problems.append(exc)
            return default

    parsed_statuses = attempt(lambda: _parse_statuses(statuses, default_statuses), ())
    field_value = attempt(lambda: _parse_choice(time_field, TimeField, "time_field", TimeField.CREATED), TimeField.CREATED)
    acknowledged_value = attempt(
        lambda: _parse_choice(acknowledged, AcknowledgedFilter, "acknowledged", default_acknowledged),
        default_acknowledged,
    )
    start = attempt(lambda: parse_rfc3339(time_from, "from")) if time_from else None
    end = attempt(lambda: parse_rfc3339(time_to, "to")) if time_to else None
    if start is not None and end is not None and start > end:
        problems.append(InvalidQueryError(
            "from must not be later than to.", [parameter_error("from", "must not be later than to")]
        ))
    code = attempt(lambda: _parse_search(error_code, "error_code"))
    text = attempt(lambda: _parse_search(q, "q"))
    if problems:
        raise InvalidQueryError(problems[0].detail, [e for p in problems for e in p.errors])
    # The same text rule as stored values, so a filter with NUL matches
    # what was stored (and PostgreSQL is never sent a NUL).
    return JobFilter(
        statuses=parsed_statuses,
        document_id=clean_text(document_id) if document_id else None,
        job_type=clean_text(job_type) if job_type else None,
        time_field=field_value,
        time_from=start,
        time_to=end,
        error_code=code,
        text=text,
        acknowledged=acknowledged_value,
    )


def job_filter_from_args(
    args: QueryArgs,
    *,
    default_statuses: Sequence[JobStatus] = (),
    default_acknowledged: AcknowledgedFilter = AcknowledgedFilter.INCLUDE,
) -> JobFilter:
    """Build a filter from a query string's (or form's) :data:`FILTER_PARAMETERS`.

    The one place the parameter names are read, so the dashboard, the
    exports and the API accept the same query.

    Raises:
        InvalidQueryError: as :func:`job_filter_from_query`.
    """
    return job_filter_from_query(
        args.getlist("status"),
        document_id=args.get("document_id"),
        job_type=args.get("job_type"),
        default_statuses=default_statuses,
        time_field=args.get("time_field"),
        time_from=args.get("from"),
        time_to=args.get("to"),
        error_code=args.get("error_code"),
        q=args.get("q"),
        acknowledged=args.get("acknowledged"),
        default_acknowledged=default_acknowledged,
    )


def dashboard_filter(args: QueryArgs) -> JobFilter:
    """The job filter of ``args`` with the dashboard's defaults (failures,
    acknowledged hidden): the list, its summary, its bulk actions and the
    exports of what it shows.

    Raises:
        InvalidQueryError: a parameter is wrong (names it).
    """
    return job_filter_from_args(
        args, default_statuses=DEFAULT_DASHBOARD_STATUSES, default_acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED
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


def _parse_search(raw: str | None, parameter: str) -> str | None:
    if raw is None or not raw.strip():
        return None
    if len(raw) > MAX_SEARCH_LENGTH:
        raise InvalidQueryError(
            f"{parameter} must be at most {MAX_SEARCH_LENGTH} characters.",
            [parameter_error(parameter, f"must be at most {MAX_SEARCH_LENGTH} characters")],
        )
    return clean_text(raw.strip())


def parse_limit(raw: str | None, *, default: int = DEFAULT_PAGE_SIZE, maximum: int) -> int:
    """Parse the ``limit`` query parameter.

    Returns:
        ``default`` when absent; otherwise an integer from 1 to ``maximum``.

    Raises:
        InvalidQueryError: not an integer, or out of range.
    """
    if raw is None or raw == "":
        return min(default, maximum)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum or not (raw.isascii() and raw.isdigit()):
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


def read_page(args: QueryArgs, *, maximum: int) -> PageRequest:
    """Read ``limit`` (:func:`parse_limit`) and ``cursor`` (opaque; absent or
    empty means the first page) from a query string.

    Raises:
        InvalidQueryError: a bad ``limit`` (a bad cursor is found by the
            listing, :func:`app.services.processing_jobs.pagination.list_jobs`).
    """
    return PageRequest(parse_limit(args.get("limit"), maximum=maximum), args.get("cursor") or None)


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
