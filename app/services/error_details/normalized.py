"""Adapter for ``error_details`` already in our own item shape.

Accepted payloads (the ``normalized`` format):

* the v1 envelope ``{"schema_version": 1, "errors": [item, ...],
  "error_count"?: int, "truncated"?: bool}`` -- a worker that already
  truncated keeps its ``error_count``;
* the v0 shape ``{"errors": [item, ...]}`` that the reference worker posts
  (``app/worker/runner.py``);
* a bare array of items.

Items are checked strictly, because this is the shape we publish: required
``code``, ``severity``, ``message``, ``pointer``; optional ``rule``, ``ctx``,
``entity``; no other keys. Lengths are not checked here: over-long strings are
cut by :func:`~app.services.error_details.items.build_envelope`, not refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError, check_each
from app.services.error_details.items import (
    ENTITY_KEYS,
    ITEM_KEYS,
    REQUIRED_ITEM_KEYS,
    SCHEMA_VERSION,
    SEVERITIES,
    is_scalar,
    require_identifier,
    require_string,
)
from app.services.json_pointer import escape_token, is_json_pointer
from app.services.json_values import json_integer

ENVELOPE_KEYS = frozenset({"schema_version", "errors", "error_count", "truncated"})

#: The largest ``error_count`` taken: 2**53 - 1, the largest integer every
#: JSON parser reads exactly (RFC 7493, I-JSON, section 2.2).
MAX_ERROR_COUNT = 2**53 - 1


def normalized_items(details: Any) -> list[dict[str, Any]]:
    """Check ``normalized`` error details and return their items, in order.

    Args:
        details: a v1 envelope, a v0 ``{"errors": [...]}`` object or an array
            of items (parsed JSON).

    Returns:
        New item dicts, equal to the ones sent (strings not yet capped).

    Raises:
        InvalidErrorDetailsError: with a pointer into ``details``: an unknown
            envelope key, ``schema_version`` other than 1, ``errors`` not an
            array, ``error_count`` not an integer >= the number of items,
            ``truncated`` not a boolean or disagreeing with ``error_count``,
            or a bad item (see :func:`check_item`).
    """
    errors, prefix, envelope_faults = _errors_array(details)
    try:
        items = check_each(errors, check_item, prefix)
    except InvalidErrorDetailsError as exc:
        # The envelope's own faults first, then the items': a wrong
        # error_count does not hide what is wrong with the items.
        faults = envelope_faults + exc.faults
        raise InvalidErrorDetailsError(*faults[0], faults=faults) from None
    if envelope_faults:
        raise InvalidErrorDetailsError(*envelope_faults[0], faults=envelope_faults)
    return items


def normalized_error_count(details: Any) -> int | None:
    """The ``error_count`` a valid v1 envelope declares (an int, ``3.0``
    read as ``3``); ``None`` for the other shapes."""
    if isinstance(details, Mapping) and "schema_version" in details:
        count = json_integer(details.get("error_count"))
        return count if type(count) is int else None
    return None


def check_item(item: Any, pointer: str) -> dict[str, Any]:
    """Check one item of our shape; return a shallow copy (``ctx``/``entity`` copied too).

    Args:
        item: the candidate item.
        pointer: where it is inside the details, for error reports.

    Raises:
        InvalidErrorDetailsError: not an object; an unknown key; a missing or
            blank ``code``/``message``; ``severity`` not one of ``fatal``,
            ``error``, ``warning``, ``information``; ``pointer`` not an RFC
            6901 pointer; ``rule`` not a non-blank string; ``ctx`` not an
            object of scalars; ``entity`` not an object of ``type`` (string),
            ``index``/``start``/``end`` (integers >= 0) and ``page``
            (integer >= 1).
    """
    if not isinstance(item, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be an error item object")
    for key in item:
        if key not in ITEM_KEYS:
            raise InvalidErrorDetailsError(
                f"{pointer}/{escape_token(str(key))}", "is not a field of an error item"
            )
    for key in REQUIRED_ITEM_KEYS:
        if key not in item:
            raise InvalidErrorDetailsError(f"{pointer}/{key}", "is required")
    copy: dict[str, Any] = {
        "code": require_identifier(item, "code", pointer),
        "severity": item["severity"],
        "message": require_string(item, "message", pointer),
        "pointer": item["pointer"],
    }
    if copy["severity"] not in SEVERITIES:
        raise InvalidErrorDetailsError(f"{pointer}/severity", "must be one of " + ", ".join(SEVERITIES))
    if not is_json_pointer(copy["pointer"]):
        raise InvalidErrorDetailsError(
            f"{pointer}/pointer",
            "must be an RFC 6901 JSON Pointer: empty, or starting with '/', with '~' only as '~0' or '~1'",
        )
    if "rule" in item:
        copy["rule"] = require_identifier(item, "rule", pointer)
    if "fingerprint" in item:
        copy["fingerprint"] = require_identifier(item, "fingerprint", pointer)
    if "ctx" in item:
        copy["ctx"] = _check_ctx(item["ctx"], f"{pointer}/ctx")
    if "entity" in item:
        copy["entity"] = _check_entity(item["entity"], f"{pointer}/entity")
    return copy


def _errors_array(details: Any) -> tuple[list[Any], str, list[tuple[str, str]]]:
    """The items array, its pointer, and the envelope's own faults (none outside a v1 envelope)."""
    if isinstance(details, (list, tuple)):
        return list(details), "", []
    if not isinstance(details, Mapping):
        raise InvalidErrorDetailsError(
            "", "must be an error-details envelope, an object with 'errors', or an array of error items"
        )
    is_envelope = "schema_version" in details
    allowed = ENVELOPE_KEYS if is_envelope else frozenset({"errors"})
    for key in details:
        if key not in allowed:
            raise InvalidErrorDetailsError(
                "/" + escape_token(str(key)), "is not a field of the error-details envelope"
            )
    if "errors" not in details:
        raise InvalidErrorDetailsError("/errors", "is required")
    errors = details["errors"]
    if not isinstance(errors, (list, tuple)):
        raise InvalidErrorDetailsError("/errors", "must be an array of error items")
    faults = _envelope_faults(details, len(errors)) if is_envelope else []
    return list(errors), "/errors", faults


