"""``POST .../start`` and ``POST .../result``: the worker's lifecycle calls.

Every refusal is checked as ``helpers.assert_problem`` says, with the stored row
unchanged and a working client afterwards."""

from __future__ import annotations


import pytest

from app.services.json_values import canonical_json
from tests.integration.api.helpers import (
    DETAILS,
    FIRST_FAILURE,
    assert_client_still_works,
    assert_matches_row,
    assert_problem,
    fields,
    job_url,
    parse_timestamp,
    post_ok,
    row,
)


def test_start_moves_a_pending_job_to_processing(client, app, job):
    started = post_ok(client, job_url(job["id"], "start"))
    assert started["status"] == "Processing"
    assert parse_timestamp(started["started_at"]) >= parse_timestamp(job["created_at"])
    assert started["completed_at"] is None
    assert_matches_row(started, row(app, job["id"]))


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        ([("start", None)], "Processing"),
        ([("result", {"status": "completed"})], "Completed"),
        ([("validation-failure", FIRST_FAILURE)], "Validation_Failed"),
        ([("result", {"status": "failed", "error_message": "crashed"})], "Failed"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_start_on_a_non_pending_job_is_a_409_and_changes_nothing(client, app, job, setup, status):
    for action, body in setup:
        post_ok(client, job_url(job["id"], action), body)
    before = row(app, job["id"])
    assert before["status"] == status
    problem = assert_problem(client.post(job_url(job["id"], "start")), 409, "invalid-transition")
    assert status in problem["detail"]
    # The same facts as members a program reads (a trial: only in the text before).
    assert (problem["current_status"], problem["target_status"]) == (status, "Processing")
    assert row(app, job["id"]) == before
    assert_client_still_works(client, job["id"])


@pytest.mark.parametrize(
    ("body", "status", "message", "details", "error_format"),
    [
        ({"status": "completed"}, "Completed", None, None, None),
        (
            {"status": "validation_failed", "error_message": " invalid ", "error_details": DETAILS},
            "Validation_Failed",
            "invalid",
            DETAILS,
            "free-form",
        ),
        (
            {"status": "validation_failed", "error_message": "invalid", "error_details": []},
            "Validation_Failed",
            "invalid",
            [],
            "free-form",
        ),
        # Details are optional for "failed"; none sent is stored as null, with no format.
        (
            {"status": "failed", "error_message": "worker crashed"},
            "Failed",
            "worker crashed",
            None,
            None,
        ),
        (
            {"status": "failed", "error_message": "timeout", "error_details": {"seconds": 30}},
            "Failed",
            "timeout",
            {"seconds": 30},
            "free-form",
        ),
        (
            {
                "status": "failed",
                "error_message": "timeout",
                "error_details": {"seconds": 30},
                "error_format": "free-form",
            },
            "Failed",
            "timeout",
            {"seconds": 30},
            "free-form",
        ),
    ],
    ids=lambda v: canonical_json(v)[:50] if isinstance(v, dict) else None,
)
def test_result_finishes_a_processing_job(client, app, job, body, status, message, details, error_format):
    started = post_ok(client, job_url(job["id"], "start"))
    finished = post_ok(client, job_url(job["id"], "result"), body)
    assert finished["status"] == status
    assert finished["error_message"] == message
    assert canonical_json(finished["error_details"]) == canonical_json(details)
    assert finished["error_format"] == error_format
    assert finished["started_at"] == started["started_at"]
    assert parse_timestamp(finished["completed_at"]) >= parse_timestamp(started["started_at"])
    assert_matches_row(finished, row(app, job["id"]))


def test_validation_failed_result_is_the_same_as_the_dedicated_endpoint(client, job):
    by_result = post_ok(
        client,
        job_url(job["id"], "result"),
        {"status": "validation_failed", "error_message": "invalid", "error_details": DETAILS},
    )
    again = post_ok(
        client,
        job_url(job["id"], "validation-failure"),
        {"error_message": "invalid", "error_details": DETAILS},
    )
    assert again == by_result


@pytest.mark.parametrize(
    ("body", "slug", "bad_fields"),
    [
        ({"status": "done"}, "invalid-fields", ["status"]),
        ({"status": "COMPLETED"}, "invalid-fields", ["status"]),
        # The contract's status words only: the canonical spelling is not one.
        ({"status": "Completed"}, "invalid-fields", ["status"]),
        (
            {"status": "Validation_Failed", "error_message": "invalid", "error_details": []},
            "invalid-fields",
            ["status"],
        ),
        ({"status": "Failed", "error_message": "crashed"}, "invalid-fields", ["status"]),
        ({"status": " completed"}, "invalid-fields", ["status"]),
        (
            {"status": "validation-failed", "error_message": "x", "error_details": {}},
            "invalid-fields",
            ["status"],
        ),
        ({"status": "pending"}, "invalid-fields", ["status"]),
        ({"status": "processing"}, "invalid-fields", ["status"]),
        # Not a string: one fault, named once (by the list of the statuses).
        ({"status": 1}, "invalid-fields", ["status"]),
        ({"status": None}, "invalid-fields", ["status"]),
        ({"status": ["completed"]}, "invalid-fields", ["status"]),
        ({"status": {"completed": True}}, "invalid-fields", ["status"]),
        ({}, "invalid-fields", ["status"]),
        ({"status": "completed", "reason": "x"}, "invalid-fields", ["reason"]),
        # Fields that do not belong to the status (`false` subschemas) are named.
        ({"status": "completed", "error_message": "x"}, "invalid-fields", ["error_message"]),
        ({"status": "completed", "error_details": None}, "invalid-fields", ["error_details"]),
        ({"status": "completed", "error_format": "free-form"}, "invalid-fields", ["error_format"]),
        (
            {"status": "completed", "error_message": "x", "error_details": {}},
            "invalid-fields",
            ["error_details", "error_message"],
        ),
        ({"status": "validation_failed", "error_message": "x"}, "invalid-fields", ["error_details"]),
        ({"status": "validation_failed"}, "invalid-fields", ["error_details", "error_message"]),
        (
            {"status": "validation_failed", "error_message": "", "error_details": {}},
            "invalid-fields",
            ["error_message"],
        ),
        (
            {"status": "validation_failed", "error_message": " ", "error_details": {}},
            "invalid-failure",
            ["error_message"],
        ),
        ({"status": "failed"}, "invalid-fields", ["error_message"]),
        ({"status": "failed", "error_message": "  "}, "invalid-failure", ["error_message"]),
        ({"status": "failed", "error_message": 500}, "invalid-fields", ["error_message"]),
        ({"status": "failed", "error_message": "x" * 1001}, "invalid-failure", ["error_message"]),
    ],
    ids=lambda v: canonical_json(v)[:50] if isinstance(v, dict) else None,
)
def test_result_with_wrong_fields_is_a_422_and_changes_nothing(client, app, job, body, slug, bad_fields):
    post_ok(client, job_url(job["id"], "start"))
    before = row(app, job["id"])
    problem = assert_problem(client.post(job_url(job["id"], "result"), json=body), 422, slug)
    assert fields(problem) == bad_fields
    assert row(app, job["id"]) == before
    assert before["status"] == "Processing"
    assert_client_still_works(client, job["id"])


ENTITY = {
    "entity_type": "Condition", "text": "hypertension", "code": "I10",
    "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.9, "span": {"start": 0, "end": 12},
    "attributes": {"negated": False, "certainty": "confirmed"},
}  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"status": "completed", "entities": [ENTITY]},
        {"status": "completed", "entities": [{**ENTITY, "confidence": 0.8}]},
        {"status": "failed", "error_message": "late crash"},
        {"status": "validation_failed", "error_message": "late", "error_details": {}},
    ],
    ids=["completed-with-entities", "completed-with-other-entities", "failed", "validation_failed"],
)
def test_result_on_a_completed_job_is_a_409_and_changes_nothing(client, app, job, body):
    """Any result but the same completion again (below) is a 409: here the
    job completed with no entities, or (for the failures) with one."""
    post_ok(client, job_url(job["id"], "result"), {"status": "completed"} if "entities" in body
            else {"status": "completed", "entities": [ENTITY]})
    before = row(app, job["id"])
    entities = client.get(job_url(job["id"], "entities")).get_json()
    problem = assert_problem(client.post(job_url(job["id"], "result"), json=body), 409, "invalid-transition")
    if "entities" in body:  # a re-check read "is Completed; it cannot become Completed" as a contradiction
        assert "is already Completed, with other entities" in problem["detail"]
    assert row(app, job["id"]) == before
    assert client.get(job_url(job["id"], "entities")).get_json() == entities
    assert_client_still_works(client, job["id"])


