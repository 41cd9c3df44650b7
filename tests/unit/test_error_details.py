"""Tests of the error-details contract v1 (app.services.error_details).

Every adapter is fed what the real library produces: the reference worker's
validator, pydantic v2, python-jsonschema, jschon ("basic" output) and
fhir.resources (FHIR R5 and R4B OperationOutcome).
"""

from __future__ import annotations

import contextlib
import copy
import json
import typing
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import pytest
from fhir.resources.observation import Observation as ObservationR5
from fhir.resources.operationoutcome import OperationOutcome as OperationOutcomeR5
from fhir.resources.R4B.observation import Observation as ObservationR4B
from fhir.resources.R4B.operationoutcome import OperationOutcome as OperationOutcomeR4B
from jschon import JSON, JSONSchema, create_catalog
from jsonschema import Draft202012Validator
from pydantic_core import PydanticCustomError, core_schema

from app.services.error_details import (
    ERROR_FORMATS,
    SCHEMA_ID,
    DetailsLimits,
    InvalidErrorDetailsError,
    UnknownErrorFormatError,
    build_envelope,
    detect_error_format,
    fhirpath_to_pointer,
    jsonschema_error_to_json,
    load_error_details_schema,
    normalize_error_details,
)
from app.services.error_details.pydantic_errors import REBUILT_MESSAGES, TEMPLATED_TYPES
from app.worker.validation import validate_entity_document

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "demo" / "corpus"
ENTITY_SCHEMA = json.loads(
    (ROOT / "app" / "worker" / "schemas" / "entity-document.v1.schema.json").read_text(encoding="utf-8")
)
SENTINEL = "PATIENT-TEXT-SENTINEL Jane Doe"
ENVELOPE_VALIDATOR = Draft202012Validator(load_error_details_schema())


def load(name: str) -> dict:
    return json.loads((CORPUS / name).read_text(encoding="utf-8"))


def assert_valid_envelope(envelope: Any) -> None:
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in ENVELOPE_VALIDATOR.iter_errors(envelope)]
    assert problems == []
    assert envelope["truncated"] == (envelope["error_count"] > len(envelope["errors"]))


# --- payloads produced by the real libraries --------------------------------------


def document_with_patient_text() -> dict:
    """A corpus document with the sentinel as invalid values (and as a property name)."""
    document = load("doc-0001-discharge-summary.json")
    condition = document["entities"][0]
    condition["confidence"] = SENTINEL  # type
    condition["onset_date"] = SENTINEL  # format
    condition[SENTINEL] = True  # additionalProperties
    document["entities"][1]["entity_type"] = SENTINEL  # enum
    document["document_id"] = ""  # minLength
    document["source"]["mime_type"] = SENTINEL  # pattern
    return document


def jsonschema_payload(document: dict) -> list[dict]:
    validator = Draft202012Validator(ENTITY_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [jsonschema_error_to_json(error) for error in validator.iter_errors(document)]


@contextlib.contextmanager
def quiet_jschon() -> Iterator[None]:
    # jschon 0.11 resolves URIs with rfc3986's deprecated URIReference.is_valid
    # (python-hyper/rfc3986#86), which warns on every resolution; the tests
    # turn warnings into errors.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Please use rfc3986.validators.Validator", category=DeprecationWarning
        )
        yield


def jschon_basic_output(document: dict) -> dict:
    with quiet_jschon():
        create_catalog("2020-12")
        schema = JSONSchema(copy.deepcopy(ENTITY_SCHEMA))
        return schema.evaluate(JSON(document)).output("basic")


