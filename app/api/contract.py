"""The published worker contract: the OpenAPI 3.1 document and request checks.

``specs/openapi.json`` is the one source of truth for request and response
shapes. It is served at ``/api/v1/openapi.json``, and request bodies are
validated against its ``components.schemas`` with ``jsonschema`` (OpenAPI
3.1 schemas are JSON Schema draft 2020-12), so the document cannot drift
from what the server accepts. A body that the compiled ``jsonschema-rs``
validator accepts skips the Python one (about 0.2 ms a report), for schemas
where the two cannot disagree (:func:`_fast_validator`); every fault is
still found and worded by ``jsonschema``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from app.services.ecma_patterns import ContractValidator
from app.errors import FieldError, InvalidFieldsError, InvalidQueryError, field_error, parameter_error
from app.services.error_details import SCHEMA_PATH as ERROR_DETAILS_SCHEMA_PATH
from app.services.error_details.schema_wording import (
    REQUIRED_PROPERTY,
    UNKNOWN_PROPERTY,
    schema_keyword_message,
)
from app.services.json_pointer import json_pointer
from app.services.json_values import without_surrogates
from app.web.query_time import date_time_fault, parse_range_bound

OPENAPI_PATH = Path(__file__).with_name("specs") / "openapi.json"
ENTITY_DOCUMENT_SCHEMA_PATH = Path(__file__).parents[1] / "worker" / "schemas" / "entity-document.v1.schema.json"  # noqa: E501

#: The JSON Schemas the API publishes at ``/api/v1/schemas/<file name>``, and
#: the ``components.schemas`` name each one has in the OpenAPI document.
PUBLISHED_SCHEMAS: dict[str, tuple[str, Path]] = {
    "entity-document.v1.schema.json": ("EntityDocument", ENTITY_DOCUMENT_SCHEMA_PATH),
    "error-details.v1.schema.json": ("ErrorDetailsEnvelope", ERROR_DETAILS_SCHEMA_PATH),
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (parsed once; do not mutate).

    ``specs/openapi.json`` plus the published JSON Schemas
    (:data:`PUBLISHED_SCHEMAS`) copied into ``components.schemas``, so that
    each has one source (its file) and the document refers to it by name.
    """
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    for file_name, (name, path) in PUBLISHED_SCHEMAS.items():
        document["components"]["schemas"][name] = _embedded(
            json.loads(path.read_text(encoding="utf-8")), name, file_name
        )
    return document


@functools.cache
def served_openapi_document(max_page_size: int) -> dict[str, Any]:
    """:func:`openapi_document` as this server answers it: each ``limit``
    query parameter's ``maximum`` is ``max_page_size`` (``MAX_PAGE_SIZE``)
    and its ``default`` at most that, so a client generated from the served
    document sends no ``limit`` the server refuses (a trial ran with
    ``MAX_PAGE_SIZE=10`` against a document saying 200). A copy; do not
    mutate it."""
    document = json.loads(json.dumps(openapi_document()))
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") == "query" and parameter.get("name") == "limit":
                    schema = parameter["schema"]
                    schema["maximum"] = max_page_size
                    if "default" in schema:
                        schema["default"] = min(schema["default"], max_page_size)
    return document


def _embedded(schema: dict[str, Any], name: str, file_name: str) -> dict[str, Any]:
    """A published schema as an OpenAPI component: without ``$schema`` and
    ``$id`` (tools resolve a component's references against the OpenAPI
    document, not against an embedded ``$id``), its ``#/...`` references
    rewritten to point inside the component, and its ``$id`` and address
    named in the description."""
    base = f"#/components/schemas/{name}"

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        return {
            key: base + value[1:] if key == "$ref" and str(value).startswith("#") else rewrite(value)
            for key, value in node.items()
        }

    component = rewrite({k: v for k, v in schema.items() if k not in ("$schema", "$id")})
    component["description"] = (
        f"{schema.get('description', '')} Published at /api/v1/schemas/{file_name} (JSON Schema draft "
        f"2020-12, $id {schema.get('$id')})."
    ).strip()
    return component


@functools.cache
def _validator(schema_name: str) -> Draft202012Validator:
    document = openapi_document()
    if schema_name not in document["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the OpenAPI document")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        # Unknown keyword, kept so "#/components/schemas/..." references resolve.
        "components": document["components"],
        "$ref": f"#/components/schemas/{schema_name}",
    }
    return ContractValidator(schema, format_checker=_FORMAT_CHECKER)


