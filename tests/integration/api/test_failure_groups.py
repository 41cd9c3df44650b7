"""The failure-group API: ``/api/v1/failure-groups`` (worker tokens)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from jsonschema import Draft202012Validator

from app.api.contract import openapi_document
from app.extensions import db
from app.models import AuditEvent
from tests.integration.api.helpers import assert_problem

UCUM = {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/3/value/unit"}
ICD = {"code": "code.unknown_icd10cm", "severity": "error", "message": "unknown", "pointer": "/entities/0/code"}


def _fail(client, *items, version="1.0.0", job_type="entity_extraction"):
    job = client.post("/api/v1/processing-jobs", json={"document_id": "doc", "job_type": job_type}).get_json()["id"]
    response = client.post(
        f"/api/v1/processing-jobs/{job}/validation-failure",
        json={"error_message": "invalid", "error_details": {"errors": list(items)},
              "worker": {"name": "extractor", "version": version}},
    )
    assert response.status_code == 200, response.get_json()
    return job


def _check_schema(body, name):
    schema = {"components": openapi_document()["components"], "$ref": f"#/components/schemas/{name}"}
    Draft202012Validator(schema).validate(body)


def _groups(client, query=""):
    response = client.get("/api/v1/failure-groups" + query)
    assert response.status_code == 200, response.get_json()
    _check_schema(response.get_json(), "FailureGroupPage")
    return response.get_json()


def test_groups_are_listed_with_exact_counts(client):
    _fail(client, UCUM, ICD)
    _fail(client, UCUM, version="1.1.0")
    page = _groups(client)
    assert page["next_cursor"] is None
    by_code = {g["code"]: g for g in page["items"]}
    ucum = by_code["unit.not_ucum"]
    assert (ucum["job_count"], ucum["current_job_count"], ucum["occurrence_count"]) == (2, 2, 2)
    assert (ucum["state"], ucum["substate"], ucum["grouping_version"]) == ("unresolved", "new", 1)
    assert ucum["pointer_pattern"] == "/entities/*/value/unit"
    assert ucum["title"] == "unit.not_ucum at /entities/*/value/unit"
    assert len(ucum["fingerprint"]) == 64
    assert ucum["first_seen"].endswith("Z") and ucum["last_seen"].endswith("Z")
    assert set(ucum["worker_versions"]) == {"1.0.0", "1.1.0"}
    assert by_code["code.unknown_icd10cm"]["job_count"] == 1
    one = client.get(f"/api/v1/failure-groups/{ucum['id']}")
    assert one.status_code == 200 and one.get_json() == ucum


def test_filters_and_keyset_pages(client):
    for i in range(5):
        _fail(client, {**UCUM, "code": f"rule.{i}"}, version=f"1.{i % 2}.0", job_type="ocr" if i == 4 else "entity_extraction")
    first = _groups(client, "?limit=2")
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.get(f"/api/v1/failure-groups?limit=2&cursor={first['next_cursor']}").get_json()
    third = client.get(f"/api/v1/failure-groups?limit=2&cursor={second['next_cursor']}").get_json()
    ids = [g["id"] for page in (first, second, third) for g in page["items"]]
    assert len(ids) == len(set(ids)) == 5 and third["next_cursor"] is None
    assert [g["code"] for g in _groups(client, "?code=rule.3")["items"]] == ["rule.3"]
    assert {g["code"] for g in _groups(client, "?worker_version=1.1.0")["items"]} == {"rule.1", "rule.3"}
    assert [g["code"] for g in _groups(client, "?job_type=ocr")["items"]] == ["rule.4"]
    assert len(_groups(client, "?state=unresolved,ignored")["items"]) == 5
    assert _groups(client, "?state=resolved")["items"] == []
    # "all", as the dashboard's /groups takes it: every state (a trial got a 400 here).
    assert len(_groups(client, "?state=all")["items"]) == 5
    assert len(_groups(client, "?substate=new")["items"]) == 5
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _groups(client, f"?from={future}")["items"] == []
    # A date alone is its whole UTC day: today's "to" keeps today, yesterday's does not.
    today = datetime.now(timezone.utc).date()
    assert len(_groups(client, f"?from={today}&to={today}")["items"]) == 5
    assert _groups(client, f"?to={today - timedelta(days=1)}")["items"] == []
    assert _groups(client, f"?from={today + timedelta(days=1)}")["items"] == []
    reversed_days = client.get(f"/api/v1/failure-groups?from={today + timedelta(days=1)}&to={today}")
    assert reversed_days.status_code == 400 and reversed_days.get_json()["errors"][0]["field"] == "from"
    by_jobs = _groups(client, "?sort=job_count&limit=3")
    assert len(by_jobs["items"]) == 3 and by_jobs["next_cursor"]


def test_the_job_count_sort_pages_through_every_group_most_jobs_first(client):
    for code, jobs in [("rule.a", 3), ("rule.b", 2), ("rule.c", 1), ("rule.d", 2)]:
        for _ in range(jobs):
            _fail(client, {**UCUM, "code": code})
    seen, cursor = [], None
    while True:
        page = _groups(client, "?sort=job_count&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [(g["job_count"], g["id"], g["code"]) for g in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Most jobs first, ties by the newest id first, each group once.
    assert seen == sorted(seen, reverse=True)
    assert [code for _, _, code in seen] == ["rule.a", "rule.d", "rule.b", "rule.c"]


def test_a_range_out_of_order_names_from_as_the_job_list_does(client):
    # A trial: /processing-jobs named "from", /failure-groups named "to".
    for path in ("/api/v1/failure-groups", "/api/v1/processing-jobs"):
        response = client.get(path + "?from=2026-02-02T00:00:00Z&to=2026-01-01T00:00:00Z")
        problem = assert_problem(response, 400, "invalid-query")
        assert [error["parameter"] for error in problem["errors"]] == ["from"], path


def test_both_bad_bounds_are_named_at_once(client):
    # One reader of from/to for every list: each names both bad bounds, as
    # the job list always did (the group lists named only the first).
    for path in ("/api/v1/failure-groups", "/api/v1/processing-jobs"):
        response = client.get(path + "?from=yesterday&to=2026-02-30")
        problem = assert_problem(response, 400, "invalid-query")
        assert [error["parameter"] for error in problem["errors"]] == ["from", "to"], path
        assert "February 2026 has 28 days" in problem["errors"][1]["detail"], path


def test_a_digit_string_too_long_for_int_is_a_400(client):
    # A trial: more digits than CPython's int() converts (4,300) was a 500.
    digits = "9" * 4301
    for query, named in ((f"/failure-groups?grouping_version={digits}", "grouping_version"),
                         (f"/processing-jobs?group={digits}", "group"),
                         (f"/failure-groups?limit={digits}", "limit")):
        problem = assert_problem(client.get("/api/v1" + query), 400, "invalid-query")
        assert [error["parameter"] for error in problem["errors"]] == [named], query
    assert_problem(client.get(f"/api/v1/failure-groups/{digits}"), 404, "group-not-found")


def test_every_bad_parameter_is_named_at_once(client):
    # A trial: the group list named one bad parameter a request (the job list names all).
    response = client.get("/api/v1/failure-groups?state=open&sort=size&limit=0&grouping_version=7&failing=2"
                          "&to=2026-02-30&substate=fresh&code=" + "x" * 201)
    problem = assert_problem(response, 400, "invalid-query")
    assert [error["parameter"] for error in problem["errors"]] == [
        "to", "failing", "grouping_version", "state", "substate", "code", "sort", "limit"]


@pytest.mark.parametrize(
    "query",
    ["?state=open", "?sort=size", "?limit=0", "?cursor=nope", "?from=yesterday", "?grouping_version=7",
     "?sort=job_count&cursor=WyJsYXN0X3NlZW4iLCIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxXQ",
     # Crafted cursors: an offset that carries the year past 9999 or before 1
     # in UTC, an id beyond INTEGER, a count beyond BIGINT (each was a 500).
     "?cursor=WyJsYXN0X3NlZW4iLCI5OTk5LTEyLTMxVDIzOjU5OjU5LTAxOjAwIiwxXQ",
     "?sort=first_seen&cursor=WyJmaXJzdF9zZWVuIiwiMDAwMS0wMS0wMVQwMDowMDowMCsxNDowMCIsMV0",
     "?cursor=WyJsYXN0X3NlZW4iLCIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxMDk5NTExNjI3Nzc2XQ",
     "?sort=job_count&cursor=WyJqb2JfY291bnQiLDEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAsMV0"],
)
def test_bad_queries_are_400_problems(client, query):
    response = client.get("/api/v1/failure-groups" + query)
    assert_problem(response, 400, "invalid-query")
    # Located like every query fault of the contract: by parameter name, never a body pointer.
    named = query.lstrip("?").split("&")[-1].split("=")[0]
    assert [error.get("parameter") for error in response.get_json()["errors"]] == [named]
    assert all("pointer" not in error for error in response.get_json()["errors"])


def test_resolve_ignore_and_reopen(client, app):
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    resolved = client.post(f"/api/v1/failure-groups/{group_id}/resolve", json={"in_version": "2.0.0"})
    assert resolved.status_code == 200
    body = resolved.get_json()
    _check_schema(body, "FailureGroup")
    assert (body["state"], body["resolved_in_version"], body["resolved_by"]) == ("resolved", "2.0.0", "test-worker")
    assert body["resolved_in_worker"] == "extractor"  # the worker of its latest occurrence
    problem = assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/resolve"), 409, "invalid-group-transition")
    assert (problem["current_state"], problem["refused_action"]) == ("resolved", "resolved")
    # An older worker does not reopen it; the fixed version does.
    _fail(client, UCUM, version="1.9.0")
    assert client.get(f"/api/v1/failure-groups/{group_id}").get_json()["state"] == "resolved"
    _fail(client, UCUM, version="2.0.0")
    regressed = client.get(f"/api/v1/failure-groups/{group_id}").get_json()
    assert (regressed["state"], regressed["substate"]) == ("unresolved", "regressed")

    ignored = client.post(f"/api/v1/failure-groups/{group_id}/ignore", json={"occurrences": 2}).get_json()
    assert ignored["ignore"] == {"mode": "until_occurrences", "until": None, "occurrences": 2}
    until = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    ignored = client.post(f"/api/v1/failure-groups/{group_id}/ignore", json={"until": until}).get_json()
    assert ignored["ignore"]["mode"] == "until_date"
    # The same date again changes nothing: refused as resolving twice is.
    again = client.post(f"/api/v1/failure-groups/{group_id}/ignore", json={"until": until})
    problem = assert_problem(again, 409, "invalid-group-transition")
    assert (problem["current_state"], problem["refused_action"]) == ("ignored", "ignored the same way again")
    forever = client.post(f"/api/v1/failure-groups/{group_id}/ignore").get_json()
    assert forever["ignore"] == {"mode": "forever", "until": None, "occurrences": None}
    assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/ignore"), 409, "invalid-group-transition")
    reopened = client.post(f"/api/v1/failure-groups/{group_id}/reopen")
    assert reopened.status_code == 200 and reopened.get_json()["substate"] == "ongoing"
    with app.app_context():
        actions = [e.action for e in db.session.query(AuditEvent).order_by(AuditEvent.occurred_at)]
    assert actions.count("groups.resolved") == 1 and actions.count("groups.regressed") == 1
    assert actions.count("groups.ignored") == 3 and actions.count("groups.reopened") == 1


def test_a_group_action_retried_with_its_key_gets_its_answer_again(client, app):
    """The third trial (session 16): a resolve retried with its key got 409
    "already resolved", and a malformed key on reopen was accepted."""
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    url = f"/api/v1/failure-groups/{group_id}"
    first = client.post(url + "/resolve", json={"in_version": "2.0.0"}, headers={"Idempotency-Key": "resolve-1"})
    again = client.post(url + "/resolve", json={"in_version": "2.0.0"}, headers={"Idempotency-Key": "resolve-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    # The same key with another body is refused, and a fresh key meets the state as it is.
    other = client.post(url + "/resolve", json={"in_version": "3.0.0"}, headers={"Idempotency-Key": "resolve-1"})
    assert_problem(other, 422, "idempotency-key-reused")
    assert_problem(client.post(url + "/resolve", headers={"Idempotency-Key": "resolve-2"}), 409,
                   "invalid-group-transition")
    assert_problem(client.post(url + "/reopen", headers={"Idempotency-Key": "bad key"}), 400,
                   "invalid-idempotency-key")
    assert client.get(url).get_json()["state"] == "resolved"
    # Without a body, as with one: each retry of the reopen is answered once.
    reopened = [client.post(url + "/reopen", headers={"Idempotency-Key": "reopen-1"}) for _ in range(2)]
    assert [r.status_code for r in reopened] == [200, 200] and "Idempotent-Replayed" in reopened[1].headers
    with app.app_context():
        actions = [e.action for e in db.session.query(AuditEvent).order_by(AuditEvent.occurred_at)]
    assert actions.count("groups.resolved") == 1 and actions.count("groups.reopened") == 1


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        ("resolve", {"in_version": ""}, "#/in_version"),
        ("resolve", {"in_version": "1.0\u0000"}, "#/in_version"),
        # Not SemVer: it could order nothing (a trial found the page refused
        # it while the API resolved as if no version were given).
        ("resolve", {"in_version": "1.0"}, "#/in_version"),
        ("resolve", {"in_version": "not semver"}, "#/in_version"),
        ("resolve", {"in_version": "v1.0.0"}, "#/in_version"),
        # A lone surrogate cannot be stored as UTF-8: a 500 before (third trial, session 16).
        ("resolve", {"in_version": "1.0\ud800"}, "#/in_version"),
        ("resolve", {"in_version": "\udc00"}, "#/in_version"),
        ("resolve", {"version": "1"}, "#/version"),
        ("ignore", {"occurrences": 0}, "#/occurrences"),
        ("ignore", {"until": "2000-01-01T00:00:00Z"}, "#/until"),
        ("ignore", {"until": "tomorrow"}, "#/until"),
        ("ignore", {"until": "2999-01-01T00:00:00Z", "occurrences": 2}, "#"),
        ("ignore", {"until": None, "occurrences": 5}, "#/until"),
        ("reopen", {"why": "x"}, "#/why"),
    ],
)
def test_bad_bodies_are_422_problems_and_change_nothing(client, path, body, pointer):
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    problem = assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/{path}", json=body), 422, "invalid-fields")
    assert pointer in [e["pointer"] for e in problem["errors"]]
    if set(body) == {"until", "occurrences"} and None not in body.values():  # by the schema, in the service's words
        assert [e["detail"] for e in problem["errors"]] == ["give either until or occurrences, not both"]
    elif set(body) == {"until", "occurrences"}:  # a null is no value: only its own fault is told
        assert [(e["pointer"], e["detail"]) for e in problem["errors"]] == [("#/until", "must be string")]
    assert client.get(f"/api/v1/failure-groups/{group_id}").get_json()["state"] == "unresolved"


@pytest.mark.parametrize(("action", "body", "detail"), [
    ("resolve", {"in_version": 7}, "The resolution is not valid; nothing was changed."),
    # Refused by the service's rule, not the schema: the same words.
    ("resolve", {"in_version": "1.5\u200b"}, "The resolution is not valid; nothing was changed."),
    ("ignore", {"occurrences": "ten"}, "The ignore condition is not valid; nothing was changed."),
    ("reopen", {"why": "x"}, "The reopen request is not valid; nothing was changed."),
])
def test_a_refused_group_action_says_what_it_refused(client, action, body, detail):
    # An operator's tool posts these, not a worker: "does not match the
    # worker contract" would send them to the wrong document.
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    problem = assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/{action}", json=body), 422, "invalid-fields")
    assert problem["detail"] == detail
    assert client.get(f"/api/v1/failure-groups/{group_id}").get_json()["state"] == "unresolved"


@pytest.mark.parametrize("action", ["resolve", "ignore", "reopen"])
@pytest.mark.parametrize("form", [
    # curl -d without a Content-Type: Werkzeug parses the form, which left
    # the raw body empty, so the action ran as if sent {} (a trial, session 27).
    {"data": '{"until": "2999-01-01T00:00:00Z", "in_version": "9.0.0"}'},
    {"data": {"until": "2999-01-01T00:00:00Z"}, "content_type": "multipart/form-data"},
    {"data": "occurrences=5", "content_type": "application/x-www-form-urlencoded"},
])
def test_a_form_body_is_refused_as_not_json_and_changes_nothing(client, app, action, form):
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    if action == "reopen":
        assert client.post(f"/api/v1/failure-groups/{group_id}/resolve", json={}).status_code == 200
    before = client.get(f"/api/v1/failure-groups/{group_id}").get_json()
    changes = ~AuditEvent.action.like("seen.%")  # reads are audited too (seen.api.groups)
    with app.app_context():
        audited = db.session.query(AuditEvent).filter(changes).count()
    problem = assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/{action}", **form), 415,
                             "unsupported-media-type")
    assert problem["errors"][0]["header"] == "Content-Type"
    assert client.get(f"/api/v1/failure-groups/{group_id}").get_json() == before
    with app.app_context():
        assert db.session.query(AuditEvent).filter(changes).count() == audited


@pytest.mark.parametrize(
    ("group_id", "named"),
    [("999999", True), ("2147483647", True), ("0", False), ("-1", False), ("2147483648", False),
     ("99999999999", False), ("abc", False), ("1.5", False), ("1e400", False), ("1%1b%5b31m", False),
     ("%D9%A3", False), ("1" * 40, False)],
)
def test_unknown_groups_are_404_problems(client, group_id, named):
    problem = assert_problem(client.get(f"/api/v1/failure-groups/{group_id}"), 404, "group-not-found")
    assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/resolve"), 404, "group-not-found")
    # The id is named only when it could be a group's: what the URL held (an
    # ESC sequence, "1e400", an Arabic-Indic digit) is never echoed, and
    # every other id is told the one range (a trial: "-1" was told "whole
    # numbers", 2**31 only "no group has id").
    if named:
        assert problem["detail"] == f"No failure group has id {group_id}."
    else:
        assert problem["detail"] == ("No failure group has this id: group ids are whole numbers "
                                     "from 1 to 2,147,483,647.")


def test_the_group_api_needs_a_worker_token(anonymous_client):
    response = anonymous_client.get("/api/v1/failure-groups")
    assert_problem(response, 401, "unauthorized")


@pytest.mark.parametrize(("occurrences", "status"), [(2.0, 200), (2.5, 422), (1e300, 422), (0.0, 422)])
def test_an_ignore_count_is_an_integer_as_json_schema_says(client, occurrences, status):
    """A trial: a span's ``end: 1.0`` was taken as 1 while an ignore's
    ``occurrences: 1.0`` was refused; JSON Schema's integer admits both."""
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    response = client.post(f"/api/v1/failure-groups/{group_id}/ignore", json={"occurrences": occurrences})
    assert response.status_code == status
    group = client.get(f"/api/v1/failure-groups/{group_id}").get_json()
    if status == 200:
        assert group["ignore"] == {"mode": "until_occurrences", "until": None, "occurrences": 2}
    else:
        assert [e["pointer"] for e in response.get_json()["errors"]] == ["#/occurrences"]
        assert group["state"] == "unresolved"


