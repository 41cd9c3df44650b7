"""Reading a JSON request body strictly (RFC 8259), with precise errors.

Werkzeug's ``get_json`` accepts NaN/Infinity, keeps the last of duplicate
keys and answers HTML-free but vague errors; workers need to know exactly
what was wrong, so bodies are read here instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Request, current_app
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import (
    BadRequestError,
    FieldError,
    UnsupportedContentEncodingError,
    UnsupportedMediaTypeError,
    field_error,
    header_error,
)
from app.services.json_pointer import json_pointer
from app.services.json_values import (
    NonStandardJSONError,
    refuse_json_constant,
    with_controls_escaped,
    without_surrogates,
)


#: Most arrays/objects a body may nest. The parser's own limit is the
#: interpreter's recursion limit (1,000 frames, less the frames already in
#: use), and code that later walks the value recursively (``repr`` in a
#: schema error, ``json.dumps`` for an idempotency fingerprint) starts from
#: deeper frames than the parser did: a body a few levels under the parser's
#: limit got through and then raised ``RecursionError`` there. Half the
#: interpreter's limit leaves every such walk room; the limits on what is
#: stored (``MAX_JSON_DEPTH``) are far lower and keep their precise 422.
MAX_BODY_NESTING = 512

_TOO_DEEP = f"The body nests arrays or objects more than {MAX_BODY_NESTING} levels deep."
_TOO_LARGE = "A number in the body is too large to represent."
_TOO_SMALL = "A number in the body is too small to represent: it is not zero, but would be stored as 0."
_TOO_LONG = "A number in the body has too many digits to read."
_DUPLICATE = "The body has an object with a duplicate key; each name must appear once."

#: A digit other than 0 in a number's mantissa: the literal is not zero.
_NONZERO_MANTISSA = re.compile(r"[1-9]")
#: The tokens that decide where a place in a JSON text is: strings (an
#: unterminated one runs to the end) and the structural characters.
_PLACE_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{},:]', re.DOTALL)


class _Unreadable:
    """What a diagnosing parse leaves in place of a value the body cannot hold
    (``key`` is the duplicated member's name for a duplicate key)."""

    __slots__ = ("detail", "key")

    def __init__(self, detail: str, key: str | None = None) -> None:
        self.detail = detail
        self.key = key


def _deepest_path(value: Any, limit: int) -> list[str | int] | None:
    """The path of the first array/object (document order) that opens level
    ``limit + 1``, or None when nothing nests that deep."""
    # Iterative: this check must not itself be the recursion it prevents.
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, (dict, list)):
            if len(path) == limit:
                return path
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            stack.extend((child, [*path, key]) for key, child in reversed(children))
    return None


def _unreadable_places(value: Any) -> list[FieldError]:
    """One field error per :class:`_Unreadable` left in ``value``, in document order."""
    found: list[FieldError] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, _Unreadable):
            place = path if item.key is None else [*path, item.key]
            found.append(field_error(json_pointer(place), item.detail))
        elif isinstance(item, (dict, list)):
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            stack.extend((child, [*path, key]) for key, child in reversed(children))
    return found


def _scan_places(text: str, end: int, stop_at_depth: int | None = None) -> tuple[list[str | int], int]:
    """Where the parser was at character ``end`` of ``text``: the path of the
    value it was reading (as far as the text says: an object whose next key
    is not read yet is the place) and the character offset reached.

    With ``stop_at_depth``, stops instead at the first array/object opening
    that depth and returns the path of that array/object. Tolerates broken
    text: it only follows strings and brackets.
    """
    frames: list[list[Any]] = []  # [kind, key or index, expecting a key]
    for match in _PLACE_TOKENS.finditer(text, 0, end):
        token = match.group()
        if token[0] == '"':
            if frames and frames[-1][0] == "{" and frames[-1][2]:
                try:
                    frames[-1][1] = json.loads(token)
                except ValueError:
                    frames[-1][1] = token[1:]
                frames[-1][2] = False
        elif token in "[{":
            if stop_at_depth is not None and len(frames) + 1 == stop_at_depth:
                return _frames_path(frames), match.start()
            frames.append(["[", 0, False] if token == "[" else ["{", None, True])
        elif token in "]}":
            if frames:
                frames.pop()
        elif token == "," and frames:
            if frames[-1][0] == "[":
                frames[-1][1] += 1
            else:
                frames[-1][1], frames[-1][2] = None, True
    return _frames_path(frames), end


