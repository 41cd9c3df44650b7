"""Every error of a problem says where the fault is, as JSON:API's error
``source`` does (``pointer`` into the body, ``parameter`` of the query,
``header``), and one request names all of its body's faults at once: the
schema's, the limits' and the semantic checks'."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import make_user, sign_in
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


@pytest.mark.parametrize(
    ("path", "unknown", "known"),
    [
        ("/processing-jobs?stauts=Completed", ["stauts"], "status"),
        ("/failure-groups?last_seen_from=&state=open", ["last_seen_from"], "state"),
        ("/processing-jobs/{job}?expand=1&fields=x", ["expand", "fields"], "none"),
        ("/processing-jobs/{job}/failures?limit=5", ["limit"], "none"),
        ("/openapi.json?v=2", ["v"], "none"),
    ],
)
def test_an_unknown_query_parameter_of_a_read_is_a_400_naming_it(client, job, path, unknown, known):
    url = "/api/v1" + path.format(job=job["id"])
    problem = assert_problem(client.get(url), 400, "invalid-query")
    assert places(problem) == sorted(("parameter", name) for name in unknown)
    assert "this operation takes: " in problem["detail"] and known in problem["detail"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2026-12-31T23:59:60Z", "a leap second (:60) cannot be stored; use :59"),
        ("2026-02-30T00:00:00Z", "February 2026 has 28 days"),
        ("2028-02-30T00:00:00Z", "February 2028 has 29 days"),
        ("2026-13-01T00:00:00Z", "the month must be 01 to 12"),
        ("2026-04-31T00:00:00+02:00", "April 2026 has 30 days"),
        ("2026-01-01T24:00:00Z", "the time must be 00:00 to 23:59"),
    ],
)
@pytest.mark.parametrize("path", ["/processing-jobs?from={}", "/failure-groups?to={}"])
def test_an_impossible_date_time_says_what_is_wrong(client, value, why, path):
    parameter = "from" if "from=" in path else "to"
    problem = assert_problem(client.get("/api/v1" + path.format(quote(value))), 400, "invalid-query")
    assert problem["errors"] == [{"field": parameter, "parameter": parameter, "detail": why}]
    assert problem["detail"] == f"{parameter} is not a date-time that exists: {why}."


def test_an_impossible_time_in_a_body_is_named_by_its_pointer(client):
    failed = client.post(API, json={"document_id": "d"}).get_json()
    item = {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/0/unit"}
    response = client.post(job_url(failed["id"], "validation-failure"),
                           json={"error_message": "m", "error_details": {"errors": [item]}})
    assert response.status_code == 200, response.get_json()
    [group] = client.get("/api/v1/failure-groups").get_json()["items"]
    response = client.post(f"/api/v1/failure-groups/{group['id']}/ignore", json={"until": "2099-12-31T23:59:60Z"})
    problem = assert_problem(response, 422, "invalid-fields")
    assert problem["errors"] == [
        {"field": "until", "pointer": "#/until", "detail": "a leap second (:60) cannot be stored; use :59"}
    ]
    assert client.get(f"/api/v1/failure-groups/{group['id']}").get_json()["state"] == "unresolved"


def test_dashboard_lists_refuse_an_extra_parameter_and_offer_the_page_without_it(app, anonymous_client):
    # As the API does: /groups?error_cod=x listed everything as if filtered
    # (the second trial of #14). The 400 page links to the same page without it.
    viewer = sign_in(anonymous_client, make_user(app, "viewer", "viewer"))
    response = viewer.get("/jobs?utm_source=mail")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert '<a class="retry" href="/jobs">The same page without <code>utm_source</code></a>' in response.get_data(as_text=True)


def test_a_control_character_in_a_query_parameter_is_named_as_a_parameter(client):
    problem = assert_problem(client.get(f"{API}?document_id=a%01b"), 400, "invalid-query")
    assert places(problem) == [("parameter", "document_id")]


def test_a_query_parameter_on_a_write_is_refused_and_changes_nothing(client):
    """The third trial (session 16): POST /api/v1/processing-jobs?x=1 made a job."""
    problem = assert_problem(client.post(API + "?x=1", json={"document_id": "d"}), 400, "invalid-query")
    assert places(problem) == [("parameter", "x")] and "takes: none" in problem["detail"]
    assert client.get(API).get_json()["items"] == []
    job = client.post(API, json={"document_id": "d"}).get_json()
    start = client.post(f"{API}/{job['id']}/start?dry_run=1")
    assert_problem(start, 400, "invalid-query")
    assert client.get(f"{API}/{job['id']}").get_json()["status"] == "Pending"


def test_a_malformed_idempotency_key_is_named_as_a_header(client):
    response = client.post(API, json={"document_id": "d"}, headers={"Idempotency-Key": "has space"})
    problem = assert_problem(response, 400, "invalid-idempotency-key")
    assert places(problem) == [("header", "Idempotency-Key")]


@pytest.mark.parametrize("body", [{"document_id": "d\u0000" * 300}, "not an object", None])
def test_a_malformed_idempotency_key_is_named_before_a_bad_body(client, body):
    """A worker author's trial: a bad key beside a bad body got the body's
    422 first, and the key's 400 only on the next try."""
    response = client.post(API, json=body, headers={"Idempotency-Key": "has space"})
    problem = assert_problem(response, 400, "invalid-idempotency-key")
    assert places(problem) == [("header", "Idempotency-Key")]
    assert client.get(API).get_json()["items"] == []