class Span(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    page: int = pydantic.Field(ge=1)
    start: int = pydantic.Field(ge=0)
    end: int = pydantic.Field(ge=0)


class Condition(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    entity_type: Literal["Condition"]
    text: str = pydantic.Field(max_length=1000)
    code: str = pydantic.Field(pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")
    confidence: float = pydantic.Field(ge=0, le=1)
    span: Span
    onset_date: date | None = None
    code_system: str

    @pydantic.field_validator("code_system")
    @classmethod
    def known_system(cls, value: str) -> str:
        # Application validators often quote the value: pydantic puts this in msg and ctx.error.
        raise ValueError(f"unknown code system {value!r}")

    @pydantic.field_validator("text")
    @classmethod
    def custom_check(cls, value: str) -> str:
        raise PydanticCustomError("not_clinical", "{value} is not clinical text", {"value": value})


class Observation(pydantic.BaseModel):
    entity_type: Literal["Observation"]
    code: str


class Document(pydantic.BaseModel):
    document_id: str
    entities: list[Annotated[Condition | Observation, pydantic.Field(discriminator="entity_type")]]


def pydantic_error() -> pydantic.ValidationError:
    raw = {
        "entities": [
            {
                "entity_type": "Condition",
                "text": SENTINEL,
                "code": SENTINEL,
                "confidence": SENTINEL,
                "span": {"page": 0, "start": SENTINEL},
                "onset_date": SENTINEL,
                "code_system": SENTINEL,
            },
            {"entity_type": SENTINEL, "code": "x"},
        ]
    }
    with pytest.raises(pydantic.ValidationError) as caught:
        Document.model_validate(raw)
    return caught.value


def fhir_observation_outcome(observation_model: type, outcome_model: type) -> str:
    """Validate an Observation carrying patient text with fhir.resources; report an OperationOutcome.

    What a FHIR worker does: one issue per validation error, the library's
    message as details.text and a FHIRPath expression.
    """
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": 3},
        "effectiveDateTime": SENTINEL,
        "valueQuantity": {"value": SENTINEL},
    }
    with pytest.raises(pydantic.ValidationError) as caught:
        observation_model.model_validate(observation)
    issues = []
    for error in json.loads(caught.value.json()):
        expression = "Observation" + "".join(
            f"[{token}]" if isinstance(token, int) else f".{token}" for token in error["loc"]
        )
        issues.append(
            {
                "severity": "error",
                "code": "invalid" if error["type"] == "value_error" else "structure",
                "details": {"text": error["msg"]},
                "expression": [expression],
            }
        )
    return outcome_model.model_validate(
        {"resourceType": "OperationOutcome", "issue": issues}
    ).model_dump_json()


def fhir_validator_outcome(outcome_model: type, *, r5: bool) -> str:
    """An OperationOutcome such as a FHIR validator returns, built with fhir.resources."""
    issues: list[dict] = [
        {
            "severity": "error",
            "code": "code-invalid",
            "details": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/dotnet-api-operation-outcome",
                        "code": "6005",
                        "display": "Code is not in the value set",
                    }
                ],
                "text": "The code provided is not in the value set",
            },
            "expression": ["Bundle.entry[2].resource.code.coding[0]"],
        },
        {
            "severity": "warning",
            "code": "business-rule",
            "diagnostics": "Onset is after the recorded date",
            "expression": ["Bundle.entry.where(resource is Condition).resource.onsetDateTime"],
        },
        {"severity": "fatal", "code": "structure", "location": ["Patient.name[0].given[1]"]},
        {"severity": "information", "code": "informational", "location": ["/f:Patient/f:name"]},
    ]
    if r5:
        issues.append({"severity": "success", "code": "informational", "diagnostics": "All OK otherwise"})
    return outcome_model.model_validate(
        {"resourceType": "OperationOutcome", "issue": issues}
    ).model_dump_json()


def reference_worker_items(name: str) -> list[dict]:
    return validate_entity_document(load(name))


# --- formats and detection ----------------------------------------------------


def test_error_formats_are_the_published_names():
    assert ERROR_FORMATS == (
        "normalized",
        "pydantic",
        "jsonschema",
        "jsonschema-basic",
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
        # Both marker sets on one object: ambiguous.
        [{"loc": [], "msg": "m", "type": "t", "validator": "type", "path": [], "schema_path": []}],
    ],
)
def test_detect_returns_none_for_free_form_and_ambiguous_details(details):
    assert detect_error_format(details) is None
    assert normalize_error_details(details, None) == (details, "free-form")


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


# --- normalized -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "doc-0006-referral-letter-bad-icd-code.json",
        "doc-0007-progress-note-missing-fields.json",
        "doc-0011-scanned-intake-form-multiple-errors.json",
    ],
)
def test_reference_worker_v0_payload_is_kept_item_for_item(name):
    items = reference_worker_items(name)
    assert items
    envelope, used = normalize_error_details({"errors": items}, "normalized")
    assert used == "normalized"
    assert envelope == {"schema_version": 1, "errors": items, "error_count": len(items), "truncated": False}
    assert_valid_envelope(envelope)


