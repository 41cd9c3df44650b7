"""ajv's and zod's real output, sent as it is, stored as the normalized envelope.

examples/node-worker/native-errors.mjs validates entity documents with the
pinned ajv 8 (``allErrors`` on and off, and ``verbose``) and zod 3 and 4, and
prints their native errors (``tests/node_tools.py``). Those are checked here:
recognised without ``error_format``, normalised with a code, severity,
pointer and message for every item, never quoting the document's text, and
stored so on SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.services.error_details import detect_error_format, normalize_error_details
from tests.integration.api.helpers import job_url, post_ok, row
from tests.node_tools import native_errors
from tests.unit.error_details.payloads import SENTINEL, assert_valid_envelope, load

LIBRARIES = {
    "ajv_all_errors": "ajv",
    "ajv_first_error": "ajv",
    "ajv_verbose": "ajv",
    "zod3": "zod",
    "zod4": "zod",
}
#: Outputs that quote the document's values: ajv's verbose mode (``data``),
#: zod 3's ``received`` of a literal.
QUOTING = {"ajv_verbose", "zod3"}


def faulty_document() -> dict[str, Any]:
    """A corpus document broken in many ways, with the sentinel as every bad
    value (never as a property name: names are structure, and pointers hold them)."""
    document = load("doc-0001-discharge-summary.json")
    condition = document["entities"][0]
    condition["confidence"] = SENTINEL  # type
    condition["onset_date"] = SENTINEL  # format
    condition["span"] = {"page": 1, "start": 40, "end": 10}  # end < start: zod's custom check
    condition["unexpected_field"] = SENTINEL  # additionalProperties / unrecognized_keys
    del document["entities"][1]["code"]  # required
    document["entities"][2]["entity_type"] = SENTINEL  # enum / discriminator
    document["source"]["mime_type"] = SENTINEL  # pattern
    document["schema_version"] = SENTINEL  # const / literal
    return document


def documents() -> list[Any]:
    return [load("doc-0001-discharge-summary.json"), faulty_document(), SENTINEL]


@pytest.fixture(scope="module")
def outputs(node_worker: Path) -> list[dict[str, Any]]:
    """The libraries' output for :func:`documents`, produced once per module."""
    return native_errors(node_worker, documents())


def test_a_valid_document_has_no_errors_in_any_library(outputs):
    assert outputs[0] == dict.fromkeys(LIBRARIES)


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_real_output_is_recognised_and_normalised_without_patient_text(outputs, library):
    payload = outputs[1][library]
    assert (SENTINEL in json.dumps(payload)) == (library in QUOTING)
    assert detect_error_format(payload) == LIBRARIES[library]
    envelope, used = normalize_error_details(copy.deepcopy(payload), None)
    assert used == LIBRARIES[library]
    assert_valid_envelope(envelope)
    assert SENTINEL not in json.dumps(envelope, ensure_ascii=False)
    for item in envelope["errors"]:
        assert item["code"].startswith(("schema.", "zod.")) and item["message"] and item["severity"] == "error"
    # Declared, the same envelope.
    assert normalize_error_details(copy.deepcopy(payload), LIBRARIES[library]) == (envelope, used)


def _places(envelope: dict[str, Any]) -> set[tuple[str, str]]:
    return {(item["code"], item["pointer"]) for item in envelope["errors"]}


def test_ajv_items_point_at_each_fault(outputs):
    envelope, _ = normalize_error_details(outputs[1]["ajv_all_errors"], "ajv")
    assert {
        ("schema.type", "/entities/0/confidence"),
        ("schema.format", "/entities/0/onset_date"),
        ("schema.additionalProperties", "/entities/0/unexpected_field"),
        ("schema.required", "/entities/1/code"),
        ("schema.enum", "/entities/2/entity_type"),
        ("schema.pattern", "/source/mime_type"),
    } <= _places(envelope)
    # The if/then summaries are dropped: each fault is reported once, where it is.
    assert not any(item["rule"] == "if" for item in envelope["errors"])
    required = next(item for item in envelope["errors"] if item["code"] == "schema.required")
    assert required["message"] == "is required"
    assert required["ctx"]["schema_location"] == "/required"
    # allErrors off: ajv stops at the first error, and so does the envelope.
    first, _ = normalize_error_details(outputs[1]["ajv_first_error"], "ajv")
    assert first["error_count"] == 1
    # verbose adds the instance (data) and the schema to each error: never stored.
    verbose, _ = normalize_error_details(outputs[1]["ajv_verbose"], "ajv")
    assert verbose == envelope


