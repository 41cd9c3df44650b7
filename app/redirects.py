"""Where a form may send the browser next: this site's own paths only.

``next`` comes from the request (a sign-in link, a hidden field of an action
form), so it is the visitor's text. It is checked once, here, before the
sign-in or the action runs: a target that fails the check is replaced by the
page's default, so a bad ``next`` can neither send the browser elsewhere nor
turn a sign-in or an action that already happened into an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from flask import current_app, has_app_context
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

_View = TypeVar("_View", bound=Callable[..., Any])

#: Longest target kept; the pages' own targets (a list URL with its filter)
#: are far shorter.
MAX_TARGET_LENGTH = 2048

# A path on this site: "/" then printable ASCII without space or backslash,
# and not "//" (scheme-relative: another host). Browsers drop tab and newline
# from URLs and read "\" as "/", so "/\t/x" and "/\x" mean "//x"; Werkzeug
# refuses a Location header with CR or LF (a 500 after the work was done).
# Anything else a page links to is already percent-encoded.
_LOCAL_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*\Z", re.ASCII)


def safe_redirect_target(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site, else ``default``.

    Args:
        target: the requested target (``None`` or ``""``: none asked for).
        default: where to go instead; built by the app (``url_for``).

    Returns:
        A path starting with a single ``/``, of printable ASCII without
        spaces or backslashes, at most :data:`MAX_TARGET_LENGTH` characters,
        that a browser can open: in an app, one of its ``GET`` routes (a
        trial sent ``next=/logout``, a form-only address: the action ran, then
        the browser landed on a 405 page).
    """
    if target and len(target) <= MAX_TARGET_LENGTH and _LOCAL_PATH.match(target) and _opens_with_get(target):
        return target
    return default


#: Endpoint prefixes whose ``GET`` routes are no page for a person signed in
#: to the dashboard: the API (worker tokens only: a 401 problem), the probes
#: and ``/metrics``, the static files.
_NOT_PAGES = ("api.", "ops.", "static")


def not_a_page(view: _View) -> _View:
    """Mark a view that answers ``GET`` without being a page (the 405 page of
    a form-only address): never a ``next``/``back`` target."""
    view.not_a_page = True  # type: ignore[attr-defined]
    return view


def _opens_with_get(target: str) -> bool:
    """Whether ``target``'s path is a page of the app a browser can open
    (:func:`page_endpoint`; True outside an app: nothing to ask)."""
    return not has_app_context() or page_endpoint(urlsplit(target).path) is not None


def page_endpoint(path: str) -> str | None:
    """The endpoint (``dashboard.show_group``) of the app's page at ``path``
    (percent-encoded, as in a URL): a ``GET`` route, not of
    :data:`_NOT_PAGES` nor marked :func:`not_a_page`; the route a missing or
    extra trailing slash redirects to counts as its own. ``None`` when no
    page is there (404, 405, not a page). Needs an app context."""
    adapter = current_app.url_map.bind("localhost")  # the host is not matched (no host_matching)
    target = unquote(path)
    for _ in range(2):  # the route, or the one a slash added or removed leads to; no further
        try:
            endpoint, _ = adapter.match(target, method="GET")
            break
        except RequestRedirect as redirect:  # before HTTPException: it is one
            target = unquote(urlsplit(redirect.new_url).path)
        except HTTPException:  # 404 or 405
            return None
    else:
        return None
    view = current_app.view_functions.get(endpoint)
    if endpoint.startswith(_NOT_PAGES) or getattr(view, "not_a_page", False):
        return None
    return endpoint


def same_site_referrer(referrer: str | None, host: str) -> str | None:
    """The referring page (an absolute URL from the ``Referer`` header, RFC
    9110 section 10.1.3) as a path and query on this site, or ``None`` when
    there is none, it is of another host (``host`` as the request has it,
    with its port) or it is not a safe target (:func:`safe_redirect_target`).
    The fragment is never sent, and is dropped if it is."""
    if not referrer:
        return None
    parts = urlsplit(referrer)
    if parts.netloc != host:
        return None
    path = parts.path + ("?" + parts.query if parts.query else "")
    return path if safe_redirect_target(path, "") else None


#: ``Sec-Fetch-Site`` values of a request another site started: ``same-site``
#: too (a sibling subdomain, a ticket system beside the console, a re-check).
OTHER_SITES = frozenset({"cross-site", "same-site"})


def started_by_another_site(headers: Any, host: str) -> bool:
    """Whether the browser says another site started this request: W3C
    Fetch Metadata's ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site``;
    without it, an ``Origin`` (RFC 6454) that is ``null`` or of another host
    (``host`` as the request has it, with its port). ``False`` for a request
    with neither header (a script, a typed address)."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in OTHER_SITES
    origin = headers.get("Origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != host
