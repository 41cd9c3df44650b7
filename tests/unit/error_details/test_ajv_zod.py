"""Edge cases of the ``ajv`` and ``zod`` adapters. Their output on real
documents, printed by the pinned libraries themselves, is tested in
tests/integration/api/test_native_formats.py; these are the shapes that
document does not produce (ajv's custom keywords and summaries, zod's
serialised ZodError, malformed payloads)."""

from __future__ import annotations

import pytest

from app.services.error_details import (
    AmbiguousErrorFormatError,
    InvalidErrorDetailsError,
    detect_error_format,
    normalize_error_details,
)
from tests.unit.error_details.payloads import SENTINEL, assert_valid_envelope


def ajv(keyword, instance_path="", params=None, **extra):
    return {"instancePath": instance_path, "schemaPath": f"#/{keyword}", "keyword": keyword,
            "params": params or {}, "message": "m", **extra}  # fmt: skip


def items(details, error_format):
    envelope, _ = normalize_error_details(details, error_format)
    assert_valid_envelope(envelope)
    return [(i["code"], i["pointer"], i["message"], i.get("ctx", {})) for i in envelope["errors"]]


def test_ajv_names_move_into_the_pointer_and_unsafe_params_are_dropped():
    payload = [
        ajv("additionalProperties", "/a", {"additionalProperty": "x/y"}),
        ajv("dependentRequired", "", {"property": "code", "missingProperty": "code_system", "deps": "code_system",
                                      "depsCount": 1}),
        ajv("discriminator", "/e", {"error": "mapping", "tag": "entity_type", "tagValue": SENTINEL}),
        ajv("maxLength", "/attributes", {"limit": 64}, propertyName="long"),
        ajv("propertyNames", "/attributes", {"propertyName": "long"}),
        ajv("false schema", "/f"),
        ajv("type", "/t", {"type": ["string", "number"]}, data=SENTINEL, schema=["string", "number"]),
        ajv("isClinical", "/c", {"value": SENTINEL}, message=f"{SENTINEL} is not clinical"),
    ]
    assert items(payload, None) == [
        ("schema.additionalProperties", "/a/x~1y", "is not a known field", {"schema_location": "/additionalProperties"}),
        ("schema.dependentRequired", "/code_system", "is required when property 'code' is present",
         {"missingProperty": "code_system", "property": "code", "deps": "code_system", "depsCount": 1,
          "schema_location": "/dependentRequired"}),
        ("schema.discriminator", "/e", "has a missing or unknown discriminator value",
         {"error": "mapping", "tag": "entity_type", "schema_location": "/discriminator"}),
        ("schema.maxLength", "/attributes/long", "property name must be at most 64 character(s) long",
         {"limit": 64, "schema_location": "/maxLength"}),
        ("schema.false", "/f", "is not allowed here", {"schema_location": "/false schema"}),
        ("schema.type", "/t", "must be string or number", {"schema_location": "/type"}),
        ("schema.isClinical", "/c", "failed the custom check 'isClinical'", {"schema_location": "/isClinical"}),
    ]


def test_ajv_keeps_an_if_error_with_nothing_below_it_and_a_lone_property_names_error():
    payload = [ajv("if", "/e", {"failingKeyword": "then"}), ajv("propertyNames", "/a", {"propertyName": "k"})]
    assert [code for code, *_ in items(payload, "ajv")] == ["schema.if", "schema.propertyNames"]
    assert items(payload, "ajv")[1][1] == "/a/k"


def test_ajv_schema_paths_that_are_not_fragments_are_kept_whole():
    payload = [{**ajv("minimum", "/n", {"limit": 1, "comparison": ">="}), "schemaPath": "other.json#/minimum"}]
    assert items(payload, "ajv")[0][3] == {"limit": 1, "comparison": ">=", "schema_path": "other.json#/minimum"}


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ({"errors": []}, ""),
        ([3], "/0"),
        ([{**ajv("type"), "keyword": ""}], "/0/keyword"),
        ([{k: v for k, v in ajv("type").items() if k != "instancePath"} | {"dataPath": ".a"}], "/0/instancePath"),
        ([ajv("type", "a")], "/0/instancePath"),
        ([{**ajv("type"), "schemaPath": 3}], "/0/schemaPath"),
        ([{**ajv("type"), "params": []}], "/0/params"),
        ([ajv("type", propertyName=3)], "/0/propertyName"),
    ],
)
def test_malformed_ajv_errors_are_refused(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "ajv")
    assert caught.value.pointer == pointer


