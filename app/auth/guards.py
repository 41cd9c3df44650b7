"""The access rules, applied once per request before any view runs."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import NotFound

from app.errors import ServiceError, header_error
from app.models.access import Permission
from app.services import access, account_names, worker_tokens
from app.web.query import filter_pairs

login_manager = LoginManager()
csrf = CSRFProtect()
# No storage_uri here: one given to the constructor would win over the app's
# RATELIMIT_STORAGE_URI, and every gunicorn process would count on its own.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
talisman = Talisman()


#: The only endpoints with rate limits (``@limiter.limit``): the sign-in form.
#: A new limit elsewhere must add its endpoint here, or it is never checked
#: (tests/integration/test_access_control.py holds the two together).
RATE_LIMITED_ENDPOINTS = frozenset({"auth.login"})


@limiter.request_filter
def _has_no_rate_limit() -> bool:
    """Flask-Limiter filter: only :data:`RATE_LIMITED_ENDPOINTS` carry a limit,
    so say so before Flask-Limiter resolves an empty set of limits on every
    other request: about 2 % of a worker report's CPU and 4 % of a signed-in
    page's fixed cost (docs/benchmarks.md)."""
    return request.endpoint not in RATE_LIMITED_ENDPOINTS

#: Endpoints that answer without credentials: process health, static files
#: (CSS only: no data), the sign-in page itself, and the problem-type pages
#: (documentation a problem's ``type`` links to: no data).
PUBLIC_ENDPOINTS = frozenset(
    {"ops.healthz", "ops.readyz", "static", "auth.login", "problems.list_problem_types",
     "problems.list_problem_types_json", "problems.show_problem_type"}
)  # fmt: skip

#: Endpoints whose pages are framed by another page of this origin (the
#: dashboard's summary). Signed out, they answer a small page with a sign-in
#: link for the whole window: a redirect would put the sign-in page, which
#: refuses framing, inside the frame.
FRAMED_ENDPOINTS = frozenset({"dashboard.show_jobs_summary"})

#: Content-Security-Policy: everything from this origin only, no inline
#: scripts or styles, no framing (OWASP Secure Headers).
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

F = TypeVar("F", bound=Callable[..., Any])


class UnauthorizedError(ServiceError):
    """No valid credential of the kind this route takes (HTTP 401)."""

    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


class MalformedCredentialsError(ServiceError):
    """The ``Authorization`` header names the Bearer scheme but is not one
    RFC 6750 credential (section 2.1): sent twice (a server joins repeated
    fields with commas, RFC 9110 section 5.3), or a token holding a
    character a ``b64token`` cannot. HTTP 400 with the challenge's
    ``error="invalid_request"`` (section 3.1), so a worker does not read a
    valid token sent twice as a revoked one."""

    status = 400
    title = "Malformed Authorization header"
    slug = "invalid-authorization"
    headers = MappingProxyType({
        "WWW-Authenticate": 'Bearer realm="clinical-intelligence-api", error="invalid_request", '
                            'error_description="Send one Authorization: Bearer <token> header."',
    })


class ForbiddenError(ServiceError):
    """Signed in, but the role does not allow this (HTTP 403)."""

    status = 403
    title = "Forbidden"
    slug = "forbidden"


def typed_user_name_key() -> str:
    """Rate-limit key of a sign-in form's user name, as typed (surrounding whitespace stripped).

    Hashed: the counter's key, which may live in a shared Redis, then holds
    neither the name nor anything an attacker can make large; prefixed so that
    it never meets the per-address key of a name that looks like an address.
    """
    # Stripped as the form strips it: "ann " and "ann" are one name to guess.
    # And in NFC, as names are compared (account_names.name_form): one name's
    # two Unicode forms do not get two counters.
    typed = account_names.name_form(request.form.get("username", "").strip())
    return "user-name:" + hashlib.sha256(typed.encode("utf-8", "surrogatepass")).hexdigest()


def requires(permission: Permission) -> Callable[[F], F]:
    """Mark a dashboard view as needing ``permission`` (checked in :func:`enforce_access`)."""

    def decorate(view: F) -> F:
        view.required_permission = permission  # type: ignore[attr-defined]
        return view

    return decorate


