"""Worker contract v1 over HTTP: real validator output in each format,
entities, idempotent retries, and the documented limits."""

from __future__ import annotations

import json
import uuid

import pydantic
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome as OperationOutcomeR4B
from fhir.resources.operationoutcome import OperationOutcome as OperationOutcomeR5
from jschon import JSON, JSONSchema, create_catalog
from jsonschema import Draft202012Validator

from app.services import worker_tokens
from app.services.error_details import jsonschema_error_to_json, load_error_details_schema
from tests.helpers import stored_job_row

API = "/api/v1/processing-jobs"
PATIENT_TEXT = "PATIENT-SENTINEL Jane Q. Doe"


@pytest.fixture
def job(client):
    created = client.post(API, json={"document_id": "doc-contract"})
    assert created.status_code == 201
    return created.get_json()


def _post_failure(client, job_id, details, error_format=None, **headers):
    body = {"error_message": "entity validation failed", "error_details": details}
    if error_format is not None:
        body["error_format"] = error_format
    return client.post(f"{API}/{job_id}/validation-failure", json=body, headers=headers)


def _assert_envelope(details, error_format, answer):
    assert answer["error_format"] == error_format
    stored = answer["error_details"]
    Draft202012Validator(load_error_details_schema()).validate(stored)
    assert stored["schema_version"] == 1 and stored["truncated"] is False
    assert stored["error_count"] == len(stored["errors"]) > 0
    assert PATIENT_TEXT not in json.dumps(stored)
    return stored


# -- real validator output, in each recognised format ------------------------

class Dosage(pydantic.BaseModel):
    value: pydantic.PositiveFloat
    unit: str


class Medication(pydantic.BaseModel):
    text: str
    code: str = pydantic.Field(pattern=r"^\d+$")
    dosage: Dosage


def _pydantic_errors() -> list:
    try:
        Medication.model_validate({"text": PATIENT_TEXT, "code": PATIENT_TEXT, "dosage": {"value": -5}})
    except pydantic.ValidationError as exc:
        return json.loads(exc.json())
    raise AssertionError("expected a validation error")


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "recognised"])
def test_pydantic_errors_are_stored_normalized(client, job, declared):
    errors = _pydantic_errors()
    response = _post_failure(client, job["id"], errors, "pydantic" if declared else None)
    assert response.status_code == 200, response.get_json()
    stored = _assert_envelope(errors, "pydantic", response.get_json())
    pointers = {item["pointer"]: item["code"] for item in stored["errors"]}
    assert pointers == {
        "/code": "pydantic.string_pattern_mismatch",
        "/dosage/value": "pydantic.greater_than",
        "/dosage/unit": "pydantic.missing",
    }


def _jsonschema_errors() -> list:
    validator = Draft202012Validator(
        {
            "type": "object",
            "required": ["entities"],
            "properties": {
                "entities": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["confidence"],
                        "properties": {"text": {"type": "string", "maxLength": 5}, "confidence": {"maximum": 1}},
                    },
                }
            },
        }
    )
    document = {"entities": [{"text": PATIENT_TEXT, "confidence": 3}, {"text": "ok"}]}
    return [jsonschema_error_to_json(e) for e in validator.iter_errors(document)]


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "recognised"])
def test_jsonschema_errors_are_stored_normalized(client, job, declared):
    errors = _jsonschema_errors()
    response = _post_failure(client, job["id"], errors, "jsonschema" if declared else None)
    assert response.status_code == 200, response.get_json()
    stored = _assert_envelope(errors, "jsonschema", response.get_json())
    # "required" points at the object that lacks the field (as jsonschema does).
    assert {(i["pointer"], i["code"]) for i in stored["errors"]} == {
        ("/entities/0/text", "schema.maxLength"),
        ("/entities/0/confidence", "schema.maximum"),
        ("/entities/1", "schema.required"),
    }


def _basic_output() -> dict:
    create_catalog("2020-12")
    schema = JSONSchema(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://clinical-intelligence.example/test/med.json",
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": "^[0-9]+$"}, "dose": {"minimum": 0}},
        }
    )
    return schema.evaluate(JSON({"code": PATIENT_TEXT, "dose": -1})).output("basic")


def test_jsonschema_basic_output_is_stored_normalized(client, job):
    output = _basic_output()
    response = _post_failure(client, job["id"], output)  # recognised without a declared format
    assert response.status_code == 200, response.get_json()
    stored = _assert_envelope(output, "jsonschema-basic", response.get_json())
    assert {i["pointer"] for i in stored["errors"]} >= {"/code", "/dose"}


