"""Validation of entity documents, as run by the reference worker.

An entity document is the JSON the AI worker extracts from one source document
(see ``schemas/entity-document.v1.schema.json``). Validation has two stages:

1. JSON Schema (draft 2020-12) validation of the shape, including the ``date``
   and ``date-time`` formats.
2. Semantic checks on the entities that passed stage 1: ICD-10-CM codes of
   conditions, UCUM units, dates not after the extraction, span sanity and
   extractor confidence.

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
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from ucumvert import InvalidUcumError, get_ucum_parser, parse_ucum

from app.services.error_details.schema_wording import (
    SEVERAL_SHAPES,
    UNKNOWN_PROPERTY,
    missing_property_message,
    schema_keyword_message,
)
from app.services.json_pointer import json_pointer
from app.services.schema_files import load_schema_file

SCHEMA_PATH = Path(__file__).with_name("schemas") / "entity-document.v1.schema.json"

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"

# Below this the extraction should be reviewed by a person, but it is not wrong.
LOW_CONFIDENCE_THRESHOLD = 0.5

FATAL = "fatal"
ERROR = "error"
WARNING = "warning"
INFORMATION = "information"
BLOCKING_SEVERITIES = frozenset({FATAL, ERROR})

# Entity fields holding a clinical date that cannot be after the extraction.
DATE_FIELDS = ("onset_date", "effective_date", "performed_date")

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

# Codes are not patient text and may be quoted, but only when the value looks
# like a code: an extractor that put a phrase in ``code`` must not get it echoed.
_CODE_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,9}")

# The calendar date is at its latest at UTC+14 (Line Islands): a clinical date
# written in local time is in the future only if it is after that date.
_LATEST_OFFSET = timezone(timedelta(hours=14))

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
    return Draft202012Validator(load_schema_file(SCHEMA_PATH), format_checker=checker)


@functools.cache
def _icd10cm() -> ModuleType:
    # Imported lazily: loading the code tables takes about two seconds, and
    # simple_icd_10_cm 1.5.0 calls the deprecated importlib.resources.read_text
    # while importing, which fails under -W error / filterwarnings=error.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"(read_text|open_text) is deprecated",
            category=DeprecationWarning,
        )
        import simple_icd_10_cm

    return simple_icd_10_cm


@functools.cache
def _ucum_parser() -> Any:
    return get_ucum_parser()


@functools.lru_cache(maxsize=2048)
def is_ucum_unit(unit: str) -> bool:
    """Tell whether ``unit`` is a valid UCUM case-sensitive unit code.

    Args:
        unit: a unit string such as ``"mg/dL"``, ``"10*3/uL"``, ``"mm[Hg]"``.

    Returns:
        True when the full UCUM grammar (ucumvert, UCUM 2.2 atoms and
        prefixes) accepts it. UCUM is strict: ``"mEq/L"`` and ``"mIU/mL"`` are
        not UCUM (``"meq/L"``, ``"m[IU]/mL"`` are), nor are ``"mmHg"`` or
        free text.
    """
    try:
        parse_ucum(unit, parser=_ucum_parser())
    except InvalidUcumError:
        return False
    return True


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
        return [_item("schema.type", FATAL, "entity document must be a JSON object", [])]

    items = _schema_items(_schema_validator(), document)
    items.extend(_semantic_items(document, {item["pointer"] for item in items}))
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
            _item("schema.required", ERROR, missing_property_message(name), path)
            for name in expected
            if name not in error.instance
        ]
    if keyword == "additionalProperties" and expected is False and isinstance(error.instance, dict):
        # One item per unexpected property, pointing at it; its name is not quoted.
        return [
            _item("schema.additionalProperties", ERROR, UNKNOWN_PROPERTY, [*path, name])
            for name in _unexpected_properties(error.instance, error.schema)
        ]
    property_name = "propertyNames" in error.relative_schema_path
    return [_item(f"schema.{keyword}", ERROR, _schema_message(keyword, expected, error, property_name), path)]


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


# --- semantic stage ------------------------------------------------------------


def _semantic_items(document: dict, schema_pointers: set[str]) -> list[dict]:
    entities = document.get("entities")
    if not isinstance(entities, list) or "/entities" in schema_pointers:
        return []

    latest_date = None
    if "/extracted_at" not in schema_pointers and isinstance(document.get("extracted_at"), str):
        latest_date = _latest_calendar_date(document["extracted_at"])

    page_count = None
    source = document.get("source")
    source_ok = not any(p == "/source" or p.startswith("/source/") for p in schema_pointers)
    if isinstance(source, dict) and source_ok:
        page_count = source.get("page_count")

    items: list[dict] = []
    for index, entity in enumerate(entities):
        prefix = f"/entities/{index}"
        if any(p == prefix or p.startswith(prefix + "/") for p in schema_pointers):
            continue
        items.extend(_entity_items(entity, ["entities", index], latest_date, page_count))
    return items


def _entity_items(
    entity: dict, path: list, latest_date: date | None, page_count: int | None
) -> list[dict]:
    items: list[dict] = []
    entity_type = entity["entity_type"]

    if entity_type == "Condition" and entity["code_system"] == ICD10CM_SYSTEM:
        items.extend(_icd10cm_items(entity["code"], [*path, "code"]))

    if entity_type == "Observation":
        items.extend(_unit_items(entity["value"]["unit"], [*path, "value", "unit"]))
    if entity_type == "MedicationStatement" and "dosage" in entity:
        items.extend(_unit_items(entity["dosage"]["unit"], [*path, "dosage", "unit"]))

    if latest_date is not None:
        for field in DATE_FIELDS:
            if field in entity and date.fromisoformat(entity[field]) > latest_date:
                message = f"{field} is after the document's extracted_at"
                items.append(_item("date.in_future", ERROR, message, [*path, field]))

    span = entity["span"]
    if span["end"] < span["start"]:
        items.append(_item("span.out_of_range", ERROR, "span end is before span start", [*path, "span"]))
    if page_count is not None and span["page"] > page_count:
        message = "span page is beyond the source page_count"
        items.append(_item("span.out_of_range", ERROR, message, [*path, "span", "page"]))

    if entity["confidence"] < LOW_CONFIDENCE_THRESHOLD:
        items.append(
            _item(
                "confidence.low",
                WARNING,
                f"confidence is below {LOW_CONFIDENCE_THRESHOLD}; the extraction needs review",
                [*path, "confidence"],
            )
        )
    return items


def _icd10cm_items(code: str, path: list) -> list[dict]:
    icd = _icd10cm()
    quoted = f"code '{code}'" if _CODE_SHAPE.fullmatch(code) else "code"
    # is_valid_item also accepts chapters ("4") and blocks ("E08-E13"), which are
    # not diagnosis codes; is_valid_item accepts codes with or without the dot.
    if not (icd.is_valid_item(code) and icd.is_category_or_subcategory(code)):
        return [_item("code.unknown_icd10cm", ERROR, f"{quoted} is not a valid ICD-10-CM code", path)]
    if not icd.is_leaf(code):
        # Only leaf codes are billable (ICD-10-CM Official Guidelines I.A.2:
        # code to the highest number of characters available).
        return [
            _item(
                "code.icd10cm_not_billable",
                WARNING,
                f"{quoted} is an ICD-10-CM category with more specific codes; it is not billable",
                path,
            )
        ]
    return []


def _unit_items(unit: str, path: list) -> list[dict]:
    if is_ucum_unit(unit):
        return []
    message = "unit is not a valid UCUM code (e.g. mg/dL, mmol/L, 10*3/uL)"
    return [_item("unit.not_ucum", ERROR, message, path)]


def _latest_calendar_date(extracted_at: str) -> date | None:
    # The schema's format check (RFC 3339) has passed; fromisoformat can still
    # refuse a few RFC 3339 forms (e.g. a leap second), and then no date check runs.
    try:
        moment = datetime.fromisoformat(extracted_at.upper())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        return moment.astimezone(_LATEST_OFFSET).date()
    except OverflowError:
        # Already past 9999-12-31 somewhere on Earth: no date can be later.
        return date.max


# --- items -----------------------------------------------------------------------


def _item(code: str, severity: str, message: str, path: Iterable[str | int]) -> dict:
    return {"code": code, "severity": severity, "message": message, "pointer": json_pointer(path)}


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
