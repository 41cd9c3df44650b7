"""Jinja filters for the dashboard; templates format nothing themselves."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from flask import Flask

#: Fields of one validation error shown as table columns, in order.
ERROR_ITEM_COLUMNS = ("severity", "code", "pointer", "message")


def format_utc(value: datetime | None) -> str:
    """``2026-11-29 21:16:35 UTC`` for an aware datetime, ``—`` for ``None``."""
    if value is None:
        return "—"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty_json(value: Any) -> str:
    """JSON with sorted keys and 2-space indent (same text on every backend).

    Returns plain text; Jinja autoescaping escapes it when rendered.
    """
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def error_items(details: Any) -> list[dict[str, str]]:
    """The list of validation errors in ``details``, for a table.

    Recognises ``{"errors": [ {...}, ... ]}`` and a bare list of objects.
    Returns each item reduced to :data:`ERROR_ITEM_COLUMNS` as strings
    (missing ones empty); an empty list when the details hold no such list.
    """
    items = details.get("errors") if isinstance(details, dict) else details
    if not isinstance(items, list):
        return []
    rows = []
    for item in items:
        if isinstance(item, dict):
            rows.append({col: _cell(item.get(col)) for col in ERROR_ITEM_COLUMNS})
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def truncate_text(value: str | None, length: int = 160) -> str:
    """Cut ``value`` to ``length`` characters, ending with ``…`` when cut."""
    if not value:
        return ""
    return value if len(value) <= length else value[: length - 1] + "…"


def register_filters(app: Flask) -> None:
    """Register every dashboard filter on ``app``."""
    app.add_template_filter(format_utc, "utc")
    app.add_template_filter(pretty_json, "pretty_json")
    app.add_template_filter(error_items, "error_items")
    app.add_template_filter(truncate_text, "truncate_text")
