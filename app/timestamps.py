"""Formatting timestamps for the API, the exports and the pages, and the range of times accepted."""

from __future__ import annotations

from datetime import datetime, timezone

from app.models.types import iso_date

#: Earliest and latest time accepted from a request (the ``from``/``to``
#: filters of the API, the dashboard, the exports and bulk actions): a year
#: inside each end of Python's calendar (years 1 to 9999), so that
#: arithmetic on an accepted time -- the chart's window and bucket edges,
#: days at most -- cannot leave the calendar (``OverflowError``, a 500).
#: Every job's times lie far inside.
EARLIEST_ACCEPTED = datetime(2, 1, 1, tzinfo=timezone.utc)
LATEST_ACCEPTED = datetime(9998, 12, 31, 23, 59, 59, tzinfo=timezone.utc)


def is_accepted(value: datetime) -> bool:
    """Whether the aware ``value`` lies in :data:`EARLIEST_ACCEPTED` .. :data:`LATEST_ACCEPTED`.

    The one check every reader of a requested time (the API's query
    parameters and bodies, the dashboard's forms) applies, so the dashboard
    never stores a time the API would refuse.
    """
    return EARLIEST_ACCEPTED <= value <= LATEST_ACCEPTED


def is_year_zero(text: str) -> bool:
    """Whether the date (``YYYY-MM-DD``, or a date-time starting with one) is
    in year 0000: valid RFC 3339 (years 0000 to 9999) that Python's calendar
    cannot hold. It lies before :data:`EARLIEST_ACCEPTED`, and is refused as
    such, not as a malformed date."""
    return text.startswith("0000-")


def rfc3339(value: datetime | None) -> str | None:
    """Format an aware datetime as RFC 3339 UTC ending in ``Z`` (``None`` stays ``None``).

    Raises:
        ValueError: ``value`` is naive.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware UTC")
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def format_utc(value: datetime | None) -> str:
    """``2026-11-29 21:16:35 UTC`` for an aware datetime, ``—`` for ``None``
    (how every page writes a time)."""
    if value is None:
        return "—"
    value = value.astimezone(timezone.utc)
    return f"{iso_date(value)} {value:%H:%M:%S} UTC"
