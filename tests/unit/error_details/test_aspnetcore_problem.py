"""ASP.NET Core ``ValidationProblemDetails`` (``aspnetcore-validation-problem``).

No .NET runtime here: the payloads are written to Microsoft's documented
shape (``Microsoft.AspNetCore.Mvc.ValidationProblemDetails``: RFC 9457 members
plus ``errors``, ModelState key -> messages, and ``traceId``) with
DataAnnotations' and System.Text.Json's default English messages.
"""

from __future__ import annotations

import json

import pytest

from app.services.error_details import (
    InvalidErrorDetailsError,
    detect_error_format,
    model_state_key_to_pointer,
    normalize_error_details,
    snake_case_lower,
)
from tests.unit.error_details.payloads import SENTINEL, assert_valid_envelope

#: What [ApiController] answers for a bad entity document (.NET 8).
PROBLEM = {
    "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    "title": "One or more validation errors occurred.",
    "status": 400,
    "errors": {
        "Entities[0].Code": ["The Code field is required."],
        "Entities[0].Confidence": ["The field Confidence must be between 0 and 1."],
        "Entities[1].Text": [
            "The field Text must be a string or array type with a maximum length of '1000'.",
            "The field Text must match the regular expression '^\\S.*$'.",
        ],
        "Entities[2].CodeSystem": [f"The value '{SENTINEL}' is not valid for CodeSystem."],
        "$.entities[3].span.end": [
            "The JSON value could not be converted to System.Int32. Path: $.entities[3].span.end | "
            "LineNumber: 0 | BytePositionInLine: 412."
        ],
        "Entities[4].Span": ["Span end must not be before its start."],
        "": ["A non-empty request body is required."],
    },
    "traceId": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
}


def test_a_validation_problem_is_recognised_and_each_message_is_an_item():
    assert detect_error_format(PROBLEM) == "aspnetcore-validation-problem"
    envelope, used = normalize_error_details(PROBLEM, None)
    assert used == "aspnetcore-validation-problem"
    assert_valid_envelope(envelope)
    assert [(i["code"], i["pointer"], i["message"]) for i in envelope["errors"]] == [
        ("aspnetcore.required", "/entities/0/code", "is required"),
        ("aspnetcore.range", "/entities/0/confidence", "must be between 0 and 1"),
        ("aspnetcore.max_length", "/entities/1/text", "must be at most 1000 character(s) or item(s) long"),
        ("aspnetcore.regular_expression", "/entities/1/text", "does not match the pattern ^\\S.*$"),
        ("aspnetcore.value_invalid", "/entities/2/code_system", "is not a valid value"),
        ("aspnetcore.json_conversion", "/entities/3/span/end", "could not be converted to System.Int32"),
        ("aspnetcore.validation", "/entities/4/span", "Span end must not be before its start."),
        ("aspnetcore.body_required", "", "a non-empty body is required"),
    ]
    items = envelope["errors"]
    assert all(item["severity"] == "error" for item in items)
    assert items[0]["ctx"] == {"key": "Entities[0].Code"}
    assert items[1]["ctx"] == {"key": "Entities[0].Confidence", "minimum": 0, "maximum": 1}
    assert items[5]["ctx"] == {
        "key": "$.entities[3].span.end", "target_type": "System.Int32", "line": 0, "byte_position": 412,
    }
    # The value binding quoted is dropped.
    assert SENTINEL not in json.dumps(envelope)


@pytest.mark.parametrize(("message", "ctx"), [
    # Past a double's range, past int()'s 4,300 digits, past 2**53: kept as
    # written, not inf (no JSON column stores it: a 500, a trial) nor rounded.
    ("The field Code must be a string or array type with a maximum length of '" + "9" * 4301 + "'.",
     {"maximum": "9" * 199 + "…"}),  # ctx text is capped, as every string of an item
    ("The field Value must be between -1e400 and 1e400.", {"minimum": "-1e400", "maximum": "1e400"}),
    ("The field Value must be between 0 and 9007199254740993.", {"minimum": 0, "maximum": "9007199254740993"}),
    ("The field Value must be between -0.5 and 9007199254740991.", {"minimum": -0.5, "maximum": 9007199254740991}),
    ("The field Value must be between 0 and 1e308.", {"minimum": 0, "maximum": 1e308}),
    ("The field Value must be between 1e-400 and 0.0e-5.", {"minimum": "1e-400", "maximum": 0.0}),
])
def test_a_number_in_a_message_is_stored_only_as_json_holds_it_exactly(message, ctx):
    envelope, _ = normalize_error_details({"title": "x", "errors": {"Entities[0].Value": [message]}}, None)
    assert_valid_envelope(envelope)
    (item,) = envelope["errors"]
    assert item["ctx"] == {"key": "Entities[0].Value", **ctx}
    json.dumps(envelope, allow_nan=False)  # no inf, no NaN