def test_envelope_round_trips_and_a_bare_item_array_is_accepted():
    items = reference_worker_items("doc-0011-scanned-intake-form-multiple-errors.json")
    first, _ = normalize_error_details({"errors": items}, None)
    again, used = normalize_error_details(first, None)
    assert (again, used) == (first, "normalized")
    assert normalize_error_details(items, "normalized")[0] == first
    assert detect_error_format(items) == "normalized"


def test_optional_item_fields_are_kept():
    item = {
        "code": "span.out_of_range",
        "severity": "warning",
        "message": "span end is before span start",
        "pointer": "/entities/3/span",
        "rule": "span-order",
        "ctx": {"limit": 1, "ratio": 0.5, "strict": True, "note": None, "unit": "chars"},
        "entity": {"type": "Procedure", "index": 3, "page": 2, "start": 144, "end": 120},
    }
    envelope, _ = normalize_error_details({"errors": [item]}, None)
    assert envelope["errors"] == [item]
    assert_valid_envelope(envelope)


def test_a_worker_truncated_envelope_keeps_its_error_count():
    items = [{"code": "c", "severity": "error", "message": "m", "pointer": f"/e/{i}"} for i in range(3)]
    sent = {"schema_version": 1, "errors": items, "error_count": 900, "truncated": True}
    envelope, _ = normalize_error_details(sent, "normalized")
    assert envelope == sent
    smaller, _ = normalize_error_details(sent, "normalized", DetailsLimits(max_items=2))
    assert smaller["errors"] == items[:2] and smaller["error_count"] == 900 and smaller["truncated"] is True


def test_the_input_is_not_changed():
    items = reference_worker_items("doc-0011-scanned-intake-form-multiple-errors.json")
    details = {"errors": items}
    before = copy.deepcopy(details)
    envelope, _ = normalize_error_details(details, None, DetailsLimits(max_items=2, max_message_length=5))
    assert details == before
    assert envelope["errors"][0] is not items[0]


GOOD = {"code": "c", "severity": "error", "message": "m", "pointer": "/a"}


def with_item(**changes: Any) -> dict:
    """v0 details whose second item has ``changes`` applied; a value of ``...`` removes the key."""
    item = {**GOOD, **changes}
    return {"errors": [GOOD, {key: value for key, value in item.items() if value is not ...}]}


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ({"errors": {"code": "c"}}, "/errors"),
        ("not an envelope", ""),
        ({"schema_version": 1}, "/errors"),
        ({"schema_version": 2, "errors": []}, "/schema_version"),
        ({"schema_version": 1.0, "errors": []}, "/schema_version"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": 0}, "/error_count"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": "1"}, "/error_count"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": 1, "truncated": "no"}, "/truncated"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": 2, "truncated": False}, "/truncated"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": 1, "truncated": True}, "/truncated"),
        ({"schema_version": 1, "errors": [], "extra/key": 1}, "/extra~1key"),
        ({"errors": [GOOD, "item"]}, "/errors/1"),
        (with_item(code=...), "/errors/1/code"),
        (with_item(code=""), "/errors/1/code"),
        (with_item(severity=...), "/errors/1/severity"),
        (with_item(severity="critical"), "/errors/1/severity"),
        (with_item(severity="ERROR"), "/errors/1/severity"),
        (with_item(message=...), "/errors/1/message"),
        (with_item(message=7), "/errors/1/message"),
        (with_item(pointer=...), "/errors/1/pointer"),
        (with_item(pointer="entities/0"), "/errors/1/pointer"),
        (with_item(pointer="/a~2b"), "/errors/1/pointer"),
        (with_item(pointer="/a~"), "/errors/1/pointer"),
        (with_item(pointer=None), "/errors/1/pointer"),
        (with_item(hint="x"), "/errors/1/hint"),
        (with_item(rule=""), "/errors/1/rule"),
        (with_item(ctx=[1]), "/errors/1/ctx"),
        (with_item(ctx={"value": {"nested": 1}}), "/errors/1/ctx/value"),
        (with_item(ctx={"a/b": [1]}), "/errors/1/ctx/a~1b"),
        (with_item(entity="Condition"), "/errors/1/entity"),
        (with_item(entity={"kind": "x"}), "/errors/1/entity/kind"),
        (with_item(entity={"index": -1}), "/errors/1/entity/index"),
        (with_item(entity={"page": 0}), "/errors/1/entity/page"),
        (with_item(entity={"start": True}), "/errors/1/entity/start"),
        (with_item(entity={"end": 1.5}), "/errors/1/entity/end"),
        (with_item(entity={"type": 3}), "/errors/1/entity/type"),
        ([GOOD, {**GOOD, "severity": "bad"}], "/1/severity"),
    ],
)
def test_malformed_normalized_details_are_refused_with_a_pointer(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "normalized")
    assert caught.value.pointer == pointer
    assert caught.value.reason


