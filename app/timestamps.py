"""Formatting timestamps for the API and exports."""

from __future__ import annotations

from datetime import datetime, timezone


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
