"""Gunicorn settings for production: ``gunicorn -c gunicorn.conf.py``.

Everything comes from environment variables (docs/operations.md lists them):

* ``WEB_CONCURRENCY`` worker processes (default: two per CPU, at least 2),
  each with ``GUNICORN_THREADS`` threads (default 2, ``gthread`` workers). Each
  process has its own database pool, sized to its threads unless
  ``DB_POOL_SIZE`` is set: keep ``workers x (DB_POOL_SIZE + DB_MAX_OVERFLOW)``
  under PostgreSQL's ``max_connections``.
* ``GUNICORN_BIND`` (default ``0.0.0.0:$PORT``, ``PORT`` default 8000),
  ``GUNICORN_TIMEOUT`` (s, default 30: above the 15 s ``statement_timeout``,
  so a slow query is cancelled by PostgreSQL before the worker is killed),
  ``GUNICORN_GRACEFUL_TIMEOUT`` (s, 30), ``GUNICORN_KEEPALIVE`` (s, 5),
  ``GUNICORN_MAX_REQUESTS`` (0: never recycle workers).
* ``LOG_LEVEL``: every line on stderr is JSON (app/observability/logs.py).
  Gunicorn's own access log is off (the app writes one line per request);
  ``GUNICORN_ACCESS_LOG=-`` turns it on, with a format that has the path but
  never the query string, which may carry patient identifiers. Gunicorn's
  lines about malformed requests name the error class and status only
  (``logger_class``, app/observability/gunicorn_logger.py).
* ``PROMETHEUS_MULTIPROC_DIR``: where workers keep their metric values so a
  scrape of any worker sees all of them; a fresh temporary folder if unset.

Start-up (``on_starting``, before the port is opened): the configuration is
read and checked (``APP_ENV=production`` needs ``SECRET_KEY`` and
``DATABASE_URL``, and a shared ``RATELIMIT_STORAGE_URI`` with more than one
worker) and, in production, the database must answer within
``STARTUP_DB_WAIT_S`` seconds (default 30) with its schema at the code's
Alembic head. Otherwise gunicorn exits with status 1 and one line saying why.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning (containers, taskset)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# -- metrics (first: before anything imports prometheus_client) ------------------

# Set before any worker imports prometheus_client: it picks multiprocess mode
# when the variable exists at import time.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="clinical-metrics-")
    # A folder made here is removed when this process (the master) exits,
    # a refused start included: a trial found one left in /tmp per start.
    # Only by this process: the workers are forked from it and run atexit too.
    atexit.register(lambda pid=os.getpid(), path=os.environ["PROMETHEUS_MULTIPROC_DIR"]:
                    os.getpid() == pid and shutil.rmtree(path, ignore_errors=True))

# After the line above: importing the app package must not import
# prometheus_client before the variable exists. The app's reader of integer
# variables (a ConfigError is a RuntimeError, so gunicorn prints it and
# exits); minimum 0, since GUNICORN_MAX_REQUESTS=0 means "never recycle".
from app.config import LOG_LEVELS, ConfigError, choice_env, int_env  # noqa: E402


def _int_env(name: str, default: int) -> int:
    return _one_line(lambda: int_env(name, default, minimum=0))


def _one_line(read):  # noqa: ANN001, ANN202
    # gunicorn reports an exception raised while it reads this file as
    # "Failed to read config file" and a traceback (a re-check: 12 lines
    # around the one that says what is wrong); a SystemExit is that line alone.
    try:
        return read()
    except ConfigError as exc:
        raise SystemExit(f"Error: {exc}") from None


# -- processes and threads ----------------------------------------------------

wsgi_app = "wsgi:app"
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int_env('PORT', 8000)}"
worker_class = "gthread"
# Requests are short and mostly CPython work between database round trips:
# processes use the cores, threads cover the waits. Two processes per CPU
# with 2 threads each kept the API's p99 under load lower than one process
# per CPU with 4 threads (fewer threads contending for each GIL, so a
# dashboard page render delays fewer reports), at the same throughput
# (docs/benchmarks.md, "Load").
workers = _int_env("WEB_CONCURRENCY", max(2, 2 * _cpu_count()))
threads = _int_env("GUNICORN_THREADS", 2)
# The GIL's switch interval, in each worker (post_fork below). A worker's
# threads share one GIL: a thread rendering a dashboard page keeps it until
# a thread back from the database has waited sys.getswitchinterval() (5 ms by
# default), and a report makes about eight round trips, so a report sharing
# a process with a page render could wait ~40 ms for the GIL alone (the
# "convoy effect"). 1 ms bounds that wait at a small cost in switches
# (docs/benchmarks.md, "The GIL's switch interval").
switch_interval_s = _int_env("GUNICORN_SWITCH_INTERVAL_US", 1000) / 1_000_000
# One pooled connection per thread: a request never waits for a connection
# its own process holds idle, and the total stays predictable.
os.environ.setdefault("DB_POOL_SIZE", str(threads))
# No preloading: each worker imports the app after the fork, so no database
# connection or lock is ever shared between processes.
preload_app = False

# -- timeouts -------------------------------------------------------------------

timeout = _int_env("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int_env("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int_env("GUNICORN_KEEPALIVE", 5)
max_requests = _int_env("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
if os.path.isdir("/dev/shm"):
    # The worker heartbeat file: on a tmpfs so a slow disk cannot make the
    # master think a worker hangs.
    worker_tmp_dir = "/dev/shm"

# The control socket (gunicornc, gunicorn >= 25) is not used here: one less
# way into a process that handles patient data.
control_socket_disable = True

# -- logs -------------------------------------------------------------------------

# Read by the app's rule: a bad value stops the start naming the variable
# (a trial: LOG_LEVEL=LOUD made gunicorn fail to configure its logger, unnamed).
_log_level = _one_line(lambda: choice_env("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True))
loglevel = _log_level.lower()
errorlog = "-"
# Gunicorn's own messages about malformed requests quote the request line,
# header names or body bytes, which may hold patient identifiers: this class
# logs the error's class and status instead (its module docstring says how).
logger_class = "app.observability.gunicorn_logger.RedactingLogger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# %(U)s is the path without the query string; never %(r)s or %(q)s.
access_log_format = "access %(m)s %(U)s %(s)s %(M)sms request_id=%({x-request-id}o)s"


def _logconfig() -> dict:
    from app.observability.logs import logging_config

    return logging_config(_log_level, access_log=accesslog is not None)


logconfig_dict = _logconfig()

# -- hooks ------------------------------------------------------------------------


def on_starting(server) -> None:
    """Reset the metrics folder; check the configuration and, in production,
    the database and its schema. A ``RuntimeError`` makes gunicorn print
    ``Error: <message>`` and exit with status 1."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):  # values of an earlier run
        os.remove(stale)

    from app.config import ConfigError, load_config

    try:
        config = load_config()
    except ConfigError as exc:
        raise RuntimeError(str(exc)) from None
    _check_shared_rate_limits(server, config)
    if config["APP_ENV"] != "production":
        server.log.warning("APP_ENV is %s: start-up database check skipped", config["APP_ENV"])
        return

    from app.operations.readiness import check_startup

    status = check_startup(wait_seconds=_int_env("STARTUP_DB_WAIT_S", 30))
    if not status.ready:
        raise RuntimeError(f"not starting: {status.describe()}")
    server.log.info("start-up check: %s", status.describe())