def test_valid_pointers_are_accepted():
    for pointer in ["", "/", "/a~0b", "/a~1b/0", "//", "/ünï/😀", "/a b"]:
        envelope, _ = normalize_error_details({"errors": [{**GOOD, "pointer": pointer}]}, None)
        assert envelope["errors"][0]["pointer"] == pointer
        assert_valid_envelope(envelope)


# --- pydantic ---------------------------------------------------------------------


def test_every_pydantic_core_error_type_is_classified():
    # On a pydantic upgrade, a new type must be sorted into safe or rebuilt.
    known = set(typing.get_args(core_schema.ErrorType))
    assert TEMPLATED_TYPES.isdisjoint(REBUILT_MESSAGES)
    assert TEMPLATED_TYPES | set(REBUILT_MESSAGES) == known


def test_pydantic_json_and_python_shapes_give_the_same_items():
    error = pydantic_error()
    from_json, used = normalize_error_details(json.loads(error.json()), "pydantic")
    assert used == "pydantic"
    from_python, _ = normalize_error_details(error.errors(include_url=False, include_input=False), None)
    with_input, _ = normalize_error_details(error.errors(), "pydantic")
    assert from_json == from_python == with_input
    assert_valid_envelope(from_json)


def test_pydantic_items_map_type_loc_msg_and_ctx():
    envelope, _ = normalize_error_details(json.loads(pydantic_error().json()), "pydantic")
    by_pointer = {(item["pointer"], item["code"]): item for item in envelope["errors"]}
    assert envelope["error_count"] == len(envelope["errors"]) == len(pydantic_error().errors())
    assert all(item["severity"] == "error" for item in envelope["errors"])
    assert all(item["rule"] == item["code"].removeprefix("pydantic.") for item in envelope["errors"])

    pattern = by_pointer[("/entities/0/Condition/code", "pydantic.string_pattern_mismatch")]
    assert pattern["message"].startswith("String should match pattern")
    assert pattern["ctx"] == {"pattern": r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$"}

    page = by_pointer[("/entities/0/Condition/span/page", "pydantic.greater_than_equal")]
    assert page["message"] == "Input should be greater than or equal to 1" and page["ctx"] == {"ge": 1}
    assert ("/entities/0/Condition/confidence", "pydantic.float_parsing") in by_pointer
    assert ("/entities/0/Condition/span/end", "pydantic.missing") in by_pointer
    assert by_pointer[("/entities/0/Condition/onset_date", "pydantic.date_from_datetime_parsing")][
        "message"
    ] == ("Input should be a valid date or datetime")

    # Messages that would carry the application's or the input's text are rebuilt.
    value_error = by_pointer[("/entities/0/Condition/code_system", "pydantic.value_error")]
    assert value_error["message"] == "Value error: a custom validator rejected the input"
    assert "ctx" not in value_error
    custom = by_pointer[("/entities/0/Condition/text", "pydantic.not_clinical")]
    assert custom["message"] == "failed the custom check 'not_clinical'" and "ctx" not in custom
    tag = by_pointer[("/entities/1", "pydantic.union_tag_invalid")]
    assert tag["message"] == (
        "Input tag found using 'entity_type' does not match any of the expected tags: "
        "'Condition', 'Observation'"
    )
    assert tag["ctx"] == {"discriminator": "'entity_type'", "expected_tags": "'Condition', 'Observation'"}


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ({"loc": [], "msg": "m", "type": "t"}, ""),
        ([{"loc": [], "msg": "m", "type": "t"}, "x"], "/1"),
        ([{"msg": "m", "type": "t"}], "/0/loc"),
        ([{"loc": "a.b", "msg": "m", "type": "t"}], "/0/loc"),
        ([{"loc": ["a", 1.5], "msg": "m", "type": "t"}], "/0/loc/1"),
        ([{"loc": ["a", True], "msg": "m", "type": "t"}], "/0/loc/1"),
        ([{"loc": ["a", None], "msg": "m", "type": "t"}], "/0/loc/1"),
        ([{"loc": [], "type": "t"}], "/0/msg"),
        ([{"loc": [], "msg": "m", "type": ""}], "/0/type"),
        ([{"loc": [], "msg": "m"}], "/0/type"),
        ([{"loc": [], "msg": "m", "type": "t", "ctx": "x"}], "/0/ctx"),
    ],
)
def test_malformed_pydantic_details_are_refused_with_a_pointer(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "pydantic")
    assert caught.value.pointer == pointer


