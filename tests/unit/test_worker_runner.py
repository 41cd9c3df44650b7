"""The reference worker's pure parts: mapping entities to the contract, finding documents."""

from __future__ import annotations

import json

import pytest

from app.api.contract import validate_request
from app.config import ROOT
from app.worker.runner import corpus_documents, entity_input, load_document, summarise, with_entities
from app.worker.validation import is_valid, validate_entity_document

CORPUS = ROOT / "demo" / "corpus"
SPAN = {"page": 2, "start": 10, "end": 24}


def test_condition_keeps_its_coding_and_moves_onset_date_under_attributes():
    entity = {
        "entity_type": "Condition",
        "text": "type 2 diabetes",
        "code": "E11.9",
        "code_system": "http://hl7.org/fhir/sid/icd-10-cm",
        "confidence": 0.93,
        "span": SPAN,
        "onset_date": "2019-04-01",
        "attributes": {"negated": False, "clinical_status": "active"},
    }
    assert entity_input(entity) == {
        "entity_type": "Condition",
        "text": "type 2 diabetes",
        "code": "E11.9",
        "code_system": "http://hl7.org/fhir/sid/icd-10-cm",
        "confidence": 0.93,
        "span": SPAN,
        "attributes": {"negated": False, "clinical_status": "active", "onset_date": "2019-04-01"},
    }


@pytest.mark.parametrize(
    ("entity_type", "fields", "value"),
    [
        ("MedicationStatement", {"dosage": {"value": 500, "unit": "mg"}}, {"value": 500, "unit": "mg"}),
        ("Observation", {"value": {"value": 7.2, "unit": "%"}, "effective_date": "2024-01-05"},
         {"value": 7.2, "unit": "%"}),
        ("AllergyIntolerance", {"criticality": "high"}, None),
        ("Procedure", {"performed_date": "2023-11-30"}, None),
    ],
)
def test_the_quantity_goes_to_value_and_other_type_specific_fields_under_attributes(entity_type, fields, value):
    entity = {
        "entity_type": entity_type,
        "text": "words",
        "code": "123",
        "code_system": "http://snomed.info/sct",
        "confidence": 0.8,
        "span": SPAN,
        **fields,
    }
    mapped = entity_input(entity)
    assert mapped["attributes"] == {k: v for k, v in fields.items() if k not in ("value", "dosage")}
    assert mapped.get("value") == value
    assert set(mapped) - {"value"} == {"entity_type", "text", "code", "code_system", "confidence", "span",
                                       "attributes"}


def test_no_attributes_gives_an_empty_object():
    entity = {"entity_type": "Procedure", "text": "x", "code": "1", "code_system": "urn:x", "confidence": 1,
              "span": SPAN}
    assert entity_input(entity)["attributes"] == {}


def test_a_typed_field_wins_over_an_extractor_attribute_of_the_same_name():
    entity = {"entity_type": "AllergyIntolerance", "text": "x", "code": "1", "code_system": "urn:x",
              "confidence": 1, "span": SPAN, "criticality": "high", "attributes": {"criticality": "low"}}
    assert entity_input(entity)["attributes"] == {"criticality": "high"}


def test_the_entity_document_is_not_changed():
    entity = {"entity_type": "Procedure", "text": "x", "code": "1", "code_system": "urn:x", "confidence": 1,
              "span": dict(SPAN), "performed_date": "2023-11-30", "attributes": {"a": 1}}
    before = json.loads(json.dumps(entity))
    entity_input(entity)["attributes"]["b"] = 2
    assert entity == before


def test_every_valid_corpus_document_maps_to_a_result_the_contract_accepts():
    valid = 0
    for path in corpus_documents(CORPUS):
        document, _ = load_document(path)
        if document is None or not is_valid(validate_entity_document(document)):
            continue
        valid += 1
        entities = [entity_input(entity) for entity in document["entities"]]
        validate_request({"status": "completed", "entities": entities}, "ProcessingResult")  # raises if not
    assert valid == 5


def test_corpus_documents_are_sorted_and_skip_the_answer_key(tmp_path):
    for name in ("b.json", "a.json", "expected.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in corpus_documents(tmp_path)] == ["a.json", "b.json"]


def test_a_file_that_is_not_json_is_named_after_its_stem(tmp_path):
    path = tmp_path / "scan-17.json"
    path.write_bytes(b"\xff\xfe not json")
    assert load_document(path) == (None, "scan-17")


def test_summary_names_blocking_codes_only():
    errors = [
        {"code": "unit.not_ucum", "severity": "error", "message": "m", "pointer": "/entities/0/value/unit"},
        {"code": "schema.type", "severity": "fatal", "message": "m", "pointer": ""},
        {"code": "confidence.low", "severity": "warning", "message": "m", "pointer": "/entities/1/confidence"},
    ]
    assert summarise(errors) == "Entity validation failed: 2 errors (schema.type, unit.not_ucum)"


def test_items_about_an_entity_name_its_type_and_code_and_nothing_else():
    document = {"entities": [
        {"entity_type": "Condition", "code": "R07.9X", "text": "chest pain, patient Jane Doe"},
        {"entity_type": "Observation", "code": "low sodium for Jane", "text": "Na 128"},
        {"entity_type": "made up type!", "code": "X1"},
        "not an entity",
    ]}
    items = [
        {"code": "code.unknown_icd10cm", "severity": "error", "message": "m", "pointer": "/entities/0/code"},
        {"code": "unit.not_ucum", "severity": "error", "message": "m", "pointer": "/entities/1/value/unit"},
        {"code": "schema.enum", "severity": "error", "message": "m", "pointer": "/entities/2/entity_type"},
        {"code": "schema.type", "severity": "error", "message": "m", "pointer": "/entities/3"},
        {"code": "schema.required", "severity": "error", "message": "m", "pointer": "/entities/9"},
        {"code": "schema.required", "severity": "error", "message": "m", "pointer": ""},
        {"code": "schema.type", "severity": "error", "message": "m", "pointer": "/entities/01"},
    ]
    entities = [item.get("entity") for item in with_entities(items, document)]
    assert entities == [
        {"type": "Condition", "code": "R07.9X"},  # the code as written, even when it is wrong
        {"type": "Observation"},  # a phrase in "code" is not copied
        {"code": "X1"},
        None, None, None, None,
    ]
    assert with_entities(items, None) == items


def test_the_failure_the_worker_posts_is_accepted_with_its_entities():
    from app.services.error_details import normalize_error_details

    document = load_document(ROOT / "demo" / "corpus" / "doc-0006-referral-letter-bad-icd-code.json")[0]
    items = with_entities(validate_entity_document(document), document)
    stored, error_format = normalize_error_details({"errors": items}, "normalized")
    assert error_format == "normalized"
    assert {"type": "Condition", "code": "E11.99X"} in [item.get("entity") for item in stored["errors"]]