def _check_shared_rate_limits(server, config) -> None:
    """Refuse a production start whose sign-in limit would not hold.

    With ``memory://`` each worker process counts sign-in attempts on its own,
    so N workers allow N times the documented 10 a minute. Refused rather than
    warned about, in production only: a warning in a log nobody reads would
    leave the limit silently multiplied. One worker with ``memory://`` is
    allowed (it is exact for one process); several app servers, each with
    its own memory, cannot be seen from here (docs/operations.md).
    """
    per_process = config["RATELIMIT_STORAGE_URI"].startswith("memory://")
    if not (per_process and config["RATELIMIT_ENABLED"] and server.cfg.workers > 1):
        return
    problem = (
        f"RATELIMIT_STORAGE_URI is memory:// (counted per process), so {server.cfg.workers} workers "
        f"would allow {server.cfg.workers} times the sign-in limit; set RATELIMIT_STORAGE_URI to a shared "
        "store (redis://HOST:6379/0) or WEB_CONCURRENCY=1 (see docs/operations.md)"
    )
    if config["APP_ENV"] == "production":
        raise RuntimeError(f"not starting: {problem}")
    server.log.warning("%s", problem)


def post_fork(server, worker) -> None:
    """Set the worker's GIL switch interval (``GUNICORN_SWITCH_INTERVAL_US``,
    microseconds; 0 keeps Python's default of 5 ms)."""
    import sys

    if switch_interval_s > 0:
        sys.setswitchinterval(switch_interval_s)


def child_exit(server, worker) -> None:
    """Drop the live gauges of a worker that ended (prometheus_client multiprocess)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