# --- jsonschema -------------------------------------------------------------------


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


# --- jsonschema-basic (jschon) ------------------------------------------------------


def test_jschon_basic_output_gives_one_item_per_failing_keyword():
    output = jschon_basic_output(document_with_patient_text())
    envelope, used = normalize_error_details(output, None)
    assert used == "jsonschema-basic"
    assert_valid_envelope(envelope)
    found = [(item["pointer"], item["code"]) for item in envelope["errors"]]
    # The summary units ("/properties", ".../allOf", ".../items") are gone.
    assert set(found) == {
        ("/document_id", "schema.minLength"),
        ("/source/mime_type", "schema.pattern"),
        ("/entities/0/confidence", "schema.type"),
        ("/entities/0", "schema.additionalProperties"),
        ("/entities/1/entity_type", "schema.enum"),
    }
    # jschon's order is kept.
    locations = [unit["keywordLocation"] for unit in output["errors"]]
    order = [locations.index(item["ctx"]["schema_location"]) for item in envelope["errors"]]
    assert order == sorted(order)
    type_item = next(item for item in envelope["errors"] if item["code"] == "schema.type")
    assert type_item["message"] == "is not of the expected type"
    assert type_item["rule"] == "type"
    assert type_item["ctx"]["schema_location"].endswith("/properties/confidence/$ref/type")
    assert type_item["ctx"]["absolute_schema_location"] == (
        "https://clinical-intelligence.example/schemas/entity-document.v1.schema.json#/$defs/confidence/type"
    )


def test_jschon_valid_output_gives_an_empty_envelope():
    output = jschon_basic_output(load("doc-0001-discharge-summary.json"))
    assert output["valid"] is True and "errors" not in output  # jschon adds "annotations"
    envelope, used = normalize_error_details(output, "jsonschema-basic")
    assert envelope == {"schema_version": 1, "errors": [], "error_count": 0, "truncated": False}


def test_basic_output_summaries_and_indexed_keywords():
    # The example of JSON Schema 2020-12 core section 12.4.2, with an allOf branch added.
    output = {
        "valid": False,
        "errors": [
            {"keywordLocation": "", "instanceLocation": "", "error": "A subschema had errors."},
            {"keywordLocation": "/items/$ref", "instanceLocation": "/1", "error": "A subschema had errors."},
            {
                "keywordLocation": "/items/$ref/required",
                "instanceLocation": "/1",
                "error": "Required property 'y' not found.",
            },
            {
                "keywordLocation": "/items/$ref/additionalProperties",
                "instanceLocation": "/1/z",
                "error": "Additional property 'z' found but was invalid.",
            },
            {
                "keywordLocation": "/minItems",
                "instanceLocation": "",
                "error": "Expected at least 3 items but found 2",
            },
            {"keywordLocation": "/allOf/1", "instanceLocation": "", "error": "x"},
            {"keywordLocation": "/contains", "instanceLocation": "", "valid": True, "annotation": [0]},
        ],
    }
    items = normalize_error_details(output, "jsonschema-basic")[0]["errors"]
    assert [(i["code"], i["pointer"], i["message"]) for i in items] == [
        ("schema.required", "/1", "is missing a required property"),
        ("schema.additionalProperties", "/1/z", "has a property that is not allowed here"),
        ("schema.minItems", "", "has too few items"),
        ("schema.allOf", "", "does not satisfy the schema rule 'allOf'"),
    ]
    root_only = {"valid": False, "errors": [{"keywordLocation": "", "instanceLocation": "", "error": "no"}]}
    [item] = normalize_error_details(root_only, None)[0]["errors"]
    assert item["code"] == "schema.invalid" and "rule" not in item


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ([], ""),
        ({"errors": []}, "/valid"),
        ({"valid": "no", "errors": []}, "/valid"),
        ({"valid": False}, "/errors"),
        ({"valid": False, "errors": {}}, "/errors"),
        ({"valid": False, "errors": [1]}, "/errors/0"),
        ({"valid": False, "errors": [{"instanceLocation": ""}]}, "/errors/0/keywordLocation"),
        ({"valid": False, "errors": [{"keywordLocation": "/type"}]}, "/errors/0/instanceLocation"),
        (
            {"valid": False, "errors": [{"keywordLocation": "/type", "instanceLocation": "a"}]},
            "/errors/0/instanceLocation",
        ),
        (
            {"valid": False, "errors": [{"keywordLocation": "type", "instanceLocation": ""}]},
            "/errors/0/keywordLocation",
        ),
        (
            {
                "valid": False,
                "errors": [{"keywordLocation": "", "instanceLocation": "", "absoluteKeywordLocation": 1}],
            },
            "/errors/0/absoluteKeywordLocation",
        ),
    ],
)
def test_malformed_basic_output_is_refused_with_a_pointer(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "jsonschema-basic")
    assert caught.value.pointer == pointer


