"""The normalized error-details contract v1 and its adapters.

A worker whose validation failed posts ``error_details`` in one of
:data:`ERROR_FORMATS`; :func:`normalize_error_details` turns the structured
ones into the envelope the server stores::

    {"schema_version": 1, "errors": [item, ...], "error_count": N, "truncated": bool}

with items ``{"code", "severity", "message", "pointer", "rule"?, "ctx"?,
"entity"?, "fingerprint"?}`` (JSON Schema: ``schemas/error-details.v1.schema.json``; prose:
``docs/error-details.md``). Pure functions: no database, no Flask, no
pydantic/jschon/fhir.resources at run time -- payloads are plain JSON.

Privacy rule: items never copy patient text. The adapters drop pydantic's
``input`` and jsonschema's instance, and rebuild messages that would quote
them from the failed keyword or error type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from app.services.error_details.ajv_errors import AJV_MARKERS, ajv_items
from app.services.error_details.aspnetcore_problem import (
    PROBLEM_MEMBERS,
    aspnetcore_items,
    model_state_key_to_pointer,
    snake_case_lower,
)
from app.services.error_details.envelope import FREE_FORM, envelope_errors, is_envelope_sql, listed_errors
from app.services.error_details.errors import (
    AmbiguousErrorFormatError,
    InvalidErrorDetailsError,
    UnknownErrorFormatError,
)
from app.services.error_details.items import SCHEMA_VERSION, SEVERITIES, build_envelope
from app.services.error_details.jsonschema_basic import (
    basic_output_items,
    has_passing_unit,
    hierarchical_output_items,
    is_hierarchical_output,
)
from app.services.error_details.jsonschema_errors import jsonschema_error_to_json, jsonschema_items
from app.services.error_details.limits import DEFAULT_LIMITS, DetailsLimits
from app.services.error_details.normalized import normalized_error_count, normalized_items
from app.services.error_details.operation_outcome import fhirpath_to_pointer, operation_outcome_items
from app.services.error_details.pydantic_errors import pydantic_items
from app.services.error_details.zod_issues import ZOD_MARKERS, zod_items
from app.services.schema_files import load_schema_file

__all__ = [
    "ERROR_FORMATS",
    "FREE_FORM",
    "SCHEMA_ID",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "AmbiguousErrorFormatError",
    "DetailsLimits",
    "InvalidErrorDetailsError",
    "UnknownErrorFormatError",
    "ajv_items",
    "aspnetcore_items",
    "basic_output_items",
    "build_envelope",
    "detect_error_format",
    "detect_error_formats",
    "envelope_errors",
    "is_envelope_sql",
    "listed_errors",
    "fhirpath_to_pointer",
    "hierarchical_output_items",
    "jsonschema_error_to_json",
    "jsonschema_items",
    "load_error_details_schema",
    "model_state_key_to_pointer",
    "normalize_error_details",
    "normalized_items",
    "operation_outcome_items",
    "pydantic_items",
    "snake_case_lower",
    "zod_items",
]

ERROR_FORMATS: tuple[str, ...] = (
    "normalized",
    "pydantic",
    "jsonschema",
    "jsonschema-basic",
    "jsonschema-detailed",
    "jsonschema-verbose",
    "ajv",
    "zod",
    "aspnetcore-validation-problem",
    "fhir-operationoutcome",
    FREE_FORM,
)

SCHEMA_PATH = Path(__file__).with_name("schemas") / "error-details.v1.schema.json"
SCHEMA_ID = "https://clinical-intelligence.example/schemas/error-details.v1.schema.json"

_ADAPTERS: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "normalized": normalized_items,
    "pydantic": pydantic_items,
    "jsonschema": jsonschema_items,
    "jsonschema-basic": basic_output_items,
    "jsonschema-detailed": hierarchical_output_items,
    "jsonschema-verbose": hierarchical_output_items,
    "ajv": ajv_items,
    "zod": zod_items,
    "aspnetcore-validation-problem": aspnetcore_items,
    "fhir-operationoutcome": operation_outcome_items,
}

_ITEM_MARKERS = ("code", "severity", "message", "pointer")
_PYDANTIC_MARKERS = ("loc", "msg", "type")
_JSONSCHEMA_MARKERS = ("validator", "path", "schema_path")


def detect_error_formats(details: Any) -> tuple[str, ...]:
    """Every format whose markers ``error_details`` carries (usually one).

    Rules (``docs/error-details.md``, "Detection"):

    * an object with ``resourceType == "OperationOutcome"`` ->
      ``fhir-operationoutcome``;
    * an object with a boolean ``valid``, ``keywordLocation`` and
      ``instanceLocation`` (a JSON Schema output tree) -> ``jsonschema-verbose``
      when a unit in it passes (``"valid": true``) or carries
      ``annotations``, which only verbose output lists; otherwise both
      ``jsonschema-detailed`` and ``jsonschema-verbose`` (the worker must say);
    * an object with a boolean ``valid`` and an ``errors`` array whose
      elements are all objects with ``keywordLocation`` ->
      ``jsonschema-basic``;
    * an object with ``schema_version == 1`` (the v1 envelope), an object
      whose only key is ``errors`` holding an array of objects that all have
      ``code``, ``severity``, ``message`` and ``pointer`` (v0; ``{"errors":
      []}`` included) -> ``normalized``;
    * an object whose ``errors`` is an object of arrays of strings, with at
      least one problem-details member (``type``, ``title``, ``status``,
      ``detail``, ``instance``, ``traceId``) -> ``aspnetcore-validation-problem``;
    * an object whose keys are ``issues`` and optionally ``name`` (zod 3's
      serialised ZodError), ``issues`` a non-empty array of zod issues ->
      ``zod``;
    * a non-empty array whose elements are all objects with the markers of
      one format: ``code``, ``severity``, ``message``, ``pointer``
      (``normalized``); ``loc``, ``msg``, ``type`` (``pydantic``);
      ``validator``, ``path``, ``schema_path`` (``jsonschema``);
      ``instancePath``, ``schemaPath``, ``keyword``, ``params`` (``ajv``);
      ``code``, ``path``, ``message`` (``zod``). An array that fits several
      gives them all.

    Anything else gives ``()``: free-form. That includes ``[]`` (no errors,
    but whose?) and arrays mixing shapes. Only markers are looked at: a
    payload detected as a format may still be malformed in it, and
    :func:`normalize_error_details` then refuses it.
    """
    if isinstance(details, Mapping):
        return _detect_object(details)
    return tuple(
        name
        for name, markers in (
            ("normalized", _ITEM_MARKERS),
            ("pydantic", _PYDANTIC_MARKERS),
            ("jsonschema", _JSONSCHEMA_MARKERS),
            ("ajv", AJV_MARKERS),
            ("zod", ZOD_MARKERS),
        )
        if _all_have(details, markers, allow_empty=False)
    )


def detect_error_format(details: Any) -> str | None:
    """The one format :func:`detect_error_formats` finds, or ``None`` when it
    finds none (free-form) or several (ambiguous: the worker must say which)."""
    found = detect_error_formats(details)
    return found[0] if len(found) == 1 else None


def _detect_object(details: Mapping[str, Any]) -> tuple[str, ...]:
    if details.get("resourceType") == "OperationOutcome":
        return ("fhir-operationoutcome",)
    if is_hierarchical_output(details):
        if has_passing_unit(details):
            return ("jsonschema-verbose",)
        return ("jsonschema-detailed", "jsonschema-verbose")
    errors = details.get("errors")
    if isinstance(details.get("valid"), bool) and _all_have(errors, ("keywordLocation",), allow_empty=True):
        return ("jsonschema-basic",)
    version = details.get("schema_version")
    # type() check: True == 1 in Python, but a JSON true is not the version
    # 1; 1.0 is (JSON Schema's const compares numbers by value).
    if type(version) in (int, float) and version == SCHEMA_VERSION:
        return ("normalized",)
    if set(details) == {"errors"} and _all_have(errors, _ITEM_MARKERS, allow_empty=True):
        return ("normalized",)
    if (
        isinstance(errors, Mapping)
        and any(member in details for member in PROBLEM_MEMBERS)
        and all(
            isinstance(messages, (list, tuple)) and all(isinstance(m, str) for m in messages)
            for messages in errors.values()
        )
    ):
        return ("aspnetcore-validation-problem",)
    issues = details.get("issues")
    if set(details) <= {"issues", "name"} and _all_have(issues, ZOD_MARKERS, allow_empty=False):
        return ("zod",)
    return ()


def normalize_error_details(
    details: Any, error_format: str | None, limits: DetailsLimits = DEFAULT_LIMITS
) -> tuple[Any, str]:
    """Turn a worker's ``error_details`` into the value to store.

    Args:
        details: the parsed JSON the worker sent, after the generic JSON
            check and cleaning (``app.services.json_values.clean_json_value``).
        error_format: one of :data:`ERROR_FORMATS`, or ``None`` to use
            :func:`detect_error_formats`.
        limits: caps for the envelope (see :class:`DetailsLimits`).

    Returns:
        ``(value, format_used)``. For every format but ``free-form`` the value
        is a new v1 envelope (see :func:`build_envelope`): items in the
        worker's order, the first ``limits.max_items`` kept, ``error_count``
        the number reported (a v1 envelope's own ``error_count`` when it
        already dropped some), ``truncated`` whether any were dropped, strings
        cut to their caps with a trailing "…", every string following the
        NUL/lone-surrogate rule of :mod:`app.services.json_values`. For
        ``free-form`` -- declared, or ``None`` and nothing detected --
        ``details`` itself is returned untouched.

    Raises:
        UnknownErrorFormatError: ``error_format`` is not ``None`` and not in
            :data:`ERROR_FORMATS` (``allowed`` lists them).
        AmbiguousErrorFormatError: ``error_format`` is ``None`` and the
            details fit several formats (``candidates`` lists them): the
            worker must name one.
        InvalidErrorDetailsError: ``details`` are malformed for the declared
            or detected format; ``pointer`` locates the problem inside
            ``details`` (e.g. ``"/errors/3/severity"``), ``reason`` says what
            was expected without quoting values.
    """
    if error_format is not None and (not isinstance(error_format, str) or error_format not in ERROR_FORMATS):
        raise UnknownErrorFormatError(error_format, ERROR_FORMATS)
    if error_format is None:
        found = detect_error_formats(details)
        if len(found) > 1:
            raise AmbiguousErrorFormatError(found)
        used = found[0] if found else FREE_FORM
    else:
        used = error_format
    if used == FREE_FORM:
        return details, FREE_FORM
    items = _ADAPTERS[used](details)
    error_count = normalized_error_count(details) if used == "normalized" else None
    return build_envelope(items, limits, error_count=error_count), used


def load_error_details_schema() -> dict:
    """Return the envelope's JSON Schema (draft 2020-12, ``$id`` :data:`SCHEMA_ID`).

    Read once; each call returns a fresh deep copy the caller may change.

    Raises:
        OSError / json.JSONDecodeError: the schema file is missing or broken.
    """
    return load_schema_file(SCHEMA_PATH)


def _all_have(value: Any, keys: tuple[str, ...], *, allow_empty: bool) -> bool:
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        return False
    return all(isinstance(element, Mapping) and all(key in element for key in keys) for element in value)
