"""Tests of the entity document schema and validator (app.worker.validation)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from app.worker import validation
from app.worker.semantic_checks import is_ucum_unit
from app.worker.validation import (
    is_valid,
    load_entity_schema,
    validate_entity_document,
)

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
CORPUS_FILES = sorted(path.name for path in CORPUS.glob("doc-*.json"))
BLOCKING = {"fatal", "error"}


def load(name: str) -> dict:
    return json.loads((CORPUS / name).read_text(encoding="utf-8"))


def resolve(document: object, pointer: str) -> object:
    """Resolve an RFC 6901 pointer; KeyError/IndexError/ValueError when it does not."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise ValueError(f"pointer must be empty or start with '/': {pointer!r}")
    target = document
    for raw in pointer[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise ValueError(f"bad escape in {raw!r}")
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, list):
            if not re.fullmatch(r"0|[1-9][0-9]*", token):
                raise ValueError(f"not an array index: {token!r}")
            target = target[int(token)]
        elif isinstance(target, dict):
            target = target[token]
        else:
            raise KeyError(token)
    return target


def codes(errors: list[dict]) -> list[str]:
    return sorted({item["code"] for item in errors})


def valid_document() -> dict:
    return {
        "document_id": "doc-test",
        "schema_version": 1,
        "extracted_at": "2024-05-14T09:30:00Z",
        "source": {"page_count": 2, "mime_type": "application/pdf"},
        "entities": [
            {
                "entity_type": "Condition",
                "text": "type 2 diabetes mellitus",
                "code": "E11.9",
                "code_system": "http://hl7.org/fhir/sid/icd-10-cm",
                "confidence": 0.9,
                "span": {"page": 1, "start": 10, "end": 34},
                "onset_date": "2020-01-31",
            },
            {
                "entity_type": "Observation",
                "text": "HbA1c 7.1 %",
                "code": "4548-4",
                "code_system": "http://loinc.org",
                "confidence": 0.95,
                "span": {"page": 2, "start": 0, "end": 11},
                "value": {"value": 7.1, "unit": "%"},
                "effective_date": "2024-05-10",
            },
        ],
    }


# --- corpus ---------------------------------------------------------------------


def test_expectations_cover_exactly_the_corpus():
    assert len(CORPUS_FILES) >= 10
    assert sorted(EXPECTED) == CORPUS_FILES


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_document_gives_expected_result(name):
    errors = validate_entity_document(load(name))

    assert is_valid(errors) is EXPECTED[name]["valid"]
    assert codes([e for e in errors if e["severity"] in BLOCKING]) == EXPECTED[name]["codes"]
    assert codes([e for e in errors if e["severity"] not in BLOCKING]) == EXPECTED[name]["warnings"]


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_items_are_well_formed_and_point_into_the_document(name):
    document = load(name)
    errors = validate_entity_document(document)

    for item in errors:
        assert set(item) == {"code", "severity", "message", "pointer"}
        assert item["severity"] in {"fatal", "error", "warning", "information"}
        assert item["message"] and len(item["message"]) <= 200
        resolve(document, item["pointer"])  # raises when it does not resolve


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_messages_never_quote_entity_text(name):
    document = load(name)
    texts = [entity["text"] for entity in document["entities"] if "text" in entity]
    errors = validate_entity_document(document)

    for item in errors:
        for text in texts:
            assert text not in item["message"]


# --- schema -------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = load_entity_schema()

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/entity-document.v1.schema.json")


def test_load_entity_schema_returns_a_copy_callers_may_change():
    load_entity_schema()["properties"]["schema_version"]["const"] = 2

    assert load_entity_schema()["properties"]["schema_version"]["const"] == 1
    assert validate_entity_document(valid_document()) == []


def test_valid_document_has_no_items():
    assert validate_entity_document(valid_document()) == []


# --- schema stage ---------------------------------------------------------------------


def test_a_pattern_is_read_as_ecma_262_as_the_api_reads_it():
    # A re-check: Python's "$" passed a code system ending in a line break, which the API
    # refused, and the worker's run stopped on the 422.
    document = valid_document()
    document["entities"][0]["code_system"] += "\n"
    errors = validate_entity_document(document)
    assert [error["pointer"] for error in errors] == ["/entities/0/code_system"], errors


