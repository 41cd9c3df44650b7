"""Adapter for ajv v8 validation errors (the ``ajv`` format).

A worker in JavaScript or TypeScript that validates with ajv 8 sends
``validate.errors`` as it is: an array of ``ErrorObject``::

    {"instancePath": "/entities/0/confidence",      # RFC 6901 pointer into the document
     "schemaPath": "#/$defs/confidence/maximum",     # URI fragment of the failing keyword
     "keyword": "maximum",
     "params": {"comparison": "<=", "limit": 1},     # keyword parameters
     "message"?: "must be <= 1",                     # ignored
     "propertyName"?: "...",                         # set inside propertyNames
     "schema"?, "parentSchema"?, "data"?}            # verbose: true only; ignored

with ``allErrors`` on (every error) or off (the first one). ajv 6's
``dataPath`` is not accepted: ``instancePath`` is required.

Item: ``code`` ``schema.<keyword>`` (the codes the other JSON Schema formats
use, so one filter finds a keyword whatever the validator; ``schema.false``
for ajv's ``"false schema"``), ``rule`` the keyword, severity ``error``,
``pointer`` the ``instancePath`` -- extended by the property's name where ajv
names it: the missing property of ``required`` and ``dependentRequired``, the
extra one of ``additionalProperties`` and ``unevaluatedProperties``, the
offending name inside ``propertyNames`` -- and ``ctx`` the scalar ``params``
(``limit``, ``comparison``, ``pattern``, ``format``, ``allowedValue``...)
plus ``schema_location`` (the pointer of ``schemaPath``'s fragment; the whole
``schemaPath`` goes to ``schema_path`` when it is not a fragment).

Summaries are dropped: an ``if`` error ("must match then schema") when an
error at or below its place is reported too (the ``then``/``else`` errors
that explain it), and a ``propertyNames`` error when an error naming the same
property is reported.

Privacy: the message is rebuilt from the keyword and ``params``
(:func:`~app.services.error_details.schema_wording.schema_keyword_message`):
ajv's own messages quote no data, but ``ajv-errors`` and custom keywords can.
``data`` (verbose mode: the instance), ``schema``/``parentSchema`` and the
discriminator's ``tagValue`` (the instance's value) are never read; property
names appear in the pointer only, as in every pointer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError, check_each
from app.services.error_details.items import is_scalar, make_item, require_string
from app.services.error_details.schema_wording import (
    REQUIRED_PROPERTY,
    UNKNOWN,
    UNKNOWN_PROPERTY,
    schema_keyword_message,
)
from app.services.json_pointer import escape_token, is_json_pointer

#: The keys that mark an ajv v8 ``ErrorObject`` (``message`` is optional in
#: ajv: ``messages: false`` leaves it out).
AJV_MARKERS = ("instancePath", "schemaPath", "keyword", "params")

# params that name a property of the instance: moved into the pointer.
_POINTER_PARAMS = {
    "required": "missingProperty",
    "dependentRequired": "missingProperty",
    "dependencies": "missingProperty",
    "additionalProperties": "additionalProperty",
    "unevaluatedProperties": "unevaluatedProperty",
    "propertyNames": "propertyName",
}
# params never copied to ctx: instance names (in the pointer instead) and
# the discriminator's tagValue (the instance's value).
_HIDDEN_PARAMS = frozenset({"additionalProperty", "unevaluatedProperty", "propertyName", "tagValue"})

# The keyword's value in the schema, as the params carry it.
_EXPECTED_PARAM = {
    "type": "type",
    "enum": "allowedValues",
    "const": "allowedValue",
    "pattern": "pattern",
    "format": "format",
    "multipleOf": "multipleOf",
    "minimum": "limit",
    "maximum": "limit",
    "exclusiveMinimum": "limit",
    "exclusiveMaximum": "limit",
    "minLength": "limit",
    "maxLength": "limit",
    "minItems": "limit",
    "maxItems": "limit",
    "minProperties": "limit",
    "maxProperties": "limit",
}

# ajv keywords with no JSON Schema wording of their own.
_AJV_MESSAGES = {
    "if": "does not match the schema its 'if' condition selects",
    "propertyNames": "has a property name that is not allowed",
    "discriminator": "has a missing or unknown discriminator value",
    "required": REQUIRED_PROPERTY,
    "additionalProperties": UNKNOWN_PROPERTY,
    "unevaluatedProperties": UNKNOWN_PROPERTY,
}

_JSON_SCHEMA_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "pattern", "format", "multipleOf", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
        "minProperties", "maxProperties", "minContains", "maxContains", "uniqueItems", "contains",
        "items", "additionalItems", "unevaluatedItems", "prefixItems", "not", "oneOf", "anyOf", "allOf",
        "dependentRequired", "dependencies", "false",
    }
)  # fmt: skip


def ajv_items(errors: Any) -> list[dict[str, Any]]:
    """Turn ajv v8 ``ErrorObject[]`` into items, in order (summaries dropped).

    Args:
        errors: ``validate.errors`` as JSON (see the module docstring).

    Returns:
        Raw items (see the module docstring).

    Raises:
        InvalidErrorDetailsError: ``errors`` not an array (``""``); an element
            not an object (``/N``); ``keyword`` missing or blank
            (``/N/keyword``); ``instancePath`` missing or not an RFC 6901
            pointer (``/N/instancePath``); ``schemaPath`` missing or not a
            string (``/N/schemaPath``); ``params`` missing or not an object
            (``/N/params``); ``propertyName`` present but not a string.
    """
    if not isinstance(errors, (list, tuple)):
        raise InvalidErrorDetailsError("", "must be an array of ajv error objects (validate.errors)")
    checked = check_each(errors, _check_error, "")
    is_summary = _summary_test(checked)
    return [_item(error) for error in checked if not is_summary(error)]


def _check_error(error: Any, pointer: str) -> Mapping[str, Any]:
    if not isinstance(error, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be an ajv error object")
    require_string(error, "keyword", pointer)
    if "instancePath" not in error:
        raise InvalidErrorDetailsError(
            f"{pointer}/instancePath", "is required (ajv 8; ajv 6's dataPath is not read)"
        )
    if not is_json_pointer(error["instancePath"]):
        raise InvalidErrorDetailsError(f"{pointer}/instancePath", "must be an RFC 6901 JSON Pointer")
    if not isinstance(error.get("schemaPath"), str):
        raise InvalidErrorDetailsError(f"{pointer}/schemaPath", "must be a string")
    if not isinstance(error.get("params"), Mapping):
        raise InvalidErrorDetailsError(f"{pointer}/params", "must be an object")
    if "propertyName" in error and not isinstance(error["propertyName"], str):
        raise InvalidErrorDetailsError(f"{pointer}/propertyName", "must be a string")
    return error


def _summary_test(errors: list[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], bool]:
    """Whether an error of ``errors`` only sums up others: an ``if`` with
    another keyword's error at its place or below it, a ``propertyNames``
    with an error of the name it reports at its place.

    Built in one pass (each path's ancestors, each name's places): comparing
    every error with every other took 30 s for a 1 MB report of ``if`` errors.
    """
    below: set[str] = set()  # the places of the errors that are not "if", and their ancestors
    named: Counter[tuple[Any, str]] = Counter()  # (propertyName, place) of the errors that carry one
    for other in errors:
        if "propertyName" in other:
            named[(other["propertyName"], other["instancePath"])] += 1
        if other["keyword"] != "if":
            place = other["instancePath"]
            while place not in below:
                below.add(place)
                if not place:
                    break
                place = place.rsplit("/", 1)[0]

    def is_summary(error: Mapping[str, Any]) -> bool:
        keyword, place = error["keyword"], error["instancePath"]
        if keyword == "if":
            return place in below
        if keyword == "propertyNames":
            name = error["params"].get("propertyName")
            itself = "propertyName" in error and error["propertyName"] == name
            return named[(name, place)] - itself > 0
        return False

    return is_summary


def _item(error: Mapping[str, Any]) -> dict[str, Any]:
    keyword = "false" if error["keyword"] == "false schema" else error["keyword"]
    params = error["params"]
    pointer = error["instancePath"]
    property_name = error.get("propertyName")
    named = params.get(_POINTER_PARAMS.get(keyword, ""))
    if property_name is not None:
        pointer += "/" + escape_token(property_name)
    elif isinstance(named, str):
        pointer += "/" + escape_token(named)

    custom = keyword not in _JSON_SCHEMA_KEYWORDS and keyword not in _AJV_MESSAGES
    ctx: dict[str, Any] = {
        key: value
        for key, value in params.items()
        if not custom and key not in _HIDDEN_PARAMS and is_scalar(value)
    }
    schema_path = error["schemaPath"]
    if schema_path.startswith("#") and is_json_pointer(schema_path[1:]):
        ctx["schema_location"] = schema_path[1:]
    else:
        ctx["schema_path"] = schema_path

    return make_item(
        f"schema.{keyword}", "error", _message(keyword, params, property_name is not None), pointer,
        rule=keyword, ctx=ctx,
    )


def _message(keyword: str, params: Mapping[str, Any], about_name: bool) -> str:
    if keyword in ("dependentRequired", "dependencies") and isinstance(params.get("property"), str):
        return f"is required when property '{params['property']}' is present"
    if keyword in _AJV_MESSAGES:
        return _AJV_MESSAGES[keyword]
    if keyword not in _JSON_SCHEMA_KEYWORDS:
        # A custom keyword (ajv.addKeyword): its params are the application's
        # own and may hold the value, so neither they nor its message are used.
        return f"failed the custom check '{keyword}'"
    expected = params.get(_EXPECTED_PARAM.get(keyword, ""), UNKNOWN)
    if keyword == "contains":
        for bound in ("minContains", "maxContains"):
            if bound in params:
                return schema_keyword_message(bound, params[bound])
    return schema_keyword_message(keyword, expected, property_name=about_name)
