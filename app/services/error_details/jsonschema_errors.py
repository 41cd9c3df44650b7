"""Adapter for python-jsonschema validation errors (the ``jsonschema`` format).

A ``jsonschema.exceptions.ValidationError`` is a Python object; a worker sends
each one as this JSON object (:func:`jsonschema_error_to_json` builds it)::

    {
      "message": str,               # error.message -- ignored by the server
      "validator": str,             # error.validator, the failing keyword
                                    # ("false" for a `false` subschema)
      "validator_value": any?,      # error.validator_value when it is a JSON
                                    # scalar or an array of scalars
      "path": [str | int, ...],     # list(error.absolute_path)
      "schema_path": [str | int, ...]  # list(error.absolute_schema_path)
    }

and the payload is an array of them (e.g. one per ``iter_errors`` result).
``message`` is optional and never used: python-jsonschema's messages quote the
instance (``"'Jane Doe' is not of type 'integer'"``), which may be patient
text. An item's message is rebuilt from ``validator`` and ``validator_value``
(:func:`~app.services.error_details.schema_wording.schema_keyword_message`,
the wording the API and ``app/worker/validation.py`` use too).

Item: ``code`` ``schema.<validator>``, ``rule`` ``<validator>``, severity
``error``, ``pointer`` from ``path``, ``ctx`` ``{"schema_location": pointer
from schema_path, "expected"?: validator_value}`` (``expected`` for
parameter keywords such as ``maxLength`` or ``pattern``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError, check_each
from app.services.error_details.items import (
    is_path_token,
    is_scalar,
    is_scalar_array,
    make_item,
    require_path,
    require_string,
)
from app.services.error_details.schema_wording import UNKNOWN, schema_keyword_message
from app.services.json_pointer import json_pointer

# Keywords whose value is a parameter worth keeping in ctx.expected.
_PARAMETER_KEYWORDS = frozenset(
    {
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minLength", "maxLength", "pattern", "format", "const",
        "minItems", "maxItems", "minContains", "maxContains", "minProperties", "maxProperties",
    }
)  # fmt: skip


def jsonschema_error_to_json(error: Any) -> dict[str, Any]:
    """Serialise a python-jsonschema ``ValidationError`` for the ``jsonschema`` format.

    For a worker: ``[jsonschema_error_to_json(e) for e in validator.iter_errors(doc)]``
    is a payload for ``error_format="jsonschema"``. Nested errors of
    ``oneOf``/``anyOf`` (``error.context``) are not included; send the ones
    meant (e.g. those of ``jsonschema.exceptions.best_match``) as errors of their own.

    Args:
        error: a ``jsonschema.exceptions.ValidationError`` (duck-typed:
            ``message``, ``validator``, ``validator_value``,
            ``absolute_path``, ``absolute_schema_path``).

    Returns:
        The object described in the module docstring. ``validator_value`` is
        left out when it is a subschema or another object (large, and not
        needed for the message); ``validator`` is ``"false"`` for an error of
        a ``false`` subschema (python-jsonschema gives ``None``).
    """
    keyword = "false" if error.validator is None else str(error.validator)
    serialised: dict[str, Any] = {
        "message": str(error.message),
        "validator": keyword,
        "path": [_token(token) for token in error.absolute_path],
        "schema_path": [_token(token) for token in error.absolute_schema_path],
    }
    value = error.validator_value
    if error.validator is not None and (is_scalar(value) or is_scalar_array(value)):
        serialised["validator_value"] = list(value) if isinstance(value, (list, tuple)) else value
    return serialised


def jsonschema_items(errors: Any) -> list[dict[str, Any]]:
    """Turn serialised python-jsonschema errors into items, in order.

    Args:
        errors: an array of the objects described in the module docstring.

    Returns:
        Raw items (see the module docstring).

    Raises:
        InvalidErrorDetailsError: ``errors`` not an array (``""``); an element
            not an object (``/N``); ``validator`` missing or blank
            (``/N/validator``); ``path``/``schema_path`` missing or not arrays
            of strings and integers (``/N/path[/M]``, ``/N/schema_path[/M]``);
            ``message`` present but not a string (``/N/message``).
    """
    if not isinstance(errors, (list, tuple)):
        raise InvalidErrorDetailsError("", "must be an array of serialised jsonschema errors")
    return check_each(errors, _error_item, "")


def _error_item(error: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(error, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be a serialised jsonschema error object")
    keyword = require_string(error, "validator", pointer)
    for key in ("path", "schema_path"):
        if key not in error:
            raise InvalidErrorDetailsError(f"{pointer}/{key}", "is required")
    path = require_path(error["path"], f"{pointer}/path", "path")
    schema_path = require_path(error["schema_path"], f"{pointer}/schema_path", "schema_path")
    message = error.get("message")
    if message is not None and not isinstance(message, str):
        raise InvalidErrorDetailsError(f"{pointer}/message", "must be a string")
    expected = error.get("validator_value", UNKNOWN)
    text = schema_keyword_message(
        keyword,
        expected,
        property_name="propertyNames" in schema_path,
        library_message=message,
    )
    ctx: dict[str, Any] = {"schema_location": json_pointer(schema_path)}
    if keyword in _PARAMETER_KEYWORDS and expected is not UNKNOWN and is_scalar(expected):
        ctx["expected"] = expected
    return make_item(f"schema.{keyword}", "error", text, json_pointer(path), rule=keyword, ctx=ctx)


def _token(token: Any) -> str | int:
    return token if is_path_token(token) else str(token)