@pytest.mark.parametrize("not_an_object", [[], "text", None, 3, True])
def test_non_object_document_is_fatal(not_an_object):
    errors = validate_entity_document(not_an_object)

    assert errors == [
        {
            "code": "schema.type",
            "severity": "fatal",
            "message": "entity document must be a JSON object",
            "pointer": "",
        }
    ]
    assert not is_valid(errors)


def test_impossible_calendar_date_is_caught():
    document = valid_document()
    document["entities"][0]["onset_date"] = "2023-02-30"

    errors = validate_entity_document(document)

    assert [(e["code"], e["pointer"]) for e in errors] == [("schema.format", "/entities/0/onset_date")]


@pytest.mark.parametrize(
    "timestamp", ["2024-13-01T00:00:00Z", "2024-05-14 09:30", "yesterday", "2024-05-14T09:30:00"]
)
def test_bad_extracted_at_is_caught(timestamp):
    # Guards the date-time format checker, which jsonschema enables only with rfc3339-validator.
    document = valid_document()
    document["extracted_at"] = timestamp

    errors = validate_entity_document(document)

    assert [(e["code"], e["pointer"]) for e in errors] == [("schema.format", "/extracted_at")]


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:00:00Z", "9999-12-31T20:00:00-12:00", "0001-01-01T00:00:00Z"])
def test_extracted_at_at_the_calendars_edges_is_checked_without_overflow(timestamp):
    # The latest date anywhere (UTC+14) of a time late on 9999-12-31 is past
    # the calendar's end: astimezone() raised OverflowError.
    document = valid_document()
    document["extracted_at"] = timestamp
    document["entities"][0]["onset_date"] = "9999-12-31"

    errors = validate_entity_document(document)

    future = [e["pointer"] for e in errors if e["code"] == "date.in_future"]
    if timestamp.startswith("9999"):
        assert future == []
    else:
        assert "/entities/0/onset_date" in future


def test_missing_required_field_points_at_the_object_and_names_the_field():
    document = valid_document()
    del document["entities"][1]["value"]
    del document["entities"][1]["span"]
    del document["document_id"]

    errors = validate_entity_document(document)

    assert [(e["code"], e["pointer"], e["message"]) for e in errors] == [
        ("schema.required", "", "missing required property 'document_id'"),
        ("schema.required", "/entities/1", "missing required property 'span'"),
        ("schema.required", "/entities/1", "missing required property 'value'"),
    ]


def test_unknown_entity_type_gives_one_enum_error():
    document = valid_document()
    document["entities"][0]["entity_type"] = "Diagnosis"

    errors = validate_entity_document(document)

    assert [(e["code"], e["pointer"]) for e in errors] == [("schema.enum", "/entities/0/entity_type")]


def test_type_specific_fields_are_checked_against_the_entity_type():
    document = valid_document()
    document["entities"][0]["criticality"] = "high"  # an AllergyIntolerance field on a Condition

    errors = validate_entity_document(document)

    assert [(e["code"], e["pointer"]) for e in errors] == [
        ("schema.additionalProperties", "/entities/0/criticality")
    ]


def test_pointer_escapes_tilde_and_slash():
    document = valid_document()
    document["a/b~c"] = 1
    document["entities"][0]["attributes"] = {"dose~/route": ["not", "scalar"]}

    errors = validate_entity_document(document)

    pointers = {e["pointer"]: e["code"] for e in errors}
    assert pointers == {
        "/a~1b~0c": "schema.additionalProperties",
        "/entities/0/attributes/dose~0~1route": "schema.type",
    }
    for pointer in pointers:
        resolve(document, pointer)


def test_schema_messages_do_not_echo_patient_values():
    patient_text = "Mrs Jane Placeholder says her chest hurts"
    document = valid_document()
    document["entities"][0]["text"] = patient_text + "!" * 1000  # too long
    document["entities"][1]["confidence"] = patient_text  # wrong type
    document["entities"].append(
        {
            "entity_type": "AllergyIntolerance",
            "text": "peanut allergy",
            "code": "91935009",
            "code_system": "http://snomed.info/sct",
            "confidence": 0.9,
            "span": {"page": 1, "start": 0, "end": 14},
            "criticality": patient_text,  # not in the enum
        }
    )

    errors = validate_entity_document(document)

    assert codes(errors) == ["schema.enum", "schema.maxLength", "schema.type"]
    for item in errors:
        assert "Jane" not in item["message"]
        assert "chest" not in item["message"]


