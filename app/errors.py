"""Errors the services raise, with no knowledge of HTTP rendering.

Services raise :class:`ServiceError` subclasses, which carry an HTTP status,
a title and a problem-type slug (superset's pattern: each error knows the
answer it maps to) but import nothing of Flask, so a service can be called
from a view, a CLI command or a test alike. Turning them into problem+json or
HTML pages is :mod:`app.web.errors`' job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NotRequired, TypedDict
from urllib.parse import quote


class FieldError(TypedDict):
    """One fault of a request, saying where it is as JSON:API's error
    ``source`` does, with exactly one of:

    * ``pointer``: RFC 6901 JSON Pointer into the request body, as a URI
      fragment (``#/entities/0/span/end``; ``#`` is the whole body);
    * ``parameter``: the name of a URI query parameter (``limit``);
    * ``header``: the name of a request header (``Idempotency-Key``).

    ``field`` names the place for people (the body pointer's tokens joined by
    dots, the parameter's or header's name; cut in the middle with ``…`` to
    :data:`FIELD_MAX_LENGTH` characters, while ``pointer`` stays whole);
    ``detail`` says what is wrong.
    A JSON syntax error's item also has ``line`` and ``column`` (1-based,
    counted in characters, as Python's ``json`` reports them).
    """

    field: str
    detail: str
    pointer: NotRequired[str]
    parameter: NotRequired[str]
    header: NotRequired[str]
    line: NotRequired[int]
    column: NotRequired[int]


#: Characters RFC 3986 allows unescaped in a fragment, besides letters, digits and "-._~".
_FRAGMENT_SAFE = "/?:@!$&'()*+,;="


def field_error(pointer: str, detail: str) -> FieldError:
    """Build a :class:`FieldError`.

    Args:
        pointer: RFC 6901 pointer into the request body, e.g. ``"/error_message"``
            (``""`` for the whole body); ``~``/``/`` escaped as RFC 6901 says,
            not yet percent-encoded (done here for the fragment form).
        detail: what is wrong, in one sentence; never echo the submitted value.
    """
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    # RFC 6901 section 6: in a URI fragment, characters a fragment may not
    # hold (space, '%', '"', non-ASCII ...) are percent-encoded as UTF-8.
    fragment = quote(pointer, safe=_FRAGMENT_SAFE, errors="replace")
    # ``field`` is for people: a member name sent with a control character
    # in it is shown with its escape, as a query parameter's name is, so
    # quoting the answer in a terminal or a log does not act on it.
    return {"field": _shortened(shown_name(".".join(parts))), "pointer": "#" + fragment, "detail": detail}


#: Longest ``field`` of a :class:`FieldError`; the pointer is never cut.
FIELD_MAX_LENGTH = 120


def _shortened(field: str) -> str:
    # A body nested 512 levels deep has a 1,000-character path: for people,
    # its start and end say where it is; the pointer has every token.
    if len(field) <= FIELD_MAX_LENGTH:
        return field
    keep = FIELD_MAX_LENGTH - 1
    return field[: keep * 2 // 3] + "\u2026" + field[-(keep - keep * 2 // 3):]


def shown_name(text: str) -> str:
    """``text`` with each C0 control (NUL, TAB, LF and CR too), DEL and
    each C1 control written as its escape in ASCII (ESC -> ``\\u001b``,
    U+009B CSI -> ``\\u009b``), so a name holding one can be shown without
    acting in a terminal or a page, and read: the Unicode Control Pictures
    used before showed as one empty box in a stock Chromium."""
    return _NAME_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


#: What :func:`shown_name` escapes: every C0 control, DEL, every C1 control.
_NAME_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def parameter_error(name: str, detail: str) -> FieldError:
    """A :class:`FieldError` for the URI query parameter ``name``."""
    return {"field": name, "parameter": name, "detail": detail}


def header_error(name: str, detail: str) -> FieldError:
    """A :class:`FieldError` for the request header ``name``."""
    return {"field": name, "header": name, "detail": detail}


class ServiceError(Exception):
    """Base of the errors services raise; each subclass fixes status and type.

    Attributes:
        status: HTTP status code the API answers with.
        title: short, fixed summary of the problem type (RFC 9457 ``title``).
        slug: last segment of the problem ``type`` URI.
        detail: human-readable explanation of this occurrence.
        errors: the bad fields, if any.
        retry_later: the same request may succeed later; the answer then
            carries ``Retry-After`` (RFC 9110 section 10.2.3), ``RETRY_AFTER_S``
            seconds, as a 503 does.
        headers: response header fields the answer carries (name -> value).
    """

    status: int = 500
    title: str = "Internal error"
    slug: str = "internal-error"
    retry_later: bool = False
    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)

    @property
    def members(self) -> dict[str, str]:
        """RFC 9457 extension members of this problem (section 3.2): the
        facts ``detail`` states in words, for a program to read; none here."""
        return {}


class BadRequestError(ServiceError):
    """The request body could not be read as JSON (HTTP 400)."""

    status = 400
    title = "Malformed request body"
    slug = "malformed-json"


class UnsupportedMediaTypeError(ServiceError):
    """The request body is not JSON (HTTP 415)."""

    status = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


class UnsupportedContentEncodingError(UnsupportedMediaTypeError):
    """The body has a content coding this server does not decode (HTTP 415,
    RFC 9110 section 15.5.16); the answer lists the codings it accepts in
    ``Accept-Encoding`` (RFC 7694 section 3): ``identity`` only."""

    headers = MappingProxyType({"Accept-Encoding": "identity"})


class InvalidFieldsError(ServiceError):
    """The body is JSON but one or more fields are wrong (HTTP 422)."""

    status = 422
    title = "Invalid fields"
    slug = "invalid-fields"


class InvalidQueryError(ServiceError):
    """A query-string parameter is wrong (HTTP 400)."""

    status = 400
    title = "Invalid query parameter"
    slug = "invalid-query"


class InvalidFormError(ServiceError):
    """A field of a submitted HTML form (the dashboard's POSTs) is wrong (HTTP 400)."""

    status = 400
    title = "Invalid form field"
    slug = "invalid-form"