def test_an_ignore_date_in_the_past_is_refused_as_past(client):
    # It has its offset: "must be a date-time with a UTC offset, in the
    # future" sent the trial's worker author looking for the wrong fault.
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    problem = assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/ignore",
                                         json={"until": "2020-01-01T00:00:00Z"}), 422, "invalid-fields")
    assert [(e["pointer"], e["detail"]) for e in problem["errors"]] == [("#/until", "must be in the future")]
    assert client.get(f"/api/v1/failure-groups/{group_id}").get_json()["state"] == "unresolved"


def test_a_413_is_titled_as_rfc_9110_names_it(client):
    problem = assert_problem(client.post("/api/v1/processing-jobs", data=b"x" * (3 * 1024 * 1024),
                                         content_type="application/json"), 413, "content-too-large")
    assert problem["title"] == "Content Too Large"


@pytest.mark.parametrize("until", ["0000-06-01T00:00:00Z", "9999-06-01T00:00:00Z", "0000-06-01", "9999-06-01"])
def test_an_ignore_date_out_of_range_says_the_range_at_either_end(client, until):
    # Year 0000 is valid RFC 3339 that no timestamp can hold: the same
    # message as 9999, not "is not a valid date-time", and the same top-level
    # detail though the schema's format check finds one and the range check
    # the other.
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    problem = assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/ignore", json={"until": until}),
                             422, "invalid-fields")
    details = [e["detail"] for e in problem["errors"] if e["pointer"] == "#/until"]
    assert details == ["must be from 0002-01-01T00:00:00Z to 9998-12-31T23:59:59Z"]
    assert problem["detail"] == "The ignore condition is not valid; nothing was changed."
    assert client.get(f"/api/v1/failure-groups/{group_id}").get_json()["state"] == "unresolved"