def test_semantic_messages_do_not_echo_patient_values():
    document = valid_document()
    document["entities"][0]["code"] = "Jane Placeholder diabetes"
    document["entities"][1]["value"]["unit"] = "percent of Jane's blood"

    errors = validate_entity_document(document)

    assert codes(errors) == ["code.unknown_icd10cm", "unit.not_ucum"]
    assert all("Jane" not in item["message"] for item in errors)


def test_items_are_sorted_by_pointer_with_numeric_indices_then_code():
    document = valid_document()
    condition = document["entities"][0]
    document["entities"] = [copy.deepcopy(condition) for _ in range(11)]
    for entity in document["entities"]:
        entity["confidence"] = 0.2
    document["entities"][10]["code"] = "E11.99X"
    document["entities"][2]["code"] = "E11"

    errors = validate_entity_document(document)

    keys = [(e["pointer"], e["code"]) for e in errors]
    assert keys[:4] == [
        ("/entities/0/confidence", "confidence.low"),
        ("/entities/1/confidence", "confidence.low"),
        ("/entities/2/code", "code.icd10cm_not_billable"),
        ("/entities/2/confidence", "confidence.low"),
    ]
    assert keys[-2:] == [
        ("/entities/10/code", "code.unknown_icd10cm"),
        ("/entities/10/confidence", "confidence.low"),
    ]


def test_a_property_name_of_5000_digits_is_sorted_without_int():
    # A digit-only name looks like an array index to the sort; int() refuses
    # more than sys.get_int_max_str_digits() digits.
    document = valid_document()
    document["entities"][0]["9" * 5000] = 1
    document["entities"][0]["10"] = 1
    document["entities"][0]["9"] = 1

    errors = validate_entity_document(document)

    assert [e["pointer"] for e in errors if e["code"] == "schema.additionalProperties"] == [
        "/entities/0/9",
        "/entities/0/10",
        "/entities/0/" + "9" * 5000,
    ]


def test_oneof_failure_is_reported_through_the_branch_of_the_entity_type():
    # The published schema dispatches with if/then; this guards the oneOf/anyOf
    # handling in case a schema version dispatches with oneOf instead.
    schema = {
        "oneOf": [
            {
                "type": "object",
                "required": ["entity_type", "value"],
                "properties": {"entity_type": {"const": "Observation"}},
            },
            {
                "type": "object",
                "required": ["entity_type", "dosage"],
                "properties": {"entity_type": {"const": "MedicationStatement"}},
            },
        ]
    }
    validator = Draft202012Validator(schema)

    items = validation._schema_items(validator, {"entity_type": "MedicationStatement"})
    unmatched = validation._schema_items(validator, {"entity_type": "Vaccine"})

    assert [(i["code"], i["message"]) for i in items] == [
        ("schema.required", "missing required property 'dosage'")
    ]
    assert [i["code"] for i in unmatched] == ["schema.oneOf"]


# --- semantic stage -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("E11.9", []),
        ("E119", []),  # without the dot
        ("J45.909", []),
        ("E11", ["code.icd10cm_not_billable"]),  # category with subcategories
        ("E11.99X", ["code.unknown_icd10cm"]),
        ("Z99.999", ["code.unknown_icd10cm"]),
        ("E08-E13", ["code.unknown_icd10cm"]),  # a block, not a code
        ("e11.9", ["code.unknown_icd10cm"]),
    ],
)
def test_condition_icd10cm_codes(code, expected):
    document = valid_document()
    document["entities"][0]["code"] = code

    assert codes(validate_entity_document(document)) == expected


def test_icd10cm_check_applies_only_to_the_icd10cm_system():
    document = valid_document()
    document["entities"][0]["code"] = "44054006"
    document["entities"][0]["code_system"] = "http://snomed.info/sct"

    assert validate_entity_document(document) == []


def test_not_billable_and_low_confidence_are_warnings_only():
    document = valid_document()
    document["entities"][0]["code"] = "E11"
    document["entities"][0]["confidence"] = 0.49

    errors = validate_entity_document(document)

    assert {e["severity"] for e in errors} == {"warning"}
    assert codes(errors) == ["code.icd10cm_not_billable", "confidence.low"]
    assert is_valid(errors)


def test_confidence_at_threshold_is_not_low():
    document = valid_document()
    document["entities"][0]["confidence"] = 0.5

    assert validate_entity_document(document) == []