@pytest.mark.parametrize("entities", [
    [],
    [ENTITY, {**ENTITY, "text": "HTN", "span": {"start": 20, "end": 23}}],
    # PostgreSQL's jsonb gives 1e16 back as 10000000000000000: a trial's retry was a 409.
    [{**ENTITY, "value": {"value": 1e16, "unit": "%"}, "attributes": {"ratio": 1.5e300, "scale": 1e308}}],
], ids=["none", "two", "large-numbers"])
def test_the_same_completion_again_is_a_200_that_changes_nothing(client, app, job, entities):
    """A trial: a worker whose completion's answer was lost (and its key with
    it) got a 409 on the retry, and could not tell "mine landed" from
    "another worker completed it"; a failure sent twice was already a 200
    that changes nothing. Key order inside attributes does not matter."""
    first = post_ok(client, job_url(job["id"], "result"), {"status": "completed", "entities": entities})
    before = row(app, job["id"])
    stored = client.get(job_url(job["id"], "entities")).get_json()
    again = [{**entity, "attributes": dict(reversed(list(entity["attributes"].items())))} for entity in entities]
    answer = post_ok(client, job_url(job["id"], "result"), {"status": "completed", "entities": again})
    assert answer == first
    assert row(app, job["id"]) == before
    assert client.get(job_url(job["id"], "entities")).get_json() == stored
