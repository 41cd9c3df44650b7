"""Validation of entity documents, as run by the reference worker.

An entity document is the JSON the AI worker extracts from one source document
(see ``schemas/entity-document.v1.schema.json``). Validation has two stages:

1. JSON Schema (draft 2020-12) validation of the shape, including the ``date``
   and ``date-time`` formats.
2. Semantic checks on the entities that passed stage 1: ICD-10-CM codes of
   conditions, UCUM units, dates not after the extraction, span sanity and
   extractor confidence (:mod:`app.worker.semantic_checks`, which also builds
   the error items of both stages).

This module holds stage 1, the public entry point and the final ordering.

The result is a list of error items ``{"code", "severity", "message",
"pointer"}`` -- the ``errors`` of the ``error_details`` the worker posts to the
API. Severities are FHIR OperationOutcome issue severities; pointers are RFC
6901 JSON Pointers into the entity document. Messages never quote patient text
(``text`` fields, values, dates or units as written): they name what is wrong
and what was expected; only codes from a code system are quoted.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from app.services.ecma_patterns import ContractValidator
from app.services.error_details.schema_wording import (
    SEVERAL_SHAPES,
    UNKNOWN_PROPERTY,
    missing_property_message,
    schema_keyword_message,
)
from app.services.schema_files import load_schema_file
from app.worker.semantic_checks import BLOCKING_SEVERITIES, ERROR, FATAL, error_item, semantic_items

SCHEMA_PATH = Path(__file__).with_name("schemas") / "entity-document.v1.schema.json"

# Formats the schema relies on. jsonschema checks "date-time" only when
# rfc3339-validator is installed and otherwise passes every string silently,
# so a missing package must fail loudly rather than accept bad timestamps.
# ("uri" needs rfc3987; the schema enforces code_system with a pattern instead.)
_REQUIRED_FORMATS = frozenset({"date", "date-time"})

_FORMAT_DESCRIPTIONS = {
    "date": "calendar date (YYYY-MM-DD)",
    "date-time": "RFC 3339 date-time with a UTC offset",
    "uri": "absolute URI",
}

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


def load_entity_schema() -> dict:
    """Return the published entity document JSON Schema (draft 2020-12).

    The file is read once; each call returns a fresh deep copy, so callers may
    change the dict (e.g. to serve it) without affecting validation.

    Raises:
        OSError / json.JSONDecodeError: the schema file is missing or broken.
    """
    return load_schema_file(SCHEMA_PATH)


@functools.cache
def _schema_validator() -> Draft202012Validator:
    checker = Draft202012Validator.FORMAT_CHECKER
    missing = _REQUIRED_FORMATS - set(checker.checkers)
    if missing:
        raise RuntimeError(
            f"jsonschema cannot check the format(s) {sorted(missing)}; "
            "install rfc3339-validator"
        )
    # Patterns as ECMA-262, as the API reads them: with Python's re, "$"
    # passed a code system ending in a line break that the API then refused,
    # and the run stopped on the 422 (a re-check).
    return ContractValidator(load_schema_file(SCHEMA_PATH), format_checker=checker)



def validate_entity_document(document: object) -> list[dict]:
    """Validate an entity document against the schema and the code sets.

    Args:
        document: the parsed JSON of an entity document (any JSON value).

    Returns:
        A list of ``{"code": str, "severity": "fatal"|"error"|"warning",
        "message": str, "pointer": str}`` sorted by pointer (array indices
        compared as numbers), then code, then message; empty when the document
        is valid with nothing to report. A document that is not a JSON object
        gives the single fatal item ``schema.type`` at pointer ``""``. Schema
        items are ``schema.<keyword>`` with severity error. Semantic checks run
        only on entities without schema errors and give ``code.unknown_icd10cm``,
        ``date.in_future``, ``unit.not_ucum``, ``span.out_of_range`` (errors),
        ``code.icd10cm_not_billable`` and ``confidence.low`` (warnings).

    Raises:
        RuntimeError: jsonschema cannot check the date-time format
            (rfc3339-validator missing).
    """
    if not isinstance(document, dict):
        return [error_item("schema.type", FATAL, "entity document must be a JSON object", [])]

    items = _schema_items(_schema_validator(), document)
    items.extend(semantic_items(document, {item["pointer"] for item in items}))
    return _sorted_unique(items)


def is_valid(errors: list[dict]) -> bool:
    """True when no item of ``errors`` has severity ``fatal`` or ``error``.

    Args:
        errors: items as returned by :func:`validate_entity_document`.

    Returns:
        Whether the document is accepted; warnings and information do not count.
    """
    return not any(item["severity"] in BLOCKING_SEVERITIES for item in errors)


# --- JSON Schema stage -------------------------------------------------------


def _schema_items(validator: Draft202012Validator, document: object) -> list[dict]:
    items: list[dict] = []
    for error in validator.iter_errors(document):
        for relevant in _relevant_errors(error):
            items.extend(_describe(relevant))
    return items


def _relevant_errors(error: ValidationError) -> Iterator[ValidationError]:
    """Replace an opaque oneOf/anyOf failure by the errors of the branch meant.

    The branch meant is the one whose discriminator (``entity_type``) matched
    and that has the fewest errors; when no branch qualifies the combined error
    itself is kept.
    """
    if error.validator in ("oneOf", "anyOf") and error.context:
        branch = _closest_branch(error)
        if branch is not None:
            for sub_error in branch:
                yield from _relevant_errors(sub_error)
            return
    yield error


def _closest_branch(error: ValidationError) -> list[ValidationError] | None:
    branches: dict[Any, list[ValidationError]] = defaultdict(list)
    for sub_error in error.context or ():
        branches[sub_error.relative_schema_path[0]].append(sub_error)
    discriminator_path = [*error.absolute_path, "entity_type"]
    candidates = [
        branch
        for branch in branches.values()
        if not any(
            sub_error.validator in ("const", "enum")
            and list(sub_error.absolute_path) == discriminator_path
            for sub_error in branch
        )
    ]
    return min(candidates, key=len) if candidates else None


def _describe(error: ValidationError) -> list[dict]:
    # error.message is not used: it quotes the instance, which may be patient text.
    keyword = str(error.validator)
    path = list(error.absolute_path)
    expected = error.validator_value
    if keyword == "required" and isinstance(error.instance, dict):
        return [
            error_item("schema.required", ERROR, missing_property_message(name), path)
            for name in expected
            if name not in error.instance
        ]
    if keyword == "additionalProperties" and expected is False and isinstance(error.instance, dict):
        # One item per unexpected property, pointing at it; its name is not quoted.
        return [
            error_item("schema.additionalProperties", ERROR, UNKNOWN_PROPERTY, [*path, name])
            for name in _unexpected_properties(error.instance, error.schema)
        ]
    property_name = "propertyNames" in error.relative_schema_path
    message = _schema_message(keyword, expected, error, property_name)
    return [error_item(f"schema.{keyword}", ERROR, message, path)]


def _schema_message(keyword: str, expected: Any, error: ValidationError, property_name: bool) -> str:
    # The shared wording, told two things only this validator knows: which
    # format a pattern stands in for, and that a oneOf matched several shapes.
    if keyword == "format":
        expected = _FORMAT_DESCRIPTIONS.get(expected, expected)
    schema_format = error.schema.get("format") if isinstance(error.schema, dict) else None
    if keyword == "pattern" and schema_format:
        keyword, expected = "format", _FORMAT_DESCRIPTIONS.get(schema_format, schema_format)
    if keyword == "oneOf" and not error.context:
        return SEVERAL_SHAPES
    if keyword == "oneOf":
        keyword = "anyOf"  # branches were tried and none matched: "does not match any"
    return schema_keyword_message(keyword, expected, property_name=property_name)


def _unexpected_properties(instance: dict, schema: dict) -> list[str]:
    declared = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    return [
        name
        for name in instance
        if name not in declared and not any(re.search(pattern, name) for pattern in patterns)
    ]


# --- ordering --------------------------------------------------------------------


def _pointer_sort_key(pointer: str) -> tuple:
    tokens = pointer.split("/")[1:]
    # Numbers before names, and numbers by value, so /entities/2 comes before /entities/10.
    # Without int(): a property name of 5,000 digits is a valid token, and int()
    # refuses that many; digits without a leading zero order by length, then text.
    return tuple(
        (0, len(token), token) if _ARRAY_INDEX.fullmatch(token) else (1, 0, token) for token in tokens
    )


def _sorted_unique(items: list[dict]) -> list[dict]:
    unique = {(item["pointer"], item["code"], item["message"]): item for item in items}
    return sorted(
        unique.values(),
        key=lambda item: (_pointer_sort_key(item["pointer"]), item["code"], item["message"]),
    )