def test_resolve_in_a_version_of_a_named_worker(client, app):
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    path = f"/api/v1/failure-groups/{group_id}/resolve"
    problem = assert_problem(client.post(path, json={"worker": "other"}), 422, "invalid-fields")
    assert [e["pointer"] for e in problem["errors"]] == ["#/worker"]
    problem = assert_problem(client.post(path, json={"in_version": "2.0.0", "worker": "a\u202eb"}), 422,
                             "invalid-fields")
    assert [e["pointer"] for e in problem["errors"]] == ["#/worker"]
    # Both fields' faults in one answer, and beside a fault of the schema's.
    problem = assert_problem(client.post(path, json={"in_version": "v2", "worker": "a\u202eb"}), 422,
                             "invalid-fields")
    assert [e["pointer"] for e in problem["errors"]] == ["#/in_version", "#/worker"]
    problem = assert_problem(client.post(path, json={"in_version": "v2", "why": "fixed"}), 422, "invalid-fields")
    assert [e["pointer"] for e in problem["errors"]] == ["#/in_version", "#/why"]
    assert client.get(f"/api/v1/failure-groups/{group_id}").get_json()["state"] == "unresolved"
    body = client.post(path, json={"in_version": "2.0.0", "worker": "other"}).get_json()
    _check_schema(body, "FailureGroup")
    assert (body["state"], body["resolved_in_version"], body["resolved_in_worker"]) == ("resolved", "2.0.0", "other")
    # "extractor" is another worker: its 1.0.0 is no older version of "other"'s 2.0.0.
    _fail(client, UCUM, version="1.0.0")
    assert client.get(f"/api/v1/failure-groups/{group_id}").get_json()["substate"] == "regressed"


