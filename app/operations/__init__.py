"""Operations endpoints, blueprint ``ops``: ``GET /healthz`` (liveness),
``GET /readyz`` (readiness) and ``GET /metrics`` (Prometheus).

The probes are unauthenticated and say nothing about the deployment: no
database URL, no exception text, no versions. ``/healthz`` touches nothing
but the process; ``/readyz`` connects to the database and compares its
schema revision with the code's (:mod:`app.operations.readiness`).
``/metrics`` holds counts by endpoint and error code, never patient data.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.auth.guards import talisman
from app.extensions import db
from app.observability.group_metrics import render_hot_groups
from app.observability.metrics import render_metrics
from app.operations.readiness import check_readiness

bp = Blueprint("ops", __name__)

#: The probes and the scrape answer over plain HTTP even with ``FORCE_HTTPS``:
#: kubelet probes and Prometheus reach the pod on its HTTP port, inside the
#: cluster; a redirect to https:// on that port failed them (an ops trial).
_plain_http_too = talisman(force_https=False)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
@_plain_http_too
def healthz() -> Response:
    """Liveness: 200 ``{"status": "ok"}`` while the process serves requests."""
    return _no_store(jsonify({"status": "ok"}))


@bp.get("/readyz")
@_plain_http_too
def readyz() -> Response:
    """Readiness: 200 ``{"status": "ready"}`` when the database answers and its
    schema is at the code's head; else 503 ``{"status": "not-ready",
    "checks": {"database": "ok"|"unreachable", "schema": "ok"|"not-at-head"|"unknown"}}``
    with ``Retry-After``."""
    status = check_readiness(db.engine)
    checks = {
        "database": "ok" if status.reachable else "unreachable",
        "schema": "unknown" if not status.reachable else ("ok" if status.schema_current else "not-at-head"),
    }
    if status.ready:
        return _no_store(jsonify({"status": "ready", "checks": checks}))
    response = jsonify({"status": "not-ready", "checks": checks})
    response.status_code = 503
    response.headers["Retry-After"] = str(current_app.config.get("RETRY_AFTER_S", 5))
    return _no_store(response)


@bp.get("/metrics")
@_plain_http_too
def metrics() -> Response:
    """Prometheus scrape endpoint (text exposition format 0.0.4); see
    :mod:`app.observability.metrics` for what it holds."""
    body, content_type = render_metrics()
    body += render_hot_groups()  # read from the database, the same in every process
    return _no_store(Response(body, content_type=content_type))