def test_a_malformed_idempotency_key_on_a_job_action_is_named_before_the_job_is_looked_up(client):
    response = client.post(f"{API}/00000000-0000-0000-0000-000000000000/start", headers={"Idempotency-Key": ""})
    assert places(assert_problem(response, 400, "invalid-idempotency-key")) == [("header", "Idempotency-Key")]


def test_two_idempotency_keys_are_refused_not_joined_into_a_third(client, app):
    """The third trial (session 16): two headers became the key "k1,k2",
    and a retry with k1 alone made a second job."""
    sent = client.post(API, json={"document_id": "d"}, headers=[("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")])
    problem = assert_problem(sent, 400, "invalid-idempotency-key")
    assert places(problem) == [("header", "Idempotency-Key")] and "','" in problem["errors"][0]["detail"]
    assert client.get(API).get_json()["items"] == []  # nothing was created
    assert client.post(API, json={"document_id": "d"}, headers={"Idempotency-Key": "k1"}).status_code == 201


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


def test_a_control_character_in_an_entitys_code_or_unit_is_a_422_at_its_pointer(client, app, job):
    # The same value in an error item's entity.code is a 422 too
    # (error_details.items.require_identifier): both are codes, not text.
    entities = [
        {**ENTITY, "code": "R07.9\x1b"},
        {**ENTITY, "code_system": "http://hl7.org/fhir/sid/icd-10-cm\x9b"},
        {**ENTITY, "text": "keeps \x1b in free text", "value": {"value": 5, "unit": "m\x07g"}},
    ]
    before = row(app, job["id"])
    response = client.post(job_url(job["id"], "result"), json={"status": "completed", "entities": entities})
    problem = assert_problem(response, 422, "invalid-entities")  # every entity named, in one answer
    assert [place for _, place in places(problem)] == [
        "#/entities/0/code", "#/entities/1/code_system", "#/entities/2/value/unit"]
    assert all("control character" in e["detail"] for e in problem["errors"])
    assert row(app, job["id"]) == before