#: RFC 6750 section 2.1: ``credentials = "Bearer" 1*SP b64token`` (the
#: scheme in any case, RFC 9110 section 11.1).
_BEARER_CREDENTIAL = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(?P<token>[A-Za-z0-9\-._~+/]+=*)")
#: The Bearer scheme named anywhere in the field: first, or after a comma
#: (a second credential), followed by any white space or nothing.
_NAMES_BEARER = re.compile(r"(?:^|,)\s*bearer(?:\s|$)", re.IGNORECASE)


def _bearer_credential() -> tuple[str | None, str | None]:
    """The ``Authorization`` header read once, by RFC 6750 section 2.1:
    ``(token, fault)``. ``(token, None)`` for one well-formed Bearer
    credential; ``(None, None)`` for no header, another scheme alone, or the
    scheme with no token (a 401 asks for one); ``(None, fault)`` for a header
    that names Bearer but is not one well-formed credential (``fault`` says
    how, for :class:`MalformedCredentialsError`)."""
    header = request.headers.get("Authorization", "").strip()
    if not _NAMES_BEARER.search(header) or header.lower() == "bearer":
        return None, None
    match = _BEARER_CREDENTIAL.fullmatch(header)
    if match:
        return match["token"], None
    # A token outside b64token was refused as "unknown or revoked"
    # (invalid_token): a valid token sent twice read as revoked (a trial).
    if "," in header:
        return None, "holds more than one credential (sent twice, or with another scheme): send one 'Bearer <token>'"
    return None, ("is not 'Bearer', one or more spaces, and a token of the characters RFC 6750 allows (letters, "
                  "digits, '-', '.', '_', '~', '+', '/' and a final '=')")


def bearer_token() -> str | None:
    """The token of one well-formed ``Authorization: Bearer`` credential
    (RFC 6750 section 2.1), or ``None`` (no credential, or a malformed one:
    :func:`_api_bearer_token` refuses that on the API)."""
    return _bearer_credential()[0]


def _api_bearer_token() -> str | None:
    """The API's reading of the header: the token, or ``None`` (a 401 asks
    for one; another scheme alone, "Basic ...", is not ours to judge).

    Raises:
        MalformedCredentialsError: the header names Bearer but is not one
            well-formed credential (400 ``invalid-authorization``).
    """
    token, fault = _bearer_credential()
    if fault is not None:
        raise MalformedCredentialsError(f"The Authorization header {fault}.", [header_error("Authorization", fault)])
    return token


def _is_metrics_token(token: str | None) -> bool:
    # METRICS_TOKEN_SHA256: compared as digests, in constant time.
    expected = current_app.config.get("METRICS_TOKEN_SHA256")
    if not token or not expected:
        return False
    return hmac.compare_digest(hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest(), expected)