# --- FHIR OperationOutcome (fhir.resources) -------------------------------------------


@pytest.mark.parametrize(("outcome_model", "r5"), [(OperationOutcomeR5, True), (OperationOutcomeR4B, False)])
def test_fhir_operation_outcome_issues_become_items(outcome_model, r5):
    outcome = json.loads(fhir_validator_outcome(outcome_model, r5=r5))
    envelope, used = normalize_error_details(outcome, None)
    assert used == "fhir-operationoutcome"
    assert_valid_envelope(envelope)
    expected = [
        {
            "code": "fhir.code-invalid",
            "severity": "error",
            "message": "The code provided is not in the value set",
            "pointer": "/entry/2/resource/code/coding/0",
            "rule": "code-invalid",
            "ctx": {
                "details_system": "http://hl7.org/fhir/dotnet-api-operation-outcome",
                "details_code": "6005",
            },
        },
        {
            "code": "fhir.business-rule",
            "severity": "warning",
            "message": "Onset is after the recorded date",
            "pointer": "",
            "rule": "business-rule",
            "ctx": {"expression": "Bundle.entry.where(resource is Condition).resource.onsetDateTime"},
        },
        {
            "code": "fhir.structure",
            "severity": "fatal",
            "message": "FHIR issue of type 'structure'",
            "pointer": "/name/0/given/1",
            "rule": "structure",
        },
        {
            "code": "fhir.informational",
            "severity": "information",
            "message": "FHIR issue of type 'informational'",
            "pointer": "",
            "rule": "informational",
            "ctx": {"location": "/f:Patient/f:name"},
        },
    ]
    if r5:
        expected.append(
            {
                "code": "fhir.informational",
                "severity": "information",
                "message": "All OK otherwise",
                "pointer": "",
                "rule": "informational",
            }
        )
    assert envelope["errors"] == expected


@pytest.mark.parametrize(
    ("observation_model", "outcome_model"),
    [(ObservationR5, OperationOutcomeR5), (ObservationR4B, OperationOutcomeR4B)],
)
def test_fhir_worker_outcome_from_fhir_resources_validation(observation_model, outcome_model):
    outcome = json.loads(fhir_observation_outcome(observation_model, outcome_model))
    envelope, _ = normalize_error_details(outcome, "fhir-operationoutcome")
    assert_valid_envelope(envelope)
    pointers = {item["pointer"]: item for item in envelope["errors"]}
    assert pointers["/code/text"]["code"] == "fhir.structure"
    assert pointers["/code/text"]["message"] == "Input should be a valid string"
    assert pointers["/effectiveDateTime"]["code"] == "fhir.invalid"


