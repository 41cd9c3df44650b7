"""The ``normalized`` format (``app.services.error_details.normalized``): envelopes and bare item arrays."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.services.error_details import (
    DetailsLimits,
    InvalidErrorDetailsError,
    detect_error_format,
    normalize_error_details,
)
from tests.unit.error_details.payloads import (
    ENVELOPE_VALIDATOR,
    GOOD,
    assert_valid_envelope,
    reference_worker_items,
)


@pytest.mark.parametrize(
    "name",
    [
        "doc-0006-referral-letter-bad-icd-code.json",
        "doc-0007-progress-note-missing-fields.json",
        "doc-0011-scanned-intake-form-multiple-errors.json",
    ],
)
def test_reference_worker_v0_payload_is_kept_item_for_item(name):
    items = reference_worker_items(name)
    assert items
    envelope, used = normalize_error_details({"errors": items}, "normalized")
    assert used == "normalized"
    assert envelope == {"schema_version": 1, "errors": items, "error_count": len(items), "truncated": False}
    assert_valid_envelope(envelope)


def test_envelope_round_trips_and_a_bare_item_array_is_accepted():
    items = reference_worker_items("doc-0011-scanned-intake-form-multiple-errors.json")
    first, _ = normalize_error_details({"errors": items}, None)
    again, used = normalize_error_details(first, None)
    assert (again, used) == (first, "normalized")
    assert normalize_error_details(items, "normalized")[0] == first
    assert detect_error_format(items) == "normalized"


def test_optional_item_fields_are_kept():
    item = {
        "code": "span.out_of_range",
        "severity": "warning",
        "message": "span end is before span start",
        "pointer": "/entities/3/span",
        "rule": "span-order",
        "ctx": {"limit": 1, "ratio": 0.5, "strict": True, "note": None, "unit": "chars"},
        "entity": {"type": "Procedure", "index": 3, "page": 2, "start": 144, "end": 120},
    }
    envelope, _ = normalize_error_details({"errors": [item]}, None)
    assert envelope["errors"] == [item]
    assert_valid_envelope(envelope)


def test_an_entity_position_written_as_a_whole_float_is_that_integer():
    """JSON Schema's "integer" (the envelope's schema) takes 1.0, as the
    entity document's span does; a trial found span.end 1.0 accepted and
    entity.index 1.0 refused. Stored as the integer; 1.5 is still refused
    (test_malformed_normalized_details_are_refused_with_a_pointer)."""
    item = {"code": "c", "severity": "error", "message": "m", "pointer": "/entities/3",
            "entity": {"type": "Condition", "index": 3.0, "page": 2.0, "start": 0.0, "end": 1e2}}
    envelope, _ = normalize_error_details({"errors": [item]}, None)
    entity = envelope["errors"][0]["entity"]
    assert entity == {"type": "Condition", "index": 3, "page": 2, "start": 0, "end": 100}
    assert all(type(entity[key]) is int for key in ("index", "page", "start", "end"))
    assert_valid_envelope(envelope)
    assert item["entity"]["index"] == 3.0 and type(item["entity"]["index"]) is float  # the input is not changed


def test_a_worker_truncated_envelope_keeps_its_error_count():
    items = [{"code": "c", "severity": "error", "message": "m", "pointer": f"/e/{i}"} for i in range(3)]
    sent = {"schema_version": 1, "errors": items, "error_count": 900, "truncated": True}
    envelope, _ = normalize_error_details(sent, "normalized")
    assert envelope == sent
    smaller, _ = normalize_error_details(sent, "normalized", DetailsLimits(max_items=2))
    assert smaller["errors"] == items[:2] and smaller["error_count"] == 900 and smaller["truncated"] is True


@pytest.mark.parametrize("error_format", ["normalized", None])
def test_an_envelope_s_counts_written_as_whole_floats_are_those_integers(error_format):
    """A trial: error_count 1.0 and schema_version 1.0 were refused while
    the entity reference's 1.0 was taken; JSON Schema's integer takes both."""
    items = [{"code": "c", "severity": "error", "message": "m", "pointer": f"/e/{i}"} for i in range(2)]
    sent = {"schema_version": 1.0, "errors": items, "error_count": 5.0, "truncated": True}
    envelope, used = normalize_error_details(sent, error_format)
    assert used == "normalized"
    assert envelope["schema_version"] == 1 and envelope["error_count"] == 5 and envelope["truncated"] is True
    assert type(envelope["error_count"]) is int and type(envelope["schema_version"]) is int
    assert_valid_envelope(envelope)
    for count in (5.5, 1e300, 2**53, 9223372036854775808):  # a re-check: 1e300 was stored as 301 digits
        with pytest.raises(InvalidErrorDetailsError) as caught:
            normalize_error_details({**sent, "error_count": count}, error_format)
        assert caught.value.pointer == "/error_count"
    largest, _ = normalize_error_details({**sent, "error_count": 2**53 - 1}, error_format)
    assert largest["error_count"] == 2**53 - 1
    assert_valid_envelope(largest)


def test_the_input_is_not_changed():
    items = reference_worker_items("doc-0011-scanned-intake-form-multiple-errors.json")
    details = {"errors": items}
    before = copy.deepcopy(details)
    envelope, _ = normalize_error_details(details, None, DetailsLimits(max_items=2, max_message_length=5))
    assert details == before
    assert envelope["errors"][0] is not items[0]


def with_item(**changes: Any) -> dict:
    """v0 details whose second item has ``changes`` applied; a value of ``...`` removes the key."""
    item = {**GOOD, **changes}
    return {"errors": [GOOD, {key: value for key, value in item.items() if value is not ...}]}


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ({"errors": {"code": "c"}}, "/errors"),
        ("not an envelope", ""),
        ({"schema_version": 1}, "/errors"),
        ({"schema_version": 2, "errors": []}, "/schema_version"),
        ({"schema_version": 1.5, "errors": []}, "/schema_version"),  # 1.0 is 1 (JSON Schema's const)
        ({"schema_version": 1, "errors": [GOOD], "error_count": 0}, "/error_count"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": "1"}, "/error_count"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": 1, "truncated": "no"}, "/truncated"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": 2, "truncated": False}, "/truncated"),
        ({"schema_version": 1, "errors": [GOOD], "error_count": 1, "truncated": True}, "/truncated"),
        ({"schema_version": 1, "errors": [], "extra/key": 1}, "/extra~1key"),
        ({"errors": [GOOD, "item"]}, "/errors/1"),
        (with_item(code=...), "/errors/1/code"),
        (with_item(code=""), "/errors/1/code"),
        (with_item(severity=...), "/errors/1/severity"),
        (with_item(severity="critical"), "/errors/1/severity"),
        (with_item(severity="ERROR"), "/errors/1/severity"),
        (with_item(message=...), "/errors/1/message"),
        (with_item(message=7), "/errors/1/message"),
        (with_item(pointer=...), "/errors/1/pointer"),
        (with_item(pointer="entities/0"), "/errors/1/pointer"),
        (with_item(pointer="/a~2b"), "/errors/1/pointer"),
        (with_item(pointer="/a~"), "/errors/1/pointer"),
        (with_item(pointer=None), "/errors/1/pointer"),
        (with_item(hint="x"), "/errors/1/hint"),
        (with_item(rule=""), "/errors/1/rule"),
        (with_item(ctx=[1]), "/errors/1/ctx"),
        (with_item(ctx={"value": {"nested": 1}}), "/errors/1/ctx/value"),
        (with_item(ctx={"a/b": [1]}), "/errors/1/ctx/a~1b"),
        (with_item(entity="Condition"), "/errors/1/entity"),
        (with_item(entity={"kind": "x"}), "/errors/1/entity/kind"),
        (with_item(entity={"index": -1}), "/errors/1/entity/index"),
        (with_item(entity={"page": 0}), "/errors/1/entity/page"),
        (with_item(entity={"start": True}), "/errors/1/entity/start"),
        (with_item(entity={"end": 1.5}), "/errors/1/entity/end"),
        (with_item(entity={"type": 3}), "/errors/1/entity/type"),
        ([GOOD, {**GOOD, "severity": "bad"}], "/1/severity"),
    ],
)
def test_malformed_normalized_details_are_refused_with_a_pointer(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "normalized")
    assert caught.value.pointer == pointer
    assert caught.value.reason


def test_valid_pointers_are_accepted():
    for pointer in ["", "/", "/a~0b", "/a~1b/0", "//", "/ünï/😀", "/a b"]:
        envelope, _ = normalize_error_details({"errors": [{**GOOD, "pointer": pointer}]}, None)
        assert envelope["errors"][0]["pointer"] == pointer
        assert_valid_envelope(envelope)


@pytest.mark.parametrize("control", ["\x1b", "\x07", "\x7f", "\x0b", "\x85", "\x9b"])
@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        (lambda c: {"code": f"unit{c}bad"}, "/errors/1/code"),
        (lambda c: {"rule": f"r{c}"}, "/errors/1/rule"),
        (lambda c: {"fingerprint": f"{c}fp"}, "/errors/1/fingerprint"),
        (lambda c: {"entity": {"type": f"Cond{c}ition"}}, "/errors/1/entity/type"),
        (lambda c: {"entity": {"code": f"I10{c}"}}, "/errors/1/entity/code"),
    ],
)
def test_an_identifier_with_a_control_character_is_refused(control, changes, pointer):
    # A code the error_code filter could never find: no query parameter may
    # hold the character (app/request_input.py).
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(with_item(**changes(control)), "normalized")
    assert caught.value.pointer == pointer
    assert "control character" in caught.value.reason


def test_an_identifier_may_hold_tab_and_a_message_any_control():
    envelope, _ = normalize_error_details(
        with_item(code="a\tb", message="red \x1b[31m text \x9b"), "normalized"
    )
    assert envelope["errors"][1]["code"] == "a\tb"
    assert envelope["errors"][1]["message"] == "red \x1b[31m text \x9b"


def test_a_foreign_formats_code_keeps_its_control_characters_as_escapes():
    # zod's issue code is the worker's own string; its adapter does not check
    # it as ours is, so the envelope stores the controls as ASCII escapes.
    issues = [{"code": "too\x1bbig", "path": ["entities", 0], "message": "too big"}]
    envelope, _ = normalize_error_details(issues, "zod")
    assert envelope["errors"][0]["code"] == "zod.too\\u001bbig"
    assert_valid_envelope(envelope)
    raw_code = {**envelope, "errors": [{**envelope["errors"][0], "code": "too\x1bbig"}]}
    assert [e.validator for e in ENVELOPE_VALIDATOR.iter_errors(raw_code)] == ["pattern"]


@pytest.mark.parametrize(
    ("error_format", "details", "pointers"),
    [
        ("normalized", [{**GOOD, "severity": "bad"}, GOOD, {**GOOD, "code": ""}, "x"],
         ["/0/severity", "/2/code", "/3"]),
        ("pydantic", [{"loc": ["a"], "msg": "m", "type": 5}, {"loc": ["b"], "msg": "m", "type": "missing"}, {"msg": "m"}],
         ["/0/type", "/2/type"]),
        ("jsonschema", [{"validator": "type"}, {"validator": "", "path": [], "schema_path": []}],
         ["/0/path", "/1/validator"]),
        ("ajv", [{"keyword": "type"}, {"keyword": "required", "instancePath": "x"}], ["/0/instancePath", "/1/instancePath"]),
        ("zod", {"issues": [{"code": "x", "path": []}, 3, {"path": []}]}, ["/issues/1", "/issues/2/code"]),
        ("fhir-operationoutcome", {"resourceType": "OperationOutcome", "issue": [{}, {"severity": "error"}]},
         ["/issue/0/severity", "/issue/1/code"]),
    ],
    ids=["normalized", "pydantic", "jsonschema", "ajv", "zod", "fhir"],
)
def test_every_faulty_element_is_named_not_only_the_first(error_format, details, pointers):
    # One fault per element (its first), for every element that has one, in order.
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, error_format)
    assert [pointer for pointer, _reason in caught.value.faults] == pointers
    assert all(reason for _pointer, reason in caught.value.faults)
    assert (caught.value.pointer, caught.value.reason) == caught.value.faults[0]


def test_the_faults_named_stop_at_a_bound_and_say_how_many_elements_were_left():
    from app.services.error_details.errors import MAX_NAMED_FAULTS

    details = [{**GOOD, "severity": "bad"}] * (MAX_NAMED_FAULTS + 30)
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "normalized")
    faults = caught.value.faults
    assert [p for p, _ in faults[:-1]] == [f"/{n}/severity" for n in range(MAX_NAMED_FAULTS)]
    assert faults[-1] == ("", f"has 30 more element(s) not checked after the first {MAX_NAMED_FAULTS} faults")


@pytest.mark.parametrize("error_format", ["jsonschema-detailed", "jsonschema-verbose"])
def test_a_tree_of_output_units_names_every_faulty_unit(error_format):
    # A trial's tree: units 1, 3 and 4 are faulty, 0, 2 and 5 fine.
    leaf = {"valid": False, "keywordLocation": "/type", "instanceLocation": "/a", "error": "bad"}
    tree = {"valid": False, "keywordLocation": "", "instanceLocation": "", "errors": [
        leaf, {"valid": False, "keywordLocation": "/x"}, leaf, {"valid": False, "instanceLocation": "/y"},
        {"valid": "no"}, {**leaf, "errors": [leaf, {"valid": 1}]}]}
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(tree, error_format)
    assert [pointer for pointer, _reason in caught.value.faults] == [
        "/errors/1/instanceLocation", "/errors/3/keywordLocation", "/errors/4/valid", "/errors/5/errors/1/valid"]
