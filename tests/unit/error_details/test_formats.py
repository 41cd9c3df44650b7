"""The published format names, the envelope's schema and the detection of a library's output."""

from __future__ import annotations

import json

import pytest
from fhir.resources.operationoutcome import OperationOutcome as OperationOutcomeR5
from fhir.resources.R4B.operationoutcome import OperationOutcome as OperationOutcomeR4B
from jsonschema import Draft202012Validator

from app.services.error_details import (
    ERROR_FORMATS,
    AmbiguousErrorFormatError,
    detect_error_formats,
    SCHEMA_ID,
    DetailsLimits,
    UnknownErrorFormatError,
    detect_error_format,
    load_error_details_schema,
    normalize_error_details,
)
from tests.unit.error_details.payloads import (
    document_with_patient_text,
    fhir_validator_outcome,
    jschon_basic_output,
    jsonschema_payload,
    pydantic_error,
    reference_worker_items,
)


def test_error_formats_are_the_published_names():
    assert ERROR_FORMATS == (
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
        "free-form",
    )


def test_schema_file_is_a_valid_draft_2020_12_schema_with_its_id():
    schema = load_error_details_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_ID
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["item"]["additionalProperties"] is False
    assert schema["$defs"]["entity"]["additionalProperties"] is False
    schema["title"] = "changed"
    assert load_error_details_schema()["title"] != "changed"


def test_schema_caps_match_the_default_limits():
    schema = load_error_details_schema()
    limits = DetailsLimits()
    item = schema["$defs"]["item"]["properties"]
    assert schema["properties"]["errors"]["maxItems"] == limits.max_items
    assert item["message"]["maxLength"] == limits.max_message_length
    assert item["code"]["maxLength"] == limits.max_code_length
    assert item["rule"]["maxLength"] == limits.max_code_length
    assert item["pointer"]["maxLength"] == limits.max_pointer_length
    assert item["ctx"]["maxProperties"] == limits.max_ctx_keys
    assert item["ctx"]["propertyNames"]["maxLength"] == limits.max_code_length
    assert item["ctx"]["additionalProperties"]["anyOf"][0]["maxLength"] == limits.max_ctx_string_length
    assert schema["$defs"]["entity"]["properties"]["type"]["maxLength"] == limits.max_code_length


def test_detect_recognises_each_library_output():
    document = document_with_patient_text()
    error = pydantic_error()
    assert (
        detect_error_format(
            {"errors": reference_worker_items("doc-0011-scanned-intake-form-multiple-errors.json")}
        )
        == "normalized"
    )
    envelope, _ = normalize_error_details(
        {"errors": reference_worker_items("doc-0006-referral-letter-bad-icd-code.json")}, None
    )
    assert detect_error_format(envelope) == "normalized"
    assert detect_error_format(json.loads(error.json())) == "pydantic"
    assert detect_error_format(error.errors(include_url=False, include_input=False)) == "pydantic"
    assert detect_error_format(jsonschema_payload(document)) == "jsonschema"
    assert detect_error_format(jschon_basic_output(document)) == "jsonschema-basic"
    assert (
        detect_error_format(json.loads(fhir_validator_outcome(OperationOutcomeR5, r5=True)))
        == "fhir-operationoutcome"
    )
    assert (
        detect_error_format(json.loads(fhir_validator_outcome(OperationOutcomeR4B, r5=False)))
        == "fhir-operationoutcome"
    )


@pytest.mark.parametrize(
    "details",
    [
        {"foo": 1},
        [],  # no errors, but whose? pydantic's, jsonschema's and ours all fit
        [1, 2],
        "Validation failed: bad code",
        None,
        42,
        {"errors": "text"},
        {"errors": [{"code": "x"}]},
        {"errors": [{"code": "x", "severity": "error", "message": "m", "pointer": ""}], "extra": 1},
        {"schema_version": True, "errors": []},
        {"schema_version": 2, "errors": []},
        {"valid": "false", "errors": [{"keywordLocation": ""}]},
        {"valid": False, "errors": [{"instanceLocation": ""}]},
        {"resourceType": "Patient"},
        [{"loc": [], "msg": "m", "type": "t"}, {"validator": "type", "path": [], "schema_path": []}],
        {"issues": []},
        {"issues": [{"code": "c", "path": [], "message": "m"}], "extra": 1},
    ],
)
def test_detect_returns_none_for_free_form_details(details):
    assert detect_error_format(details) is None
    assert normalize_error_details(details, None) == (details, "free-form")


def test_details_that_fit_two_formats_are_refused_until_the_format_is_named():
    # Both marker sets on one object: pydantic's or jsonschema's?
    both = [{"loc": [], "msg": "m", "type": "t", "validator": "type", "path": [], "schema_path": []}]
    assert detect_error_format(both) is None
    assert detect_error_formats(both) == ("pydantic", "jsonschema")
    with pytest.raises(AmbiguousErrorFormatError) as caught:
        normalize_error_details(both, None)
    assert caught.value.candidates == ("pydantic", "jsonschema")
    assert isinstance(caught.value, ValueError)
    assert normalize_error_details(both, "pydantic")[1] == "pydantic"


def test_free_form_is_returned_as_is():
    details = {"stack": ["a", "b"], "note": "worker crashed"}
    stored, used = normalize_error_details(details, "free-form")
    assert stored is details and used == "free-form"
    # Declared free-form wins over detection.
    items = {"errors": [{"code": "x", "severity": "error", "message": "m", "pointer": ""}]}
    assert normalize_error_details(items, "free-form") == (items, "free-form")


@pytest.mark.parametrize("error_format", ["Normalized", "pydantic-v2", "", "free_form", 3, ["normalized"]])
def test_unknown_format_is_refused(error_format):
    with pytest.raises(UnknownErrorFormatError) as caught:
        normalize_error_details({"errors": []}, error_format)
    assert caught.value.allowed == ERROR_FORMATS
    assert isinstance(caught.value, ValueError)
