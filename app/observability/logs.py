"""Structured logs: one JSON object per line, safe for clinical data.

What a line holds: ``time`` (RFC 3339 UTC, ms), ``level``, ``logger``,
``message``, ``process``, ``request_id`` (inside a request) and the request
fields the request log passes (``method``, ``endpoint``, ``status``,
``duration_ms``). Nothing else from ``extra`` is written: a whitelist, so a
careless ``extra={"body": ...}`` cannot leak a request body.

Exceptions are written as their type and the frames they passed through
(``module:line in function``), never their message or the traceback text:
exception messages quote the values that caused them, which here may be
patient data. The same holds for an exception a library puts into its
message's arguments (psycopg's pool: ``"error connecting in %r: %s"``),
and for a psycopg connection there, whose text names the database's host,
port, user and database: each is written as ``<TypeName>``. See
docs/operations.md, "Logs".

Used by gunicorn (``logconfig_dict`` in ``gunicorn.conf.py``); the app itself
does not configure logging, so tests and ``flask run`` keep Python's defaults.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.observability.request_id import current_request_id

#: ``extra`` fields a log line may carry, in output order.
ALLOWED_EXTRA_FIELDS = ("method", "endpoint", "status", "duration_ms")
#: Loggers kept at WARNING whatever LOG_LEVEL says: at INFO/DEBUG SQLAlchemy
#: logs SQL with its parameters and Werkzeug's dev server logs query strings,
#: both of which may hold patient data.
QUIET_LOGGERS = ("sqlalchemy", "werkzeug", "alembic")


class JSONFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
            "process": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for name in ALLOWED_EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            entry["exc_type"] = exc_type.__name__
            entry["exc_frames"] = [
                f"{_module_of(frame.filename)}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(tb)
            ]
        return json.dumps(entry, ensure_ascii=False, default=str)


def _message(record: logging.LogRecord) -> str:
    # LogRecord.getMessage(), with the arguments that must not be written as text replaced by their type.
    message = str(record.msg)
    args = record.args
    if not args:
        return message
    if isinstance(args, Mapping):
        return message % {key: _loggable(value) for key, value in args.items()}
    return message % tuple(_loggable(value) for value in args)


def _loggable(value: object) -> object:
    if isinstance(value, BaseException) or type(value).__module__.split(".")[0] in ("psycopg", "psycopg_pool"):
        return f"<{type(value).__name__}>"
    return value


def _module_of(filename: str) -> str:
    # Shorter than the absolute path and free of the deployment's layout.
    parts = filename.replace(os.sep, "/").split("/")
    for anchor in ("site-packages", "app"):
        if anchor in parts:
            start = parts.index(anchor) + (1 if anchor == "site-packages" else 0)
            return "/".join(parts[start:])
    return parts[-1]


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


def logging_config(
    level: str = "INFO", *, access_log: bool = False, stream: str = "ext://sys.stderr"
) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` mapping: everything as JSON lines.

    Args:
        level: the root level (``LOG_LEVEL``); :data:`QUIET_LOGGERS` stay at
            WARNING whatever it is.
        access_log: keep gunicorn's access lines (``gunicorn.access``, INFO);
            off by default, the app's ``app.requests`` line is the access log.
        stream: where lines go (``ext://sys.stderr`` or ``ext://sys.stdout``).

    Returns:
        A version-1 mapping with one JSON handler on the root logger; the
        ``gunicorn.error`` and ``gunicorn.access`` loggers propagate to it
        (so gunicorn's lines are JSON too).
    """
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["request_id"],
        "stream": stream,
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JSONFormatter}},
        "filters": {"request_id": {"()": RequestIdFilter}},
        "handlers": {"json": handler},
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {
                "level": "INFO" if access_log else "WARNING",
                "handlers": [],
                "propagate": True,
            },
            **{name: {"level": "WARNING", "handlers": [], "propagate": True} for name in QUIET_LOGGERS},
        },
    }