def _strict_date_time(instance: object) -> bool:
    # rfc3339-validator's pattern ends in "$", which Python's re lets match
    # before a final line break: "2026-12-31T10:00:00Z\n" passed as a
    # date-time while "2026-12-31\n" failed as a date (a trial).
    return not (isinstance(instance, str) and instance.endswith("\n")) and _LENIENT_DATE_TIME(instance)


#: Draft 2020-12's format checks, with :func:`_strict_date_time` for ``date-time``.
_FORMAT_CHECKER = copy.copy(Draft202012Validator.FORMAT_CHECKER)
_FORMAT_CHECKER.checkers = dict(_FORMAT_CHECKER.checkers)
_LENIENT_DATE_TIME = _FORMAT_CHECKER.checkers["date-time"][0]
_FORMAT_CHECKER.checks("date-time")(_strict_date_time)


def _pointer(path: Any) -> str:
    # Field names come from the client. A lone surrogate becomes U+FFFD (it
    # would break the JSON answer, and no UTF-8 text can point at it); any
    # other character stays, so the pointer names the member sent, NUL
    # included (``%00`` in the fragment).
    return json_pointer(without_surrogates(str(part)) for part in path)


#: The branch that makes a field nullable, in an ``anyOf``/``oneOf`` of two.
_NULL = {"type": "null"}

#: The ``anyOf`` of a string that is an RFC 3339 date-time or a full-date.
_TIME_OR_DATE = [{"format": "date-time"}, {"format": "date"}]


def _describe(error: ValidationError) -> list[FieldError]:
    """Field errors for one jsonschema error. Never quotes the instance value
    (it may be patient text): the message is built from the keyword, in the
    wording the error-details adapters and the reference worker use too."""
    path = list(error.absolute_path)
    where = _pointer(path)
    keyword = error.validator
    value = error.validator_value
    instance = error.instance
    if keyword == "required":
        missing = [name for name in value if isinstance(instance, dict) and name not in instance]
        return [field_error(_pointer([*path, name]), REQUIRED_PROPERTY) for name in missing]
    if keyword == "dependentRequired" and isinstance(instance, dict):
        # Pointed at the missing member, as "required" is (a Quantity's code without its system).
        return [field_error(_pointer([*path, needed]), f"is required when {name} is given")
                for name, needs in value.items() if name in instance for needed in needs if needed not in instance]
    if keyword == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in known) if isinstance(instance, dict) else []
        return [field_error(_pointer([*path, name]), UNKNOWN_PROPERTY) for name in extra]
    if keyword == "not" and isinstance(value, dict) and set(value) == {"required"} and len(value["required"]) == 2:
        # `{"not": {"required": [a, b]}}`: at most one of two fields (an
        # ignore's until and occurrences), in the service's own words. A
        # null is no value given (a re-check: "until": null beside
        # occurrences was told "not both"); its own type error says what is wrong.
        first, second = value["required"]
        if isinstance(instance, dict) and (instance.get(first) is None or instance.get(second) is None):
            return []
        return [field_error(where, f"give either {first} or {second}, not both")]
    if keyword == "not" and value == {}:
        # `{"not": {}}` marks a field that this variant of the body forbids
        # (used instead of `false`, whose errors carry no path in jsonschema).
        return [field_error(where, "is not allowed with this status")]
    if (keyword in ("minLength", "pattern") and error.schema.get("pattern") == r"\S"
            and isinstance(instance, str) and not instance.strip()):
        # "minLength 1" and "pattern \S" say one thing about a blank value:
        # one plain error (identical ones are merged), not the regex.
        return [field_error(where, "must not be empty or only spaces")]
    if keyword == "format" and value == "date-time" and isinstance(instance, str):
        # Valid syntax naming a time that does not exist (2026-02-30, a leap
        # second): say which, rather than "is not a valid date-time".
        fault = date_time_fault(instance)
        if fault is not None:
            return [field_error(where, fault)]
    if keyword == "anyOf" and isinstance(instance, str) and value == _TIME_OR_DATE:
        # A time that may be a date alone (an ignore's until): the words of
        # the query string's from/to, not "does not match any of the
        # allowed shapes" (2026-02-30: "February 2026 has 28 days").
        try:
            parse_range_bound(instance, "until", end=False)
        except InvalidQueryError as refused:
            return [field_error(where, refused.errors[0]["detail"])]
        # The query string's reader allows spaces around a time and one for
        # the "T"; a body's time is the exact text (a trial).
        return [field_error(where, "must be an RFC 3339 date-time such as 2026-11-29T21:16:35Z, or a date such "
                                   "as 2026-11-29, with no spaces")]
    if keyword in ("anyOf", "oneOf") and instance is not None and _NULL in value and len(value) == 2:
        # A nullable field (``[shape, {"type": "null"}]``) given a value: say
        # what is wrong inside the shape, not "does not match any of the
        # allowed shapes" at the field (a trial: a Quantity with a code but
        # no system, or a value "1" for 1, named only the entity's value).
        shape = 1 - value.index(_NULL)
        inner = [e for e in error.context or () if e.relative_schema_path and e.relative_schema_path[0] == shape]
        if len(inner) == 1 and inner[0].validator == "type" and list(inner[0].absolute_path) == path:
            # Not the shape's type at all: null is allowed too, as "string or null" says of a plain field.
            types = inner[0].validator_value
            return [field_error(where, schema_keyword_message(
                "type", [*(types if isinstance(types, list) else [types]), "null"]))]
        if inner:
            return [found for e in inner for found in _describe(e)]
    message = schema_keyword_message(
        "false" if keyword is None else str(keyword),
        value,
        property_name="propertyNames" in error.relative_schema_path,
    )
    return [field_error(where, message)]


