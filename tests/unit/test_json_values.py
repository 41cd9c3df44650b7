import math

import pytest

from app.services.json_values import (
    InvalidJSONValueError,
    canonical_json,
    clean_json_value,
    clean_text,
    json_equal,
    json_integer,
)


def test_valid_text_and_emoji_pass_untouched():
    value = {"naïve café": ["😀 ünïcödé", "日本語", "\u00e9"], "n": 1.5, "b": True, "z": None}
    assert clean_json_value(value, max_depth=8) == value


def test_nul_and_lone_surrogates_become_replacement_characters_in_keys_and_values():
    value = {"a\x00b": ["x\ud800y", "\udfff"], "ok": "\U0001F600"}
    assert clean_json_value(value, max_depth=8) == {"a\ufffdb": ["x\ufffdy", "\ufffd"], "ok": "\U0001F600"}
    assert clean_text("\x00") == "\ufffd"


def test_the_input_is_not_mutated():
    value = {"a": ["\x00"]}
    clean_json_value(value, max_depth=8)
    assert value == {"a": ["\x00"]}


@pytest.mark.parametrize(
    ("value", "pointer"),
    [
        ({"a": {1, 2}}, "/a"),
        ({"a": [b"bytes"]}, "/a/0"),
        ({"x": math.nan}, "/x"),
        ([math.inf], "/0"),
        ({"a/b": {"c~d": object()}}, "/a~1b/c~0d"),
    ],
)
def test_non_json_values_are_refused_with_a_pointer(value, pointer):
    with pytest.raises(InvalidJSONValueError) as caught:
        clean_json_value(value, max_depth=8)
    assert caught.value.pointer == pointer


def test_non_string_keys_are_refused():
    with pytest.raises(InvalidJSONValueError, match="keys must be strings"):
        clean_json_value({1: "x"}, max_depth=8)


def test_depth_limit_counts_containers():
    assert clean_json_value([[["x"]]], max_depth=3) == [[["x"]]]
    with pytest.raises(InvalidJSONValueError, match="deeper than 2"):
        clean_json_value([[["x"]]], max_depth=2)


def test_hostile_nesting_does_not_exhaust_the_stack():
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(InvalidJSONValueError):
        clean_json_value(value, max_depth=32)


def test_canonical_json_tells_json_types_apart():
    assert canonical_json(True) != canonical_json(1)
    assert canonical_json({"b": 1, "a": 2}) == canonical_json({"a": 2, "b": 1})


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (1e300, 10**300, True),
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        (None, 0, False),
        ({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]}, True),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ([1, 2], [2, 1], False),
        ("1", 1, False),
        (2**53 + 1, 2**53, False),
        # Beyond double range: equal to no float (float() of it overflows).
        pytest.param(10**400, 1.5, False, id="huge-int-vs-float"),
        pytest.param(-(10**400), -1.7976931348623157e308, False, id="huge-negative-vs-min-double"),
        pytest.param(10**400, 10**400, True, id="huge-ints"),
    ],
)
def test_json_equal_compares_as_json(left, right, equal):
    assert json_equal(left, right) is equal
    assert json_equal(right, left) is equal


@pytest.mark.parametrize(
    ("value", "pointer"),
    [
        ([{"m": "x" * 11}, {"m": "ok"}, {"m": "y" * 11}], "/0/m"),
        ({"a": "ok", "b": ["z" * 11], "c": "w" * 11}, "/b/0"),
        ([[[[1]]], "ok", [[[[2]]]]], "/0/0/0"),
    ],
)
def test_the_fault_named_is_the_first_in_the_document(value, pointer):
    # A trial's 422 named the last of two over-long messages.
    with pytest.raises(InvalidJSONValueError) as caught:
        clean_json_value(value, max_depth=3, max_string_length=10)
    assert caught.value.pointer == pointer


def test_members_and_elements_keep_their_order():
    value = {"z": 1, "a": [3, 2, 1], "m": {"y": 0, "b": 1}}
    cleaned = clean_json_value(value, max_depth=8)
    assert cleaned == value and list(cleaned) == ["z", "a", "m"] and list(cleaned["m"]) == ["y", "b"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, 1),
        (-0.0, 0),
        (2.0**53 - 1, 2**53 - 1),
        (5.5, 5.5),
        (2.0**53, 2.0**53),  # beyond exact doubles: left a float, for the caller to refuse
        (1e300, 1e300),
        (7, 7),
        (True, True),  # a bool is not a number in JSON
        ("1", "1"),
    ],
)
def test_json_integer_takes_whole_doubles_as_json_schema_does(value, expected):
    got = json_integer(value)
    assert got == expected and type(got) is type(expected)