@pytest.mark.parametrize(
    ("expression", "pointer"),
    [
        ("Bundle.entry[2].resource.code.coding[0]", "/entry/2/resource/code/coding/0"),
        ("Patient", ""),
        ("Patient.name[0].given[10]", "/name/0/given/10"),
        ("entry[1].resource", "/entry/1/resource"),
        (" Observation.valueQuantity.value ", "/valueQuantity/value"),
        ("Bundle.entry.where(fullUrl = 'x')", None),
        ("Patient.name.first()", None),
        ("Patient[0].name", None),
        ("Patient.name[01]", None),
        ("Patient.`name`", None),
        ("/f:Patient/f:name", None),
        ("", None),
        # More digits than int() converts (sys.get_int_max_str_digits()).
        pytest.param("Patient.name[" + "9" * 5000 + "]", "/name/" + "9" * 5000, id="index-of-5000-digits"),
    ],
)
def test_fhirpath_to_pointer(expression, pointer):
    assert fhirpath_to_pointer(expression) == pointer


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ([], ""),
        ({"resourceType": "OperationOutcome"}, "/issue"),
        ({"resourceType": "OperationOutcome", "issue": []}, "/issue"),
        ({"resourceType": "OperationOutcome", "issue": ["x"]}, "/issue/0"),
        ({"resourceType": "OperationOutcome", "issue": [{"code": "invalid"}]}, "/issue/0/severity"),
        (
            {"resourceType": "OperationOutcome", "issue": [{"severity": "critical", "code": "x"}]},
            "/issue/0/severity",
        ),
        ({"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}, "/issue/0/code"),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "details": "t"}],
            },
            "/issue/0/details",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "details": {"text": 1}}],
            },
            "/issue/0/details/text",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "details": {"coding": {}}}],
            },
            "/issue/0/details/coding",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "details": {"coding": [1]}}],
            },
            "/issue/0/details/coding/0",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "diagnostics": []}],
            },
            "/issue/0/diagnostics",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "expression": "a"}],
            },
            "/issue/0/expression",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "location": [1]}],
            },
            "/issue/0/location/0",
        ),
    ],
)
def test_malformed_operation_outcome_is_refused_with_a_pointer(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "fhir-operationoutcome")
    assert caught.value.pointer == pointer


def test_declared_format_must_match_the_payload():
    outcome = json.loads(fhir_validator_outcome(OperationOutcomeR5, r5=True))
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(outcome, "pydantic")
    assert caught.value.pointer == ""
    with pytest.raises(InvalidErrorDetailsError):
        normalize_error_details({"resourceType": "Patient"}, "fhir-operationoutcome")


# --- privacy --------------------------------------------------------------------------


def library_outputs() -> dict[str, Any]:
    document = document_with_patient_text()
    error = pydantic_error()
    return {
        "pydantic-json": json.loads(error.json()),
        "pydantic-python": error.errors(),
        "pydantic-python-no-input": error.errors(include_url=False, include_input=False),
        "jsonschema": jsonschema_payload(document),
        "jsonschema-basic": jschon_basic_output(document),
        "fhir-r5": json.loads(fhir_observation_outcome(ObservationR5, OperationOutcomeR5)),
        "fhir-r4b": json.loads(fhir_observation_outcome(ObservationR4B, OperationOutcomeR4B)),
    }


# The libraries' own output quotes the patient text (inputs, messages, ctx,
# property names); the adapters must drop it. The FHIR outcomes are what a
# worker builds from fhir.resources' validation, whose messages do not quote it.
CARRY_THE_SENTINEL = {
    "pydantic-json",
    "pydantic-python",
    "pydantic-python-no-input",
    "jsonschema",
    "jsonschema-basic",
}


@pytest.mark.parametrize("name", sorted(CARRY_THE_SENTINEL | {"fhir-r5", "fhir-r4b"}))
def test_patient_text_never_reaches_the_stored_details(name):
    payload = library_outputs()[name]
    if name in CARRY_THE_SENTINEL:
        assert SENTINEL in repr(payload)
    envelope, _ = normalize_error_details(payload, None)
    stored = json.dumps(envelope, ensure_ascii=False)
    assert SENTINEL not in stored and "Jane Doe" not in stored
    assert envelope["errors"]
    assert_valid_envelope(envelope)


# --- caps and the text rule ---------------------------------------------------------------