@pytest.mark.parametrize("library", ["zod3", "zod4"])
def test_zod_items_point_at_each_fault_in_both_versions(outputs, library):
    envelope, _ = normalize_error_details(outputs[1][library], "zod")
    places = _places(envelope)
    assert {
        ("zod.invalid_type", "/entities/0/confidence"),
        ("zod.unrecognized_keys", "/entities/0/unexpected_field"),
        ("zod.custom", "/entities/0/span/end"),
        ("zod.invalid_type", "/entities/1/code"),
    } <= places
    by_place = {(item["code"], item["pointer"]): item for item in envelope["errors"]}
    assert by_place[("zod.invalid_type", "/entities/1/code")]["message"] == "is required"
    assert by_place[("zod.invalid_type", "/entities/0/confidence")]["message"] == "must be number"
    assert by_place[("zod.custom", "/entities/0/span/end")]["message"] == "span end must not be before its start"
    # The date format and the discriminator: zod 3 and 4 name them differently.
    assert any(pointer == "/entities/0/onset_date" for _, pointer in places)
    assert any(pointer == "/entities/2/entity_type" for _, pointer in places)
    assert any(pointer == "/source/mime_type" for _, pointer in places)


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_a_document_that_is_not_an_object_is_one_item_at_the_root(outputs, library):
    envelope, _ = normalize_error_details(outputs[2][library], None)
    assert [(item["pointer"], item["rule"]) for item in envelope["errors"]] == [
        ("", "type" if library.startswith("ajv") else "invalid_type")
    ]
    assert SENTINEL not in json.dumps(envelope)


@pytest.mark.parametrize("library", sorted(LIBRARIES))
@pytest.mark.parametrize("declared", [False, True], ids=["recognised", "declared"])
def test_the_api_stores_real_output_as_the_envelope(client, app, job, outputs, library, declared):
    payload = outputs[1][library]
    body: dict[str, Any] = {
        "status": "validation_failed",
        "error_message": "entity document failed validation",
        "error_details": payload,
    }
    if declared:
        body["error_format"] = LIBRARIES[library]
    post_ok(client, job_url(job["id"], "start"))
    updated = post_ok(client, job_url(job["id"], "result"), body)
    expected, _ = normalize_error_details(copy.deepcopy(payload), None)
    assert updated["status"] == "Validation_Failed"
    assert updated["error_format"] == LIBRARIES[library]
    assert updated["error_details"] == expected
    stored = row(app, job["id"])
    assert stored["error_format"] == LIBRARIES[library]
    assert stored["error_details"] == expected
    assert SENTINEL not in json.dumps(stored["error_details"], ensure_ascii=False)
    history = client.get(job_url(job["id"], "failures")).get_json()["items"]
    assert [(f["error_format"], f["error_details"]) for f in history] == [(LIBRARIES[library], expected)]
    # Every item has a code and a pointer to show and to filter on.
    codes = {item["code"] for item in expected["errors"]}
    some_code = sorted(codes)[0]
    listed = client.get("/api/v1/processing-jobs", query_string={"error_code": some_code}).get_json()["items"]
    assert [item["id"] for item in listed] == [job["id"]]


def test_an_aspnetcore_validation_problem_is_stored_as_the_envelope(client, app, job):
    # Written to Microsoft's documented shape: there is no .NET runtime here.
    from tests.unit.error_details.test_aspnetcore_problem import PROBLEM

    body = {"error_message": "entity document failed validation", "error_details": PROBLEM}
    # Sent as text: the test client's json= would sort the keys, and the items
    # follow the order the keys arrive in.
    response = client.post(
        job_url(job["id"], "validation-failure"), data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.get_json()
    expected, _ = normalize_error_details(copy.deepcopy(PROBLEM), None)
    assert updated["error_format"] == "aspnetcore-validation-problem"
    assert updated["error_details"] == expected
    assert row(app, job["id"])["error_details"] == expected
    assert SENTINEL not in json.dumps(row(app, job["id"])["error_details"])


def test_details_that_fit_two_formats_are_a_422_asking_for_error_format(client, app, failed_job):
    from tests.unit.error_details.payloads import document_with_patient_text, jschon_output

    tree = jschon_output(document_with_patient_text(), "detailed")
    url = job_url(failed_job["id"], "validation-failure")
    before = row(app, failed_job["id"])
    response = client.post(url, json={"error_message": "invalid", "error_details": tree})
    assert response.status_code == 422
    problem = response.get_json()
    assert [(e["pointer"], e["detail"]) for e in problem["errors"]] == [
        (
            "#/error_format",
            "is required: error_details fit several formats (jsonschema-detailed, jsonschema-verbose); "
            "name the one they are in",
        )
    ]
    assert row(app, failed_job["id"]) == before
    stored = post_ok(
        client, url, {"error_message": "invalid", "error_details": tree, "error_format": "jsonschema-detailed"}
    )
    assert stored["error_format"] == "jsonschema-detailed"
    assert stored["error_details"]["errors"]