def test_zod_3_serialised_error_is_accepted_and_custom_issues_keep_their_words():
    serialised = {
        "issues": [
            {"code": "custom", "path": ["span", "end"], "message": "end before start", "params": {"rule": "span",
                                                                                               "list": [1]}},
            {"code": "custom", "path": [], "message": ""},
            {"code": "invalid_enum_value", "options": ["a", "b"], "received": SENTINEL, "path": ["k"],
             "message": f"Invalid enum value. Expected 'a' | 'b', received '{SENTINEL}'"},
            {"code": "too_small", "minimum": 2, "type": "array", "inclusive": True, "exact": True,
             "path": ["xs"], "message": "Array must contain exactly 2 element(s)"},
            {"code": "too_big", "maximum": 5, "type": "string", "inclusive": False, "exact": False,
             "path": ["s"], "message": "String must contain under 5 character(s)"},
            {"code": "invalid_string", "validation": {"startsWith": "ab"}, "path": ["p"], "message": "m"},
            {"code": "unrecognized_keys", "keys": ["a", "b"], "path": ["o"], "message": "m"},
            {"code": "future_code", "path": [0], "message": SENTINEL},
        ],
        "name": "ZodError",
    }
    assert detect_error_format(serialised) == "zod"
    assert items(serialised, None) == [
        ("zod.custom", "/span/end", "end before start", {"rule": "span"}),
        ("zod.custom", "", "failed a custom check", {}),
        ("zod.invalid_enum_value", "/k", 'must be one of: "a", "b"', {}),
        ("zod.too_small", "/xs", "must have exactly 2 item(s)",
         {"minimum": 2, "type": "array", "inclusive": True, "exact": True}),
        ("zod.too_big", "/s", "must be at most 4 character(s) long",
         {"maximum": 5, "type": "string", "inclusive": False, "exact": False}),
        ("zod.invalid_string", "/p", 'must start with "ab"', {"startsWith": "ab"}),
        ("zod.unrecognized_keys", "/o/a", "is not a known field", {}),
        ("zod.unrecognized_keys", "/o/b", "is not a known field", {}),
        ("zod.future_code", "/0", "failed the zod check 'future_code'", {}),
    ]


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ("x", ""),
        ({"issues": "x"}, ""),
        ([3], "/0"),
        ({"issues": [3]}, "/issues/0"),
        ([{"code": "", "path": [], "message": "m"}], "/0/code"),
        ([{"code": "c", "message": "m"}], "/0/path"),
        ([{"code": "c", "path": [True], "message": "m"}], "/0/path/0"),
        ([{"code": "c", "path": [], "message": 3}], "/0/message"),
        ([{"code": "unrecognized_keys", "path": [], "message": "m", "keys": "a"}], "/0/keys"),
    ],
)
def test_malformed_zod_issues_are_refused(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "zod")
    assert caught.value.pointer == pointer


def test_an_array_that_fits_two_formats_asks_for_the_format():
    both = [{"code": "c", "severity": "error", "message": "m", "pointer": "", "path": []}]
    with pytest.raises(AmbiguousErrorFormatError) as caught:
        normalize_error_details(both, None)
    assert caught.value.candidates == ("normalized", "zod")
    assert detect_error_format(both) is None


def _summary_by_pairs(error, errors):
    # The rule as first written: each error against every other (quadratic).
    keyword, place = error["keyword"], error["instancePath"]
    if keyword == "if":
        return any(other is not error and other["keyword"] != "if"
                   and (other["instancePath"] == place or other["instancePath"].startswith(place + "/"))
                   for other in errors)
    if keyword == "propertyNames":
        name = error["params"].get("propertyName")
        return any(other is not error and other.get("propertyName") == name and other["instancePath"] == place
                   for other in errors)
    return False


def test_the_summaries_found_in_one_pass_are_those_of_comparing_every_pair():
    import random

    from app.services.error_details.ajv_errors import _summary_test

    rng = random.Random(22)
    places = ["", "/a", "/a/b", "/a/b/c", "/ab", "/a~1b", "/0", "/0/x"]
    names = ["k", "K", "x-y"]
    for _ in range(400):
        errors = []
        for _ in range(rng.randint(1, 8)):
            keyword = rng.choice(["if", "if", "propertyNames", "pattern", "type", "required"])
            error = {"keyword": keyword, "instancePath": rng.choice(places), "schemaPath": "#", "params": {}}
            if keyword == "propertyNames":
                error["params"] = {"propertyName": rng.choice(names)}
            if rng.random() < 0.4:
                error["propertyName"] = rng.choice(names)
            errors.append(error)
        is_summary = _summary_test(errors)
        assert [is_summary(e) for e in errors] == [_summary_by_pairs(e, errors) for e in errors], errors
