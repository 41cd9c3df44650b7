"""The body check's fast path (app/api/contract.py): the compiled validator
may only say "valid" where jsonschema says so too; faults are always
jsonschema's."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api import contract
from app.errors import InvalidFieldsError

REPORT = "ValidationFailureReport"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
#: Bodies near the report's shape, so that both answers are common.
report_like = st.fixed_dictionaries(
    {},
    optional={
        "error_message": st.text(max_size=5) | json_values,
        "error_details": json_values,
        "error_format": st.sampled_from(["normalized", "zod", "free-form", "nope", ""]) | json_values,
        "worker": st.fixed_dictionaries({}, optional={"name": st.text(max_size=3) | json_values,
                                                      "version": st.text(max_size=3), "x": json_values}),
        "extra": json_values,
    },
)


def python_faults(body: Any, schema_name: str) -> list[Any]:
    return list(contract._validator(schema_name).iter_errors(body))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=report_like | json_values)
def test_the_fast_path_accepts_only_what_jsonschema_accepts(body):
    assert contract._accepted_quickly(body, REPORT) == (python_faults(body, REPORT) == [])


def test_schemas_with_patterns_or_formats_have_no_fast_path():
    # ProcessingResult reaches a "pattern" (an entity's code system URI):
    # the two validators' regular-expression dialects differ.
    assert contract._fast_validator("ProcessingResult") is None
    assert contract._fast_validator(REPORT) is not None


def test_a_value_the_compiled_validator_cannot_take_goes_to_jsonschema():
    body = {"error_message": "m", "error_details": 2**80}
    assert contract._accepted_quickly(body, REPORT) is (python_faults(body, REPORT) == [])
    contract.validate_request(body, REPORT)  # valid: no error


def test_a_refused_body_gets_jsonschema_s_faults():
    with pytest.raises(InvalidFieldsError) as caught:
        contract.validate_request({"error_message": "", "worker": {"name": 3}, "other": 1}, REPORT)
    assert [(e["pointer"], e["detail"]) for e in caught.value.errors] == [
        (e["pointer"], e["detail"]) for e in _described({"error_message": "", "worker": {"name": 3}, "other": 1})
    ]
    pointers = {e["pointer"] for e in caught.value.errors}
    assert pointers == {"#/error_details", "#/error_message", "#/other", "#/worker/name"}


def _described(body: Any) -> list[Any]:
    errors = [item for error in python_faults(body, REPORT) for item in contract._describe(error)]
    unique = {(e.get("pointer", ""), e["detail"]): e for e in errors}
    return [unique[k] for k in sorted(unique)]
