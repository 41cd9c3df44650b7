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
(:func:`schema_keyword_message`), as ``app/worker/validation.py`` does.

Item: ``code`` ``schema.<validator>``, ``rule`` ``<validator>``, severity
``error``, ``pointer`` from ``path``, ``ctx`` ``{"schema_location": pointer
from schema_path, "expected"?: validator_value}`` (``expected`` for
parameter keywords such as ``maxLength`` or ``pattern``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError
from app.services.error_details.items import (
    is_path_token,
    is_scalar,
    make_item,
    require_path,
    require_string,
)
from app.services.json_pointer import json_pointer

# Marks "validator_value not sent", distinct from a sent null.
UNKNOWN: Any = object()

# Keywords whose value is a parameter worth keeping in ctx.expected.
_PARAMETER_KEYWORDS = frozenset(
    {
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minLength", "maxLength", "pattern", "format", "const",
        "minItems", "maxItems", "minContains", "maxContains", "minProperties", "maxProperties",
    }
)  # fmt: skip

_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}

# Messages that need no value, also used when the value is unknown.
_FIXED_MESSAGES = {
    "additionalProperties": "has a property that is not allowed here",
    "unevaluatedProperties": "has a property that is not allowed here",
    "additionalItems": "has more items than allowed",
    "unevaluatedItems": "has more items than allowed",
    "items": "has more items than allowed",
    "uniqueItems": "must not contain duplicate items",
    "contains": "does not contain an item matching the schema",
    "not": "must not match the schema under 'not'",
    "oneOf": "does not match exactly one of the allowed shapes",
    "anyOf": "does not match any of the allowed shapes",
    "dependentRequired": "is missing a property that another property requires",
    "false": "is not allowed here",
}

# Messages for a known keyword whose value was not sent.
_VAGUE_MESSAGES = {
    "type": "is not of the expected type",
    "enum": "is not one of the allowed values",
    "const": "is not the required value",
    "format": "is not in the required format",
    "pattern": "does not match the required pattern",
    "required": "is missing a required property",
    "minimum": "is below the minimum",
    "maximum": "is above the maximum",
    "exclusiveMinimum": "is below the minimum",
    "exclusiveMaximum": "is above the maximum",
    "multipleOf": "is not a multiple of the required number",
    "minLength": "is too short",
    "maxLength": "is too long",
    "minItems": "has too few items",
    "maxItems": "has too many items",
    "minProperties": "has too few properties",
    "maxProperties": "has too many properties",
    "minContains": "has too few matching items",
    "maxContains": "has too many matching items",
}


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
    if error.validator is not None and (is_scalar(value) or _is_scalar_array(value)):
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
    items = []
    for index, error in enumerate(errors):
        pointer = f"/{index}"
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
        items.append(make_item(f"schema.{keyword}", "error", text, json_pointer(path), rule=keyword, ctx=ctx))
    return items


def schema_keyword_message(
    keyword: str,
    expected: Any = UNKNOWN,
    *,
    property_name: bool = False,
    library_message: str | None = None,
) -> str:
    """Describe a failed JSON Schema keyword without quoting the instance.

    Args:
        keyword: the keyword (``"type"``, ``"maxLength"``...; ``"false"`` for
            a ``false`` subschema).
        expected: the keyword's value in the schema, or :data:`UNKNOWN`.
        property_name: the keyword applied to a property *name*
            (``propertyNames``), so the message says so.
        library_message: python-jsonschema's message, used only to find which
            of the ``required`` names is missing: a name is quoted only when
            the message is exactly ``"'<name>' is a required property"`` for
            a name listed in ``expected`` (schema text, never the instance).

    Returns:
        A short English message such as ``"must be at most 3 character(s)
        long"``; with ``expected`` unknown, a vaguer one (``"is too long"``).
    """
    message = _keyword_message(keyword, expected, library_message)
    return f"property name {message}" if property_name else message


def _keyword_message(keyword: str, expected: Any, library_message: str | None) -> str:
    if keyword in _FIXED_MESSAGES:
        return _FIXED_MESSAGES[keyword]
    if expected is UNKNOWN:
        return _VAGUE_MESSAGES.get(keyword, f"does not satisfy the schema rule '{keyword}'")
    if keyword == "type" and (isinstance(expected, str) or _is_scalar_array(expected)):
        types = [expected] if isinstance(expected, str) else [str(name) for name in expected]
        return f"must be of type {' or '.join(types)}"
    if keyword == "enum" and isinstance(expected, (list, tuple)):
        return "must be one of: " + ", ".join(_json(value) for value in expected)
    if keyword == "const":
        return f"must be {_json(expected)}"
    if keyword == "format":
        return f"is not a valid {expected}"
    if keyword == "pattern":
        return f"does not match the pattern {expected}"
    if keyword == "required" and isinstance(expected, (list, tuple)):
        names = [name for name in expected if isinstance(name, str)]
        for name in names:
            if library_message == f"{name!r} is a required property":
                return f"missing required property '{name}'"
        return "is missing a required property (required: " + ", ".join(names) + ")"
    if keyword in _BOUNDS:
        return f"must be {_BOUNDS[keyword]} {_json(expected)}"
    if keyword == "multipleOf":
        return f"must be a multiple of {_json(expected)}"
    simple_limits = {
        "minLength": "must be at least {} character(s) long",
        "maxLength": "must be at most {} character(s) long",
        "minItems": "must have at least {} item(s)",
        "maxItems": "must have at most {} item(s)",
        "minProperties": "must have at least {} property(ies)",
        "maxProperties": "must have at most {} property(ies)",
        "minContains": "must contain at least {} matching item(s)",
        "maxContains": "must contain at most {} matching item(s)",
    }
    if keyword in simple_limits:
        return simple_limits[keyword].format(_json(expected))
    return _VAGUE_MESSAGES.get(keyword, f"does not satisfy the schema rule '{keyword}'")


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return "(a non-JSON value)"


def _is_scalar_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(is_scalar(element) for element in value)


def _token(token: Any) -> str | int:
    return token if is_path_token(token) else str(token)
