"""The FHIR ``OperationOutcome`` adapter (``app.services.error_details.operation_outcome``),
on fhir.resources R5 and R4B."""

from __future__ import annotations

import json

import pytest
from fhir.resources.observation import Observation as ObservationR5
from fhir.resources.operationoutcome import OperationOutcome as OperationOutcomeR5
from fhir.resources.R4B.observation import Observation as ObservationR4B
from fhir.resources.R4B.operationoutcome import OperationOutcome as OperationOutcomeR4B

from app.services.error_details import (
    InvalidErrorDetailsError,
    fhirpath_to_pointer,
    normalize_error_details,
)
from tests.unit.error_details.payloads import (
    assert_valid_envelope,
    fhir_observation_outcome,
    fhir_validator_outcome,
)


@pytest.mark.parametrize(("outcome_model", "r5"), [(OperationOutcomeR5, True), (OperationOutcomeR4B, False)])
def test_fhir_operation_outcome_issues_become_items(outcome_model, r5):
    outcome = json.loads(fhir_validator_outcome(outcome_model, r5=r5))
    envelope, used = normalize_error_details(outcome, None)
    assert used == "fhir-operationoutcome"
    assert_valid_envelope(envelope)
    expected = [
        {
            "code": "fhir.code-invalid",
            "severity": "error",
            "message": "The code provided is not in the value set",
            "pointer": "/entry/2/resource/code/coding/0",
            "rule": "code-invalid",
            "ctx": {
                "details_system": "http://hl7.org/fhir/dotnet-api-operation-outcome",
                "details_code": "6005",
            },
        },
        {
            "code": "fhir.business-rule",
            "severity": "warning",
            "message": "Onset is after the recorded date",
            "pointer": "",
            "rule": "business-rule",
            "ctx": {"expression": "Bundle.entry.where(resource is Condition).resource.onsetDateTime"},
        },
        {
            "code": "fhir.structure",
            "severity": "fatal",
            "message": "FHIR issue of type 'structure'",
            "pointer": "/name/0/given/1",
            "rule": "structure",
        },
        {
            "code": "fhir.informational",
            "severity": "information",
            "message": "FHIR issue of type 'informational'",
            "pointer": "",
            "rule": "informational",
            "ctx": {"location": "/f:Patient/f:name"},
        },
    ]
    if r5:
        expected.append(
            {
                "code": "fhir.informational",
                "severity": "information",
                "message": "All OK otherwise",
                "pointer": "",
                "rule": "informational",
            }
        )
    assert envelope["errors"] == expected


@pytest.mark.parametrize(
    ("observation_model", "outcome_model"),
    [(ObservationR5, OperationOutcomeR5), (ObservationR4B, OperationOutcomeR4B)],
)
def test_fhir_worker_outcome_from_fhir_resources_validation(observation_model, outcome_model):
    outcome = json.loads(fhir_observation_outcome(observation_model, outcome_model))
    envelope, _ = normalize_error_details(outcome, "fhir-operationoutcome")
    assert_valid_envelope(envelope)
    pointers = {item["pointer"]: item for item in envelope["errors"]}
    assert pointers["/code/text"]["code"] == "fhir.structure"
    assert pointers["/code/text"]["message"] == "Input should be a valid string"
    assert pointers["/effectiveDateTime"]["code"] == "fhir.invalid"


@pytest.mark.parametrize(
    ("expression", "pointer"),
    [
        ("Bundle.entry[2].resource.code.coding[0]", "/entry/2/resource/code/coding/0"),
        ("Patient", ""),
        ("Patient.name[0].given[10]", "/name/0/given/10"),
        ("entry[1].resource", "/entry/1/resource"),
        (" Observation.valueQuantity.value ", "/valueQuantity/value"),
        ("Bundle.entry.where(fullUrl = 'x')", None),
        ("Patient.name.first()", None),
        ("Patient[0].name", None),
        ("Patient.name[01]", None),
        ("Patient.`name`", None),
        ("/f:Patient/f:name", None),
        ("", None),
        # More digits than int() converts (sys.get_int_max_str_digits()).
        pytest.param("Patient.name[" + "9" * 5000 + "]", "/name/" + "9" * 5000, id="index-of-5000-digits"),
    ],
)
def test_fhirpath_to_pointer(expression, pointer):
    assert fhirpath_to_pointer(expression) == pointer


@pytest.mark.parametrize(
    ("details", "pointer"),
    [
        ([], ""),
        ({"resourceType": "OperationOutcome"}, "/issue"),
        ({"resourceType": "OperationOutcome", "issue": []}, "/issue"),
        ({"resourceType": "OperationOutcome", "issue": ["x"]}, "/issue/0"),
        ({"resourceType": "OperationOutcome", "issue": [{"code": "invalid"}]}, "/issue/0/severity"),
        (
            {"resourceType": "OperationOutcome", "issue": [{"severity": "critical", "code": "x"}]},
            "/issue/0/severity",
        ),
        ({"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}, "/issue/0/code"),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "details": "t"}],
            },
            "/issue/0/details",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "details": {"text": 1}}],
            },
            "/issue/0/details/text",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "details": {"coding": {}}}],
            },
            "/issue/0/details/coding",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "details": {"coding": [1]}}],
            },
            "/issue/0/details/coding/0",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "diagnostics": []}],
            },
            "/issue/0/diagnostics",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "expression": "a"}],
            },
            "/issue/0/expression",
        ),
        (
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "x", "location": [1]}],
            },
            "/issue/0/location/0",
        ),
    ],
)
def test_malformed_operation_outcome_is_refused_with_a_pointer(details, pointer):
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(details, "fhir-operationoutcome")
    assert caught.value.pointer == pointer


def test_declared_format_must_match_the_payload():
    outcome = json.loads(fhir_validator_outcome(OperationOutcomeR5, r5=True))
    with pytest.raises(InvalidErrorDetailsError) as caught:
        normalize_error_details(outcome, "pydantic")
    assert caught.value.pointer == ""
    with pytest.raises(InvalidErrorDetailsError):
        normalize_error_details({"resourceType": "Patient"}, "fhir-operationoutcome")