@pytest.mark.parametrize("model", [OperationOutcomeR5, OperationOutcomeR4B], ids=["R5", "R4B"])
def test_fhir_operation_outcome_is_stored_normalized(client, job, model):
    outcome = model(
        issue=[
            {"severity": "error", "code": "code-invalid", "details": {"text": "Unknown ICD-10-CM code"},
             "expression": ["Condition.code.coding[0].code"]},
            {"severity": "warning", "code": "business-rule", "diagnostics": "Onset after recorded date"},
        ]
    )
    payload = json.loads(outcome.model_dump_json())
    response = _post_failure(client, job["id"], payload, "fhir-operationoutcome")
    assert response.status_code == 200, response.get_json()
    stored = _assert_envelope(payload, "fhir-operationoutcome", response.get_json())
    assert [(i["severity"], i["code"]) for i in stored["errors"]] == [
        ("error", "fhir.code-invalid"), ("warning", "fhir.business-rule"),
    ]
    assert stored["errors"][0]["pointer"] == "/code/coding/0/code"


@pytest.mark.parametrize("error_format", ["pydantic", "jsonschema", "jsonschema-basic", "fhir-operationoutcome", "normalized"])
def test_declared_format_that_does_not_fit_is_a_422_naming_error_details(client, app, job, error_format):
    before = _row(app, job["id"])
    response = _post_failure(client, job["id"], {"something": "else"}, error_format)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert all(e["field"].startswith("error_details") for e in response.get_json()["errors"])
    assert _row(app, job["id"]) == before


def test_unknown_format_is_a_422_naming_error_format(client, job):
    response = _post_failure(client, job["id"], [], "xml")
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["error_format"]


# -- limits ------------------------------------------------------------------

def test_items_over_the_cap_are_stored_truncated_with_the_original_count(client, job):
    items = [{"code": f"rule.{i}", "severity": "error", "message": "broken", "pointer": f"/entities/{i}"} for i in range(450)]
    response = _post_failure(client, job["id"], {"errors": items}, "normalized")
    assert response.status_code == 200
    stored = response.get_json()["error_details"]
    assert stored["truncated"] is True and stored["error_count"] == 450
    assert [i["code"] for i in stored["errors"]] == [f"rule.{i}" for i in range(200)]


def test_an_over_long_string_in_free_form_details_is_refused(client, app, job):
    before = _row(app, job["id"])
    response = _post_failure(client, job["id"], {"note": "x" * 10_001}, "free-form")
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["error_details.note"]
    assert _row(app, job["id"]) == before


def test_a_long_item_message_is_cut_to_the_documented_length(client, job):
    item = {"code": "rule.x", "severity": "error", "message": "m" * 2_000, "pointer": ""}
    stored = _post_failure(client, job["id"], [item], "normalized").get_json()["error_details"]
    assert len(stored["errors"][0]["message"]) == 500 and stored["errors"][0]["message"].endswith("…")


# -- entities ----------------------------------------------------------------