def test_digits_that_are_not_ascii_are_no_number():
    # "\\d" took "٣٤" (Arabic-Indic digits) as 34; ASP.NET writes ASCII digits.
    message = "The field Code must be a string or array type with a maximum length of '٣٤'."
    envelope, _ = normalize_error_details({"title": "x", "errors": {"Entities[0].Code": [message]}}, None)
    (item,) = envelope["errors"]
    assert (item["code"], item["message"]) == ("aspnetcore.validation", message)
    assert "maximum" not in item["ctx"]


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        # .NET 8 JsonNamingPolicy.SnakeCaseLower's documented behaviour.
        ("CodeSystem", "code_system"),
        ("EntityType", "entity_type"),
        ("entityType", "entity_type"),
        ("entity_type", "entity_type"),
        ("XMLHttpRequest", "xml_http_request"),
        ("SHA512Hash", "sha512_hash"),
        ("IsJSONProperty", "is_json_property"),
        ("ABC", "abc"),
        ("abC", "ab_c"),
        ("aBc", "a_bc"),
        ("ABc", "a_bc"),
        ("SNAKE_CASE", "snake_case"),
        ("kebab-case", "kebab-case"),
        ("double  space", "double_space"),
        ("  leading", "leading"),
        ("Page1Start", "page1_start"),
    ],
)
def test_names_are_snake_cased_as_dotnet_snake_case_lower_does(name, snake):
    assert snake_case_lower(name) == snake


@pytest.mark.parametrize(
    ("key", "pointer"),
    [
        ("", ""),
        ("Entities", "/entities"),
        ("Entities[12].Span.End", "/entities/12/span/end"),
        ("entities[0].code_system", "/entities/0/code_system"),  # JSON names (metadata provider)
        ("Entities[0].Attributes[LateralityCode]", "/entities/0/attributes/LateralityCode"),  # dictionary key
        ("[3].Code", "/3/code"),
        ("$", ""),
        ("$.entities[1].span", "/entities/1/span"),
        ("$.Entities[1]", "/Entities/1"),  # a JSON path keeps the document's own names
        ("$['odd name'].x", "/odd name/x"),
        ("$.a/b", "/a~1b"),
        ("Entities[0]..Code", None),
        ("Entities[0", None),
        ("$.entities[x", None),
    ],
)
def test_model_state_keys_become_pointers(key, pointer):
    assert model_state_key_to_pointer(key) == pointer


def test_a_key_that_fits_no_grammar_points_at_the_root_and_is_kept_in_ctx():
    envelope, _ = normalize_error_details(
        {"title": "x", "errors": {"Entities[0": ["The Code field is required."]}}, None
    )
    assert envelope["errors"][0]["pointer"] == ""
    assert envelope["errors"][0]["ctx"]["key"] == "Entities[0"


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ({"title": "x", "errors": []}, "/errors"),
        ({"title": "x", "errors": {"A": "The A field is required."}}, "/errors/A"),
        ({"title": "x", "errors": {"A/b": [3]}}, "/errors/A~1b/0"),
        ([], ""),
    ],
)
def test_malformed_problems_are_refused_when_declared(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "aspnetcore-validation-problem")
    assert caught.value.pointer == pointer


def test_every_malformed_member_of_errors_is_named_in_order():
    # Each key's first fault, one per key; the well-formed keys between them add none.
    details = {"title": "x", "errors": {"A": "text", "B": ["The B field is required."], "C/d": ["ok", 3, 4],
                                        "": None}}
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "aspnetcore-validation-problem")
    assert caught.value.faults == [("/errors/A", "must be an array of messages"),
                                   ("/errors/C~1d/1", "must be a string"),
                                   ("/errors/", "must be an array of messages")]
    assert caught.value.pointer == "/errors/A"


@pytest.mark.parametrize(
    "details",
    [
        {"errors": {"Entities[0].Code": ["The Code field is required."]}},  # no problem member: whose?
        {"title": "x", "errors": {"A": [1]}},
        {"title": "x", "errors": {"A": "text"}},
    ],
)
def test_objects_without_the_problem_shape_are_not_recognised(details):
    assert detect_error_format(details) is None