def test_a_nul_in_an_entitys_code_is_a_422_not_a_replacement_character(client, app, job):
    """A trial: "http://x\u0000" was stored as "http://x\ufffd" (the storage
    rule for text), a code system the worker never sent, though ESC there
    was refused; the contract refuses every control character in a code."""
    entities = [
        {**ENTITY, "code": "R07.9\x00"},
        {**ENTITY, "code_system": "http://x\x00"},
        {**ENTITY, "value": {"value": 5, "unit": "mg\x00"}},
    ]
    before = row(app, job["id"])
    response = client.post(job_url(job["id"], "result"), json={"status": "completed", "entities": entities})
    problem = assert_problem(response, 422, "invalid-entities")
    assert [place for _, place in places(problem)] == [
        "#/entities/0/code", "#/entities/1/code_system", "#/entities/2/value/unit"]
    assert row(app, job["id"]) == before


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        pytest.param("validation-failure", {"error_message": "m", "error_details": {
            "n\x00": "first", "n\ud800": "second", "n\ufffd": "third"}}, "#/error_details/n%00",
            id="details"),
        pytest.param("validation-failure", {"error_message": "m", "error_details": {"schema_version": 1, "errors": [
            {"code": "c", "message": "m", "ctx": {"k\x00": 1, "k\udfff": 2}}]}},
            "#/error_details/errors/0/ctx/k%00", id="normalized-ctx"),
        pytest.param("result", {"status": "completed", "entities": [
            {**ENTITY, "attributes": {"note": {"a\ud800": 1, "a\udc00": 2}}}]},
            "#/entities/0/attributes/note/a%EF%BF%BD", id="entity-attributes"),
    ],
)
def test_keys_made_equal_by_the_storage_rule_are_a_422_at_the_key_and_change_nothing(client, app, job, path,
                                                                                   body, pointer):
    """NUL and lone surrogates are stored as U+FFFD; two keys of one object
    that become the same key that way would keep one value and drop the
    other without a word, so the report is refused at that key: named as
    sent (a trial was pointed at "k\ufffd", which it never sent), unless
    both hold a lone surrogate, which no pointer in an answer can carry."""
    before = row(app, job["id"])
    slug = "invalid-entities" if path == "result" else "invalid-failure"
    problem = assert_problem(client.post(job_url(job["id"], path), json=body), 422, slug)
    assert [place for _, place in places(problem)] == [pointer]
    assert "U+FFFD" in problem["errors"][0]["detail"]
    assert row(app, job["id"]) == before


@pytest.mark.parametrize("accept", ["image/png", "text/html", "application/xml;q=1, text/*"])
def test_an_accept_header_admitting_no_json_is_a_406_and_changes_nothing(client, app, job, accept):
    before = row(app, job["id"])
    problem = assert_problem(client.get(job_url(job["id"]), headers={"Accept": accept}), 406, "not-acceptable")
    assert "application/json" in problem["detail"]
    assert_problem(client.post(job_url(job["id"], "validation-failure"), headers={"Accept": accept},
                               json={"error_message": "m", "error_details": {}}), 406, "not-acceptable")
    assert row(app, job["id"]) == before


@pytest.mark.parametrize("accept", ["*/*", "application/*", "application/json", "application/problem+json",
                                    "text/html, application/json;q=0.1", None])
def test_an_accept_header_admitting_json_is_answered(client, job, accept):
    headers = {"Accept": accept} if accept else {}
    assert client.get(job_url(job["id"]), headers=headers).status_code == 200


@pytest.mark.parametrize("query", ["status=all&status=Pending", "status=all,Failed"])
def test_all_beside_a_status_is_refused_as_such_not_as_an_unknown_status(client, query):
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    assert places(problem) == [("parameter", "status")]
    assert "'all' alone" in problem["errors"][0]["detail"] and "Unknown" not in problem["detail"]


@pytest.mark.parametrize(("value", "errors"), [
    # A trial: each was "does not match any of the allowed shapes" at .../value.
    ({"value": 1, "unit": "mg", "code": "mg"}, [("#/entities/0/value/system", "is required when code is given")]),
    ({"value": "1", "unit": "mg"}, [("#/entities/0/value/value", "must be number")]),
    ({"value": 1}, [("#/entities/0/value/unit", "is required")]),
    ("1 mg", [("#/entities/0/value", "must be object or null")]),  # null is allowed too
])
def test_a_bad_quantity_is_named_inside_the_quantity(client, app, job, value, errors):
    response = client.post(job_url(job["id"], "result"),
                           json={"status": "completed", "entities": [{**ENTITY, "value": value}]})
    problem = assert_problem(response, 422, "invalid-fields")
    assert [(e["pointer"], e["detail"]) for e in problem["errors"]] == errors
    assert row(app, job["id"])["status"] == "Pending"
