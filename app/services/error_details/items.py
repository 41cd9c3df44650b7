"""Error items and the envelope of the normalized error-details contract v1.

An *item* is ``{"code", "severity", "message", "pointer"}`` plus the optional
``rule``, ``ctx`` and ``entity`` (``docs/error-details.md`` describes each).
The adapters turn a worker's payload into raw items; :func:`build_envelope`
applies :class:`DetailsLimits` and the storage text rule of
:mod:`app.services.json_values` and wraps them in
``{"schema_version": 1, "errors", "error_count", "truncated"}``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError
from app.services.error_details.limits import DEFAULT_LIMITS, DetailsLimits
from app.services.json_pointer import escape_token
from app.services.json_values import clean_text, has_acting_control, with_controls_escaped

SCHEMA_VERSION = 1

# FHIR OperationOutcome.issue.severity (R4 and R5; R5's "success" is mapped by
# the FHIR adapter, it is not an error severity).
SEVERITIES: tuple[str, ...] = ("fatal", "error", "warning", "information")

ITEM_KEYS = frozenset({"code", "severity", "message", "pointer", "rule", "ctx", "entity", "fingerprint"})
REQUIRED_ITEM_KEYS = ("code", "severity", "message", "pointer")
ENTITY_KEYS = frozenset({"type", "code", "index", "page", "start", "end"})

ELLIPSIS = "\u2026"


# --- checks shared by the adapters ------------------------------------------------


def require_identifier(container: Mapping[str, Any], key: str, pointer: str) -> Any:
    """:func:`require_string` for a name a filter or a link must find again
    (an item's ``code``, ``rule``, ``fingerprint``; an entity's ``type`` and
    ``code``): no acting control character
    (:func:`~app.services.json_values.has_acting_control`: the C0 controls
    but NUL, TAB, LF and CR; DEL; the C1 controls), which no query parameter
    may hold, so a stored code with one could never be filtered on. NUL
    follows the storage rule (U+FFFD), as in any text.

    Raises:
        InvalidErrorDetailsError: at ``pointer/key``, as :func:`require_string`,
            or when the string holds such a character.
    """
    value = require_string(container, key, pointer)
    if has_acting_control(value):
        raise InvalidErrorDetailsError(
            f"{pointer}/{escape_token(key)}",
            "must not hold a control character other than TAB, LF and CR (it is an identifier "
            "that filters and links must find)",
        )
    return value


def is_scalar(value: object) -> bool:
    """Whether ``value`` is a JSON scalar: string, finite number, boolean or null."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    return isinstance(value, float) and math.isfinite(value)


def is_scalar_array(value: object) -> bool:
    """Whether ``value`` is an array (list or tuple) of JSON scalars."""
    return isinstance(value, (list, tuple)) and all(is_scalar(element) for element in value)


def is_path_token(value: object) -> bool:
    """Whether ``value`` can be a path token: a string or a non-negative int (not a bool)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, str) or (isinstance(value, int) and value >= 0)


def require_path(value: object, pointer: str, what: str) -> list[str | int]:
    """Check an array of path tokens (strings and array indices) and return it as a list.

    Raises:
        InvalidErrorDetailsError: at ``pointer`` when it is not an array, or at
            ``pointer/N`` for a token that is neither a string nor an index.
    """
    if not isinstance(value, (list, tuple)):
        raise InvalidErrorDetailsError(pointer, f"{what} must be an array of strings and integers")
    for index, token in enumerate(value):
        if not is_path_token(token):
            raise InvalidErrorDetailsError(f"{pointer}/{index}", "must be a string or a non-negative integer")
    return list(value)


def require_string(container: Mapping[str, Any], key: str, pointer: str, *, optional: bool = False) -> Any:
    """Return ``container[key]`` after checking it is a non-blank string.

    Returns ``None`` when ``optional`` and the key is absent.

    Raises:
        InvalidErrorDetailsError: at ``pointer/key`` when missing (and not
            optional) or not a non-blank string.
    """
    where = f"{pointer}/{escape_token(key)}"
    if key not in container:
        if optional:
            return None
        raise InvalidErrorDetailsError(where, "is required")
    value = container[key]
    if not isinstance(value, str) or not value.strip():
        raise InvalidErrorDetailsError(where, "must be a non-empty string")
    return value


def scalar_ctx(ctx: Mapping[Any, Any] | None, *, drop: Iterable[str] = ()) -> dict[str, Any]:
    """Keep the entries of ``ctx`` that are safe parameters: string keys, scalar values.

    Lists, objects and Python objects (pydantic's unserialised ``ctx`` holds
    exception instances) are dropped, as are the keys in ``drop``.
    """
    if not isinstance(ctx, Mapping):
        return {}
    dropped = frozenset(drop)
    return {
        key: value
        for key, value in ctx.items()
        if isinstance(key, str) and key not in dropped and is_scalar(value)
    }


def make_item(
    code: str,
    severity: str,
    message: str,
    pointer: str,
    *,
    rule: str | None = None,
    ctx: Mapping[str, Any] | None = None,
    entity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a raw item; ``rule``, ``ctx`` and ``entity`` are left out when empty."""
    item: dict[str, Any] = {"code": code, "severity": severity, "message": message, "pointer": pointer}
    if rule:
        item["rule"] = rule
    if ctx:
        item["ctx"] = dict(ctx)
    if entity:
        item["entity"] = dict(entity)
    return item


