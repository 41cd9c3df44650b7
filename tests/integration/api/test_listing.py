"""Listing jobs: filters, keyset pagination with ``Link`` headers, bad list parameters.

Every refusal is checked as ``helpers.assert_problem`` says, with the stored row
unchanged and a working client afterwards."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from app.api.contract import openapi_document
from tests.integration.api.helpers import (
    API,
    DETAILS,
    FIRST_FAILURE,
    assert_client_still_works,
    assert_job_json,
    assert_problem,
    create_job,
    cursor_token,
    fields,
    job_url,
    next_link,
    parse_timestamp,
    post_ok,
)


@pytest.fixture
def jobs_in_every_status(client: FlaskClient) -> dict[str, str]:
    """document_id -> job id: doc-a Pending, doc-b Processing, doc-c
    Validation_Failed (type ocr), doc-d Failed, doc-e Completed."""
    ids = {}
    for document_id, job_type, actions in [
        ("doc-a", "entity_extraction", []),
        ("doc-b", "entity_extraction", [("start", None)]),
        ("doc-c", "ocr", [("validation-failure", FIRST_FAILURE)]),
        ("doc-d", "entity_extraction", [("result", {"status": "failed", "error_message": "crashed"})]),
        ("doc-e", "entity_extraction", [("result", {"status": "completed"})]),
    ]:
        job_id = create_job(client, document_id, job_type=job_type)["id"]
        for action, body in actions:
            post_ok(client, job_url(job_id, action), body)
        ids[document_id] = job_id
    return ids


@pytest.mark.parametrize(
    ("query", "documents"),
    [
        ("status=Validation_Failed", ["doc-c"]),
        ("status=validation_failed", ["doc-c"]),
        ("status=Failed&status=Validation_Failed", ["doc-c", "doc-d"]),
        ("status=failed,validation_failed", ["doc-c", "doc-d"]),
        ("status=pending&status=Pending", ["doc-a"]),
        ("status=all", ["doc-a", "doc-b", "doc-c", "doc-d", "doc-e"]),
        ("", ["doc-a", "doc-b", "doc-c", "doc-d", "doc-e"]),
        ("document_id=doc-b", ["doc-b"]),
        ("document_id=doc-z", []),
        ("job_type=ocr", ["doc-c"]),
        ("status=completed&document_id=doc-e", ["doc-e"]),
        ("status=completed&document_id=doc-a", []),
    ],
)
def test_list_filters_jobs(client, jobs_in_every_status, query, documents):
    response = client.get(f"{API}?{query}")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    page = response.get_json()
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    assert "Link" not in response.headers
    assert sorted(item["document_id"] for item in page["items"]) == documents
    for item in page["items"]:
        assert_job_json(item)
        assert item["id"] == jobs_in_every_status[item["document_id"]]


def test_list_items_are_the_jobs_as_get_returns_them(client, jobs_in_every_status):
    page = client.get(f"{API}?status=validation_failed").get_json()
    assert page["items"] == [client.get(job_url(jobs_in_every_status["doc-c"])).get_json()]
    assert page["items"][0]["error_details"] == DETAILS


def test_pagination_walks_every_job_exactly_once(client):
    created = [create_job(client, f"doc-{n}")["id"] for n in range(7)]
    url: str | None = f"{API}?limit=3"
    seen: list[dict[str, Any]] = []
    sizes = []
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        page = response.get_json()
        sizes.append(len(page["items"]))
        seen += page["items"]
        url = next_link(response)
        if page["next_cursor"] is None:
            assert url is None
        else:
            assert parse_qs(urlsplit(url).query) == {"limit": ["3"], "cursor": [page["next_cursor"]]}
            # The cursor alone gives the same next page as the link.
            assert (
                client.get(f"{API}?limit=3&cursor={page['next_cursor']}").get_json()
                == client.get(url).get_json()
            )
    assert sizes == [3, 3, 1]
    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)) == 7
    assert set(ids) == set(created)
    keys = [(parse_timestamp(item["created_at"]), uuid.UUID(item["id"])) for item in seen]
    assert keys == sorted(keys, reverse=True)


def test_pagination_keeps_the_filters_in_the_link(client, jobs_in_every_status):
    extra = [create_job(client, f"doc-pending-{n}")["id"] for n in range(2)]
    url: str | None = f"{API}?status=pending&limit=2"
    seen = []
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        seen += [item["id"] for item in response.get_json()["items"]]
        url = next_link(response)
        if url is not None:
            assert parse_qs(urlsplit(url).query)["status"] == ["pending"]
    assert sorted(seen) == sorted([jobs_in_every_status["doc-a"], *extra])


def test_names_url_for_would_interpret_are_refused_as_unknown_parameters(client):
    """Names url_for would interpret (``_external``, ``_scheme``...) are not
    parameters of the list: refused by name, so none can reach the Link."""
    create_job(client, "doc-0")
    query = "limit=1&_external=1&_scheme=ftp&_anchor=top&_method=POST&endpoint=x"
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    assert sorted(fields(problem)) == ["_anchor", "_external", "_method", "_scheme", "endpoint"]


def test_limit_up_to_the_maximum_is_accepted(client, app, job):
    maximum = app.config["MAX_PAGE_SIZE"]
    assert client.get(f"{API}?limit={maximum}").get_json()["items"] == [job]
    problem = assert_problem(client.get(f"{API}?limit={maximum + 1}"), 400, "invalid-query")
    assert fields(problem) == ["limit"]


def _cursor(text: str) -> str:
    return "cursor=" + cursor_token(text)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status=done", "status"),
        ("status=Validation_Failed&status=nope", "status"),
        ("status=VALIDATION_FAILED", "status"),
        ("status=all,failed", "status"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1000000", "limit"),
        ("limit=" + "9" * 5000, "limit"),
        ("limit=1.5", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=1_0", "limit"),
        ("limit=%20", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=%C3%A9", "cursor"),
        ("cursor=%00", "cursor"),
        (_cursor("2026-01-01T00:00:00|" + str(uuid.UUID(int=1))), "cursor"),
        (_cursor("yesterday|" + str(uuid.UUID(int=1))), "cursor"),
        (_cursor("2026-01-01T00:00:00+00:00|not-a-uuid"), "cursor"),
        (_cursor("2026-01-01T00:00:00+00:00"), "cursor"),
    ],
)
def test_bad_list_parameters_are_a_400_problem(client, job, query, name):
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    assert fields(problem) == [name]
    assert problem["errors"][0]["parameter"] == name and "pointer" not in problem["errors"][0]
    assert_client_still_works(client, job["id"])


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("status=done&limit=0&cursor=not-a-cursor", ["cursor", "limit", "status"]),
        ("status=done&cursor=not-a-cursor", ["cursor", "status"]),
        ("from=yesterday&cursor=zzz", ["cursor", "from"]),
    ],
)
def test_a_bad_cursor_is_named_beside_the_other_bad_parameters(client, job, query, names):
    # Before, the cursor was read only once the filter and limit were good:
    # mending what one 400 named brought another.
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    assert sorted(error["parameter"] for error in problem["errors"]) == names


def test_cursor_out_of_the_datetime_range_is_a_400_problem(client, job):
    query = _cursor("0001-01-01T00:00:00+14:00|" + job["id"])
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    assert fields(problem) == ["cursor"]


@pytest.mark.parametrize("query", ["q=a%C3", "document_id=%FF", "q=%C3%28", "q=ok&job_type=%E2%82"])
def test_a_parameter_that_is_not_utf8_is_a_400_naming_it(client, query):
    # Werkzeug kept the escape as text: the search looked meant and found nothing.
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    name = query.rsplit("&", 1)[-1].split("=")[0]
    assert [(e["parameter"], e["detail"]) for e in problem["errors"]] == [
        (name, "is not UTF-8 once percent-decoded (RFC 3986)")]


@pytest.mark.parametrize(("raw", "name"), [
    ("q=zzq\u00e9".encode().decode("latin-1"), "q"),  # "é" as two raw UTF-8 bytes, as curl sends it
    ("q=zzq\u00e9", "q"),  # one raw Latin-1 byte
    ("status=all&document_id=\u00e9", "document_id"),
    # A raw name, named as typed: as gunicorn or a test hands it on, and as the development server does
    # (the bytes encoded twice: it was named "Ã©", a re-check).
    ("\u00e9=1".encode().decode("latin-1"), "\u00e9"),
    ("\u00e9=1".encode().decode("latin-1").encode().decode("latin-1"), "\u00e9"),
])
def test_a_parameter_not_percent_encoded_is_a_400_naming_it(client, raw, name):
    # A trial: the raw bytes reached the search as Latin-1 ("Ã©") and an empty list came back;
    # gunicorn refuses such a request line outright. The WSGI environ holds the bytes as Latin-1.
    response = client.get(API, environ_overrides={"QUERY_STRING": raw})
    problem = assert_problem(response, 400, "invalid-query")
    assert [e["parameter"] for e in problem["errors"]] == [name]
    assert "percent-encoded" in problem["errors"][0]["detail"]
    # Percent-encoded, the same text is searched for.
    assert client.get(API, query_string={"q": "zzq\u00e9"}).status_code == 200


@pytest.mark.parametrize("query", ["limit=10&limit=500", "document_id=a&document_id=b", "q=x&q=y",
                                   "time_field=created&time_field=completed"])
def test_a_single_valued_parameter_given_two_values_is_a_400_naming_it(client, job, query):
    # Which one counts is not guessed (the first was taken: limit=10&limit=500 listed 10).
    problem = assert_problem(client.get(f"{API}?{query}"), 400, "invalid-query")
    name = query.split("=")[0]
    assert [(e["parameter"], e["detail"]) for e in problem["errors"]] == [
        (name, "is given more than once with different values; give it once")]
    # The same value twice, an empty one beside it, and the list-valued status are fine.
    assert client.get(f"{API}?limit=10&limit=10").status_code == 200
    assert client.get(f"{API}?limit=&limit=10").status_code == 200
    assert client.get(f"{API}?status=Pending&status=Failed").status_code == 200
    assert client.get("/groups?state=unresolved&state=ignored").status_code == 200
    groups = assert_problem(client.get("/api/v1/failure-groups?limit=1&limit=2"), 400, "invalid-query")
    assert [e["parameter"] for e in groups["errors"]] == ["limit"]


def test_a_u_fffd_sent_as_utf8_is_a_search_like_any_other(client):
    assert client.get(f"{API}?q=%EF%BF%BD").status_code == 200


def test_a_nul_is_refused_in_a_filter_and_a_u_fffd_is_found(client):
    response = client.post(API, json={"document_id": "doc\ufffdx"})
    assert response.get_json()["document_id"] == "doc\ufffdx"
    # A NUL (or a C1 control) in a query parameter is a 400 on every route (app/request_input.py).
    for sent in ("doc%00x", "doc%C2%85x"):
        problem = assert_problem(client.get(f"{API}?document_id={sent}"), 400, "invalid-query")
        assert fields(problem) == ["document_id"]
    page = client.get(f"{API}?document_id=doc%EF%BF%BDx").get_json()
    assert [item["id"] for item in page["items"]] == [response.get_json()["id"]]


def test_a_control_character_in_a_parameter_name_is_named_with_its_escape(client):
    # Each control as its escape in ASCII (never "", never the raw control,
    # no longer a Unicode Control Picture: a stock Chromium showed those as one box).
    problem = assert_problem(client.get(f"{API}?doc%00ument=1&x%1by=2&z%7f=3&c%C2%9B1m=4"), 400, "invalid-query")
    assert [e["parameter"] for e in problem["errors"]] == [
        "doc\\u0000ument", "x\\u001by", "z\\u007f", "c\\u009b1m"]
    assert all(e["detail"] == "a parameter name holds a NUL or another control character" for e in problem["errors"])


@pytest.mark.parametrize("path", ["/api/v1/processing-jobs", "/api/v1/failure-groups"])
def test_every_query_parameter_given_empty_is_as_if_left_out(client, failed_job, path):
    # As the OpenAPI document's description says (schemathesis sent "to=",
    # which the schema's date-time format alone does not allow).
    parameters = [p["name"] for p in openapi_document()["paths"][path]["get"]["parameters"]
                  if p.get("in") == "query"]
    assert parameters
    plain = client.get(path)
    assert plain.status_code == 200
    for name in parameters:
        response = client.get(f"{path}?{name}=")
        assert response.status_code == 200, (name, response.get_json())
        assert response.get_json() == plain.get_json(), name
