"""The ``jsonschema`` adapter (``app.services.error_details.jsonschema_errors``)."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from app.services.error_details import (
    InvalidErrorDetailsError,
    jsonschema_error_to_json,
    normalize_error_details,
)
from tests.unit.error_details.payloads import (
    ENTITY_SCHEMA,
    SENTINEL,
    assert_valid_envelope,
    document_with_patient_text,
    jsonschema_payload,
    load,
    reference_worker_items,
)


def test_jsonschema_error_to_json_has_the_documented_shape():
    payload = jsonschema_payload(document_with_patient_text())
    assert payload
    for error in payload:
        assert set(error) <= {"message", "validator", "validator_value", "path", "schema_path"}
        assert {"message", "validator", "path", "schema_path"} <= set(error)
        assert json.loads(json.dumps(error)) == error
    false_schema = Draft202012Validator({"properties": {"a": False}})
    [serialised] = [jsonschema_error_to_json(e) for e in false_schema.iter_errors({"a": SENTINEL})]
    assert serialised["validator"] == "false" and "validator_value" not in serialised
    subschema = Draft202012Validator({"not": {"type": "string"}})
    [serialised] = [jsonschema_error_to_json(e) for e in subschema.iter_errors(SENTINEL)]
    assert "validator_value" not in serialised  # a subschema: not sent


def test_jsonschema_items_rebuild_messages_from_the_keyword():
    envelope, used = normalize_error_details(jsonschema_payload(document_with_patient_text()), None)
    assert used == "jsonschema"
    assert_valid_envelope(envelope)
    by_pointer = {(item["pointer"], item["code"]): item for item in envelope["errors"]}
    assert (
        by_pointer[("/document_id", "schema.minLength")]["message"] == "must be at least 1 character(s) long"
    )
    assert by_pointer[("/document_id", "schema.minLength")]["ctx"] == {
        "schema_location": "/properties/document_id/minLength",
        "expected": 1,
    }
    assert by_pointer[("/entities/0/confidence", "schema.type")]["message"] == "must be number"
    assert by_pointer[("/entities/0/onset_date", "schema.format")]["message"] == "is not a valid date"
    assert by_pointer[("/entities/0", "schema.additionalProperties")]["message"] == (
        "has a property that is not allowed here"
    )
    assert by_pointer[("/entities/1/entity_type", "schema.enum")]["message"].startswith(
        'must be one of: "Condition"'
    )
    pattern = by_pointer[("/source/mime_type", "schema.pattern")]
    assert pattern["message"] == "does not match the pattern ^[a-z]+/[A-Za-z0-9.+-]+$"
    assert all(item["rule"] == item["code"].removeprefix("schema.") for item in envelope["errors"])


def test_jsonschema_required_names_the_missing_property_from_the_schema():
    payload = [
        jsonschema_error_to_json(e)
        for e in Draft202012Validator(ENTITY_SCHEMA).iter_errors(
            load("doc-0007-progress-note-missing-fields.json")
        )
    ]
    envelope, _ = normalize_error_details(payload, "jsonschema")
    worker = [
        i
        for i in reference_worker_items("doc-0007-progress-note-missing-fields.json")
        if i["code"] == "schema.required"
    ]
    ours = [
        {key: item[key] for key in ("code", "severity", "message", "pointer")}
        for item in envelope["errors"]
        if item["code"] == "schema.required"
    ]
    assert sorted(ours, key=lambda i: i["pointer"]) == sorted(worker, key=lambda i: i["pointer"])
    # Without python-jsonschema's message the missing name is not guessed.
    [anonymous] = normalize_error_details(
        [{"validator": "required", "validator_value": ["a", "b"], "path": [], "schema_path": ["required"]}],
        "jsonschema",
    )[0]["errors"]
    assert anonymous["message"] == "is missing a required property (required: a, b)"


def test_jsonschema_property_names_and_false_schema_messages():
    schema = {"properties": {"codes": {"propertyNames": {"maxLength": 3}}, "gone": False}}
    payload = [
        jsonschema_error_to_json(e)
        for e in Draft202012Validator(schema).iter_errors({"codes": {SENTINEL: 1}, "gone": SENTINEL})
    ]
    messages = {
        item["code"]: item["message"] for item in normalize_error_details(payload, "jsonschema")[0]["errors"]
    }
    assert messages == {
        "schema.maxLength": "property name must be at most 3 character(s) long",
        "schema.false": "is not allowed here",
    }


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ({"validator": "type"}, ""),
        (["x"], "/0"),
        ([{"path": [], "schema_path": []}], "/0/validator"),
        ([{"validator": None, "path": [], "schema_path": []}], "/0/validator"),
        ([{"validator": "type", "schema_path": []}], "/0/path"),
        ([{"validator": "type", "path": "/a", "schema_path": []}], "/0/path"),
        ([{"validator": "type", "path": [{"a": 1}], "schema_path": []}], "/0/path/0"),
        ([{"validator": "type", "path": []}], "/0/schema_path"),
        ([{"validator": "type", "path": [], "schema_path": ["a", -1]}], "/0/schema_path/1"),
        ([{"validator": "type", "path": [], "schema_path": [], "message": 1}], "/0/message"),
    ],
)
def test_malformed_jsonschema_details_are_refused_with_a_pointer(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "jsonschema")
    assert caught.value.pointer == pointer
