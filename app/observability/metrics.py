"""Prometheus metrics (``prometheus_client``), served at ``GET /metrics`` (``ops.metrics``).

Metrics:

* ``http_requests_total{method, endpoint, status}`` and
  ``http_request_duration_seconds{method, endpoint}``: ``endpoint`` is the
  Flask endpoint name (``api.record_validation_failure``), never the raw
  path, so job ids cannot blow up the number of series; a request that
  matched no route is ``endpoint="unmatched"``.
* ``clinical_job_failures_recorded_total{status, error_format}`` and
  ``clinical_job_failure_codes_total{code}``: failures committed to
  ``job_failures``, and per failure each distinct ``code`` of its normalized
  envelope (docs/error-details.md). Counted by a SQLAlchemy session listener
  after the commit, so the recorder needs no change and a rolled-back
  attempt counts nothing.
* ``failure_groups_created_total``, ``failure_groups_regressed_total``,
  ``failure_groups_woken_total`` and ``failure_group_occurrences_total{state}``
  (the group's state after the occurrence): noted by the failure-group
  services in the session (:mod:`app.services.failure_groups.signals`) and
  counted here after the commit, like the failures above.
* ``db_pool_checked_out_connections`` and ``db_pool_size_connections``: the
  connection pool of each process, summed over live processes.

Under gunicorn, each worker is a process: with ``PROMETHEUS_MULTIPROC_DIR``
set (``gunicorn.conf.py`` does it) values live in files in that folder and a
scrape of any worker sums them (prometheus_client's multiprocess mode).
Without it (``flask run``, tests) the values are this process's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models import JobFailure
from app.services.error_details import FREE_FORM, listed_errors
from app.services.failure_groups.signals import PENDING_METRICS_KEY
from app.services.processing_jobs.signals import PENDING_FAILURES_KEY

# The *_created series double the output and no dashboard here uses them.
disable_created_metrics()

#: The registry this process's metrics are kept in (not prometheus_client's
#: global one, which other libraries may fill).
REGISTRY = CollectorRegistry(auto_describe=True)
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    # Process CPU/memory: only meaningful for a single process.
    ProcessCollector(registry=REGISTRY)

#: Latency buckets in seconds: fine below 100 ms, where the API should be.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, Flask endpoint and status code.",
    ["method", "endpoint", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from the start of the request to the response, by method and Flask endpoint.",
    ["method", "endpoint"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
FAILURES_RECORDED = Counter(
    "clinical_job_failures_recorded_total",
    "Failures committed to job_failures, by job status and error_details format.",
    ["status", "error_format"],
    registry=REGISTRY,
)
FAILURE_CODES = Counter(
    "clinical_job_failure_codes_total",
    "Committed failures whose normalized error_details hold this code (once per failure).",
    ["code"],
    registry=REGISTRY,
)
GROUPS_CREATED = Counter(
    "failure_groups_created_total",
    "Failure groups created (a fingerprint seen for the first time).",
    registry=REGISTRY,
)
GROUPS_REGRESSED = Counter(
    "failure_groups_regressed_total",
    "Resolved failure groups reopened as regressed by a new occurrence.",
    registry=REGISTRY,
)
GROUPS_WOKEN = Counter(
    "failure_groups_woken_total",
    "Ignored failure groups woken by a new occurrence (date passed or N more occurrences).",
    registry=REGISTRY,
)
GROUP_OCCURRENCES = Counter(
    "failure_group_occurrences_total",
    "Occurrences recorded on failure groups, by the group's state after the occurrence.",
    ["state"],
    registry=REGISTRY,
)
_GROUP_COUNTERS = {"created": GROUPS_CREATED, "regressed": GROUPS_REGRESSED, "woken": GROUPS_WOKEN}
_GROUP_STATES = frozenset({"unresolved", "resolved", "ignored"})
# Each state's series exists from the start, at 0: Prometheus's increase()
# does not count a series' first sample, so a series born with the first
# occurrence after a deploy under-counted it (a trial).
for _state in sorted(_GROUP_STATES):
    GROUP_OCCURRENCES.labels(state=_state)
POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out_connections",
    "Database connections in use (checked out of the pool), summed over live processes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "db_pool_size_connections",
    "Configured size of the database pool (without overflow), summed over live processes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)

#: A code becomes a label value only if it looks like one
#: (``schema.required``, ``code.unknown_icd10cm``) ...
_CODE_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
#: ... and only this many distinct codes per process; the rest count as
#: ``other``. Codes come from workers: the bound keeps a misbehaving worker
#: from creating unbounded series (and keeps free text out of labels).
MAX_CODE_LABELS = 200
_seen_codes: set[str] = set()

_PENDING_KEY = "observability_pending_failures"


def code_shaped(code: Any) -> str:
    """``code`` when it looks like a code (``schema.required``: a letter,
    then up to 63 letters, digits and ``_.:-``), else ``other``: free text a
    worker sent as a code (a name, an MRN) never becomes a label value."""
    return code if isinstance(code, str) and _CODE_LABEL.fullmatch(code) else "other"


def code_label(code: Any) -> str:
    """The label value for an error ``code`` (``other`` when not
    :func:`code_shaped`, or past :data:`MAX_CODE_LABELS` in this process)."""
    if code_shaped(code) == "other":
        return "other"
    if code not in _seen_codes:
        if len(_seen_codes) >= MAX_CODE_LABELS:
            return "other"
        _seen_codes.add(code)
    return code


def failure_codes(error_details: Any, error_format: str | None = None) -> list[str]:
    """Distinct ``code`` values of a failure's error items, in first-seen order.

    The items are those :func:`~app.services.error_details.listed_errors`
    reads (the envelope's ``errors``); details declared ``free-form`` and
    anything without such a list (free text, ``None``) have no codes.
    """
    if error_format == FREE_FORM:
        return []
    codes: dict[str, None] = {}
    for item in listed_errors(error_details):
        if isinstance(item, dict) and "code" in item:
            codes.setdefault(code_label(item["code"]), None)
    return list(codes)


# -- counting committed failures (session events) ---------------------------


def _collect_new_failures(session: Session, flush_context: Any) -> None:
    # after_flush still shows the pre-flush "new" set.
    pending = [
        (obj.status, obj.error_format or "none", failure_codes(obj.error_details, obj.error_format))
        for obj in session.new
        if isinstance(obj, JobFailure)
    ]
    if pending:
        session.info.setdefault(_PENDING_KEY, []).extend(pending)


def _count_committed_failures(session: Session) -> None:
    # The recorder's failures (Core INSERT, noted by the service) and any
    # flushed as ORM objects.
    noted = [
        (status, error_format or "none", failure_codes(error_details, error_format))
        for status, error_format, error_details in session.info.pop(PENDING_FAILURES_KEY, ())
    ]
    for status, error_format, codes in [*session.info.pop(_PENDING_KEY, ()), *noted]:
        FAILURES_RECORDED.labels(status=status, error_format=error_format).inc()
        for code in codes:
            FAILURE_CODES.labels(code=code).inc()


def _count_committed_group_events(session: Session) -> None:
    for event_name, state in session.info.pop(PENDING_METRICS_KEY, ()):
        if event_name == "occurrence":
            GROUP_OCCURRENCES.labels(state=state if state in _GROUP_STATES else "unresolved").inc()
        elif event_name in _GROUP_COUNTERS:
            _GROUP_COUNTERS[event_name].inc()


def _forget_failures(session: Session, *args: Any) -> None:
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(PENDING_FAILURES_KEY, None)
    session.info.pop(PENDING_METRICS_KEY, None)


def _listen_once(target: Any, name: str, fn: Any) -> None:
    if not event.contains(target, name, fn):
        event.listen(target, name, fn)


def _watch_sessions() -> None:
    # On the Session class: every session of the process, whichever app or
    # scoped_session made it.
    _listen_once(Session, "after_flush", _collect_new_failures)
    _listen_once(Session, "after_commit", _count_committed_failures)
    _listen_once(Session, "after_commit", _count_committed_group_events)
    _listen_once(Session, "after_rollback", _forget_failures)


# -- pool use (pool events) ---------------------------------------------------


def _watch_pool(engine: Engine) -> None:
    pool = engine.pool
    size = getattr(pool, "size", None)
    checkedout = getattr(pool, "checkedout", None)
    if size is None or checkedout is None:  # e.g. SQLite in memory: no queue pool
        return
    POOL_SIZE.set(size())

    # Set the absolute value on each event rather than inc/dec: a checkout
    # that fails half-way (database down) checks in without having checked
    # out, and counting would drift. SQLAlchemy dispatches "checkin" just
    # before the connection goes back, hence the -1.
    def on_checkout(*args: Any) -> None:
        POOL_CHECKED_OUT.set(checkedout())

    def on_checkin(*args: Any) -> None:
        POOL_CHECKED_OUT.set(max(0, checkedout() - 1))

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)


# -- HTTP ---------------------------------------------------------------------


#: The labelled series of each (method, endpoint, status) seen so far: a
#: ``labels()`` call validates and joins its values and takes the metric's
#: lock on every request. The key space is bounded (methods, endpoints and
#: statuses are the ones the metrics already name).
_REQUEST_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration (seconds)."""
    key = (method, endpoint, status)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        # Two threads may both get here; labels() hands both the same series.
        series = _REQUEST_SERIES[key] = (
            HTTP_REQUESTS.labels(method=method, endpoint=endpoint, status=str(status)),
            HTTP_LATENCY.labels(method=method, endpoint=endpoint),
        )
    series[0].inc()
    series[1].observe(seconds)


def render_metrics() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its media type."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def init_metrics(engines: Iterable[Engine]) -> None:
    """Start watching sessions and the given engines (``/metrics`` itself is
    served by the ``ops`` blueprint, :mod:`app.operations`)."""
    _watch_sessions()
    for engine in engines:
        _watch_pool(engine)
