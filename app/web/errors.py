"""RFC 9457 problem-details rendering of errors, and the HTML error pages.

One handler set turns :class:`~app.errors.ServiceError` subclasses, Werkzeug's
HTTP errors, an unavailable database and anything unexpected into
``application/problem+json`` for the API and HTML pages for the dashboard.
Routing 404/405 never reach blueprint handlers, so the handlers are app-level
and choose the format from the path (microblog's approach). The error types
themselves live in :mod:`app.errors`, free of Flask, so services can raise
them without importing the web.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import psycopg
import redis
from flask import Flask, Response, current_app, g, json, render_template, request, url_for
from flask_login import AnonymousUserMixin, current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, NotFound, SecurityError

from app.errors import FieldError, ServiceError, field_error, header_error
from app.extensions import db
from app.observability.request_id import current_request_id
from app.redirects import same_site_referrer
from app.services.access import record_access_denied
from app.unit_of_work import is_replayable
from app.web.problem_types import PROBLEM_TYPE_PATH

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Base of every problem ``type``: a relative reference to the type's page,
#: ``/problems/<slug>``, which this app serves (:mod:`app.problems`). RFC 9457
#: section 3.1.1 allows relative references, resolved against the request's
#: URL, so the type resolves on whatever host the API is reached at.
PROBLEM_TYPE_BASE = PROBLEM_TYPE_PATH


def problem(
    status: int,
    title: str,
    detail: str,
    slug: str,
    errors: Sequence[FieldError] = (),
    **extra: Any,
) -> Response:
    """Build an RFC 9457 ``application/problem+json`` response.

    Returns:
        A response whose JSON object holds ``type``, ``title``, ``status``,
        ``detail``, ``instance`` (the request path, percent-encoded), ``request_id`` (as in the
        ``X-Request-ID`` response header; an RFC 9457 extension member) and,
        when given, ``errors``.
    """
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        # A URI reference (RFC 9457 section 3.1.5): the decoded path
        # re-encoded as RFC 3986 path characters, so a NUL or a space the
        # client sent (%00, %20) is not echoed raw.
        "instance": quote(request.path, safe="/!$&'()*+,;=:@-._~"),
        "request_id": current_request_id(),
    }
    if errors:
        body["errors"] = list(errors)
    body.update(extra)
    response = current_app.response_class(
        json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE
    )
    return response


#: Paths read by programs outside ``/api/``: the probes and the scrape.
_PROGRAM_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def _wants_json() -> bool:
    """API paths, the probes and metrics read by programs (a probe's refused
    query was an HTML page, a trial) and the pages' JSON documents
    (``/jobs/<id>/job.json``) get problem+json; everything else gets HTML."""
    return request.path.startswith("/api/") or request.path in _PROGRAM_PATHS or request.path.endswith(".json")


_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "content-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


def _handle_service_error(error: ServiceError) -> Response | tuple[str, int, dict[str, str]]:
    headers = dict(error.headers)
    if error.retry_later:
        headers["Retry-After"] = str(current_app.config.get("RETRY_AFTER_S", 5))
    if _wants_json():
        response = problem(error.status, error.title, error.detail, error.slug, error.errors, **error.members)
        response.headers.update(headers)
        return response
    sign_in = None
    if error.status == 401:
        # The page to come back to is the one the refused form was on (a
        # POST's own path would be a 405 after the sign-in); only a page of
        # this site, as a path.
        sign_in = url_for("auth.login", next=same_site_referrer(request.referrer, request.host))
    # A refused form: the way on is the page it was on (a trial found only
    # the lists linked from a group's refused resolve).
    form_page = None
    if request.method == "POST" and not sign_in:
        form_page = same_site_referrer(request.referrer, request.host)
    return (
        render_template(
            "error.html", status=error.status, title=error.title, detail=error.detail,
            errors=error.errors, sign_in_href=sign_in, form_page_href=form_page,
        ),
        error.status,
        headers,
    )


def _handle_http_exception(error: HTTPException) -> Response | tuple[str, int, dict[str, str]]:
    if isinstance(error, SecurityError):
        # A Host outside TRUSTED_HOSTS: no URL can be built for this request
        # (the page's links would fail), so a problem for every client.
        return problem(400, "Bad Request", "This server does not answer to the host name in the Host header.",
                       "bad-request")
    status = error.code or 500
    title = error.name
    errors: list[FieldError] = []
    if status == 413:
        # RFC 9110 section 15.5.14 renamed it; Werkzeug keeps RFC 7231's
        # "Request Entity Too Large". The title now matches the type's slug.
        title = "Content Too Large"
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        detail = f"The request body is larger than the limit of {limit} bytes."
        # Where the fault is, as every other problem says (a trial): the
        # declared length, or the body itself when it came chunked.
        errors.append(header_error("Content-Length", f"must be at most {limit} bytes")
                      if request.content_length is not None
                      else field_error("", f"the body reached the limit of {limit} bytes"))
    elif status == 404 and error.description == NotFound.description:
        # Werkzeug's own words ("If you entered the URL manually please check
        # your spelling...") for a path nothing answers: say where to look.
        detail = ("No API operation is at this path; the OpenAPI document, /api/v1/openapi.json, lists them."
                  if request.path.startswith("/api/") else
                  "Nothing is at this address.")
    else:
        detail = error.description or title
    # RFC 9110 section 15.5.6: a 405 names the methods the resource has, on a page as in a problem.
    allow = error.get_response().headers.get("Allow") if status == 405 else None
    headers = {"Allow": allow} if allow else {}
    if _wants_json():
        response = problem(status, title, detail, _HTTP_SLUGS.get(status, "http-error"), errors)
        response.headers.update(headers)
        return response
    return render_template("error.html", status=status, title=title, detail=detail, errors=errors), status, headers


def _handle_unexpected(error: Exception) -> Response | tuple[str, int]:
    if current_app.testing and current_app.config.get("PROPAGATE_UNEXPECTED", True):
        # Let bugs fail tests loudly instead of hiding behind a 500 page (indico).
        raise error
    # Log the type and place only: the message may quote patient data, and
    # so may a path's free segment, so the place is the route's rule
    # (``/groups/<group_id>``). The request id is in the words too, to find
    # the line from a 500's ``request_id`` where the log has no JSON field
    # for it (``flask run``, the demo).
    rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
    log.error("unhandled %s on %s %s (request %s)", type(error).__name__, request.method, rule,
              current_request_id())
    detail = "The server hit an unexpected condition; nothing was changed."
    if _wants_json():
        return problem(500, "Internal server error", detail, "internal-error")
    return render_template("error.html", status=500, title="Internal server error", detail=detail, errors=()), 500


#: SQLite errors that mean "busy or unreachable", not "bad SQL" (both are
#: sqlite3.OperationalError; only the message tells them apart).
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
)


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot serve now (retry later).

    True for: a connection the database dropped or refused (a restart, a
    failover, the server down) -- SQLAlchemy marks these
    ``connection_invalidated``; any psycopg ``OperationalError`` (also a
    cancelled statement or lock wait from ``statement_timeout`` /
    ``lock_timeout``, too many connections, a serialization failure); no
    free pooled connection in time (``sqlalchemy.exc.TimeoutError``); SQLite
    busy or unopenable. False for everything else, e.g. an SQL error, which
    is a bug and must stay loud.
    """
    if isinstance(error, sa_exc.TimeoutError):
        return True
    original: BaseException | None = error
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        original = error.orig
    if isinstance(original, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    if isinstance(original, sqlite3.OperationalError):
        return str(original).lower().startswith(_SQLITE_UNAVAILABLE)
    return False


#: SQLSTATEs of a wait the connection's own limits ended: ``lock_timeout``
#: (55P03 lock_not_available) and ``statement_timeout`` (57014 query_canceled).
TIMED_OUT_SQLSTATES = frozenset({"55P03", "57014"})


def _sqlstate(error: BaseException) -> str | None:
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    return getattr(original, "sqlstate", None)


def _handle_database_error(error: Exception) -> Response | tuple[str, int]:
    if not is_database_unavailable(error):
        return _handle_unexpected(error)
    # An expected condition, not a bug: answered even in testing. The type
    # only: the message may hold the database URL or statement parameters.
    log.warning(
        "database unavailable (%s) on %s %s", type(error).__name__, request.method,
        request.url_rule.endpoint if request.url_rule is not None else "unmatched",
    )
    retry_after = str(current_app.config.get("RETRY_AFTER_S", 5))
    title = "Service temporarily unavailable"
    if _wants_json():
        if is_replayable(error):
            cause = ("The change met concurrent writes (a deadlock or serialization failure) on every attempt, "
                     "and nothing was stored.")
        elif _sqlstate(error) in TIMED_OUT_SQLSTATES:
            # The database is up: a lock or statement timeout ended the wait (a
            # trial read "unavailable" while rows were held by concurrent writes).
            cause = ("The request waited longer than the database allows (a lock or statement timeout), "
                     "likely behind concurrent writes, and nothing was stored.")
        else:
            cause = "The database is unavailable."
        detail = (
            f"{cause} Retry after the number of seconds in Retry-After; "
            "send the same Idempotency-Key so that the change is made at most once."
        )
        response = problem(503, title, detail, "service-unavailable")
        response.headers["Retry-After"] = retry_after
        return response
    detail = "The job database cannot be reached right now. Please try again in a minute."
    # The page must not look the signed-in user up again (that needs the
    # database too): render it as for an anonymous visitor.
    g._login_user = AnonymousUserMixin()
    page = render_template("error.html", status=503, title=title, detail=detail, errors=())
    return current_app.response_class(
        page, status=503, headers={"Retry-After": retry_after}, mimetype="text/html"
    )


def _handle_rate_limit_store_error(error: Exception) -> Response | tuple[str, int]:
    # The sign-in limit is a security control: when its shared counters
    # (RATELIMIT_STORAGE_URI, Redis in production) cannot be reached, the
    # sign-in is refused -- fail closed -- as a retryable 503, not a 500 that
    # reads like a bug. Nothing was checked or changed. The type only: the
    # message may hold the store's URL.
    log.warning("rate-limit store unavailable (%s) on %s %s", type(error).__name__, request.method, request.path)
    retry_after = str(current_app.config.get("RETRY_AFTER_S", 5))
    title = "Service temporarily unavailable"
    detail = "Sign-in is unavailable: its attempt counters cannot be reached. Please try again in a minute."
    if _wants_json():
        response = problem(503, title, detail, "service-unavailable")
        response.headers["Retry-After"] = retry_after
        return response
    page = render_template("error.html", status=503, title=title, detail=detail, errors=())
    return current_app.response_class(
        page, status=503, headers={"Retry-After": retry_after}, mimetype="text/html"
    )


def _handle_csrf_error(error: CSRFError) -> Response | tuple[str, int]:
    # Flask-WTF refused a form before its view ran: nothing was changed. Its
    # own words ("The CSRF token is missing.") tell an operator neither that
    # nor what to do; the way on is the page the form was on, loaded again.
    if _wants_json():
        return _handle_http_exception(error)
    # While the database is down no session (the token's keeper) is saved:
    # a sign-in page served then always comes back here, and "load the page
    # again" looped as long as the outage (a trial). Say what is wrong.
    unavailable = _database_unavailable()
    if unavailable is not None:
        return _handle_database_error(unavailable)
    if current_user.is_authenticated:
        # A signed-in user's form refused: an expired page, or a forged
        # request from another site riding their cookie. Audited (a trial
        # found no trace of either). The sign-in form checks its own token
        # and audits a refusal as a failed sign-in (app/auth/views.py).
        record_access_denied(current_user.username, request.method, request.path,
                             {"reason": ["form token missing or invalid (CSRF)"]})
    detail = (
        "Nothing was changed: this form is out of date or was sent without its page (its security "
        "token is missing, invalid or from an earlier sign-in). Load the page again and repeat the action."
    )
    # Only a page of this site, and as a path: never an address elsewhere.
    back = same_site_referrer(request.referrer, request.host)
    page = render_template("error.html", status=400, title="The form has expired", detail=detail, errors=(),
                           reload_href=back)
    return page, 400


def _database_unavailable() -> sa_exc.DBAPIError | None:
    """The error a one-row read meets now if the database is unavailable
    (:func:`is_database_unavailable`), else ``None``; other errors raise."""
    try:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa_exc.DBAPIError as error:
        if is_database_unavailable(error):
            return error
        raise
    return None


def register_error_handlers(app: Flask) -> None:
    """Install the app-level handlers: ServiceError, HTTPException, database
    unavailable and rate-limit store unavailable (503 + ``Retry-After``),
    Exception."""
    app.register_error_handler(ServiceError, _handle_service_error)
    app.register_error_handler(CSRFError, _handle_csrf_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(sa_exc.DBAPIError, _handle_database_error)
    app.register_error_handler(sa_exc.TimeoutError, _handle_database_error)
    app.register_error_handler(psycopg.Error, _handle_database_error)
    # Flask-Limiter lets its storage's errors through (swallow_errors off):
    # with a Redis store those are redis-py's connection errors.
    app.register_error_handler(redis.exceptions.ConnectionError, _handle_rate_limit_store_error)
    app.register_error_handler(redis.exceptions.TimeoutError, _handle_rate_limit_store_error)
    app.register_error_handler(Exception, _handle_unexpected)