# --- caps and the envelope ------------------------------------------------------------


def cap_text(text: str, limit: int) -> str:
    """Apply the storage text rule, then cut to ``limit`` code points ending in "…".

    A cut string is exactly ``limit`` long, its last character U+2026.
    """
    text = clean_text(text)
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def cap_fingerprint(text: str, limit: int) -> str:
    """Apply the storage text rule; a fingerprint longer than ``limit`` code
    points becomes its start, "…" and the SHA-256 (hex) of the whole, exactly
    ``limit`` long (64 hex digits from 67 code points up; fewer below).

    Cut like other text, two long fingerprints sharing their first 99
    characters (two SHA-512 digests in hex, say) were one group (a trial);
    the digest keeps them apart, and the stored value still groups alike
    when the failures are grouped again.
    """
    text = clean_text(text)
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[: max(0, min(64, limit - 3))]
    return text[: limit - 1 - len(digest)] + ELLIPSIS + digest


def cap_pointer(pointer: str, limit: int) -> str:
    """Shorten an over-long pointer to its longest ancestor that fits in ``limit``.

    Not cut with "…": a cut pointer would name a place that does not exist,
    while an ancestor (``""`` at worst, the whole document) is still true,
    only less precise.
    """
    pointer = clean_text(pointer)
    if len(pointer) <= limit:
        return pointer
    # The last token boundary at or before the limit ("/" never occurs inside
    # an escaped token): pointer[:cut] is then at most `limit` long.
    cut = pointer.rfind("/", 0, limit + 1)
    return pointer[:cut] if cut > 0 else ""


def build_envelope(
    items: Sequence[Mapping[str, Any]],
    limits: DetailsLimits = DEFAULT_LIMITS,
    *,
    error_count: int | None = None,
) -> dict[str, Any]:
    """Wrap items in the v1 envelope, applying the caps.

    Args:
        items: raw items in the worker's order (as the adapters return them).
        limits: the caps; see :class:`DetailsLimits`.
        error_count: how many items the worker reported, when it had already
            dropped some (a truncated envelope it sent); default ``len(items)``.

    Returns:
        ``{"schema_version": 1, "errors": [...], "error_count": N,
        "truncated": bool}`` valid against ``error-details.v1.schema.json``
        (for limits no larger than the defaults): the first
        ``limits.max_items`` items, each with strings cut to their cap (see
        :func:`cap_text`, :func:`cap_pointer`), ``ctx`` cut to its first
        ``max_ctx_keys`` entries; ``truncated`` is true exactly when
        ``error_count > len(errors)``. New objects: ``items`` is not changed.

    Raises:
        ValueError: ``error_count`` smaller than ``len(items)``.
    """
    count = len(items) if error_count is None else error_count
    if count < len(items):
        raise ValueError("error_count is smaller than the number of items")
    kept = [_cap_item(item, limits) for item in items[: limits.max_items]]
    return {
        "schema_version": SCHEMA_VERSION,
        "errors": kept,
        "error_count": count,
        "truncated": count > len(kept),
    }


def _cap_item(item: Mapping[str, Any], limits: DetailsLimits) -> dict[str, Any]:
    capped: dict[str, Any] = {
        # An identifier an adapter took from a foreign format is not checked
        # as ours are (require_identifier): its controls are stored as their
        # escapes in ASCII (\u001b), so the error_code filter can still find it.
        "code": cap_text(with_controls_escaped(item["code"]), limits.max_code_length),
        "severity": item["severity"],
        "message": cap_text(item["message"], limits.max_message_length),
        "pointer": cap_pointer(item["pointer"], limits.max_pointer_length),
    }
    if item.get("rule"):
        capped["rule"] = cap_text(with_controls_escaped(item["rule"]), limits.max_code_length)
    if item.get("ctx"):
        ctx: dict[str, Any] = {}
        for key, value in item["ctx"].items():
            if len(ctx) == limits.max_ctx_keys:
                break
            key = cap_text(key, limits.max_code_length)
            # Two long keys can be cut to the same text: the first one wins.
            if key in ctx:
                continue
            ctx[key] = cap_text(value, limits.max_ctx_string_length) if isinstance(value, str) else value
        capped["ctx"] = ctx
    if item.get("fingerprint"):
        capped["fingerprint"] = cap_fingerprint(with_controls_escaped(item["fingerprint"]), limits.max_code_length)
    if item.get("entity"):
        entity = dict(item["entity"])
        for key in ("type", "code"):
            if key in entity:
                entity[key] = cap_text(with_controls_escaped(entity[key]), limits.max_code_length)
        capped["entity"] = entity
    return capped
