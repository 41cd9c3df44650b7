"""Every error of a problem says where the fault is, as JSON:API's error
``source`` does (``pointer`` into the body, ``parameter`` of the query,
``header``), and one request names all of its body's faults at once: the
schema's, the limits' and the semantic checks'."""

from __future__ import annotations

from tests.integration.api.helpers import API, assert_problem, job_url, row

ENTITY = {
    "entity_type": "Condition", "text": "hypertension", "code": "I10",
    "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.9, "span": {"start": 0, "end": 12},
}  # fmt: skip


def places(problem):
    return sorted(
        (key, error[key]) for error in problem["errors"] for key in ("pointer", "parameter", "header") if key in error
    )


def test_a_bad_query_parameter_is_named_as_a_parameter(client):
    problem = assert_problem(client.get(f"{API}?limit=0&acknowledged=maybe"), 400, "invalid-query")
    assert ("parameter", "limit") in places(problem) or ("parameter", "acknowledged") in places(problem)
    assert all("pointer" not in error for error in problem["errors"])


def test_a_control_character_in_a_query_parameter_is_named_as_a_parameter(client):
    problem = assert_problem(client.get(f"{API}?document_id=a%01b"), 400, "invalid-query")
    assert places(problem) == [("parameter", "document_id")]


def test_a_malformed_idempotency_key_is_named_as_a_header(client):
    response = client.post(API, json={"document_id": "d"}, headers={"Idempotency-Key": "has space"})
    problem = assert_problem(response, 400, "invalid-idempotency-key")
    assert places(problem) == [("header", "Idempotency-Key")]


def test_a_reused_idempotency_key_is_named_as_a_header(client):
    headers = {"Idempotency-Key": "key-1"}
    assert client.post(API, json={"document_id": "a"}, headers=headers).status_code == 201
    problem = assert_problem(client.post(API, json={"document_id": "b"}, headers=headers), 422, "idempotency-key-reused")
    assert places(problem) == [("header", "Idempotency-Key")]


def test_schema_and_semantic_faults_of_entities_come_in_one_answer(client, app, job):
    entities = [
        {**ENTITY, "confidence": "high"},  # schema: type
        {**ENTITY, "span": {"start": 30, "end": 10}},  # semantic: end before start
        {**ENTITY, "attributes": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}},  # depth
    ]
    before = row(app, job["id"])
    response = client.post(job_url(job["id"], "result"), json={"status": "completed", "entities": entities})
    problem = assert_problem(response, 422, "invalid-fields")
    assert [place for _, place in places(problem)] == [
        "#/entities/0/confidence",
        "#/entities/1/span/end",
        "#/entities/2/attributes/a/b/c/d/e/f/g/h",
    ]
    assert row(app, job["id"]) == before


def test_schema_limit_and_format_faults_of_a_failure_report_come_in_one_answer(client, app, job):
    body = {
        "error_message": "   ",  # semantic: blank once trimmed
        "error_details": {"errors": [{"code": "c", "severity": "bad", "message": "m", "pointer": ""}]},
        "unexpected": True,  # schema: unknown field
    }
    problem = assert_problem(client.post(job_url(job["id"], "validation-failure"), json=body), 422, "invalid-fields")
    assert [place for _, place in places(problem)] == [
        "#/error_details/errors/0/severity",
        "#/error_message",
        "#/unexpected",
    ]


def test_a_fault_the_schema_already_names_is_not_named_twice(client, job):
    body = {"status": "failed", "error_message": 3, "error_format": "xml"}
    problem = assert_problem(client.post(job_url(job["id"], "result"), json=body), 422, "invalid-fields")
    assert sorted({place for _, place in places(problem)}) == ["#/error_format", "#/error_message"]
    assert len(problem["errors"]) == 2