def enforce_access() -> Any:
    """``before_request``: allow, redirect to sign-in, or refuse (401/403).

    * public endpoints and unknown URLs outside ``/api/`` (404 follows) pass;
    * ``/api/`` and ``/metrics`` need a valid, unrevoked worker token;
      ``/metrics`` also takes the token whose SHA-256 is
      ``METRICS_TOKEN_SHA256`` (checked without the database);
    * a dashboard request with a bearer token and no session is a 401 that
      says the dashboard takes a session (not a redirect to the sign-in);
    * everything else needs a signed-in operator whose role grants the
      view's ``required_permission``; a view without one is refused (403), so
      a new view is closed until someone decides who may use it.
    """
    endpoint = request.endpoint
    # An unknown URL under /api/ needs a token too, so the API's paths cannot
    # be probed without one (a trial: /api/v1/nope was a 404 to anyone).
    # Only a plain 404: a refused host name (TRUSTED_HOSTS, a 400) or a wrong
    # method (405) is answered as it is, before any token is read.
    unknown_api_path = isinstance(request.routing_exception, NotFound) and request.path.startswith("/api/")
    if endpoint in PUBLIC_ENDPOINTS or (endpoint is None and not unknown_api_path):
        return None
    if endpoint == "ops.metrics" and _is_metrics_token(bearer_token()):
        return None  # the scrape-only token: no database read, nothing noted
    if request.path.startswith("/api/") or endpoint == "ops.metrics":
        token = _api_bearer_token()
        record = worker_tokens.verify_worker_token(token) if token else None
        if record is None:
            raise UnauthorizedError("Send a valid worker token: 'Authorization: Bearer <token>'.")
        g.worker_token = record
        # Read now: note_token_use may commit, which expires the record.
        # The id scopes idempotency keys; the name is the audit's actor.
        g.worker_token_id = record.id
        g.worker_token_name = record.name
        worker_tokens.note_token_use(record)
        return None
    if not current_user.is_authenticated:
        if bearer_token() is not None:
            # A script sending a worker token (to an export, say): a redirect
            # to the sign-in form would be saved as the file (a trial).
            raise UnauthorizedError("The dashboard and its exports take a signed-in session, not a worker "
                                    "token: sign in at /login (docs/exports.md, \"From a script\").")
        if request.method == "GET" and endpoint in FRAMED_ENDPOINTS:
            # The framing page is the list with the same filter.
            framing = url_for("dashboard.list_jobs")
            if request.query_string:
                framing += "?" + request.query_string.decode("latin-1")
            return render_template("auth/signed_out_frame.html", sign_in=url_for("auth.login", next=framing)), 401
        if request.method == "GET" and request.blueprint == "exports":
            # Signed in, the user lands on the list the export is of, one
            # click from the file: an export as the sign-in's next page was
            # a same-origin request, which no other site's link may start
            # unasked (a re-check: the "Download this export?" question).
            pairs = filter_pairs(request.args.items(multi=True))
            framing = url_for("dashboard.list_jobs") + ("?" + urlencode(pairs) if pairs else "")
            return redirect(url_for("auth.login", next=framing))
        if request.method == "GET":
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if endpoint == "auth.logout":
            # Signed out already (the session ended while the page was
            # open): what "Sign out" asks for is done; a 401 would say otherwise.
            return redirect(url_for("auth.login"), 303)
        # A form sent after the session ended: the error page links to the
        # sign-in, back to the page the form was on (app/web/errors.py).
        raise UnauthorizedError("You are not signed in (you signed out, or your session ended after a while "
                                "unused): nothing was changed. Sign in, then repeat the action.")
    view = current_app.view_functions.get(endpoint)
    permission = getattr(view, "required_permission", None)
    if permission is None or not current_user.can(permission):
        # Audited: someone trying pages (an export, the audit log) their
        # role does not open leaves a trace (a trial found none). The path
        # only: a query string may hold a search for a patient's name.
        access.record_access_denied(
            current_user.username, request.method, request.path,
            {"permission": [permission.value if permission is not None else "none"]},
        )
        needed = f": it needs {PERMISSION_NAMES[permission]}. Ask an administrator" if permission else ""
        raise ForbiddenError(f"Your role ({current_user.role}) does not allow this{needed}.")
    return None


#: How a 403 names a permission.
PERMISSION_NAMES = {
    Permission.VIEW_JOBS: "the permission to view jobs (every role)",
    Permission.ACT_ON_JOBS: "the permission to act on jobs (the operator or admin role)",
    Permission.EXPORT: "the permission to export (the support or admin role)",
    Permission.ADMINISTER: "the permission to administer (the admin role)",
}
assert set(PERMISSION_NAMES) == set(Permission)


def _add_authenticate_header(response):  # noqa: ANN001, ANN202
    # RFC 6750 section 3: a 401 from a bearer-protected resource says how to authenticate.
    if response.status_code == 401 and (request.path.startswith("/api/") or request.endpoint == "ops.metrics"):
        challenge = 'Bearer realm="clinical-intelligence-api"'
        if bearer_token() is not None:
            # A token was sent and refused (unknown, revoked): RFC 6750
            # section 3.1's invalid_token, so a client tells it from "send one".
            challenge += ', error="invalid_token", error_description="The token is unknown or revoked."'
        response.headers["WWW-Authenticate"] = challenge
    elif response.status_code == 401:
        # RFC 9110 section 15.5.2: every 401 carries a challenge. The pages
        # sign in by a form and a session cookie, which no registered scheme
        # names; the "Cookie" scheme of draft-broyer-http-cookie-auth says
        # where the form is. Browsers show the page, not a password prompt,
        # for a scheme they do not know.
        response.headers["WWW-Authenticate"] = (
            f'Cookie realm="clinical-intelligence-dashboard", form-action="{url_for("auth.login")}"'
        )
    return response


