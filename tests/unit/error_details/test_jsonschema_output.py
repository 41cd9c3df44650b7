"""JSON Schema 2020-12 "detailed" and "verbose" output (``jsonschema-detailed``,
``jsonschema-verbose``), from jschon, next to "basic"."""

from __future__ import annotations

import json

import pytest

from app.services.error_details import (
    AmbiguousErrorFormatError,
    InvalidErrorDetailsError,
    detect_error_formats,
    normalize_error_details,
)
from tests.unit.error_details.payloads import (
    SENTINEL,
    assert_valid_envelope,
    document_with_patient_text,
    jschon_output,
    load,
)


@pytest.mark.parametrize("output_format", ["detailed", "verbose"])
def test_the_tree_gives_the_same_items_as_basic_output(output_format):
    document = document_with_patient_text()
    tree = jschon_output(document, output_format)
    basic, _ = normalize_error_details(jschon_output(document, "basic"), "jsonschema-basic")
    envelope, used = normalize_error_details(tree, f"jsonschema-{output_format}")
    assert used == f"jsonschema-{output_format}"
    assert_valid_envelope(envelope)
    assert envelope == basic
    assert SENTINEL not in json.dumps(envelope)
    assert SENTINEL in json.dumps(tree)  # jschon names the unexpected property in its error text


def test_verbose_output_is_recognised_by_its_passing_units():
    tree = jschon_output(document_with_patient_text(), "verbose")
    assert detect_error_formats(tree) == ("jsonschema-verbose",)
    envelope, used = normalize_error_details(tree, None)
    assert used == "jsonschema-verbose" and envelope["errors"]


def test_detailed_output_cannot_be_told_from_verbose_so_the_format_is_asked_for():
    tree = jschon_output(document_with_patient_text(), "detailed")
    assert detect_error_formats(tree) == ("jsonschema-detailed", "jsonschema-verbose")
    with pytest.raises(AmbiguousErrorFormatError) as caught:
        normalize_error_details(tree, None)
    assert caught.value.candidates == ("jsonschema-detailed", "jsonschema-verbose")


@pytest.mark.parametrize("output_format", ["detailed", "verbose"])
def test_a_valid_tree_is_an_empty_envelope(output_format):
    tree = jschon_output(load("doc-0001-discharge-summary.json"), output_format)
    envelope, _ = normalize_error_details(tree, f"jsonschema-{output_format}")
    assert envelope["errors"] == [] and envelope["error_count"] == 0


def test_the_specification_example_keeps_the_failing_leaves_in_order():
    # JSON Schema 2020-12 core, section 12.4.3 (detailed), abridged.
    tree = {
        "valid": False,
        "keywordLocation": "",
        "instanceLocation": "",
        "errors": [
            {
                "valid": False,
                "keywordLocation": "/items/$ref",
                "absoluteKeywordLocation": "https://example.com/polygon#/items/$ref",
                "instanceLocation": "/1",
                "errors": [
                    {
                        "valid": False,
                        "keywordLocation": "/items/$ref/required",
                        "absoluteKeywordLocation": "https://example.com/polygon#/$defs/point/required",
                        "instanceLocation": "/1",
                        "error": "Required property 'y' not found.",
                    },
                    {
                        "valid": False,
                        "keywordLocation": "/items/$ref/additionalProperties",
                        "absoluteKeywordLocation": "https://example.com/polygon#/$defs/point/additionalProperties",
                        "instanceLocation": "/1/z",
                        "error": "Additional property 'z' found but was invalid.",
                    },
                ],
            },
            {
                "valid": False,
                "keywordLocation": "/minItems",
                "instanceLocation": "",
                "error": "Expected at least 3 items but found 2",
            },
        ],
    }
    envelope, _ = normalize_error_details(tree, "jsonschema-detailed")
    assert [(i["code"], i["pointer"]) for i in envelope["errors"]] == [
        ("schema.required", "/1"),
        ("schema.additionalProperties", "/1/z"),
        ("schema.minItems", ""),
    ]
    assert envelope["errors"][0]["ctx"] == {
        "schema_location": "/items/$ref/required",
        "absolute_schema_location": "https://example.com/polygon#/$defs/point/required",
    }


@pytest.mark.parametrize(
    ("tree", "pointer"),
    [
        ([], ""),
        ({"valid": "no", "keywordLocation": "", "instanceLocation": ""}, "/valid"),
        ({"valid": False, "keywordLocation": "", "instanceLocation": "", "errors": {}}, "/errors"),
        ({"valid": False, "keywordLocation": "", "instanceLocation": "", "errors": [3]}, "/errors/0"),
        (
            {"valid": False, "keywordLocation": "", "instanceLocation": "",
             "errors": [{"keywordLocation": "/x", "instanceLocation": "no-slash"}]},
            "/errors/0/instanceLocation",
        ),
        ({"valid": False, "instanceLocation": ""}, "/keywordLocation"),
    ],
)
def test_malformed_trees_are_refused(tree, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(tree, "jsonschema-detailed")
    assert caught.value.pointer == pointer
