"""The semantic stage of entity-document validation, and the error item both stages build.

Runs on the entities that passed the JSON Schema stage
(:mod:`app.worker.validation`): ICD-10-CM codes of conditions, UCUM units,
dates not after the extraction, span sanity and extractor confidence. Each
check gives error items ``{"code", "severity", "message", "pointer"}`` built by
:func:`error_item`; severities are FHIR OperationOutcome issue severities.
Messages never quote patient text; only codes from a code system are quoted.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from types import ModuleType
from typing import Any

from ucumvert import InvalidUcumError, get_ucum_parser, parse_ucum

from app.services.json_pointer import json_pointer

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

# Codes are not patient text and may be quoted, but only when the value looks
# like a code: an extractor that put a phrase in ``code`` must not get it echoed.
_CODE_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,9}")

# The calendar date is at its latest at UTC+14 (Line Islands): a clinical date
# written in local time is in the future only if it is after that date.
_LATEST_OFFSET = timezone(timedelta(hours=14))


def error_item(code: str, severity: str, message: str, path: Iterable[str | int]) -> dict:
    """One error item: ``{"code", "severity", "message", "pointer"}``, the
    pointer the RFC 6901 JSON Pointer of ``path``."""
    return {"code": code, "severity": severity, "message": message, "pointer": json_pointer(path)}


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


def semantic_items(document: dict, schema_pointers: set[str]) -> list[dict]:
    """Items of the semantic checks, for the entities without schema errors.

    Args:
        document: the entity document (a JSON object).
        schema_pointers: pointers of the JSON Schema stage's items; an entity
            (or ``extracted_at``, ``source``) under one of them is skipped.
    """
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
                items.append(error_item("date.in_future", ERROR, message, [*path, field]))

    span = entity["span"]
    if span["end"] < span["start"]:
        items.append(error_item("span.out_of_range", ERROR, "span end is before span start", [*path, "span"]))
    if page_count is not None and span["page"] > page_count:
        message = "span page is beyond the source page_count"
        items.append(error_item("span.out_of_range", ERROR, message, [*path, "span", "page"]))

    if entity["confidence"] < LOW_CONFIDENCE_THRESHOLD:
        items.append(
            error_item(
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
        return [error_item("code.unknown_icd10cm", ERROR, f"{quoted} is not a valid ICD-10-CM code", path)]
    if not icd.is_leaf(code):
        # Only leaf codes are billable (ICD-10-CM Official Guidelines I.A.2:
        # code to the highest number of characters available).
        return [
            error_item(
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
    return [error_item("unit.not_ucum", ERROR, message, path)]


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