#: Keywords the two validators may read differently (regular-expression
#: dialects, format checkers that depend on installed packages): a schema
#: that reaches one of them is always checked by ``jsonschema`` alone.
_DIALECT_KEYWORDS = frozenset({"format", "pattern", "patternProperties", "$dynamicRef"})


def _reached_keywords(node: Any, document: dict[str, Any], seen: set[str]) -> set[str]:
    """Every keyword used in ``node`` or in what its local ``$ref``s reach."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _reached_keywords(item, document, seen)
    elif isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key == "$ref" and isinstance(value, str) and value.startswith("#/") and value not in seen:
                seen.add(value)
                target: Any = document
                for part in value[2:].split("/"):
                    target = target[part.replace("~1", "/").replace("~0", "~")]
                found |= _reached_keywords(target, document, seen)
            elif key not in ("enum", "const", "default", "examples", "description"):
                found |= _reached_keywords(value, document, seen)
    return found


@functools.cache
def _fast_validator(schema_name: str) -> jsonschema_rs.Draft202012Validator | None:
    """A compiled validator for ``schema_name``, or ``None`` where it might
    disagree with ``jsonschema`` (the schema reaches a keyword of
    :data:`_DIALECT_KEYWORDS`). Used only to say "valid": a body it refuses
    goes to ``jsonschema``, which finds and words the faults."""
    schema = _validator(schema_name).schema
    # Property names count as keywords here too: that can only leave a
    # schema without the fast path, never give one a wrong answer.
    if _reached_keywords({"$ref": schema["$ref"]}, schema, set()) & _DIALECT_KEYWORDS:
        return None
    return jsonschema_rs.Draft202012Validator(schema)


def _accepted_quickly(body: Any, schema_name: str) -> bool:
    fast = _fast_validator(schema_name)
    if fast is None:
        return False
    try:
        return fast.is_valid(body)
    except Exception:  # noqa: BLE001 - a value it cannot take (an int over 64 bits ...): ask jsonschema
        return False


#: The 422's ``detail`` when a worker's body breaks its schema.
WORKER_CONTRACT_REFUSED = "The body does not match the worker contract; nothing was changed."


def validate_request(
    body: Any, schema_name: str, semantic: Callable[[Any], list[FieldError]] | None = None,
    refused: str = WORKER_CONTRACT_REFUSED,
) -> None:
    """Check a parsed request body against ``components.schemas[schema_name]``
    and, in the same round, against the rules a schema cannot state.

    Args:
        body: the parsed JSON body.
        schema_name: the body's schema in the OpenAPI document.
        semantic: the services' own checks of the body (a span that ends
            before it starts, an over-long message once trimmed, details
            that do not fit their format...), returning field errors; called
            even when the schema check failed, so that one answer names
            every fault. Its errors at or below a place the schema check
            already named are dropped (one fault, one error).
        refused: the 422's top-level ``detail``: what was refused, said the
            same way whether the schema or a later rule of the same request
            finds the fault.

    Raises:
        InvalidFieldsError: (HTTP 422) one :class:`FieldError` per problem,
            sorted by pointer, each naming the field with an RFC 6901 pointer.
    """
    if _accepted_quickly(body, schema_name):
        return  # no schema fault, so no semantic check either (it only completes a 422)
    errors: list[FieldError] = []
    found = list(_validator(schema_name).iter_errors(body))
    # A value of the wrong type breaks its length or pattern too, and its
    # enum: one fault, one error. The enum's says the most ("must be one
    # of: ..." names the values); elsewhere the type's.
    listed = {tuple(e.absolute_path) for e in found if e.validator in ("enum", "const")}
    wrong_type = {tuple(e.absolute_path) for e in found if e.validator == "type"} - listed
    for error in found:
        place = tuple(error.absolute_path)
        if (error.validator == "type" and place in listed) or (error.validator != "type" and place in wrong_type):
            continue
        errors.extend(_describe(error))
    if errors and semantic is not None:
        named = [error["pointer"] for error in errors]
        errors.extend(
            extra
            for extra in semantic(body)
            if not any(_within(extra.get("pointer", "#"), place) or _within(place, extra.get("pointer", "#"))
                       for place in named)
        )  # fmt: skip
    if errors:
        unique = {(e.get("pointer", ""), e["detail"]): e for e in errors}
        ordered = [unique[k] for k in sorted(unique)]
        raise InvalidFieldsError(refused, ordered)


def _within(pointer: str, ancestor: str) -> bool:
    # Whole-body errors ("#") are not an ancestor here: "must be object" and a
    # field's own fault are different faults only when the body is an object.
    return ancestor != "#" and (pointer == ancestor or pointer.startswith(ancestor + "/"))


#: A Flask rule's variable (``<job_id>``, ``<uuid:job_id>``), an OpenAPI path template's ``{job_id}``.
_RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@functools.cache
def _declared_query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    # (path template, method) -> the "in: query" parameter names the
    # document declares for that operation ($refs to components resolved).
    document = openapi_document()
    shared = document["components"].get("parameters", {})
    declared: dict[tuple[str, str], frozenset[str]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            parameters = [
                shared[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p
                for p in [*operations.get("parameters", []), *operation.get("parameters", [])]
            ]
            declared[(path, method.upper())] = frozenset(p["name"] for p in parameters if p["in"] == "query")
    return declared


def refuse_unknown_query_parameters(rule: str | None, method: str, names: list[str]) -> None:
    """Refuse a request whose query string has a parameter its operation
    does not declare in the OpenAPI document: on a read, a typo such as
    ``stauts`` would otherwise answer an unfiltered 200 that looks like a
    filtered one; on a write (which declares none), a parameter the worker
    meant something by would be dropped without a word.

    Args:
        rule: the matched Flask URL rule (``/api/v1/processing-jobs/<job_id>``);
            None (no route matched) is left to the 404/405 handlers.
        method: the request method; ``GET``, ``HEAD`` (as ``GET``) and
            ``POST`` are checked.
        names: the query parameter names, in order, repeats allowed.

    Raises:
        InvalidQueryError: (400 ``invalid-query``) one item per unknown name,
            in ``parameter``; ``detail`` lists the operation's parameters.
    """
    if rule is None or method not in ("GET", "HEAD", "POST"):
        return
    operation = "POST" if method == "POST" else "GET"
    known = _declared_query_parameters().get((_RULE_VARIABLE.sub(r"{\1}", rule), operation))
    if known is None:
        return
    unknown = list(dict.fromkeys(name for name in names if name not in known))
    if not unknown:
        return
    takes = ", ".join(sorted(known)) if known else "none"
    raise InvalidQueryError(
        f"Unknown query parameter{'s' if len(unknown) > 1 else ''}; this operation takes: {takes}.",
        # A name with a control character is not echoed (request_input
        # refuses those first; this is the belt to its braces).
        [parameter_error(name if name.isprintable() else "", "is not a parameter of this operation")
         for name in unknown],
    )