ENTITIES = [
    {"entity_type": "Condition", "text": "hypertension", "code": "I10",
     "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.98, "span": {"page": 2, "start": 10, "end": 22}},
    {"entity_type": "MedicationStatement", "text": "lisinopril 10 mg", "code": "314076",
     "code_system": "http://www.nlm.nih.gov/research/umls/rxnorm", "confidence": 0.91,
     "span": {"page": 2, "start": 40, "end": 56}, "attributes": {"dosage": {"value": 10, "unit": "mg"}}},
    {"entity_type": "AllergyIntolerance", "text": "penicillin", "code": None, "code_system": None,
     "confidence": 0.6, "span": {"start": 0, "end": 10}},
]


def test_completed_result_stores_entities_and_returns_them_in_order(client, job):
    client.post(f"{API}/{job['id']}/start")
    response = client.post(f"{API}/{job['id']}/result", json={"status": "completed", "entities": ENTITIES})
    assert response.status_code == 200 and response.get_json()["status"] == "Completed"
    items = client.get(f"{API}/{job['id']}/entities").get_json()["items"]
    assert [i["position"] for i in items] == [0, 1, 2]
    for sent, stored in zip(ENTITIES, items):
        for key in ("entity_type", "text", "code", "code_system", "confidence"):
            assert stored[key] == sent[key]
        assert stored["span"] == {"page": sent["span"].get("page"), **sent["span"]}
        assert stored["attributes"] == sent.get("attributes")


@pytest.mark.parametrize(
    ("entity", "field"),
    [
        ({**ENTITIES[0], "confidence": 1.5}, "entities.1.confidence"),
        ({**ENTITIES[0], "entity_type": "Symptom"}, "entities.1.entity_type"),
        ({**ENTITIES[0], "code_system": "not a uri"}, "entities.1.code_system"),
        ({**ENTITIES[0], "span": {"start": 9, "end": 3}}, "entities.1.span.end"),
        ({k: v for k, v in ENTITIES[0].items() if k != "span"}, "entities.1.span"),
        ({**ENTITIES[0], "patient_name": "x"}, "entities.1.patient_name"),
    ],
)
def test_bad_entities_store_nothing_and_leave_the_job(client, app, job, entity, field):
    client.post(f"{API}/{job['id']}/start")
    before = _row(app, job["id"])
    response = client.post(f"{API}/{job['id']}/result", json={"status": "completed", "entities": [ENTITIES[0], entity]})
    assert response.status_code == 422
    assert field in [e["field"] for e in response.get_json()["errors"]]
    assert _row(app, job["id"]) == before
    assert client.get(f"{API}/{job['id']}/entities").get_json() == {"items": []}


# -- idempotent retries --------------------------------------------------------

def test_retry_with_the_same_key_gets_the_same_answer_and_stores_nothing_twice(client, job):
    key = str(uuid.uuid4())
    first = _post_failure(client, job["id"], {"free": 1}, **{"Idempotency-Key": key})
    again = _post_failure(client, job["id"], {"free": 1}, **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(client.get(f"{API}/{job['id']}/failures").get_json()["items"]) == 1


def test_retry_of_a_completion_is_not_a_conflict(client, job):
    key = str(uuid.uuid4())
    body = {"status": "completed", "entities": ENTITIES[:1]}
    first = client.post(f"{API}/{job['id']}/result", json=body, headers={"Idempotency-Key": key})
    again = client.post(f"{API}/{job['id']}/result", json=body, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (200, 200)
    assert len(client.get(f"{API}/{job['id']}/entities").get_json()["items"]) == 1
    # Without the key the same completion again is a 200 that changes nothing
    # (a worker whose answer and key were lost); other entities are a conflict.
    assert client.post(f"{API}/{job['id']}/result", json=body).status_code == 200
    assert len(client.get(f"{API}/{job['id']}/entities").get_json()["items"]) == 1
    other = {"status": "completed", "entities": ENTITIES[1:2]}
    assert client.post(f"{API}/{job['id']}/result", json=other).status_code == 409


def test_retry_of_a_create_creates_one_job(client):
    key = str(uuid.uuid4())
    first = client.post(API, json={"document_id": "doc-once"}, headers={"Idempotency-Key": key})
    again = client.post(API, json={"document_id": "doc-once"}, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    page = client.get(f"{API}?document_id=doc-once").get_json()
    assert len(page["items"]) == 1


def test_same_key_with_another_body_is_refused(client, app, job):
    key = str(uuid.uuid4())
    assert _post_failure(client, job["id"], {"free": 1}, **{"Idempotency-Key": key}).status_code == 200
    before = _row(app, job["id"])
    response = _post_failure(client, job["id"], {"free": 2}, **{"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/idempotency-key-reused")
    assert _row(app, job["id"]) == before


def test_same_key_on_another_job_is_refused(client):
    key = str(uuid.uuid4())
    one = client.post(API, json={"document_id": "a"}).get_json()
    two = client.post(API, json={"document_id": "b"}).get_json()
    assert _post_failure(client, one["id"], {"free": 1}, **{"Idempotency-Key": key}).status_code == 200
    assert _post_failure(client, two["id"], {"free": 1}, **{"Idempotency-Key": key}).status_code == 422


def test_keys_are_scoped_to_the_token_that_sent_them(app, client, anonymous_client, job):
    """Two workers that happen to pick the same key never get each other's answers."""
    with app.app_context():
        other_token, _ = worker_tokens.create_worker_token("other-worker")
    key = str(uuid.uuid4())
    other = {"Authorization": f"Bearer {other_token}", "Idempotency-Key": key}

    mine = client.post(API, json={"document_id": "doc-scoped"}, headers={"Idempotency-Key": key})
    theirs = anonymous_client.post(API, json={"document_id": "doc-scoped"}, headers=other)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.get_json()["id"] != mine.get_json()["id"]  # a job of its own, not a replay
    assert "Idempotent-Replayed" not in theirs.headers

    # The same request again: each token gets its own answer back.
    again = anonymous_client.post(API, json={"document_id": "doc-scoped"}, headers=other)
    assert again.get_json() == theirs.get_json() and again.headers["Idempotent-Replayed"] == "true"

    # A key one token used for one job is free for another token on another job.
    start_key = str(uuid.uuid4())
    assert client.post(f"{API}/{job['id']}/start", headers={"Idempotency-Key": start_key}).status_code == 200
    other_start = anonymous_client.post(
        f"{API}/{theirs.get_json()['id']}/start", headers={**other, "Idempotency-Key": start_key}
    )
    assert other_start.status_code == 200
    assert other_start.get_json()["id"] == theirs.get_json()["id"]


@pytest.mark.parametrize("key", ["", "a" * 256, "tab\tkey", "ключ", "k1,k2"])
def test_malformed_keys_are_a_400(client, job, key):
    response = client.post(
        f"{API}/{job['id']}/validation-failure",
        json={"error_message": "x", "error_details": {}},
        headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")},
    )
    assert response.status_code == 400
    assert response.get_json()["type"].endswith("/invalid-idempotency-key")


def test_refused_request_is_not_remembered(client, job):
    key = str(uuid.uuid4())
    body = {"error_message": "   ", "error_details": {}}
    path = f"{API}/{job['id']}/validation-failure"
    assert client.post(path, json=body, headers={"Idempotency-Key": key}).status_code == 422
    assert client.post(path, json=body, headers={"Idempotency-Key": key}).status_code == 422


def _row(app, job_id):
    with app.app_context():
        return stored_job_row(job_id)
