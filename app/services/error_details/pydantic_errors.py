"""Adapter for pydantic v2 validation errors (the ``pydantic`` format).

Payload: the list of ``ValidationError.errors()``. Both shapes are accepted:

* ``json.loads(exc.json())`` -- what a worker should send: ``loc`` is an
  array, ``ctx`` holds JSON values only, ``input`` and ``url`` are included;
* ``exc.errors(include_url=False, include_input=False)`` -- ``loc`` a tuple,
  ``ctx`` possibly holding Python objects (``{"error": ValueError(...)}``),
  when called in-process.

Each element is ``{"type": str, "loc": [str | int, ...], "msg": str,
"input"?, "ctx"?: {...}, "url"?}``; other keys are ignored. An item gets
``code`` ``pydantic.<type>``, ``rule`` ``<type>``, severity ``error``,
``pointer`` built from ``loc`` (every element is a token, so for unions the
member tag pydantic adds to ``loc`` -- e.g. ``"Condition"`` or ``"int"`` --
appears in the pointer too).

Privacy: ``input`` and ``url`` are never read. ``msg`` is kept only for the
pydantic-core error types whose message template is filled from schema
parameters alone (:data:`TEMPLATED_TYPES`). Types whose message includes text
derived from the input -- ``value_error``/``assertion_error`` (the text of a
custom validator's exception, which often formats the value), parser errors
(``{error}``), ``union_tag_invalid`` (the input's tag) -- get a message
rebuilt from the type (:data:`REBUILT_MESSAGES`); types pydantic-core does not
define (``PydanticCustomError``) get a generic one and no ``ctx``. Of ``ctx``
only scalar values are kept, never ``error``, ``tag``, ``encoding_error`` or
``tz_actual``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError, check_each
from app.services.error_details.items import (
    make_item,
    require_path,
    require_string,
    scalar_ctx,
)
from app.services.json_pointer import json_pointer

# pydantic-core 2.50 error types (core_schema.ErrorType) whose message template
# uses schema parameters only (class names, limits, patterns, expected values).
# A test compares this with the installed pydantic-core, so a new type is
# classified deliberately when pydantic is upgraded.
TEMPLATED_TYPES = frozenset(
    {
        "no_such_attribute", "json_type", "needs_python_object", "recursion_loop",
        "recursion_depth_exceeded", "missing", "frozen_field", "frozen_instance", "extra_forbidden",
        "invalid_key", "model_type", "model_attributes_type", "dataclass_type", "dataclass_exact_type",
        "named_tuple_type", "default_factory_not_called", "none_required", "greater_than",
        "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "finite_number", "too_short",
        "too_long", "iterable_type", "string_type", "string_unicode", "string_too_short",
        "string_too_long", "string_pattern_mismatch", "string_not_ascii", "enum", "dict_type",
        "frozen_dict_type", "ordered_dict_type", "counter_type", "list_type", "deque_type", "tuple_type",
        "set_type", "set_item_not_hashable", "bool_type", "bool_parsing", "int_type", "int_parsing",
        "int_parsing_size", "int_from_float", "float_type", "float_parsing", "bytes_type",
        "bytes_too_short", "bytes_too_long", "literal_error", "missing_sentinel_error",
        "ellipsis_error", "date_type", "date_from_datetime_inexact", "date_past", "date_future",
        "time_type", "datetime_type", "datetime_past", "datetime_future", "timezone_naive",
        "timezone_aware", "time_delta_type", "frozen_set_type", "is_instance_of", "is_subclass_of",
        "callable_type", "union_tag_not_found", "arguments_type", "missing_argument",
        "unexpected_keyword_argument", "missing_keyword_only_argument", "unexpected_positional_argument",
        "missing_positional_only_argument", "multiple_argument_values", "url_type", "url_too_long",
        "url_scheme", "uuid_type", "uuid_version", "decimal_type", "decimal_parsing",
        "decimal_max_digits", "decimal_max_places", "decimal_whole_digits", "fraction_type",
        "fraction_parsing", "complex_type", "complex_str_parsing",
    }
)  # fmt: skip

# pydantic-core error types whose message carries input-derived text, with the
# message used instead: pydantic's template without the input-derived part.
# A tuple is (template over safe ctx values, message when they are missing).
REBUILT_MESSAGES: dict[str, str | tuple[str, str]] = {
    "value_error": "Value error: a custom validator rejected the input",
    "assertion_error": "Assertion failed: a custom validator rejected the input",
    "json_invalid": "Invalid JSON",
    "get_attribute_error": "Error extracting attribute",
    "mapping_type": "Input should be a valid mapping",
    "iteration_error": "Error iterating over object",
    "date_parsing": "Input should be a valid date in the format YYYY-MM-DD",
    "date_from_datetime_parsing": "Input should be a valid date or datetime",
    "time_parsing": "Input should be in a valid time format",
    "datetime_parsing": "Input should be a valid datetime",
    "datetime_object_invalid": "Invalid datetime object",
    "datetime_from_date_parsing": "Input should be a valid datetime or date",
    "time_delta_parsing": "Input should be a valid timedelta",
    "url_parsing": "Input should be a valid URL",
    "url_syntax_violation": "Input violated strict URL syntax rules",
    "uuid_parsing": "Input should be a valid UUID",
    "union_tag_invalid": (
        "Input tag found using {discriminator} does not match any of the expected tags: {expected_tags}",
        "Input tag does not match any of the expected tags",
    ),
    "bytes_invalid_encoding": ("Data should be valid {encoding}", "Data should be validly encoded"),
    "timezone_offset": ("Timezone offset of {tz_expected} required", "Input has the wrong timezone offset"),
}

# ctx entries holding input-derived text or values.
_UNSAFE_CTX_KEYS = ("error", "tag", "encoding_error", "tz_actual")


def pydantic_items(errors: Any) -> list[dict[str, Any]]:
    """Turn pydantic v2 ``ValidationError.errors()`` into items, in order.

    Args:
        errors: the list described in the module docstring.

    Returns:
        Raw items ``{"code": "pydantic.<type>", "severity": "error",
        "message", "pointer", "rule": "<type>", "ctx"?}``.

    Raises:
        InvalidErrorDetailsError: ``errors`` is not an array (pointer ``""``);
            an element is not an object (``/N``); ``type``/``msg`` missing or
            not a non-blank string (``/N/type``, ``/N/msg``); ``loc`` missing
            or not an array of strings and integers (``/N/loc[/M]``); ``ctx``
            present but not an object (``/N/ctx``).
    """
    if not isinstance(errors, (list, tuple)):
        raise InvalidErrorDetailsError("", "must be an array of pydantic error objects")
    return check_each(errors, _error_item, "")


def _error_item(error: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(error, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be a pydantic error object")
    error_type = require_string(error, "type", pointer)
    msg = require_string(error, "msg", pointer)
    if "loc" not in error:
        raise InvalidErrorDetailsError(f"{pointer}/loc", "is required")
    loc = require_path(error["loc"], f"{pointer}/loc", "loc")
    raw_ctx = error.get("ctx")
    if raw_ctx is not None and not isinstance(raw_ctx, Mapping):
        raise InvalidErrorDetailsError(f"{pointer}/ctx", "must be an object")
    ctx = scalar_ctx(raw_ctx, drop=_UNSAFE_CTX_KEYS)
    if error_type in TEMPLATED_TYPES:
        message = msg
    elif error_type in REBUILT_MESSAGES:
        message = _rebuilt_message(REBUILT_MESSAGES[error_type], ctx)
    else:
        # PydanticCustomError: its template and ctx are the application's
        # own and may well hold the value; keep only the type name.
        message = f"failed the custom check '{error_type}'"
        ctx = {}
    return make_item(f"pydantic.{error_type}", "error", message, json_pointer(loc), rule=error_type, ctx=ctx)


def _rebuilt_message(entry: str | tuple[str, str], ctx: Mapping[str, Any]) -> str:
    if isinstance(entry, str):
        return entry
    template, fallback = entry
    try:
        return template.format_map({key: value for key, value in ctx.items() if value is not None})
    except (KeyError, ValueError, IndexError):
        return fallback
