"""The ``jsonschema-basic`` adapter for jschon's basic output
(``app.services.error_details.jsonschema_basic``)."""

from __future__ import annotations


import pytest

from app.services.error_details import (
    InvalidErrorDetailsError,
    normalize_error_details,
)
from tests.unit.error_details.payloads import (
    assert_valid_envelope,
    document_with_patient_text,
    jschon_basic_output,
    load,
)


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
