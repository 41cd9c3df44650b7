"""The published JSON Schemas: the entity document (what error pointers point
into) and the error-details envelope, served, referenced from the OpenAPI
document, and matching what the API accepts and stores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from app.api.contract import PUBLISHED_SCHEMAS, openapi_document
from app.services.error_details import ERROR_FORMATS, FREE_FORM, detect_error_format, normalize_error_details
from app.services.json_pointer import pointer_tokens
from tests.integration.api.helpers import job_url, post_ok
from tests.unit.error_details.payloads import CORPUS

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"


def component_validator(name: str) -> Draft202012Validator:
    document = openapi_document()
    return Draft202012Validator(
        {"components": document["components"], "$ref": f"#/components/schemas/{name}"},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


@pytest.mark.parametrize("file_name", sorted(PUBLISHED_SCHEMAS))
def test_each_schema_is_served_as_its_file(client, file_name):
    response = client.get(f"/api/v1/schemas/{file_name}")
    assert response.status_code == 200
    assert response.mimetype == "application/schema+json"
    schema = json.loads(response.get_data())
    assert schema == json.loads(PUBLISHED_SCHEMAS[file_name][1].read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith("/schemas/" + file_name)


def test_an_unknown_schema_is_a_404_problem(client):
    response = client.get("/api/v1/schemas/other.json")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_the_openapi_components_judge_documents_as_the_files_do():
    file_validator = Draft202012Validator(
        json.loads(PUBLISHED_SCHEMAS["entity-document.v1.schema.json"][1].read_text(encoding="utf-8")),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    component = component_validator("EntityDocument")
    verdicts = []
    for path in sorted(CORPUS.glob("doc-*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        expected = sorted(list(e.absolute_path) for e in file_validator.iter_errors(document))
        assert sorted(list(e.absolute_path) for e in component.iter_errors(document)) == expected
        verdicts.append(not expected)
    assert True in verdicts and False in verdicts  # both kinds were compared


def test_observation_values_are_fhir_quantities():
    validator = component_validator("EntityDocument")
    document = json.loads((CORPUS / "doc-0009-metabolic-panel-bad-units.json").read_text(encoding="utf-8"))
    observation = document["entities"][1]
    assert not list(validator.iter_errors(document))
    observation["value"] = {"value": 31, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}
    assert not list(validator.iter_errors(document))
    observation["value"] = {"value": 31, "unit": "U/L", "code": "U/L"}  # a code needs its system (qty-3)
    assert [e.validator for e in validator.iter_errors(document)] == ["dependentRequired"]
    observation["value"] = {"value": "31", "unit": "U/L", "comparator": "<"}
    assert sorted(e.validator for e in validator.iter_errors(document)) == ["additionalProperties", "type"]


def test_the_api_stores_an_entity_value_as_a_quantity(client, job):
    quantity = {"value": 7.2, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
    entities = [
        {"entity_type": "Observation", "text": "HbA1c 7.2 %", "code": "4548-4", "code_system": "http://loinc.org",
         "confidence": 0.9, "span": {"page": 1, "start": 0, "end": 11}, "value": quantity},
        {"entity_type": "Condition", "text": "diabetes", "code": "E11.9",
         "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.9, "span": {"start": 0, "end": 8}},
    ]
    post_ok(client, job_url(job["id"], "result"), {"status": "completed", "entities": entities})
    stored = client.get(job_url(job["id"], "entities")).get_json()["items"]
    assert [item["value"] for item in stored] == [quantity, None]
    response = client.post(
        job_url(job["id"], "result"),
        json={"status": "completed", "entities": [{**entities[0], "value": {"value": 7.2, "unit": "%", "code": "%"}}]},
    )
    assert response.status_code == 422
    # FHIR qty-3: a code needs its system, named where it is missing.
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["#/entities/0/value/system"]


def test_stored_envelopes_are_described_by_the_openapi_document(client, job):
    items = [{"code": "unit.not_ucum", "severity": "error", "message": "not UCUM", "pointer": "/entities/1/value/unit"}]
    stored = post_ok(
        client, job_url(job["id"], "validation-failure"), {"error_message": "bad", "error_details": {"errors": items}}
    )
    assert not list(component_validator("ProcessingJob").iter_errors(stored))
    assert not list(component_validator("ErrorDetailsEnvelope").iter_errors(stored["error_details"]))
    broken = {**stored, "error_details": {"errors": "not an envelope"}}
    assert list(component_validator("ProcessingJob").iter_errors(broken))
    assert not list(component_validator("ProcessingJob").iter_errors({**broken, "error_format": FREE_FORM}))


def _json_blocks(path: Path) -> list[object]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


def test_the_docs_examples_are_what_the_api_accepts():
    """Every JSON example in the error-details page is a payload in one of
    the formats (normalised without error), an envelope valid against the
    schema, or an entity document valid against its schema; every pointer in
    them names a place in the docs' entity document example."""
    blocks = _json_blocks(DOCS / "error-details.md")
    assert blocks
    documents = [block for block in blocks if isinstance(block, dict) and "entities" in block]
    assert len(documents) == 1
    assert not list(component_validator("EntityDocument").iter_errors(documents[0]))
    envelope_validator = component_validator("ErrorDetailsEnvelope")
    pointers = []
    for block in blocks:
        if block is documents[0]:
            continue
        if isinstance(block, dict) and block.get("schema_version") == 1:
            assert not list(envelope_validator.iter_errors(block))
            pointers += [item["pointer"] for item in block["errors"]]
            continue
        if isinstance(block, dict) and "validator" in block:
            block, block_format = [block], "jsonschema"  # one serialised error of the payload array
        else:
            block_format = detect_error_format(block)
        assert block_format in ERROR_FORMATS, block
        envelope, _ = normalize_error_details(block, block_format)
        assert not list(envelope_validator.iter_errors(envelope))
        if block_format in ("normalized", "ajv", "zod", "aspnetcore-validation-problem", "pydantic"):
            pointers += [item["pointer"] for item in envelope["errors"]]
    assert pointers
    for pointer in pointers:
        # A missing property's pointer names a place that is not there: its parent is.
        node = documents[0]
        tokens = pointer_tokens(pointer)
        for position, token in enumerate(tokens):
            if isinstance(node, dict) and token not in node and position == len(tokens) - 1:
                break
            node = node[int(token)] if isinstance(node, list) else node[token]
