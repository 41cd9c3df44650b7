"""Configuration read from the environment.

Every setting has one source: an environment variable, or a mapping passed to
``create_app`` by tests. Limits are in bytes or characters as named.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = ROOT / "instance"

#: Largest request body the API reads, in bytes (HTTP 413 above it).
DEFAULT_MAX_CONTENT_LENGTH = 1_048_576
#: Longest ``error_message`` the recorder stores, in characters.
DEFAULT_MAX_ERROR_MESSAGE_LENGTH = 1_000
#: Deepest nesting of arrays/objects accepted in ``error_details``.
DEFAULT_MAX_JSON_DEPTH = 32
#: Largest page of jobs the list endpoints return.
DEFAULT_MAX_PAGE_SIZE = 200


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise RuntimeError(f"environment variable {name} must be an integer, got {raw!r}") from exc
    if value <= 0:
        raise RuntimeError(f"environment variable {name} must be positive, got {value}")
    return value


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise RuntimeError(f"environment variable {name} must be true or false, got {raw!r}")


def default_database_url() -> str:
    """Return the embedded default database: an SQLite file under ``instance/``."""
    return f"sqlite:///{INSTANCE_DIR / 'clinical_intelligence.sqlite3'}"


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask configuration mapping.

    Args:
        overrides: values that win over the environment (tests pass these).

    Returns:
        A dict for ``app.config.update``. Keys:
        ``SQLALCHEMY_DATABASE_URI`` (from ``DATABASE_URL``; default SQLite under
        ``instance/``), ``SECRET_KEY``, ``MAX_CONTENT_LENGTH`` (bytes),
        ``MAX_ERROR_MESSAGE_LENGTH`` (characters), ``MAX_JSON_DEPTH``,
        ``MAX_PAGE_SIZE``.

    Raises:
        RuntimeError: a limit in the environment is not a positive integer.
    """
    database_url = os.environ.get("DATABASE_URL") or default_database_url()
    # Heroku-style URLs name the dialect without a driver; we ship psycopg 3.
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    config: dict[str, Any] = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "dev-only-not-secret",
        "MAX_CONTENT_LENGTH": _int_env("MAX_CONTENT_LENGTH", DEFAULT_MAX_CONTENT_LENGTH),
        "MAX_ERROR_MESSAGE_LENGTH": _int_env(
            "MAX_ERROR_MESSAGE_LENGTH", DEFAULT_MAX_ERROR_MESSAGE_LENGTH
        ),
        "MAX_JSON_DEPTH": _int_env("MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH),
        "MAX_PAGE_SIZE": _int_env("MAX_PAGE_SIZE", DEFAULT_MAX_PAGE_SIZE),
        "JSON_SORT_KEYS": False,
        #: Seconds the dashboard's counts/top codes/chart are reused per filter.
        "DASHBOARD_STATS_TTL": float(os.environ.get("DASHBOARD_STATS_TTL", "30")),
        # Behind TLS in production: redirect to HTTPS, HSTS, Secure cookies.
        "FORCE_HTTPS": _bool_env("FORCE_HTTPS", False),
        "SESSION_COOKIE_SECURE": _bool_env("FORCE_HTTPS", False),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Flask-Limiter: in-process counters (per worker process under gunicorn;
        # point RATELIMIT_STORAGE_URI at Redis/Memcached to share them).
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        # Explicit: Flask-Limiter's extension object is shared, and an unset
        # value would inherit whatever the previous app said.
        "RATELIMIT_ENABLED": _bool_env("RATELIMIT_ENABLED", True),
        "RATELIMIT_HEADERS_ENABLED": True,
    }
    if overrides:
        config.update(overrides)
    return config