def test_failing_keeps_the_groups_with_jobs_failing_now_as_the_groups_page_does(client):
    # A trial: /groups had "Only groups with jobs failing now", the API a 400 for failing=1.
    _fail(client, {**UCUM, "code": "rule.now"})
    done = _fail(client, {**UCUM, "code": "rule.done"})
    assert client.post(f"/api/v1/processing-jobs/{done}/requeue").status_code == 200
    assert {g["code"] for g in _groups(client, "?failing=1")["items"]} == {"rule.now"}
    assert {g["code"] for g in _groups(client)["items"]} == {"rule.now", "rule.done"}
    assert {g["code"] for g in _groups(client, "?failing=")["items"]} == {"rule.now", "rule.done"}  # as /groups
    problem = assert_problem(client.get("/api/v1/failure-groups?failing=true"), 400, "invalid-query")
    assert [error["parameter"] for error in problem["errors"]] == ["failing"]


def test_a_cursor_of_another_sort_says_which_sort_it_was_made_for(client):
    # A trial: "is not a valid cursor" read as a broken cursor; the job list names its time_field.
    for i in range(3):
        _fail(client, {**UCUM, "code": f"rule.{i}"})
    cursor = _groups(client, "?sort=job_count&limit=1")["next_cursor"]
    problem = assert_problem(client.get(f"/api/v1/failure-groups?sort=first_seen&cursor={cursor}"), 400, "invalid-query")
    assert [(e["parameter"], e["detail"]) for e in problem["errors"]] == [("cursor", "was made for sort=job_count")]
    assert "sort=job_count, not sort=first_seen" in problem["detail"]


