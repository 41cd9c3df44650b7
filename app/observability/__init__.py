"""Request ids, the per-request log line and Prometheus metrics.

:func:`init_observability` wires them into an app (called by the factory):
``before_request`` takes or makes the request id; ``after_request`` returns
it in ``X-Request-ID``, counts the request and writes one log line for it
(logger ``app.requests``): method, Flask endpoint, status, duration in ms and
request id. Never the path's query string, a body, an error message or a
header value: those may hold patient data or credentials.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from app.observability.request_id import REQUEST_ID_HEADER, accept_request_id, current_request_id

request_log = logging.getLogger("app.requests")

#: Endpoints probed every few seconds by orchestrators and Prometheus: their
#: lines are written at DEBUG so they do not drown the INFO log.
PROBE_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "ops.metrics"})
#: Methods kept as they are in metrics and logs; any other becomes ``OTHER``
#: (HTTP allows any token as a method, and each would be a new series).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_observability(app: Flask) -> None:
    """Install the request-id, request-log and metrics hooks."""
    from app.extensions import db
    from app.observability.metrics import init_metrics, observe_request

    with app.app_context():
        engines = list(db.engines.values())  # created by init_app; nothing connects here
    init_metrics(engines)

    @app.before_request
    def start_request() -> None:
        g.request_started = time.perf_counter()
        g.request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))

    @app.after_request
    def finish_request(response: Response) -> Response:
        request_id = current_request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        endpoint = request.url_rule.endpoint if request.url_rule is not None else "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        observe_request(method, endpoint, response.status_code, seconds)
        request_log.log(
            logging.DEBUG if endpoint in PROBE_ENDPOINTS else logging.INFO,
            "%s %s %s",
            method,
            endpoint,
            response.status_code,
            extra={
                "method": method,
                "endpoint": endpoint,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 2),
                "request_id": request_id,
            },
        )
        return response