def _envelope_faults(envelope: Mapping[str, Any], item_count: int) -> list[tuple[str, str]]:
    """Each fault of a v1 envelope's own fields, ``(pointer, reason)``, in
    field order; ``truncated`` is compared with ``error_count`` only when
    that is right."""
    faults: list[tuple[str, str]] = []
    version = json_integer(envelope["schema_version"])
    # type() rather than isinstance: True == 1 in Python, but not in JSON.
    if type(version) is not int or version != SCHEMA_VERSION:
        faults.append(("/schema_version", f"must be {SCHEMA_VERSION}"))
    count = json_integer(envelope.get("error_count", item_count))
    # At most I-JSON's largest exact integer: 1e300 was taken, stored as 301
    # digits of float noise and shown as a 401-character count (a re-check).
    count_ok = type(count) is int and item_count <= count <= MAX_ERROR_COUNT
    if not count_ok:
        faults.append(("/error_count", "must be an integer no smaller than the number of items in errors and at "
                                       f"most {MAX_ERROR_COUNT} (2^53 - 1)"))
    if "truncated" in envelope:
        truncated = envelope["truncated"]
        if not isinstance(truncated, bool):
            faults.append(("/truncated", "must be a boolean"))
        elif count_ok and truncated != (count > item_count):
            faults.append(
                ("/truncated", "must be true exactly when error_count exceeds the number of items in errors")
            )
    return faults


def _check_ctx(ctx: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(ctx, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be an object")
    for key, value in ctx.items():
        if not isinstance(key, str):
            raise InvalidErrorDetailsError(pointer, "keys must be strings")
        if not is_scalar(value):
            raise InvalidErrorDetailsError(
                f"{pointer}/{escape_token(key)}", "must be a string, a finite number, a boolean or null"
            )
    return dict(ctx)


def _check_entity(entity: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(entity, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be an object")
    for key in entity:
        if key not in ENTITY_KEYS:
            raise InvalidErrorDetailsError(
                f"{pointer}/{escape_token(str(key))}", "is not a field of an entity reference"
            )
    for key in ("type", "code"):
        if key in entity:
            require_identifier(entity, key, pointer)
    checked = dict(entity)
    for key in ("index", "page", "start", "end"):
        if key in entity:
            # JSON Schema's "integer" (the envelope's schema) takes 1.0 too,
            # as the entity document's span does: stored as 1 (a trial found
            # span.end 1.0 accepted and entity.index 1.0 refused).
            value = checked[key] = json_integer(entity[key])
            # page is 1-based, the others 0-based, as in the entity document's span.
            minimum = 1 if key == "page" else 0
            if type(value) is not int or value < minimum:
                raise InvalidErrorDetailsError(f"{pointer}/{key}", f"must be an integer >= {minimum}")
    return checked
