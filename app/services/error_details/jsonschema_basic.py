"""Adapters for JSON Schema output formats: "basic" (the ``jsonschema-basic``
format), "detailed" and "verbose" (``jsonschema-detailed``,
``jsonschema-verbose``).

JSON Schema draft 2020-12 core, section 12.4.2 ("Basic"): a flat list of
output units::

    {"valid": false,
     "errors": [{"keywordLocation": "/properties/dose/$ref/minimum",
                 "absoluteKeywordLocation"?: "https://example.com/s#/$defs/q/minimum",
                 "instanceLocation": "/dose",
                 "error": "..."}]}

(jschon produces it with ``schema.evaluate(JSON(doc)).output("basic")``.)

Units are kept in order, except:

* *summary* units -- those whose ``keywordLocation`` is a proper ancestor of
  another unit's, such as the root unit ``""`` or ``/properties`` above
  ``/properties/dose/type`` -- say only "a subschema had errors" and are
  dropped when a more specific unit exists;
* units with ``"valid": true`` (annotations) are dropped.

Item: ``code`` ``schema.<keyword>`` with the keyword the last token of
``keywordLocation`` (the one before it when the last is an array index, as in
``/allOf/1``; ``schema.invalid`` for the root), ``rule`` the keyword,
severity ``error``, ``pointer`` = ``instanceLocation`` (already an RFC 6901
pointer), ``ctx`` ``{"schema_location": keywordLocation,
"absolute_schema_location"?: absoluteKeywordLocation}``. The unit's
``error`` is never used -- implementations are free to quote the instance
there (jschon lists unexpected property names) -- and the message is rebuilt
from the keyword alone, since the output does not carry the keyword's value.

"Detailed" and "verbose" (sections 12.4.3 and 12.4.4) are trees of the same
units: the root is a unit itself (``valid``, ``keywordLocation``,
``instanceLocation``), and a unit's failing children are in ``errors``
(verbose also lists passing ones, with ``"valid": true``, and puts
annotations in ``annotations``). :func:`hierarchical_output_items` keeps the
*leaves* of the failing part of the tree -- failing units none of whose
children fail -- in document order, and turns each into an item exactly as
a basic unit. Both formats are read the same way; they differ in what the
validator includes, not in how to read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError, check_each
from app.services.error_details.items import make_item
from app.services.error_details.schema_wording import schema_keyword_message
from app.services.json_pointer import is_json_pointer, pointer_tokens

_ARRAY_INDEX_CHARS = frozenset("0123456789")


def basic_output_items(output: Any) -> list[dict[str, Any]]:
    """Turn a JSON Schema "basic" output object into items, in order.

    Args:
        output: ``{"valid": bool, "errors"?: [unit, ...]}`` as in the module
            docstring. ``errors`` is required when ``valid`` is false.

    Returns:
        Raw items (see the module docstring); empty for a valid result.

    Raises:
        InvalidErrorDetailsError: ``output`` not an object (``""``); ``valid``
            not a boolean (``/valid``); ``errors`` missing (when not valid) or
            not an array (``/errors``); a unit not an object (``/errors/N``);
            ``keywordLocation`` or ``instanceLocation`` missing or not an RFC
            6901 pointer, ``absoluteKeywordLocation`` not a string
            (``/errors/N/<key>``).
    """
    if not isinstance(output, Mapping):
        raise InvalidErrorDetailsError("", "must be a JSON Schema output object in the basic format")
    if not isinstance(output.get("valid"), bool):
        raise InvalidErrorDetailsError("/valid", "must be a boolean")
    if "errors" not in output:
        if output["valid"]:
            return []
        raise InvalidErrorDetailsError("/errors", "is required when valid is false")
    units = output["errors"]
    if not isinstance(units, (list, tuple)):
        raise InvalidErrorDetailsError("/errors", "must be an array of output units")

    checked = check_each(units, _check_unit, "/errors")
    failing = [unit for unit in checked if unit.get("valid") is not True]
    summaries = _ancestor_locations(unit["keywordLocation"] for unit in failing)
    return [_item(unit) for unit in failing if unit["keywordLocation"] not in summaries]


def _check_unit(unit: Any, pointer: str) -> Mapping[str, Any]:
    if not isinstance(unit, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be an output unit object")
    for key in ("keywordLocation", "instanceLocation"):
        if key not in unit:
            raise InvalidErrorDetailsError(f"{pointer}/{key}", "is required")
        if not is_json_pointer(unit[key]):
            raise InvalidErrorDetailsError(f"{pointer}/{key}", "must be an RFC 6901 JSON Pointer")
    absolute = unit.get("absoluteKeywordLocation")
    if absolute is not None and not isinstance(absolute, str):
        raise InvalidErrorDetailsError(f"{pointer}/absoluteKeywordLocation", "must be a string (a URI)")
    return unit


def _ancestor_locations(locations: Any) -> set[str]:
    # Every proper ancestor of every location, in one pass (not pairwise).
    ancestors: set[str] = set()
    for location in locations:
        cut = location.rfind("/")
        while cut >= 0:
            ancestor = location[:cut]
            if ancestor in ancestors:
                break
            ancestors.add(ancestor)
            cut = location.rfind("/", 0, cut)
    return ancestors


def _item(unit: Mapping[str, Any]) -> dict[str, Any]:
    location = unit["keywordLocation"]
    tokens = pointer_tokens(location)
    # "/allOf/1" or "/prefixItems/0": the keyword is the token before the index.
    while tokens and set(tokens[-1]) <= _ARRAY_INDEX_CHARS:
        tokens.pop()
    keyword = tokens[-1] if tokens else None
    ctx = {"schema_location": location}
    if unit.get("absoluteKeywordLocation"):
        ctx["absolute_schema_location"] = unit["absoluteKeywordLocation"]
    if keyword is None:
        return make_item(
            "schema.invalid", "error", "does not match the schema", unit["instanceLocation"], ctx=ctx
        )
    message = schema_keyword_message(keyword, property_name="propertyNames" in tokens)
    return make_item(f"schema.{keyword}", "error", message, unit["instanceLocation"], rule=keyword, ctx=ctx)


def hierarchical_output_items(output: Any) -> list[dict[str, Any]]:
    """Turn a JSON Schema "detailed" or "verbose" output tree into items.

    Args:
        output: the root output unit ``{"valid": bool, "keywordLocation",
            "instanceLocation", "absoluteKeywordLocation"?, "errors"?: [unit,
            ...], "annotations"?: [...]}``; inner units may leave ``valid``
            out (jschon's detailed output does): a unit under ``errors`` is
            failing unless it says ``"valid": true``.

    Returns:
        Raw items, one per failing leaf (see the module docstring); empty for
        a valid root.

    Raises:
        InvalidErrorDetailsError: not an object (``""``); the root's ``valid``
            not a boolean (``/valid``); a unit without an RFC 6901
            ``keywordLocation``/``instanceLocation`` (``.../<key>``);
            ``errors`` not an array of objects; ``valid`` not a boolean.
    """
    if not isinstance(output, Mapping):
        raise InvalidErrorDetailsError("", "must be a JSON Schema output unit (detailed or verbose format)")
    if not isinstance(output.get("valid"), bool):
        raise InvalidErrorDetailsError("/valid", "must be a boolean")
    if output["valid"]:
        return []
    leaves: list[Mapping[str, Any]] = []
    _collect_leaves(output, "", leaves)
    return [_item(unit) for unit in leaves]


def is_hierarchical_output(details: Any) -> bool:
    """Whether ``details`` looks like a detailed/verbose root unit: an object
    with a boolean ``valid`` and both ``keywordLocation`` and
    ``instanceLocation`` (a basic output's root has neither)."""
    return (
        isinstance(details, Mapping)
        and isinstance(details.get("valid"), bool)
        and "keywordLocation" in details
        and "instanceLocation" in details
    )


def has_passing_unit(output: Any) -> bool:
    """Whether a detailed/verbose tree lists a passing unit or annotations:
    only the verbose format does (detailed keeps failing units only)."""
    stack = [output]
    while stack:
        unit = stack.pop()
        if not isinstance(unit, Mapping):
            continue
        if unit.get("valid") is True or "annotations" in unit:
            return True
        children = unit.get("errors")
        if isinstance(children, (list, tuple)):
            stack.extend(children)
    return False


def _collect_leaves(unit: Any, pointer: str, leaves: list[Mapping[str, Any]]) -> None:
    if not isinstance(unit, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be an output unit object")
    valid = unit.get("valid", False)
    if not isinstance(valid, bool):
        raise InvalidErrorDetailsError(f"{pointer}/valid", "must be a boolean")
    if valid:
        return
    _check_unit(unit, pointer)
    children = unit.get("errors", [])
    if not isinstance(children, (list, tuple)):
        raise InvalidErrorDetailsError(f"{pointer}/errors", "must be an array of output units")
    found = len(leaves)
    # Every faulty child's first fault, as the basic format's units are named.
    check_each(children, lambda child, where: _collect_leaves(child, where, leaves), f"{pointer}/errors")
    if len(leaves) == found:
        leaves.append(unit)
