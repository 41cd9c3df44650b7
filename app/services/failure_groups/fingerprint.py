"""Fingerprints: which failure group an error item belongs to.

Versioned: :data:`GROUPING_VERSION` names the rules below, and a fingerprint
is the SHA-256 of the version and the parts, so a rule change is a new
version (``flask groups regroup --version N``) and never silently reshuffles
the groups of an older one. ``docs/failure-groups.md`` states the rules.

Pure functions: no database, no Flask.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.error_details import envelope_errors
from app.services.json_pointer import is_json_pointer, json_pointer, pointer_tokens
from app.services.schema_files import load_schema_file

#: The grouping rules of this module. Raise it when a rule changes.
GROUPING_VERSION = 1
#: Every version this code can compute (``regroup --version N`` accepts these).
KNOWN_VERSIONS: tuple[int, ...] = (1,)

#: Severities from lowest to highest (FHIR OperationOutcome issue severities).
SEVERITY_ORDER: tuple[str, ...] = ("information", "warning", "error", "fatal")

TITLE_MAX_LENGTH = 300
CODE_MAX_LENGTH = 100
POINTER_PATTERN_MAX_LENGTH = 1000
ENTITY_TYPE_MAX_LENGTH = 100
MESSAGE_MAX_LENGTH = 1000

ENTITY_DOCUMENT_SCHEMA = Path(__file__).resolve().parents[2] / "worker" / "schemas" / "entity-document.v1.schema.json"

FHIR_FORMAT = "fhir-operationoutcome"


class UnknownGroupingVersionError(ValueError):
    """A grouping version this code does not implement."""


@dataclass(frozen=True)
class GroupKey:
    """What an item contributes to its group.

    ``fingerprint`` (64 hex characters) and the parts it was made of;
    ``message`` is the item's own message (the group's sample), ``severity``
    its severity.
    """

    fingerprint: str
    title: str
    code: str | None
    pointer_pattern: str | None
    entity_type: str | None
    message: str
    severity: str


# --- message parameterisation ---------------------------------------------------------

# After Sentry's src/sentry/grouping/parameterization.py: the variable parts
# of a message, first match wins, each replaced by a placeholder. Quoted text
# goes first: whatever is quoted is a value, whatever it looks like.
_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("quoted", r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"|`[^`\n]{0,200}`"),
    ("email", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    ("url", r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"),
    ("uuid", r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"),
    (
        "date",
        r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b",
    ),
    ("time", r"\b\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\b"),
    ("hex", r"\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"),
    # An identifier: letters and digits mixed (doc-48213, job_77, A1B2C3D4),
    # with at least three digits so that words such as ICD-10-CM or UTF-8 stay.
    ("id", r"\b(?=[\w.-]*[A-Za-z])(?=(?:[\w.-]*\d){3})[A-Za-z0-9][\w.-]*[A-Za-z0-9]\b"),
    # A number on its own, not the digits of a word such as UTF-8 or R4.
    ("num", r"(?<![\w.-])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?(?![\w-])"),
    # A value after "=" (key=value pairs in log-style messages).
    ("value", r"(?<==)[^\s,;)\]}]+"),
)
_PARAMETER_RE = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _PARAMETERS))


def parameterize(message: str) -> str:
    """Replace the variable parts of ``message`` by placeholders.

    ``"job 48213 failed at 2026-12-03T04:00:00Z: code 'X99' unknown"`` ->
    ``"job <num> failed at <date>: code <quoted> unknown"``. Placeholders:
    ``<quoted>``, ``<email>``, ``<url>``, ``<uuid>``, ``<date>``, ``<time>``,
    ``<hex>``, ``<id>``, ``<num>``, ``<value>`` (after ``=``). Runs of
    whitespace become one space; the result is stripped.
    """
    text = _PARAMETER_RE.sub(lambda match: f"<{match.lastgroup}>", message)
    return " ".join(text.split())


# --- pointer patterns -----------------------------------------------------------------


@dataclass
class _Shape:
    """What the schema says about one place in a document."""

    array_items: _Shape | None = None  # set when the value there may be an array
    properties: dict[str, _Shape] | None = None  # set when it may be an object
    free_keys: bool = False  # an object whose keys are data (additionalProperties)


_UNKNOWN = None  # a place the schema does not describe

_CANONICAL_INDEX = re.compile(r"0|[1-9][0-9]*")


def _resolve(schema: Mapping[str, Any], node: Any, seen: frozenset[str]) -> list[Mapping[str, Any]]:
    """The subschemas that apply at ``node``: itself, its ``$ref`` target and
    the branches of ``allOf``/``anyOf``/``oneOf``/``then``/``else``."""
    if not isinstance(node, Mapping):
        return []
    found = [node]
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
        target: Any = schema
        for token in pointer_tokens(ref[1:]):
            target = target.get(token) if isinstance(target, Mapping) else None
        found += _resolve(schema, target, seen | {ref})
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(keyword) or ():
            found += _resolve(schema, branch, seen)
    for keyword in ("then", "else"):
        found += _resolve(schema, node.get(keyword), seen)
    return found


def _shape(schema: Mapping[str, Any], node: Any, depth: int = 0) -> _Shape:
    shape = _Shape()
    if depth > 32:
        return shape
    for part in _resolve(schema, node, frozenset()):
        types = part.get("type")
        types = {types} if isinstance(types, str) else set(types or ())
        if "array" in types or "items" in part or "prefixItems" in part:
            shape.array_items = _shape(schema, part.get("items"), depth + 1)
        if "object" in types or "properties" in part:
            shape.properties = shape.properties or {}
            for name, child in (part.get("properties") or {}).items():
                merged = _shape(schema, child, depth + 1)
                old = shape.properties.get(name)
                shape.properties[name] = merged if old is None else _merge(old, merged)
            if isinstance(part.get("additionalProperties"), Mapping) or "propertyNames" in part:
                shape.free_keys = True
    return shape


def _merge(a: _Shape, b: _Shape) -> _Shape:
    return _Shape(
        array_items=a.array_items or b.array_items,
        properties={**(b.properties or {}), **(a.properties or {})} if (a.properties or b.properties) else None,
        free_keys=a.free_keys or b.free_keys,
    )


@functools.cache
def _entity_document_shape() -> _Shape:
    schema = load_schema_file(ENTITY_DOCUMENT_SCHEMA)
    return _shape(schema, schema)


def path_pattern(path: Sequence[str | int]) -> str:
    """The pointer pattern of a structured path: integers (array indices)
    become ``*``, strings stay keys (``["entities", 3, "attributes", "12"]``
    -> ``/entities/*/attributes/12``)."""
    return json_pointer("*" if isinstance(token, int) and not isinstance(token, bool) else token for token in path)


def pointer_pattern(pointer: str, *, fhir: bool = False) -> str:
    """The pointer pattern of an RFC 6901 pointer string.

    Each reference token is classified by the structure of the document the
    pointer points into, not by its look alone: along the entity document's
    JSON Schema, a token is an index exactly when the schema says the value
    there is an array (``/entities/12`` -> ``/entities/*``) and a key
    otherwise (``/entities/0/attributes/12`` keeps ``12``: ``attributes`` is
    an object). With ``fhir`` (pointers into a FHIR resource, whose JSON has
    no numeric property names) every decimal token is an index. Where the
    schema does not describe the place, a canonical decimal token (``0``,
    ``12``, not ``012``) is taken as an index.
    """
    if not is_json_pointer(pointer):
        return pointer
    path: list[str | int] = []
    shape: _Shape | None = None if fhir else _entity_document_shape()
    for token in pointer_tokens(pointer):
        decimal = _CANONICAL_INDEX.fullmatch(token) is not None
        if shape is _UNKNOWN:
            path.append(int(token) if decimal else token)
            continue
        if shape.properties is not None and token in shape.properties:
            path.append(token)
            shape = shape.properties[token]
        elif shape.array_items is not None and decimal and not shape.free_keys:
            path.append(int(token))
            shape = shape.array_items
        elif shape.properties is not None or shape.free_keys:
            path.append(token)  # an object's key, numeric or not
            shape = _UNKNOWN
        else:
            path.append(int(token) if decimal else token)
            shape = _UNKNOWN
    return path_pattern(path)


# --- items and fingerprints -----------------------------------------------------------


def _digest(version: int, parts: Sequence[str]) -> str:
    text = json.dumps([version, *parts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _check_version(version: int) -> None:
    if version not in KNOWN_VERSIONS:
        raise UnknownGroupingVersionError(f"grouping version {version} is not one of {KNOWN_VERSIONS}")


def item_key(
    item: Mapping[str, Any],
    *,
    version: int = GROUPING_VERSION,
    fhir: bool = False,
    path: Sequence[str | int] | None = None,
) -> GroupKey:
    """The group key of one error item (a normalized item, or any object with
    some of ``code``, ``message``, ``pointer``, ``entity``, ``severity``,
    ``fingerprint``).

    Rules (version 1): an explicit ``fingerprint`` string wins; else an item
    with a ``code`` groups by code, entity type (``entity.type``) and pointer
    pattern (from ``path`` when given, else from ``pointer``, see
    :func:`pointer_pattern`); else by the parameterised ``message``.

    Raises:
        UnknownGroupingVersionError: ``version`` is not implemented.
    """
    _check_version(version)
    message = item.get("message") if isinstance(item.get("message"), str) else ""
    severity = item.get("severity") if item.get("severity") in SEVERITY_ORDER else "error"
    explicit = item.get("fingerprint")
    if isinstance(explicit, str) and explicit.strip():
        explicit = explicit.strip()
        return GroupKey(
            fingerprint=_digest(version, ["explicit", explicit]),
            title=_cut(explicit, TITLE_MAX_LENGTH),
            code=_cut(item["code"], CODE_MAX_LENGTH) if isinstance(item.get("code"), str) else None,
            pointer_pattern=None,
            entity_type=None,
            message=message,
            severity=severity,
        )
    code = item.get("code")
    if isinstance(code, str) and code.strip():
        entity = item.get("entity")
        entity_type = entity.get("type") if isinstance(entity, Mapping) else None
        entity_type = entity_type if isinstance(entity_type, str) and entity_type else None
        pointer = item.get("pointer")
        if path is not None:
            pattern = path_pattern(path)
        elif isinstance(pointer, str):
            pattern = _pointer_pattern_cached(pointer, fhir)
        else:
            pattern = ""
        fingerprint, title, code, pattern, entity_type = _coded_parts(version, code, entity_type, pattern)
        return GroupKey(
            fingerprint=fingerprint,
            title=title,
            code=code,
            pointer_pattern=pattern,
            entity_type=entity_type,
            message=message,
            severity=severity,
        )
    return message_key(message, version=version, severity=severity)


#: Entries of each fingerprint cache below. The keys are an item's code,
#: entity type and pointer (or its pattern): a worker sends a few hundred
#: distinct ones, so 4096 keep every one in use and bound the memory
#: (at most a few MB) whatever a client sends.
KEY_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _pointer_pattern_cached(pointer: str, fhir: bool) -> str:
    """:func:`pointer_pattern`, remembered: a pure function of its
    arguments, and walking the schema shape per item was a visible part of
    the record path's grouping (docs/failure-groups.md)."""
    return pointer_pattern(pointer, fhir=fhir)


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _coded_parts(
    version: int, code: str, entity_type: str | None, pattern: str
) -> tuple[str, str, str, str, str | None]:
    """Fingerprint, title, code, pointer pattern and entity type of a coded
    item, all cut to their column sizes: a pure function of the grouping
    ``version`` and the item's parts (the message and severity are not in
    the fingerprint), so it is remembered rather than hashed per item. The
    version is part of the cache key, so a regroup under another version
    never reads a key of this one."""
    code = _cut(code.strip(), CODE_MAX_LENGTH)
    entity_type = _cut(entity_type, ENTITY_TYPE_MAX_LENGTH) if entity_type else None
    pattern = _cut(pattern, POINTER_PATTERN_MAX_LENGTH)
    title = code + (f" ({entity_type})" if entity_type else "") + (f" at {pattern}" if pattern else "")
    fingerprint = _digest(version, ["code", code, entity_type or "", pattern])
    return fingerprint, _cut(title, TITLE_MAX_LENGTH), code, pattern, entity_type


def message_key(message: str, *, version: int = GROUPING_VERSION, severity: str = "error") -> GroupKey:
    """The group key of an item without a code: its parameterised message.

    Raises:
        UnknownGroupingVersionError: ``version`` is not implemented.
    """
    _check_version(version)
    pattern = parameterize(message)
    return GroupKey(
        fingerprint=_digest(version, ["message", pattern]),
        title=_cut(pattern or "(no message)", TITLE_MAX_LENGTH),
        code=None,
        pointer_pattern=None,
        entity_type=None,
        message=message,
        severity=severity if severity in SEVERITY_ORDER else "error",
    )


def failure_keys(
    error_message: str, error_details: Any, error_format: str | None, *, version: int = GROUPING_VERSION
) -> list[GroupKey]:
    """The group key of every error item of a recorded failure, in order.

    Items are the ``errors`` of a normalized envelope (the envelope rule of
    :mod:`app.services.error_details.envelope`); objects among them are
    keyed by :func:`item_key`. A failure with no such item (free-form
    details, no details, an empty envelope) gives one key, from its
    ``error_message`` parameterised (:func:`message_key`).

    Raises:
        UnknownGroupingVersionError: ``version`` is not implemented.
    """
    return [key for _, key in positioned_failure_keys(error_message, error_details, error_format, version=version)]


def positioned_failure_keys(
    error_message: str, error_details: Any, error_format: str | None, *, version: int = GROUPING_VERSION
) -> list[tuple[int | None, GroupKey]]:
    """:func:`failure_keys` with each key's item position: its 0-based index
    in the envelope's ``errors`` (non-object items keep their place), or
    ``None`` for the one key of a failure without items (its message).

    Raises:
        UnknownGroupingVersionError: ``version`` is not implemented.
    """
    items = envelope_errors(error_details, error_format) or []
    fhir = error_format == FHIR_FORMAT
    keys: list[tuple[int | None, GroupKey]] = [
        (position, item_key(item, version=version, fhir=fhir))
        for position, item in enumerate(items)
        if isinstance(item, Mapping)
    ]
    return keys or [(None, message_key(error_message, version=version))]
