"""What the error-details tests are fed, and the envelope check they share.

Every adapter is fed what the real library produces: the reference worker's
validator, pydantic v2, python-jsonschema, jschon ("basic" output) and
fhir.resources (FHIR R5 and R4B OperationOutcome).
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import pytest
from jschon import JSON, JSONSchema, create_catalog
from jsonschema import Draft202012Validator
from pydantic_core import PydanticCustomError

from app.services.error_details import (
    jsonschema_error_to_json,
    load_error_details_schema,
)
from app.worker.validation import validate_entity_document

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "demo" / "corpus"
ENTITY_SCHEMA = json.loads(
    (ROOT / "app" / "worker" / "schemas" / "entity-document.v1.schema.json").read_text(encoding="utf-8")
)
SENTINEL = "PATIENT-TEXT-SENTINEL Jane Doe"
ENVELOPE_VALIDATOR = Draft202012Validator(load_error_details_schema())


def load(name: str) -> dict:
    return json.loads((CORPUS / name).read_text(encoding="utf-8"))


def assert_valid_envelope(envelope: Any) -> None:
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in ENVELOPE_VALIDATOR.iter_errors(envelope)]
    assert problems == []
    assert envelope["truncated"] == (envelope["error_count"] > len(envelope["errors"]))


# --- payloads produced by the real libraries --------------------------------------


def document_with_patient_text() -> dict:
    """A corpus document with the sentinel as invalid values (and as a property name)."""
    document = load("doc-0001-discharge-summary.json")
    condition = document["entities"][0]
    condition["confidence"] = SENTINEL  # type
    condition["onset_date"] = SENTINEL  # format
    condition[SENTINEL] = True  # additionalProperties
    document["entities"][1]["entity_type"] = SENTINEL  # enum
    document["document_id"] = ""  # minLength
    document["source"]["mime_type"] = SENTINEL  # pattern
    return document


def jsonschema_payload(document: dict) -> list[dict]:
    validator = Draft202012Validator(ENTITY_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [jsonschema_error_to_json(error) for error in validator.iter_errors(document)]


@contextlib.contextmanager
def quiet_jschon() -> Iterator[None]:
    # jschon 0.11 resolves URIs with rfc3986's deprecated URIReference.is_valid
    # (python-hyper/rfc3986#86), which warns on every resolution; the tests
    # turn warnings into errors.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Please use rfc3986.validators.Validator", category=DeprecationWarning
        )
        yield


def jschon_basic_output(document: dict) -> dict:
    return jschon_output(document, "basic")


def jschon_output(document: dict, output_format: str) -> dict:
    """jschon's output in ``output_format`` ("basic", "detailed", "verbose")."""
    with quiet_jschon():
        create_catalog("2020-12")
        schema = JSONSchema(copy.deepcopy(ENTITY_SCHEMA))
        return schema.evaluate(JSON(document)).output(output_format)


class Span(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    page: int = pydantic.Field(ge=1)
    start: int = pydantic.Field(ge=0)
    end: int = pydantic.Field(ge=0)


class Condition(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    entity_type: Literal["Condition"]
    text: str = pydantic.Field(max_length=1000)
    code: str = pydantic.Field(pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")
    confidence: float = pydantic.Field(ge=0, le=1)
    span: Span
    onset_date: date | None = None
    code_system: str

    @pydantic.field_validator("code_system")
    @classmethod
    def known_system(cls, value: str) -> str:
        # Application validators often quote the value: pydantic puts this in msg and ctx.error.
        raise ValueError(f"unknown code system {value!r}")

    @pydantic.field_validator("text")
    @classmethod
    def custom_check(cls, value: str) -> str:
        raise PydanticCustomError("not_clinical", "{value} is not clinical text", {"value": value})


class Observation(pydantic.BaseModel):
    entity_type: Literal["Observation"]
    code: str


class Document(pydantic.BaseModel):
    document_id: str
    entities: list[Annotated[Condition | Observation, pydantic.Field(discriminator="entity_type")]]


def pydantic_error() -> pydantic.ValidationError:
    raw = {
        "entities": [
            {
                "entity_type": "Condition",
                "text": SENTINEL,
                "code": SENTINEL,
                "confidence": SENTINEL,
                "span": {"page": 0, "start": SENTINEL},
                "onset_date": SENTINEL,
                "code_system": SENTINEL,
            },
            {"entity_type": SENTINEL, "code": "x"},
        ]
    }
    with pytest.raises(pydantic.ValidationError) as caught:
        Document.model_validate(raw)
    return caught.value


def fhir_observation_outcome(observation_model: type, outcome_model: type) -> str:
    """Validate an Observation carrying patient text with fhir.resources; report an OperationOutcome.

    What a FHIR worker does: one issue per validation error, the library's
    message as details.text and a FHIRPath expression.
    """
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": 3},
        "effectiveDateTime": SENTINEL,
        "valueQuantity": {"value": SENTINEL},
    }
    with pytest.raises(pydantic.ValidationError) as caught:
        observation_model.model_validate(observation)
    issues = []
    for error in json.loads(caught.value.json()):
        expression = "Observation" + "".join(
            f"[{token}]" if isinstance(token, int) else f".{token}" for token in error["loc"]
        )
        issues.append(
            {
                "severity": "error",
                "code": "invalid" if error["type"] == "value_error" else "structure",
                "details": {"text": error["msg"]},
                "expression": [expression],
            }
        )
    return outcome_model.model_validate(
        {"resourceType": "OperationOutcome", "issue": issues}
    ).model_dump_json()


def fhir_validator_outcome(outcome_model: type, *, r5: bool) -> str:
    """An OperationOutcome such as a FHIR validator returns, built with fhir.resources."""
    issues: list[dict] = [
        {
            "severity": "error",
            "code": "code-invalid",
            "details": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/dotnet-api-operation-outcome",
                        "code": "6005",
                        "display": "Code is not in the value set",
                    }
                ],
                "text": "The code provided is not in the value set",
            },
            "expression": ["Bundle.entry[2].resource.code.coding[0]"],
        },
        {
            "severity": "warning",
            "code": "business-rule",
            "diagnostics": "Onset is after the recorded date",
            "expression": ["Bundle.entry.where(resource is Condition).resource.onsetDateTime"],
        },
        {"severity": "fatal", "code": "structure", "location": ["Patient.name[0].given[1]"]},
        {"severity": "information", "code": "informational", "location": ["/f:Patient/f:name"]},
    ]
    if r5:
        issues.append({"severity": "success", "code": "informational", "diagnostics": "All OK otherwise"})
    return outcome_model.model_validate(
        {"resourceType": "OperationOutcome", "issue": issues}
    ).model_dump_json()


def reference_worker_items(name: str) -> list[dict]:
    return validate_entity_document(load(name))


#: A valid normalized item (the normalized and the limits tests start from it).
GOOD = {"code": "c", "severity": "error", "message": "m", "pointer": "/a"}
