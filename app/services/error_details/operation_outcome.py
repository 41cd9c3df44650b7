"""Adapter for FHIR ``OperationOutcome`` resources (the ``fhir-operationoutcome`` format).

FHIR R4 (4.0.1) and R5 (5.0.0) ``OperationOutcome``::

    {"resourceType": "OperationOutcome",
     "issue": [{"severity": "fatal" | "error" | "warning" | "information" | "success",
                "code": "<IssueType code>",
                "details"?: {"coding"?: [{"system"?, "code"?, "display"?}], "text"?},
                "diagnostics"?: str,
                "expression"?: [FHIRPath, ...],
                "location"?: [str, ...]}]}

One item per issue, in order: ``severity`` copied (R5's ``success`` becomes
``information``), ``code`` ``fhir.<issue.code>`` and ``rule`` the issue code,
``message`` ``details.text``, else ``diagnostics``, else the first coding's
``display``, else a sentence naming the issue code. ``pointer`` comes from
the first ``expression`` (else the first ``location``) when it is a simple
FHIRPath (:func:`fhirpath_to_pointer`); otherwise it is ``""`` and the path
is kept in ``ctx.expression`` (``ctx.location``). ``ctx.details_system`` and
``ctx.details_code`` copy the first coding of ``details``.

Privacy: unlike the JSON Schema and pydantic adapters, this one has no
keyword to rebuild a message from, so issue text is kept (capped). Workers
must not put element values in ``details.text`` or ``diagnostics``. The
resource's narrative (``text``) and extensions are never read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError, check_each
from app.services.error_details.items import make_item, require_string
from app.services.json_pointer import json_pointer

# IssueSeverity (http://hl7.org/fhir/issue-severity); "success" is R5 only.
_SEVERITIES = {
    "fatal": "fatal",
    "error": "error",
    "warning": "warning",
    "information": "information",
    "success": "information",
}

# One step of a simple FHIRPath: an element name, optionally indexed.
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(0|[1-9][0-9]*)\])?")


def fhirpath_to_pointer(expression: str) -> str | None:
    """Convert a simple FHIRPath to an RFC 6901 pointer, or ``None``.

    Simple means element names joined by ``.``, each optionally followed by a
    0-based ``[index]``, e.g. ``Bundle.entry[2].resource.code.coding[0]`` ->
    ``/entry/2/resource/code/coding/0``. A leading resource type (a name
    starting with an upper-case letter: FHIR element names are lowerCamel,
    resource types UpperCamel) is the root and is dropped, so ``Patient`` ->
    ``""``. Functions (``where()``, ``ofType()``...), backtick names and
    anything else give ``None``.
    """
    steps = expression.strip().split(".")
    tokens: list[str | int] = []
    for position, step in enumerate(steps):
        match = _STEP.fullmatch(step)
        if match is None:
            return None
        name, index = match.groups()
        if position == 0 and name[0].isupper():
            if index is not None:
                return None
            continue
        tokens.append(name)
        if index is not None:
            # Kept as the digits sent (the pattern allows no leading zero, so
            # they are the index's canonical text): int() refuses more than
            # sys.get_int_max_str_digits() digits, and a pointer holds text anyway.
            tokens.append(index)
    return json_pointer(tokens)


def operation_outcome_items(outcome: Any) -> list[dict[str, Any]]:
    """Turn a FHIR R4/R5 ``OperationOutcome`` into items, one per issue, in order.

    Args:
        outcome: the resource as JSON (e.g. ``json.loads(oo.model_dump_json())``
            with fhir.resources).

    Returns:
        Raw items (see the module docstring).

    Raises:
        InvalidErrorDetailsError: not an object (``""``); ``resourceType`` not
            ``"OperationOutcome"``; ``issue`` missing, not an array or empty
            (FHIR: 1..*); an issue not an object (``/issue/N``); ``severity``
            not an IssueSeverity code; ``code`` missing or blank; ``details``
            not an object, ``details.text``/``diagnostics`` not strings,
            ``details.coding`` not an array of objects, ``expression`` /
            ``location`` not arrays of strings (pointers below ``/issue/N``).
    """
    if not isinstance(outcome, Mapping):
        raise InvalidErrorDetailsError("", "must be a FHIR OperationOutcome resource object")
    if outcome.get("resourceType") != "OperationOutcome":
        raise InvalidErrorDetailsError("/resourceType", 'must be "OperationOutcome"')
    issues = outcome.get("issue")
    if not isinstance(issues, (list, tuple)) or not issues:
        raise InvalidErrorDetailsError("/issue", "must be a non-empty array of issues")
    return check_each(issues, _issue_item, "/issue")


def _issue_item(issue: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(issue, Mapping):
        raise InvalidErrorDetailsError(pointer, "must be an issue object")
    severity = issue.get("severity")
    if not isinstance(severity, str) or severity not in _SEVERITIES:
        raise InvalidErrorDetailsError(f"{pointer}/severity", "must be one of " + ", ".join(_SEVERITIES))
    code = require_string(issue, "code", pointer)
    details = issue.get("details", {})
    if not isinstance(details, Mapping):
        raise InvalidErrorDetailsError(f"{pointer}/details", "must be a CodeableConcept object")
    text = _optional_string(details, "text", f"{pointer}/details")
    diagnostics = _optional_string(issue, "diagnostics", pointer)
    coding = _first_coding(details.get("coding"), f"{pointer}/details/coding")
    expressions = _strings(issue, "expression", pointer)
    locations = _strings(issue, "location", pointer)

    ctx: dict[str, Any] = {}
    for source, target in (("system", "details_system"), ("code", "details_code")):
        if isinstance(coding.get(source), str):
            ctx[target] = coding[source]
    display = coding.get("display") if isinstance(coding.get("display"), str) else None
    message = next(
        (candidate for candidate in (text, diagnostics, display) if candidate and candidate.strip()),
        f"FHIR issue of type '{code}'",
    )

    target_pointer = ""
    path, key = None, ""
    if expressions:
        path, key = expressions[0], "expression"
    elif locations:
        path, key = locations[0], "location"
    if path is not None:
        converted = fhirpath_to_pointer(path)
        if converted is None:
            ctx[key] = path
        else:
            target_pointer = converted
    return make_item(f"fhir.{code}", _SEVERITIES[severity], message, target_pointer, rule=code, ctx=ctx)


def _optional_string(container: Mapping[str, Any], key: str, pointer: str) -> str | None:
    value = container.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidErrorDetailsError(f"{pointer}/{key}", "must be a string")
    return value


def _first_coding(codings: Any, pointer: str) -> Mapping[str, Any]:
    if codings is None:
        return {}
    if not isinstance(codings, (list, tuple)):
        raise InvalidErrorDetailsError(pointer, "must be an array of Coding objects")
    for index, coding in enumerate(codings):
        if not isinstance(coding, Mapping):
            raise InvalidErrorDetailsError(f"{pointer}/{index}", "must be a Coding object")
    return codings[0] if codings else {}


def _strings(container: Mapping[str, Any], key: str, pointer: str) -> list[str]:
    values = container.get(key)
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise InvalidErrorDetailsError(f"{pointer}/{key}", "must be an array of strings")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidErrorDetailsError(f"{pointer}/{key}/{index}", "must be a string")
    return list(values)