@pytest.mark.parametrize(
    ("extracted_at", "effective_date", "in_future"),
    [
        ("2024-05-14T09:30:00Z", "2024-05-14", False),
        ("2024-05-14T09:30:00Z", "2024-05-15", True),
        # 20:00 UTC is already 15 May east of UTC+4; a local date of the 15th is not in the future.
        ("2024-05-14T20:00:00Z", "2024-05-15", False),
        ("2024-05-14T20:00:00Z", "2024-05-16", True),
        # 11:00-07:00 is 18:00 UTC, already 15 May at UTC+14; 01:00-07:00 is not.
        ("2024-05-14T11:00:00-07:00", "2024-05-15", False),
        ("2024-05-14T01:00:00-07:00", "2024-05-15", True),
    ],
)
def test_date_after_extraction_is_in_future(extracted_at, effective_date, in_future):
    document = valid_document()
    document["extracted_at"] = extracted_at
    document["entities"][1]["effective_date"] = effective_date

    errors = validate_entity_document(document)

    expected = [("date.in_future", "/entities/1/effective_date")] if in_future else []
    assert [(e["code"], e["pointer"]) for e in errors] == expected


def test_onset_date_in_future_is_an_error():
    document = valid_document()
    document["entities"][0]["onset_date"] = "2025-01-01"

    errors = validate_entity_document(document)

    assert [(e["code"], e["severity"], e["pointer"]) for e in errors] == [
        ("date.in_future", "error", "/entities/0/onset_date")
    ]


@pytest.mark.parametrize(
    "unit",
    ["mg/dL", "mmol/L", "g/dL", "%", "10*3/uL", "10*9/L", "meq/L", "U/L", "ng/mL", "pg/mL", "mm[Hg]",
     "kg", "cm", "/min", "Cel", "[degF]", "mg", "g", "mL", "L", "umol/L", "m[IU]/mL", "mL/min/{1.73_m2}"],
)
def test_common_lab_units_are_ucum(unit):
    assert is_ucum_unit(unit)


@pytest.mark.parametrize(
    "unit",
    # UCUM is case-sensitive and has no "Eq" or "IU" atoms without brackets: mEq/L and mIU/mL are
    # common in lab reports but are not UCUM (meq/L and m[IU]/mL are).
    ["mg/dl%", "milligrams per deciliter", "mEq/L", "mIU/mL", "mmHg", "MG/DL", "bpm", "mg/dL ", ""],
)
def test_non_ucum_units_are_rejected(unit):
    assert not is_ucum_unit(unit)


def test_medication_dosage_unit_must_be_ucum():
    document = valid_document()
    document["entities"].append(
        {
            "entity_type": "MedicationStatement",
            "text": "metformin 500 milligrams",
            "code": "6809",
            "code_system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "confidence": 0.9,
            "span": {"page": 1, "start": 40, "end": 64},
            "dosage": {"value": 500, "unit": "milligrams"},
        }
    )

    errors = validate_entity_document(document)

    assert [(e["code"], e["pointer"]) for e in errors] == [("unit.not_ucum", "/entities/2/dosage/unit")]


def test_span_checks():
    document = valid_document()
    document["entities"][0]["span"] = {"page": 1, "start": 40, "end": 10}
    document["entities"][1]["span"]["page"] = 3  # source has 2 pages

    errors = validate_entity_document(document)

    assert [(e["code"], e["pointer"]) for e in errors] == [
        ("span.out_of_range", "/entities/0/span"),
        ("span.out_of_range", "/entities/1/span/page"),
    ]


def test_semantic_checks_skip_entities_with_schema_errors():
    document = valid_document()
    document["entities"][0]["code"] = "E11.99X"  # would be code.unknown_icd10cm
    document["entities"][0]["confidence"] = -0.1  # schema.minimum, and below the warning threshold
    document["entities"][1]["effective_date"] = "2099-01-01"  # checked: entity 1 has no schema error

    errors = validate_entity_document(document)

    assert [(e["code"], e["pointer"]) for e in errors] == [
        ("schema.minimum", "/entities/0/confidence"),
        ("date.in_future", "/entities/1/effective_date"),
    ]


def test_is_valid_counts_only_fatal_and_error():
    def item(severity):
        return {"code": "x", "severity": severity, "message": "m", "pointer": ""}

    assert is_valid([])
    assert is_valid([item("warning"), item("information")])
    assert not is_valid([item("warning"), item("error")])
    assert not is_valid([item("fatal")])