def test_a_bad_cursor_is_named_beside_the_other_bad_parameters(client):
    for i in range(2):
        _fail(client, {**UCUM, "code": f"rule.{i}"})
    cursor = _groups(client, "?sort=job_count&limit=1")["next_cursor"]
    cases = [
        ("?state=nope&limit=0&cursor=bad", ["cursor", "limit", "state"]),
        (f"?state=nope&sort=first_seen&cursor={cursor}", ["cursor", "state"]),  # made for another sort
        # A bad sort: the cursor is judged against the sort it was made for (a note said a bad one went unnamed).
        ("?sort=nope&cursor=bad", ["cursor", "sort"]),
        (f"?sort=nope&cursor={cursor}", ["sort"]),  # a good cursor beside a bad sort
    ]
    for query, names in cases:
        problem = assert_problem(client.get(f"/api/v1/failure-groups{query}"), 400, "invalid-query")
        assert sorted(e["parameter"] for e in problem["errors"]) == names, query


def test_an_ignore_until_a_date_alone_wakes_as_that_day_begins_as_the_form_does(client):
    # A trial: the dashboard's form takes a date (00:00 UTC that day), the API only a date-time.
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    response = client.post(f"/api/v1/failure-groups/{group_id}/ignore", json={"until": "2030-06-01"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["ignore"] == {"mode": "until_date", "until": "2030-06-01T00:00:00Z", "occurrences": None}
    _fail(client, ICD)
    other = next(g["id"] for g in _groups(client)["items"] if g["code"] == ICD["code"])
    for until, detail in (("2030-02-30", "February 2030 has 28 days"), ("2030-6-1", "must be an RFC 3339 date-time"),
                          (" 2030-06-01", "with no spaces"), ("2030-06-01 00:00:00Z", "with no spaces")):
        problem = assert_problem(client.post(f"/api/v1/failure-groups/{other}/ignore", json={"until": until}),
                                 422, "invalid-fields")
        assert [e["pointer"] for e in problem["errors"]] == ["#/until"], problem
        assert detail in problem["errors"][0]["detail"], problem
    assert client.get(f"/api/v1/failure-groups/{other}").get_json()["state"] == "unresolved"


def test_a_cursor_of_deeply_nested_json_is_a_400_not_a_500(client):
    # A trial: a thousand nested arrays raised RecursionError in the decoder (500, API and page).
    import base64

    crafted = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode().rstrip("=")
    problem = assert_problem(client.get(f"/api/v1/failure-groups?cursor={crafted}"), 400, "invalid-query")
    assert [e["parameter"] for e in problem["errors"]] == ["cursor"]


@pytest.mark.parametrize("until", ["2099-12-31T10:00:00Z\n", "2099-12-31\n"])
def test_an_ignore_time_with_a_final_line_break_is_refused_as_a_date_is(client, until):
    # A trial: Python's "$" let the date-time pass with its "\n"; the date alone was refused.
    _fail(client, UCUM)
    group_id = _groups(client)["items"][0]["id"]
    problem = assert_problem(client.post(f"/api/v1/failure-groups/{group_id}/ignore", json={"until": until}),
                             422, "invalid-fields")
    assert [e["pointer"] for e in problem["errors"]] == ["#/until"]
    assert _groups(client)["items"][0]["state"] == "unresolved"
