"""One English wording for failed JSON Schema keywords.

Three places describe a failed keyword: the API's check of request bodies
against the OpenAPI schemas (``app/api/contract.py``), the error-details
adapters that rebuild a worker's jsonschema errors
(``jsonschema_errors.py``, ``jsonschema_basic.py``) and the reference
worker's own validation (``app/worker/validation.py``). They used to word
the same keyword three ways ("must be at least 3" / "must be >= 3",
"characters" / "character(s)"), so one failure read differently on the
API's 422 and on the dashboard. They all call :func:`schema_keyword_message`.

Privacy rule: a message is built from the keyword and its value in the
schema, never from the instance (which may be patient text).

Where the old copies disagreed, the API's wording was kept when an API test
pinned it or when no test pinned either ("must be object", "must be at
least 3", "must have at least 3 items"); where only the adapters' tests
pinned theirs, theirs was kept ("character(s)", "is not a valid date",
"does not match the pattern ...").
"""

from __future__ import annotations

import json
from typing import Any

from app.services.error_details.items import is_scalar_array

#: Marks "the keyword's value is not known" (a JSON Schema basic-output unit,
#: or a serialised error sent without ``validator_value``), distinct from null.
UNKNOWN: Any = object()

#: A property the schema requires is absent; the pointer names the property.
REQUIRED_PROPERTY = "is required"
#: A property the schema does not declare; the pointer names the property.
UNKNOWN_PROPERTY = "is not a known field"
#: ``oneOf`` matched by several branches (python-jsonschema: no ``context``).
SEVERAL_SHAPES = "matches more than one of the allowed shapes"


def missing_property_message(name: str) -> str:
    """A ``required`` failure reported at the object (the pointer names the
    object, so the message names the property: a name from the schema)."""
    return f"missing required property '{name}'"


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

# Keywords whose message is the template filled with the value as JSON.
_LIMIT_MESSAGES = {
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
    "exclusiveMaximum": "must be less than {}",
    "multipleOf": "must be a multiple of {}",
    "minLength": "must be at least {} character(s) long",
    "maxLength": "must be at most {} character(s) long",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "minProperties": "must have at least {} property(ies)",
    "maxProperties": "must have at most {} property(ies)",
    "minContains": "must contain at least {} matching item(s)",
    "maxContains": "must contain at most {} matching item(s)",
}


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
        expected: the keyword's value in the schema, or :data:`UNKNOWN`. For
            ``format`` a caller may pass a description of the format instead
            of its name (``"calendar date (YYYY-MM-DD)"``).
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
    if keyword == "type" and (isinstance(expected, str) or is_scalar_array(expected)):
        types = [expected] if isinstance(expected, str) else [str(name) for name in expected]
        return f"must be {' or '.join(types)}"
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
                return missing_property_message(name)
        return "is missing a required property (required: " + ", ".join(names) + ")"
    if keyword in _LIMIT_MESSAGES:
        return _LIMIT_MESSAGES[keyword].format(_json(expected))
    return _VAGUE_MESSAGES.get(keyword, f"does not satisfy the schema rule '{keyword}'")


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return "(a non-JSON value)"
