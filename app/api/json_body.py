"""Reading a JSON request body strictly (RFC 8259), with precise errors.

Werkzeug's ``get_json`` accepts NaN/Infinity, keeps the last of duplicate
keys and answers HTML-free but vague errors; workers need to know exactly
what was wrong, so bodies are read here instead.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request, current_app
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import BadRequestError, UnsupportedMediaTypeError
from app.services.json_values import NonStandardJSONError, refuse_json_constant


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


def _nests_deeper_than(value: Any, limit: int) -> bool:
    # Iterative: this check must not itself be the recursion it prevents.
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth == limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _is_json_media_type(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadRequestError("A number in the body is too large to represent.")
    return value


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        # Python refuses to convert integers longer than sys.get_int_max_str_digits()
        # (4300 by default, against quadratic-time conversion); that is the
        # client's mistake, not the server's.
        raise BadRequestError("A number in the body has too many digits to read.") from None


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadRequestError(
                "The body has an object with a duplicate key; each name must appear once."
            )
        result[key] = value
    return result


def read_json_body(request: Request) -> Any:
    """Return the request body parsed as JSON.

    Rules: the ``Content-Type`` must be ``application/json`` or a
    ``+json`` type (415 otherwise); the body must be UTF-8 (a BOM is
    tolerated), at most ``MAX_CONTENT_LENGTH`` bytes (413, raised by
    Werkzeug) and one JSON value without NaN, Infinity, out-of-range numbers,
    integers of more than 4300 digits, duplicate keys or arrays/objects
    nested more than :data:`MAX_BODY_NESTING` levels (400).

    Raises:
        UnsupportedMediaTypeError: not a JSON media type.
        BadRequestError: empty, not UTF-8, not JSON, or non-standard JSON.
        werkzeug.exceptions.RequestEntityTooLarge: body over the limit.
    """
    if not _is_json_media_type(request.mimetype):
        raise UnsupportedMediaTypeError(
            "Send the body as JSON with 'Content-Type: application/json'"
            + (f" (got '{request.mimetype}')." if request.mimetype else " (no Content-Type was sent).")
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError("JSON bodies must be UTF-8 encoded (RFC 8259 section 8.1).")
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
        raise BadRequestError(f"{exc}.") from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"The body is not valid JSON: {exc.msg.removesuffix(' at')} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except RecursionError:
        raise BadRequestError(_TOO_DEEP) from None
    if _nests_deeper_than(value, MAX_BODY_NESTING):
        raise BadRequestError(_TOO_DEEP)
    return value


def refuse_body(request: Request) -> None:
    """Refuse a request that sends a body to an operation that takes none
    (``/start``, ``/requeue``): the body is not read, and anything it might
    have meant -- a result sent to the wrong path -- is not silently dropped.

    A body is sent when ``Content-Length`` is above 0 or the body is chunked
    (``Transfer-Encoding``); an empty JSON ``Content-Type`` with no body is fine.

    Raises:
        UnsupportedMediaTypeError: (HTTP 415) a body was sent.
    """
    if (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding"):
        raise UnsupportedMediaTypeError("This operation takes no body; send the request without one.")