def test_over_max_items_keeps_the_first_and_counts_all():
    items = [{"code": "c", "severity": "error", "message": f"m{i}", "pointer": f"/e/{i}"} for i in range(201)]
    envelope, _ = normalize_error_details({"errors": items}, None)
    assert len(envelope["errors"]) == 200
    assert envelope["errors"] == items[:200]
    assert envelope["error_count"] == 201 and envelope["truncated"] is True
    assert_valid_envelope(envelope)
    exactly, _ = normalize_error_details({"errors": items[:200]}, None)
    assert exactly["truncated"] is False and exactly["error_count"] == 200


def test_long_strings_are_cut_to_exactly_the_cap_with_an_ellipsis():
    limits = DetailsLimits()
    item = {
        "code": "c" * 150,
        "severity": "error",
        "message": "é" * 2000,
        "pointer": "/a",
        "rule": "r" * 101,
        "ctx": {"k" * 120: "v" * 500, "short": "ok", "n": 10**30},
        "entity": {"type": "t" * 300, "index": 0},
    }
    [capped] = normalize_error_details({"errors": [item]}, None)[0]["errors"]
    assert len(capped["message"]) == limits.max_message_length and capped["message"] == "é" * 499 + "…"
    assert len(capped["code"]) == limits.max_code_length and capped["code"].endswith("…")
    assert len(capped["rule"]) == limits.max_code_length and capped["rule"].endswith("…")
    assert capped["ctx"] == {"k" * 99 + "…": "v" * 199 + "…", "short": "ok", "n": 10**30}
    assert capped["entity"] == {"type": "t" * 99 + "…", "index": 0}
    # A string exactly at the cap is not cut.
    [exact] = normalize_error_details({"errors": [{**item, "message": "x" * 500}]}, None)[0]["errors"]
    assert exact["message"] == "x" * 500
    assert_valid_envelope({"schema_version": 1, "errors": [capped], "error_count": 1, "truncated": False})


def test_long_pointers_become_their_longest_fitting_ancestor():
    pointer = "".join(f"/segment{i:03d}" for i in range(200))  # 2,400 characters
    [item] = normalize_error_details({"errors": [{**GOOD, "pointer": pointer}]}, None)[0]["errors"]
    assert len(item["pointer"]) <= 1000 and pointer.startswith(item["pointer"] + "/")
    assert len(item["pointer"]) > 1000 - len("/segment000")
    [root] = normalize_error_details({"errors": [{**GOOD, "pointer": "/" + "x" * 1200}]}, None)[0]["errors"]
    assert root["pointer"] == ""


def test_ctx_keeps_its_first_entries_up_to_the_cap():
    ctx = {f"k{i:02d}": i for i in range(30)}
    [item] = normalize_error_details({"errors": [{**GOOD, "ctx": ctx}]}, None)[0]["errors"]
    assert list(item["ctx"]) == [f"k{i:02d}" for i in range(20)]


def test_smaller_limits_apply_everywhere():
    limits = DetailsLimits(max_items=2, max_message_length=10, max_ctx_string_length=5, max_ctx_keys=1)
    envelope, _ = normalize_error_details(json.loads(pydantic_error().json()), "pydantic", limits)
    assert len(envelope["errors"]) == 2 and envelope["truncated"] is True
    assert all(len(item["message"]) <= 10 for item in envelope["errors"])
    assert_valid_envelope(envelope)


@pytest.mark.parametrize("field", ["max_items", "max_message_length", "max_pointer_length", "max_ctx_keys"])
@pytest.mark.parametrize("value", [0, -1, True, 2.5])
def test_limits_must_be_positive_integers(field, value):
    with pytest.raises(ValueError):
        DetailsLimits(**{field: value})


def test_unstorable_characters_become_replacement_characters():
    item = {
        "code": "c\x00",
        "severity": "error",
        "message": "bad \ud800 text",
        "pointer": "/a\x00b",
        "ctx": {"k\x00": "v\udfff"},
    }
    [clean] = normalize_error_details({"errors": [item]}, None)[0]["errors"]
    assert clean == {
        "code": "c\ufffd",
        "severity": "error",
        "message": "bad \ufffd text",
        "pointer": "/a\ufffdb",
        "ctx": {"k\ufffd": "v\ufffd"},
    }


def test_build_envelope_refuses_a_count_below_the_items():
    with pytest.raises(ValueError):
        build_envelope([GOOD, GOOD], error_count=1)
