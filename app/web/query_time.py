"""Reading a time in a query string: an RFC 3339 ``date-time`` with an offset.

One parser for every blueprint's ``from``/``to`` (the job filter, the
group filter, the audit page, the group series): its 400 names the
parameter, and tells to write ``+`` as ``%2B`` when a URL's "+" became a
space. A range's bounds may also be an RFC 3339 ``full-date``
(:func:`parse_range_bound`), which is what a person types into a From/To
field.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from typing import Protocol

from app.errors import InvalidQueryError, parameter_error
from app.timestamps import EARLIEST_ACCEPTED, LATEST_ACCEPTED, is_accepted, is_year_zero, rfc3339

# RFC 3339 section 5.6 ``date-time``. Section 5.6's note lets a space stand for
# "T"; lower-case "t"/"z" are allowed by its ABNF (case-insensitive strings).
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)

# RFC 3339 section 5.6 ``full-date``.
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)

# A date-time whose offset's "+" a URL turned into a space (form encoding):
# ``2026-11-29T21:16:35 01:00``. A browser's form encodes "+" itself, so
# only a hand-written URL gets here, and only then is %2B worth a word.
_PLUS_AS_SPACE = re.compile(r".*\d{2}:\d{2}:\d{2}(?:\.\d+)? \d{2}:\d{2}\Z", re.ASCII)


def _plus_hint(raw: str) -> str:
    """`` (write '+' in an offset as %2B in a URL)`` when ``raw`` looks like
    a date-time whose "+" became a space, else ``""``."""
    return " (write '+' in an offset as %2B in a URL)" if _PLUS_AS_SPACE.match(raw.strip()) else ""


def _calendar_fault(day: str, clock: str, offset: str) -> str | None:
    """What makes a date-time of valid RFC 3339 syntax impossible, in words
    (None when nothing is: then the syntax was wrong)."""
    year, month, mday = (int(part) for part in day.split("-"))
    hour, minute, second = (int(part) for part in clock.split(":"))
    if not 1 <= month <= 12:
        return "the month must be 01 to 12"
    days = calendar.monthrange(year, month)[1] if year >= 1 else 31
    if not 1 <= mday <= days:
        return f"{calendar.month_name[month]} {year} has {days} days"
    if hour > 23 or minute > 59:
        return "the time must be 00:00 to 23:59"
    if second == 60:
        # RFC 3339 allows :60 for a leap second; Python's datetime (and the
        # databases' timestamps) cannot hold one.
        return "a leap second (:60) cannot be stored; use :59"
    if second > 60:
        return "the seconds must be 00 to 59"
    if offset not in ("Z", "z") and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
        return "the offset must be -23:59 to +23:59"
    return None


def date_time_fault(raw: str) -> str | None:
    """Why ``raw``, of valid RFC 3339 ``date-time`` syntax, names no time
    that can be stored (``"February 2026 has 28 days"``, ``"a leap second
    (:60) cannot be stored; use :59"``); None when it can, or when the
    syntax itself is wrong (the caller's generic message covers that)."""
    match = _RFC3339.match(raw.strip())
    if match is None:
        return None
    if is_year_zero(match[1]):
        return _range_words()  # as far outside the range as year 0001, and said the same way
    return _calendar_fault(match[1], match[2], match[4])


def _range_words() -> str:
    return f"must be from {rfc3339(EARLIEST_ACCEPTED)} to {rfc3339(LATEST_ACCEPTED)}"


def parse_rfc3339(raw: str, parameter: str) -> datetime:
    """Parse an RFC 3339 ``date-time`` (offset required) into aware UTC.

    Fractions beyond microseconds are cut; ``-00:00`` is read as UTC. A
    leap second (``:60``) is refused: Python cannot represent it.

    Raises:
        InvalidQueryError: not an RFC 3339 date-time; a date or time that
            does not exist, saying why (``February 2026 has 28 days``, ``a
            leap second (:60) cannot be stored; use :59``); or outside
            :data:`~app.timestamps.EARLIEST_ACCEPTED` ..
            :data:`~app.timestamps.LATEST_ACCEPTED`; names ``parameter``.
    """
    fault = date_time_fault(raw)
    if fault == _range_words():
        raise _out_of_range(parameter)
    if fault is not None:
        raise InvalidQueryError(
            f"{parameter} is not a date-time that exists: {fault}.", [parameter_error(parameter, fault)]
        )
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
            f"2026-11-29T21:16:35Z{_plus_hint(raw)}.",
            [parameter_error(parameter, "must be an RFC 3339 date-time such as 2026-11-29T21:16:35Z")],
        ) from None
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        value = None
    if value is None or not is_accepted(value):
        raise _out_of_range(parameter)
    return value


def parse_range_bound(raw: str, parameter: str, *, end: bool) -> datetime:
    """Parse one bound of a half-open time range (``from <= t < to``): an
    RFC 3339 ``date-time`` with an offset (:func:`parse_rfc3339`), or an RFC
    3339 ``full-date`` (``2026-12-06``) standing for that whole UTC day --
    its start as the range's start, the next day's start as its ``end``, so
    ``from=2026-12-06&to=2026-12-06`` keeps 6 December (a date-only ``to``
    on the last accepted day ends at :data:`~app.timestamps.LATEST_ACCEPTED`).

    Returns aware UTC.

    Raises:
        InvalidQueryError: neither form; a date that does not exist
            (``February 2026 has 28 days``); outside the accepted range;
            names ``parameter``.
    """
    text = raw.strip()
    if _FULL_DATE.match(text):
        start = parse_rfc3339(f"{text}T00:00:00Z", parameter)
        return min(start + timedelta(days=1), LATEST_ACCEPTED) if end else start
    if _RFC3339.match(text) is None:
        raise InvalidQueryError(
            f"{parameter} must be an RFC 3339 date-time with an offset, such as 2026-11-29T21:16:35Z, or a "
            f"date, such as 2026-11-29{_plus_hint(raw)}.",
            [parameter_error(parameter, "must be an RFC 3339 date-time such as 2026-11-29T21:16:35Z, "
                                        "or a date such as 2026-11-29")],
        )
    return parse_rfc3339(raw, parameter)


def _out_of_range(parameter: str) -> InvalidQueryError:
    return InvalidQueryError(f"{parameter} {_range_words()}.", [parameter_error(parameter, _range_words())])


def is_full_date(raw: str | None) -> bool:
    """Whether ``raw`` is a date alone (RFC 3339 ``full-date``, surrounding
    spaces aside), which :func:`parse_range_bound` reads as a whole day."""
    return bool(raw) and _FULL_DATE.match(raw.strip()) is not None


def time_order_problems(
    start: datetime | None, end: datetime | None, *, to_is_date: bool = False
) -> list[InvalidQueryError]:
    """``[]`` when the half-open range ``from`` .. ``to`` is in order (or open
    on a side), else the one problem ``from must not be later than to``.

    ``to_is_date``: ``to`` was a date alone, so ``end`` is the next day's
    start; a ``from`` at or after it is after the whole day (``from`` 7
    December, ``to`` 6 December), not an empty range."""
    if start is not None and end is not None and (start > end or (to_is_date and start >= end)):
        return [InvalidQueryError(
            "from must not be later than to.", [parameter_error("from", "must not be later than to")]
        )]
    return []


class _Args(Protocol):
    """What :func:`read_time_range` reads of a query string (Werkzeug's ``MultiDict``)."""

    def get(self, key: str, default: None = None) -> str | None: ...


def read_time_range(args: _Args) -> tuple[datetime | None, datetime | None, list[InvalidQueryError]]:
    """The half-open range ``from`` .. ``to`` of a query string: each bound
    read by :func:`parse_range_bound` (None when absent or empty), and the
    problems found, one per bad bound or else the order's
    (:func:`time_order_problems`), for the caller to raise with its others.
    A bound that is refused comes back as None."""
    bounds: dict[str, datetime | None] = {"from": None, "to": None}
    problems: list[InvalidQueryError] = []
    for name in bounds:
        raw = args.get(name)
        if raw:
            try:
                bounds[name] = parse_range_bound(raw, name, end=name == "to")
            except InvalidQueryError as exc:
                problems.append(exc)
    start, end = bounds["from"], bounds["to"]
    problems.extend(time_order_problems(start, end, to_is_date=is_full_date(args.get("to"))))
    return start, end, problems