def _note_retry_after(response):  # noqa: ANN001, ANN202
    # Registered after the limiter, so it runs before the limiter's own hook
    # (Flask runs after_request hooks last registered first): whether the
    # app itself said when to retry (a 503, an idempotency key in use), and what.
    g.app_retry_after = response.headers.get("Retry-After")
    return response


def _retry_after_only_when_meant(response):  # noqa: ANN001, ANN202
    # Flask-Limiter sets Retry-After on every answer of a rate-limited
    # endpoint, a sign-in's 401 included, where a client could read it as
    # "wait". Keep it on the limiter's own 429 (RFC 6585) and, with the
    # app's value, where the app set it (the limiter wrote its own window's
    # over a sign-in's 503); drop it elsewhere. Registered before the
    # limiter, so it runs after the limiter's hook.
    if response.status_code != 429:
        meant = g.pop("app_retry_after", None)
        if meant is None:
            response.headers.pop("Retry-After", None)
        else:
            response.headers["Retry-After"] = meant
    return response


#: Endpoints whose answers hold no data and may be cached (CSS, the icon).
CACHEABLE_ENDPOINTS = frozenset({"static"})


def _forbid_caching(response):  # noqa: ANN001, ANN202
    # Pages, JSON and exports may hold clinical data: no browser or proxy may
    # keep a copy (after sign-out the back button must not show one either).
    # OWASP Session Management Cheat Sheet, "Web Content Caching".
    if request.endpoint not in CACHEABLE_ENDPOINTS and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_access_control(app: Flask, *, csrf_exempt: Iterable[Blueprint] = ()) -> None:
    """Install server-side sessions, sign-in, CSRF, rate limits, security
    headers and the access rules.

    Args:
        csrf_exempt: blueprints that authenticate without cookies (bearer
            tokens), so have no CSRF to check; named by the factory, so that
            this layer imports no blueprint.
    """
    from app.auth.sessions import init_sessions

    init_sessions(app)
    login_manager.init_app(app)
    login_manager.user_loader(access.load_user)
    login_manager.login_view = "auth.login"
    # Registered before CSRFProtect's own hook so that "who are you" is
    # answered before "is this form genuine" (401/403 rather than 400).
    app.before_request(enforce_access)
    csrf.init_app(app)
    for blueprint in csrf_exempt:
        csrf.exempt(blueprint)
    app.after_request(_retry_after_only_when_meant)
    limiter.init_app(app)
    app.after_request(_note_retry_after)
    talisman.init_app(
        app,
        content_security_policy=CONTENT_SECURITY_POLICY,
        force_https=app.config["FORCE_HTTPS"],
        strict_transport_security=app.config["FORCE_HTTPS"],
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_http_only=True,
        frame_options="DENY",
        # A URL may hold patient identifiers (a search, a document id): it
        # never goes to another site. Our own pages do get it, so a refused
        # form can lead back to the page it was on (a stale CSRF token, a
        # session that ended; app/web/errors.py). The app never logs it.
        referrer_policy="same-origin",
    )
    app.after_request(_add_authenticate_header)
    app.after_request(_forbid_caching)
    app.context_processor(lambda: {"permissions": Permission})




def current_actor() -> str:
    """Who is acting, for the audit log: on the API and ``/metrics`` the worker
    token's name, elsewhere the signed-in user's name, else ``anonymous``."""
    token_name = g.get("worker_token_name")
    if token_name is not None:
        return token_name
    return current_user.username if current_user.is_authenticated else "anonymous"


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PUBLIC_ENDPOINTS",
    "RATE_LIMITED_ENDPOINTS",
    "ForbiddenError",
    "UnauthorizedError",
    "csrf",
    "current_actor",
    "init_access_control",
    "limiter",
    "login_manager",
    "requires",
    "talisman",
    "typed_user_name_key",

]
