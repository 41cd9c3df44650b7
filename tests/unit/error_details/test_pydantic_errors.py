"""The ``pydantic-v2`` adapter (``app.services.error_details.pydantic_errors``)."""

from __future__ import annotations

import json
import typing

import pytest
from pydantic_core import core_schema

from app.services.error_details import (
    InvalidErrorDetailsError,
    normalize_error_details,
)
from app.services.error_details.pydantic_errors import REBUILT_MESSAGES, TEMPLATED_TYPES
from tests.unit.error_details.payloads import (
    assert_valid_envelope,
    pydantic_error,
)


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
