"""Configuration read from the environment.

Every setting has one source: an environment variable, or a mapping passed to
``create_app`` by tests. Limits are in bytes or characters as named.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import url as sa_url

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
#: PostgreSQL ``statement_timeout``: longest a single statement may run, in ms.
#: Below gunicorn's worker timeout, so a stuck query is cancelled before the
#: worker is killed.
DEFAULT_DB_STATEMENT_TIMEOUT_MS = 15_000
#: PostgreSQL ``statement_timeout`` of the one ``COPY`` behind an items CSV
#: export, in ms: the longest a download may take, however slowly the client
#: reads, before the server ends it (and frees the connection).
DEFAULT_EXPORT_STATEMENT_TIMEOUT_MS = 600_000
#: PostgreSQL ``lock_timeout``: longest a statement waits for a lock, in ms.
DEFAULT_DB_LOCK_TIMEOUT_MS = 5_000
#: Seconds to wait for a new database connection before giving up.
DEFAULT_DB_CONNECT_TIMEOUT_S = 5
#: Connections each process keeps open, and how many more it may open at a peak.
DEFAULT_DB_POOL_SIZE = 5
DEFAULT_DB_MAX_OVERFLOW = 5
#: Seconds a request waits for a free pooled connection before a 503.
DEFAULT_DB_POOL_TIMEOUT_S = 10
#: ``Retry-After`` (seconds) sent with a 503 when the database is unavailable.
DEFAULT_RETRY_AFTER_S = 5

#: Minutes a signed-in session may stay unused before a new sign-in is needed
#: (automatic log-off; HIPAA 164.312(a)(2)(iii)).
DEFAULT_SESSION_IDLE_MINUTES = 30

#: Deployment environments ``APP_ENV`` may name.
APP_ENVS = ("development", "production")
#: Settings that must come from the environment when ``APP_ENV=production``.
PRODUCTION_REQUIRED = ("SECRET_KEY", "DATABASE_URL")
#: Shortest ``SECRET_KEY`` production starts with (characters).
MIN_SECRET_KEY_LENGTH = 32
#: The development ``SECRET_KEY``; refused in production.
DEV_SECRET_KEY = "dev-only-not-secret"
#: Levels ``LOG_LEVEL`` may name.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Where a group's or a filter's bulk action runs (``BULK_ACTION_RUNNER``):
#: ``procrastinate``, a background task on the job queue kept in PostgreSQL
#: (the default there; a worker started by ``flask bulk-worker`` runs it), or
#: ``inline``, in the request with a Continue button (the only choice on SQLite).
BULK_ACTION_RUNNERS = ("inline", "procrastinate")


class ConfigError(RuntimeError):
    """The environment does not hold a usable configuration.

    The message names the variables and what is wrong with them, never their
    values (a ``DATABASE_URL`` may hold a password).
    """


def int_env(name: str, default: int, *, minimum: int = 1) -> int:
    """The integer in environment variable ``name``; ``default`` when unset or empty.

    Shared with ``gunicorn.conf.py`` so the server's settings and the app's
    are read and refused by one rule.

    Raises:
        ConfigError: not an integer, or below ``minimum``; the message names
            the variable and the value (these are never secrets).
    """
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        qualifier = "positive" if minimum == 1 else f"at least {minimum}"
        raise ConfigError(f"environment variable {name} must be {qualifier}, got {value}")
    return value


def _list_env(name: str) -> list[str] | None:
    """The comma-separated values of environment variable ``name``, each
    stripped; ``None`` when it is unset or holds none."""
    values = [value.strip() for value in (os.environ.get(name) or "").split(",") if value.strip()]
    return values or None


def choice_env(name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    """Environment variable ``name`` (``default`` when unset or empty), in
    upper or lower case, one of ``choices``. Shared with ``gunicorn.conf.py``
    (``LOG_LEVEL``), as :func:`int_env` is.

    Raises:
        ConfigError: not one of ``choices``; names the variable and the value.
    """
    raw = (os.environ.get(name) or default).strip()
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ConfigError(f"environment variable {name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _sha256_env(name: str) -> str | None:
    """Environment variable ``name`` as a SHA-256 digest in lower-case hex, or
    ``None`` when unset or empty.

    Raises:
        ConfigError: it is not 64 hex digits.
    """
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", raw):
        raise ConfigError(f"environment variable {name} must be a SHA-256 digest in hex (64 hex digits)")
    return raw.lower()


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


#: The databases the app runs on (SQLAlchemy backend names).
SUPPORTED_DATABASES = ("postgresql", "sqlite")


def normalize_database_url(url: str) -> str:
    """Name the psycopg 3 driver in PostgreSQL URLs (``postgres://``,
    ``postgresql://`` -> ``postgresql+psycopg://``); other URLs unchanged.

    Raises:
        ConfigError: not a URL SQLAlchemy can parse, or not a PostgreSQL or
            SQLite one. The message names the scheme only: the URL may hold
            a password.
    """
    # Heroku-style URLs name the dialect without a driver; we ship psycopg 3.
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://"):]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        backend = sa_url.make_url(url).get_backend_name()
    except sa_exc.ArgumentError:
        raise ConfigError("DATABASE_URL is not a database URL (postgresql://… or sqlite:///…)") from None
    if backend not in SUPPORTED_DATABASES:
        raise ConfigError(f"DATABASE_URL must be a postgresql:// or sqlite:/// URL, not {backend}://")
    return url


def engine_options(database_url: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """SQLAlchemy ``create_engine`` options for ``database_url``.

    A connection the database dropped (e.g. after a restart) is replaced at
    checkout instead of failing a request: on SQLite by ``pool_pre_ping``; on
    PostgreSQL by a look at the idle socket in the pool's ``checkout`` event
    (:func:`app.extensions._check_psycopg_liveness`), which costs no round
    trip, instead of the ping's ``SELECT 1`` on every request.
    PostgreSQL also gets a bounded pool (``DB_POOL_SIZE`` + ``DB_MAX_OVERFLOW``
    connections per process, ``DB_POOL_TIMEOUT_S`` wait), a connect timeout,
    and server-side ``statement_timeout`` / ``lock_timeout`` (ms) set at
    connect time, so a stuck query or a held lock cannot hang a worker, and
    ``jit = off`` (PostgreSQL's JIT compilation pays off for long analytic
    queries; on the dashboard's it was tens of milliseconds of compiling)
    and ``max_parallel_workers_per_gather = 0`` (no parallel query).
    """
    options: dict[str, Any] = {"pool_pre_ping": True}
    if database_url.startswith("postgresql"):
        options.update(
            pool_pre_ping=False,
            pool_size=config["DB_POOL_SIZE"],
            max_overflow=config["DB_MAX_OVERFLOW"],
            pool_timeout=config["DB_POOL_TIMEOUT_S"],
            connect_args={
                "connect_timeout": config["DB_CONNECT_TIMEOUT_S"],
                "options": (
                    f"-c statement_timeout={config['DB_STATEMENT_TIMEOUT_MS']}"
                    f" -c lock_timeout={config['DB_LOCK_TIMEOUT_MS']}"
                    # No JIT compilation: the app's statements are meant to
                    # take milliseconds, and a cost estimate past
                    # jit_above_cost spent 35-40 ms compiling one that then
                    # ran in 150 (docs/benchmarks.md, the 10,000,000-job run
                    # with the pair rollups).
                    " -c jit=off"
                    # No parallel workers: on the dashboard's short reads a
                    # worker's start-up costs more than it saves, and on a
                    # busy server it takes a core from another request. At
                    # 10,000,000 jobs the planner chose a parallel scan of a
                    # whole rollup partition (31 ms) over its index (6.6 ms)
                    # for one code's top codes (docs/benchmarks.md).
                    " -c max_parallel_workers_per_gather=0"
                ),
                "application_name": "clinical-intelligence-console",
            },
        )
    return options


def _check_rate_limit_storage(uri: object) -> None:
    """Refuse a ``RATELIMIT_STORAGE_URI`` whose scheme the ``limits`` library
    has no storage for, when the configuration is read: a trial's
    ``reddis://`` passed the start-up check, crashed every worker at boot
    and printed the whole URL, password included. The message names the
    variable, never the value (it may hold a password).

    Raises:
        ConfigError: not a URL of a synchronous storage of ``limits`` (its
            ``SCHEMES``: ``memory``, ``redis``, ``rediss``, ``redis+sentinel``,
            ``memcached``, ...).
    """
    from limits.storage import SCHEMES, storage_from_string

    scheme = uri.split("://", 1)[0] if isinstance(uri, str) and "://" in uri else None
    if scheme is None or scheme.startswith("async+") or scheme not in SCHEMES:
        raise ConfigError(
            "RATELIMIT_STORAGE_URI must be a storage URL of the limits library, such as memory:// or "
            "redis://HOST:6379/0 (rediss://, redis+sentinel://, memcached:// also); its scheme is not one")
    try:
        # Builds the client from the URL without connecting (limits and redis-py
        # connect on first use): a URL that cannot be read (a password with an
        # unencoded "/", a re-check) or a storage whose client library is not
        # installed (memcached://, mongodb://) is refused here, not by every
        # worker at boot with a traceback quoting the URL.
        storage_from_string(uri)
    except Exception as exc:  # noqa: BLE001 (whatever the client raises; its text may quote the URL)
        raise ConfigError(
            f"RATELIMIT_STORAGE_URI cannot be used ({type(exc).__name__}): check its form "
            "(percent-encode a password's /, @ and :) and that its client library is installed") from None


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask configuration mapping.

    Args:
        overrides: values that win over the environment (tests pass these).

    Returns:
        A dict for ``app.config.update``. Keys:
        ``APP_ENV`` (``development`` or ``production``),
        ``SQLALCHEMY_DATABASE_URI`` (from ``DATABASE_URL``; default SQLite under
        ``instance/``), ``SQLALCHEMY_ENGINE_OPTIONS`` (see
        :func:`engine_options`), ``SECRET_KEY``, ``MAX_CONTENT_LENGTH`` (bytes),
        ``MAX_ERROR_MESSAGE_LENGTH`` (characters), ``MAX_JSON_DEPTH``,
        ``MAX_PAGE_SIZE``, ``LOG_LEVEL``, ``DB_STATEMENT_TIMEOUT_MS``,
        ``EXPORT_STATEMENT_TIMEOUT_MS``, ``DB_LOCK_TIMEOUT_MS``, ``DB_CONNECT_TIMEOUT_S``, ``DB_POOL_SIZE``,
        ``DB_MAX_OVERFLOW``, ``DB_POOL_TIMEOUT_S``, ``RETRY_AFTER_S``,
        ``SESSION_IDLE_MINUTES`` (idle sign-out of dashboard sessions).

    Raises:
        ConfigError: a limit in the environment is not a positive integer, an
            unknown ``APP_ENV`` or ``LOG_LEVEL``, a ``RATELIMIT_STORAGE_URI``
            of no storage the limits library has, or, in production, a
            required setting (:data:`PRODUCTION_REQUIRED`) is missing.
    """
    overrides = dict(overrides or {})
    database_url = normalize_database_url(os.environ.get("DATABASE_URL") or default_database_url())
    config: dict[str, Any] = {
        "APP_ENV": choice_env("APP_ENV", "development", APP_ENVS),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or DEV_SECRET_KEY,
        "MAX_CONTENT_LENGTH": int_env("MAX_CONTENT_LENGTH", DEFAULT_MAX_CONTENT_LENGTH),
        "MAX_ERROR_MESSAGE_LENGTH": int_env(
            "MAX_ERROR_MESSAGE_LENGTH", DEFAULT_MAX_ERROR_MESSAGE_LENGTH
        ),
        "MAX_JSON_DEPTH": int_env("MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH),
        "MAX_PAGE_SIZE": int_env("MAX_PAGE_SIZE", DEFAULT_MAX_PAGE_SIZE),
        "LOG_LEVEL": choice_env("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        "DB_STATEMENT_TIMEOUT_MS": int_env("DB_STATEMENT_TIMEOUT_MS", DEFAULT_DB_STATEMENT_TIMEOUT_MS),
        "DB_LOCK_TIMEOUT_MS": int_env("DB_LOCK_TIMEOUT_MS", DEFAULT_DB_LOCK_TIMEOUT_MS),
        "EXPORT_STATEMENT_TIMEOUT_MS": int_env(
            "EXPORT_STATEMENT_TIMEOUT_MS", DEFAULT_EXPORT_STATEMENT_TIMEOUT_MS
        ),
        "DB_CONNECT_TIMEOUT_S": int_env("DB_CONNECT_TIMEOUT_S", DEFAULT_DB_CONNECT_TIMEOUT_S),
        "DB_POOL_SIZE": int_env("DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE),
        "DB_MAX_OVERFLOW": int_env("DB_MAX_OVERFLOW", DEFAULT_DB_MAX_OVERFLOW, minimum=0),
        "DB_POOL_TIMEOUT_S": int_env("DB_POOL_TIMEOUT_S", DEFAULT_DB_POOL_TIMEOUT_S),
        "RETRY_AFTER_S": int_env("RETRY_AFTER_S", DEFAULT_RETRY_AFTER_S),
        "JSON_SORT_KEYS": False,
        #: Seconds the dashboard's counts/top codes/chart are reused per filter.
        "DASHBOARD_STATS_TTL": float(os.environ.get("DASHBOARD_STATS_TTL", "30")),
        # Behind TLS in production: redirect to HTTPS, HSTS, Secure cookies.
        "FORCE_HTTPS": _bool_env("FORCE_HTTPS", False),
        "SESSION_COOKIE_SECURE": _bool_env("FORCE_HTTPS", False),
        # Host names this server answers to (Flask's TRUSTED_HOSTS: any other
        # Host header is a 400), so a forged Host cannot reach the links the
        # app writes (an export's job_url); unset: any, as in development.
        "TRUSTED_HOSTS": _list_env("TRUSTED_HOSTS"),
        # Reverse proxies in front of the server whose X-Forwarded-For,
        # -Proto, -Host and -Port headers are believed (Werkzeug's ProxyFix):
        # without it, behind a proxy, every client would share the proxy's
        # address (the sign-in limit, the audit log's addresses). 0: none.
        "PROXY_HOPS": int_env("PROXY_HOPS", 0, minimum=0),
        # The SHA-256 (hex) of a token that may read /metrics and nothing
        # else, checked without the database: a scrape keeps working while
        # the database is down (when 503s are worth alerting on), and the
        # Prometheus host holds no worker token that can change jobs.
        "METRICS_TOKEN_SHA256": _sha256_env("METRICS_TOKEN_SHA256"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_IDLE_MINUTES": int_env("SESSION_IDLE_MINUTES", DEFAULT_SESSION_IDLE_MINUTES),
        # A form's CSRF token lives as long as the session it is bound to
        # (idle time-out, revocable; app/auth/sessions.py), not Flask-WTF's
        # default hour: a page left open on call while other tabs keep the
        # session alive must still act when it is finally clicked.
        "WTF_CSRF_TIME_LIMIT": None,
        # Flask-Limiter's counters. memory:// counts per process: gunicorn
        # refuses it in production with more than one worker (gunicorn.conf.py);
        # there, a redis:// URL shares the counters between every process and
        # every app server.
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI") or "memory://",
        # Explicit: Flask-Limiter's extension object is shared, and an unset
        # value would inherit whatever the previous app said.
        "RATELIMIT_ENABLED": _bool_env("RATELIMIT_ENABLED", True),
        "RATELIMIT_HEADERS_ENABLED": True,
    }
    config.update(overrides)
    _check_rate_limit_storage(config["RATELIMIT_STORAGE_URI"])
    if "BULK_ACTION_RUNNER" not in overrides:
        # After the overrides: the default follows the database tests name there.
        on_postgresql = config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
        config["BULK_ACTION_RUNNER"] = choice_env(
            "BULK_ACTION_RUNNER", "procrastinate" if on_postgresql else "inline", BULK_ACTION_RUNNERS)
    if (config["BULK_ACTION_RUNNER"] == "procrastinate"
            and not config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")):
        raise ConfigError(
            "BULK_ACTION_RUNNER=procrastinate needs a PostgreSQL DATABASE_URL (SQLite runs bulk actions inline)")
    if "SQLALCHEMY_ENGINE_OPTIONS" not in overrides:
        # After the overrides: tests name their database there.
        config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(config["SQLALCHEMY_DATABASE_URI"], config)
    if config["APP_ENV"] == "production":
        _check_production(config, overrides)
    return config


def _check_production(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    # Production must be told where its data lives and how to sign: falling
    # back to a local SQLite file or the public development key would "work"
    # and silently lose or expose data.
    given = {
        "DATABASE_URL": bool(os.environ.get("DATABASE_URL")) or "SQLALCHEMY_DATABASE_URI" in overrides,
        "SECRET_KEY": config["SECRET_KEY"] != DEV_SECRET_KEY and bool(config["SECRET_KEY"]),
    }
    missing = [name for name in PRODUCTION_REQUIRED if not given[name]]
    if missing:
        raise ConfigError(
            "APP_ENV=production requires these environment variables: "
            + ", ".join(missing)
            + " (see docs/operations.md)"
        )
    if len(config["SECRET_KEY"]) < MIN_SECRET_KEY_LENGTH:
        # It signs the session cookie: a short one can be guessed offline
        # (an SRE trial started production with SECRET_KEY=abc).
        raise ConfigError(
            f"APP_ENV=production requires a SECRET_KEY of at least {MIN_SECRET_KEY_LENGTH} characters, e.g. "
            "python -c 'import secrets; print(secrets.token_hex(32))'"
        )
