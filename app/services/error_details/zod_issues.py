"""Adapter for zod validation issues (the ``zod`` format), zod 3 and zod 4.

A worker that validates with zod sends ``error.issues`` of the ``ZodError``
that ``schema.safeParse(document)`` returned -- an array of issues::

    {"code": "too_big", "path": ["entities", 0, "confidence"],
     "message": "Number must be less than or equal to 1",
     "maximum": 1, "inclusive": true, "type": "number"}        # zod 3
    {"code": "too_big", "path": ["entities", 0, "confidence"],
     "message": "Too big: expected number to be <=1",
     "maximum": 1, "inclusive": true, "origin": "number"}      # zod 4

zod 3's ``JSON.stringify(error)`` (``{"issues": [...], "name": "ZodError"}``)
is accepted too; zod 4's is not (it holds the issues as a string), so send
``error.issues``.

Item: ``code`` ``zod.<issue code>``, ``rule`` the issue code, severity
``error``, ``pointer`` from ``path``. An ``unrecognized_keys`` issue gives
one item per key, pointing at it. ``ctx`` keeps the issue's schema
parameters (``expected``, ``minimum``, ``maximum``, ``inclusive``,
``exact``, ``type``/``origin``, ``validation``/``format``, ``pattern``,
``multipleOf``/``divisor``, ``discriminator``, ``prefix``/``suffix``/
``includes``) when they are scalars, and zod 3's ``received`` when it is one
of zod's type names.

Privacy: zod's messages quote the value in places (zod 3's
``invalid_enum_value``: "received 'abc'"), so every message is rebuilt from
the issue code and its parameters; ``received`` of ``invalid_literal`` /
``invalid_enum_value``, ``input`` (zod 4's ``reportInput``), ``keys`` (in the
pointer instead), ``key`` of ``invalid_element``, and the nested issues of
unions are never read. A missing property (zod 3: ``received:
"undefined"``; zod 4: the message ends in "received undefined") is "is
required". A ``custom`` issue (``refine``/``superRefine``/``addIssue``) keeps
its message and scalar ``params``: they are the worker's own words, which,
as for ``normalized`` items, must not hold document text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError, check_each
from app.services.error_details.items import is_scalar, make_item, require_path, require_string
from app.services.error_details.schema_wording import (
    REQUIRED_PROPERTY,
    UNKNOWN_PROPERTY,
    schema_keyword_message,
)
from app.services.json_pointer import json_pointer

#: The keys that mark a zod issue.
ZOD_MARKERS = ("code", "path", "message")

# Scalar parameters copied to ctx.
_CTX_KEYS = (
    "expected", "minimum", "maximum", "inclusive", "exact", "type", "origin", "validation", "format",
    "pattern", "multipleOf", "divisor", "discriminator", "prefix", "suffix", "includes", "position",
)  # fmt: skip

# zod 3's ZodParsedType names: the only values of `received` kept.
_TYPE_NAMES = frozenset(
    {
        "string", "nan", "number", "integer", "float", "boolean", "date", "bigint", "symbol",
        "function", "undefined", "null", "array", "object", "unknown", "promise", "void", "never",
        "map", "set",
    }
)  # fmt: skip

_FIXED_MESSAGES = {
    "invalid_union": "does not match any of the allowed shapes",
    "invalid_intersection_types": "does not match every part of the intersection",
    "invalid_arguments": "has invalid function arguments",
    "invalid_return_type": "has an invalid function return value",
    "invalid_date": "is not a valid date",
    "not_finite": "must be a finite number",
    "invalid_element": "has an element that is not valid",
    "invalid_key": "property name is not valid",
}

_FORMAT_NAMES = {"datetime": "date-time", "date": "date", "time": "time", "email": "e-mail address"}

_UNDEFINED_RECEIVED = re.compile(r"received undefined\s*$")


def zod_items(issues: Any) -> list[dict[str, Any]]:
    """Turn zod 3 or zod 4 issues into items, in order.

    Args:
        issues: ``error.issues`` (an array), or zod 3's serialised
            ``{"issues": [...], "name"?: "ZodError"}``.

    Returns:
        Raw items (see the module docstring).

    Raises:
        InvalidErrorDetailsError: not an array or such an object (``""``); an
            issue not an object (``/N``, under ``/issues`` for the object);
            ``code`` missing or blank; ``path`` missing or not an array of
            strings and integers; ``message`` not a string; ``keys`` of
            ``unrecognized_keys`` not an array of strings.
    """
    prefix = ""
    if isinstance(issues, Mapping) and isinstance(issues.get("issues"), (list, tuple)):
        issues, prefix = issues["issues"], "/issues"
    if not isinstance(issues, (list, tuple)):
        raise InvalidErrorDetailsError("", "must be the array of a ZodError's issues (error.issues)")
    return [item for items in check_each(issues, _issue_items, prefix) for item in items]


def _issue_items(issue: Any, pointer: str) -> list[dict[str, Any]]:
    if not isinstance(issue, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be a zod issue object")
    code = require_string(issue, "code", pointer)
    if "path" not in issue:
        raise InvalidErrorDetailsError(f"{pointer}/path", "is required")
    path = require_path(issue["path"], f"{pointer}/path", "path")
    message = issue.get("message")
    if message is not None and not isinstance(message, str):
        raise InvalidErrorDetailsError(f"{pointer}/message", "must be a string")

    if code == "unrecognized_keys":
        keys = issue.get("keys")
        if not isinstance(keys, (list, tuple)) or not all(isinstance(key, str) for key in keys):
            raise InvalidErrorDetailsError(f"{pointer}/keys", "must be an array of strings")
        return [
            make_item("zod.unrecognized_keys", "error", UNKNOWN_PROPERTY, json_pointer([*path, key]),
                      rule=code)
            for key in keys
        ]  # fmt: skip

    ctx = {key: issue[key] for key in _CTX_KEYS if key in issue and is_scalar(issue[key])}
    if isinstance(issue.get("validation"), Mapping):
        # zod 3: {"startsWith": "ab"}, {"includes": "x", "position"?: n} ...
        ctx.update((key, value) for key, value in issue["validation"].items() if is_scalar(value))
    received = issue.get("received")
    if code == "invalid_type" and received in _TYPE_NAMES:
        ctx["received"] = received
    missing = code == "invalid_type" and (
        received == "undefined" or (received is None and _UNDEFINED_RECEIVED.search(message or ""))
    )
    if missing:
        ctx["received"] = "undefined"
        text = REQUIRED_PROPERTY
    elif code == "custom":
        params = issue.get("params")
        if isinstance(params, Mapping):
            ctx.update((k, v) for k, v in params.items() if isinstance(k, str) and is_scalar(v))
        text = message.strip() if message and message.strip() else "failed a custom check"
    else:
        text = _message(code, issue)
    return [make_item(f"zod.{code}", "error", text, json_pointer(path), rule=code, ctx=ctx)]


def _message(code: str, issue: Mapping[str, Any]) -> str:
    nested = issue.get("issues")
    first = nested[0] if isinstance(nested, (list, tuple)) and nested else None
    if code == "invalid_key" and isinstance(first, Mapping):
        # zod 4: the key's own issue, e.g. too_big on a record key's length.
        inner = first
        if isinstance(inner.get("code"), str) and inner["code"] not in ("custom", "invalid_key"):
            return "property name " + _message(inner["code"], inner)
    if code in _FIXED_MESSAGES:
        options = issue.get("options")
        if code == "invalid_union" and _scalars(options):
            return "has an unknown discriminator value; " + schema_keyword_message("enum", options)
        return _FIXED_MESSAGES[code]
    if code == "invalid_type":
        expected = issue.get("expected")
        return f"must be {expected}" if isinstance(expected, str) else "is not of the expected type"
    if code == "invalid_literal":
        if "expected" in issue:
            return schema_keyword_message("const", issue["expected"])
        return "is not the required value"
    if code in ("invalid_enum_value", "invalid_union_discriminator", "invalid_value"):
        values = issue.get("options", issue.get("values"))
        if _scalars(values):
            if code == "invalid_value" and len(values) == 1:
                return schema_keyword_message("const", values[0])
            return schema_keyword_message("enum", values)
        return "is not one of the allowed values"
    if code in ("invalid_string", "invalid_format"):
        return _format_message(issue)
    if code in ("too_small", "too_big"):
        return _size_message(code, issue)
    if code == "not_multiple_of":
        step = issue.get("multipleOf", issue.get("divisor"))
        if is_scalar(step):
            return schema_keyword_message("multipleOf", step)
        return "is not a multiple of the required number"
    return f"failed the zod check '{code}'"


def _format_message(issue: Mapping[str, Any]) -> str:
    kind = issue.get("validation", issue.get("format"))
    if isinstance(kind, Mapping):  # zod 3: {"startsWith": ...}
        for key, template in (("startsWith", "must start with {}"), ("endsWith", "must end with {}"),
                              ("includes", "must include {}")):
            if isinstance(kind.get(key), str):
                return template.format(json.dumps(kind[key], ensure_ascii=False))
        return "is not in the required format"
    for key, template in (("prefix", "must start with {}"), ("suffix", "must end with {}"),
                          ("includes", "must include {}")):
        if isinstance(issue.get(key), str):
            return template.format(json.dumps(issue[key], ensure_ascii=False))
    if kind == "regex":
        pattern = issue.get("pattern")
        if isinstance(pattern, str):
            return f"does not match the pattern {pattern}"
        return "does not match the required pattern"
    if isinstance(kind, str):
        return f"is not a valid {_FORMAT_NAMES.get(kind, kind)}"
    return "is not in the required format"


def _size_message(code: str, issue: Mapping[str, Any]) -> str:
    small = code == "too_small"
    bound = issue.get("minimum" if small else "maximum")
    kind = issue.get("type", issue.get("origin"))
    if not is_scalar(bound) or bound is None or isinstance(bound, bool):
        return "is too small" if small else "is too big"
    if issue.get("exact"):
        unit = {"string": " character(s) long", "array": " item(s)", "set": " item(s)"}.get(kind, "")
        verb = "must be exactly" if kind not in ("array", "set") else "must have exactly"
        return f"{verb} {json.dumps(bound)}{unit}"
    inclusive = issue.get("inclusive", True) is not False
    if kind == "string":
        keyword = "minLength" if small else "maxLength"
        return schema_keyword_message(keyword, bound if inclusive else bound + (1 if small else -1))
    if kind in ("array", "set"):
        keyword = "minItems" if small else "maxItems"
        return schema_keyword_message(keyword, bound if inclusive else bound + (1 if small else -1))
    if small:
        return schema_keyword_message("minimum" if inclusive else "exclusiveMinimum", bound)
    return schema_keyword_message("maximum" if inclusive else "exclusiveMaximum", bound)


def _scalars(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and bool(values) and all(is_scalar(value) for value in values)