def _frames_path(frames: list[list[Any]]) -> list[str | int]:
    path: list[str | int] = []
    for _, key, _ in frames:
        if key is None:
            break
        path.append(key)
    return path


def _diagnose(text: str) -> list[FieldError]:
    """Parse ``text`` again, leaving :class:`_Unreadable` markers where the
    strict parse stopped, to name each unreadable value's place (only on the
    error path: a valid body is parsed once, with hooks that raise)."""

    def constant(name: str) -> _Unreadable:
        return _Unreadable(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity).")

    def number(text: str) -> Any:
        try:
            return _parse_float(text)
        except BadRequestError as exc:
            return _Unreadable(exc.detail)

    def integer(text: str) -> Any:
        try:
            return _parse_int(text)
        except BadRequestError as exc:
            return _Unreadable(exc.detail)

    def members(pairs: list[tuple[str, Any]]) -> Any:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                return _Unreadable(_DUPLICATE, key)
            result[key] = value
        return result

    try:
        value = json.loads(
            text, parse_constant=constant, parse_float=number, parse_int=integer, object_pairs_hook=members
        )
    except (ValueError, RecursionError):
        return []
    return _unreadable_places(value)


def _refuse(text: str, detail: str) -> BadRequestError:
    places = _diagnose(text)
    return BadRequestError(places[0]["detail"] if len(places) == 1 else detail, places)


def _too_deep(path: list[str | int]) -> BadRequestError:
    pointer = json_pointer(path)
    return BadRequestError(
        _TOO_DEEP,
        [field_error(pointer, f"level {MAX_BODY_NESTING + 1} begins here; at most {MAX_BODY_NESTING} levels")],
    )


