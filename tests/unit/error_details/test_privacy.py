"""Patient text in the libraries' own output never reaches the stored details, whatever the adapter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.observation import Observation as ObservationR5
from fhir.resources.operationoutcome import OperationOutcome as OperationOutcomeR5
from fhir.resources.R4B.observation import Observation as ObservationR4B
from fhir.resources.R4B.operationoutcome import OperationOutcome as OperationOutcomeR4B

from app.services.error_details import (
    normalize_error_details,
)
from tests.unit.error_details.payloads import (
    SENTINEL,
    assert_valid_envelope,
    document_with_patient_text,
    fhir_observation_outcome,
    jschon_basic_output,
    jsonschema_payload,
    pydantic_error,
)


def library_outputs() -> dict[str, Any]:
    document = document_with_patient_text()
    error = pydantic_error()
    return {
        "pydantic-json": json.loads(error.json()),
        "pydantic-python": error.errors(),
        "pydantic-python-no-input": error.errors(include_url=False, include_input=False),
        "jsonschema": jsonschema_payload(document),
        "jsonschema-basic": jschon_basic_output(document),
        "fhir-r5": json.loads(fhir_observation_outcome(ObservationR5, OperationOutcomeR5)),
        "fhir-r4b": json.loads(fhir_observation_outcome(ObservationR4B, OperationOutcomeR4B)),
    }


# The libraries' own output quotes the patient text (inputs, messages, ctx,
# property names); the adapters must drop it. The FHIR outcomes are what a
# worker builds from fhir.resources' validation, whose messages do not quote it.
CARRY_THE_SENTINEL = {
    "pydantic-json",
    "pydantic-python",
    "pydantic-python-no-input",
    "jsonschema",
    "jsonschema-basic",
}


@pytest.mark.parametrize("name", sorted(CARRY_THE_SENTINEL | {"fhir-r5", "fhir-r4b"}))
def test_patient_text_never_reaches_the_stored_details(name):
    payload = library_outputs()[name]
    if name in CARRY_THE_SENTINEL:
        assert SENTINEL in repr(payload)
    envelope, _ = normalize_error_details(payload, None)
    stored = json.dumps(envelope, ensure_ascii=False)
    assert SENTINEL not in stored and "Jane Doe" not in stored
    assert envelope["errors"]
    assert_valid_envelope(envelope)