def _is_json_media_type(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadRequestError(_TOO_LARGE)
    if value == 0.0 and _NONZERO_MANTISSA.search(text.lower().partition("e")[0]):
        # 1e-400 is below the smallest double: storing 0 would silently
        # change the value the client sent.
        raise BadRequestError(_TOO_SMALL)
    return value


def _parse_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        # Python refuses to convert integers longer than sys.get_int_max_str_digits()
        # (4300 by default, against quadratic-time conversion); that is the
        # client's mistake, not the server's.
        raise BadRequestError(_TOO_LONG) from None
    if len(text) > 300:
        # Out of double range like 1e999 (RFC 8259 section 6: beyond IEEE 754
        # binary64, numbers are not interoperable): a 400-digit integer was
        # stored, and JavaScript and jq clients read it back as Infinity (a trial).
        try:
            float(value)
        except OverflowError:
            raise BadRequestError(_TOO_LARGE) from None
    return value


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadRequestError(_DUPLICATE)
        result[key] = value
    return result


def _shown_type(mimetype: str) -> str:
    shown = with_controls_escaped(without_surrogates(mimetype))
    return shown if len(shown) <= 80 else shown[:79] + "…"


def _refuse_content_coding(request: Request) -> None:
    # The server decodes no content coding (RFC 9110 section 8.4): a body
    # labelled gzip was read as its compressed bytes (a UTF-8 error), and a
    # plain body labelled gzip was stored as if decoded. Only "identity".
    codings = [part.strip().lower() for value in request.headers.getlist("Content-Encoding")
               for part in value.split(",")]
    unknown = [c for c in codings if c not in ("", "identity")]
    if unknown:
        shown = _shown_type(", ".join(unknown))
        raise UnsupportedContentEncodingError(
            f"This server does not decode a '{shown}' body: send it uncompressed, without Content-Encoding.",
            [header_error("Content-Encoding", "must be left out (or identity): no content coding is accepted")],
        )


def read_json_body(request: Request) -> Any:
    """Return the request body parsed as JSON.

    Rules: the ``Content-Type`` must be ``application/json`` or a
    ``+json`` type (415 otherwise), with no ``Content-Encoding`` but
    ``identity`` (415, with ``Accept-Encoding: identity``); the body must be UTF-8 (a BOM is
    tolerated), at most ``MAX_CONTENT_LENGTH`` bytes (413, raised by
    Werkzeug) and one JSON value without NaN, Infinity, out-of-range numbers,
    integers of more than 4300 digits, duplicate keys or arrays/objects
    nested more than :data:`MAX_BODY_NESTING` levels (400).

    Raises:
        UnsupportedMediaTypeError: not a JSON media type, or a content
            coding (:class:`~app.errors.UnsupportedContentEncodingError`).
        BadRequestError: empty, not UTF-8, not JSON, or non-standard JSON.
        werkzeug.exceptions.RequestEntityTooLarge: body over the limit.
    """
    if not _is_json_media_type(request.mimetype):
        raise UnsupportedMediaTypeError(
            "Send the body as JSON with 'Content-Type: application/json'"
            # The type as sent, its controls as escapes and cut short: a
            # header is the client's text, and a problem may be printed.
            + (f" (got '{_shown_type(request.mimetype)}')." if request.mimetype
               else " (no Content-Type was sent)."),
            [header_error("Content-Type", "must be application/json (or another JSON type, +json)")],
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError("JSON bodies must be UTF-8 encoded (RFC 8259 section 8.1).",
                                        [header_error("Content-Type", "charset must be utf-8, or left out")])
    _refuse_content_coding(request)
    raw = request.get_data(cache=True)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body has no Content-Length to refuse up front, and
        # Werkzeug stops reading it at the limit without saying so: a body
        # that reaches the limit is treated as over it.
        raise RequestEntityTooLarge()
    if not raw.strip():
        raise BadRequestError("The request body is empty; send a JSON object.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"The body is not valid UTF-8 (bad byte at offset {exc.start}).") from None
    try:
        value = json.loads(
            text,
            parse_constant=refuse_json_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_object_without_duplicates,
        )
    except NonStandardJSONError as exc:
        raise _refuse(text, f"{exc}.") from None
    except BadRequestError as exc:
        raise _refuse(text, exc.detail) from None
    except json.JSONDecodeError as exc:
        reason = exc.msg.removesuffix(" at")
        path, _ = _scan_places(text, exc.pos)
        place = field_error(json_pointer(path), f"{reason} (line {exc.lineno}, column {exc.colno})")
        place.update(line=exc.lineno, column=exc.colno)
        raise BadRequestError(
            f"The body is not valid JSON: {reason} (line {exc.lineno}, column {exc.colno}).", [place]
        ) from None
    except RecursionError:
        path, _ = _scan_places(text, len(text), stop_at_depth=MAX_BODY_NESTING + 1)
        raise _too_deep(path) from None
    path = _deepest_path(value, MAX_BODY_NESTING)
    if path is not None:
        raise _too_deep(path)
    return value


def sends_body(request: Request) -> bool:
    """Whether the request carries a body: ``Content-Length`` above 0, or a
    chunked body (``Transfer-Encoding``), whatever its bytes.

    Asked of the headers, not of ``request.get_data()``: once Werkzeug has
    parsed a form body into ``request.form`` that is empty, and a form would
    pass for no body at all.
    """
    return (request.content_length or 0) > 0 or bool(request.headers.get("Transfer-Encoding"))


def refuse_body(request: Request) -> None:
    """Refuse a request that sends a body to an operation that takes none
    (``/start``, ``/requeue``): the body is not read, and anything it might
    have meant -- a result sent to the wrong path -- is not silently dropped.

    A body is sent when ``Content-Length`` is above 0 or the body is chunked
    (``Transfer-Encoding``); an empty JSON ``Content-Type`` with no body is fine.

    Raises:
        UnsupportedMediaTypeError: (HTTP 415) a body was sent.
    """
    if sends_body(request):
        raise UnsupportedMediaTypeError("This operation takes no body; send the request without one.",
                                        [header_error("Content-Length", "must be 0 or left out: no body is taken")])
