"""Request bodies: malformed JSON, wrong fields, the text the API accepts, media types and size limits.

Every refusal is checked as ``helpers.assert_problem`` says, with the stored row
unchanged and a working client afterwards."""

from __future__ import annotations

import json
import re
import sys

import pytest

from app.api import json_body
from app.services.json_values import canonical_json
from tests.integration.api.helpers import (
    API,
    assert_client_still_works,
    assert_matches_row,
    assert_problem,
    create_job,
    fields,
    job_count,
    job_url,
    nested_list,
    row,
)


def _body(message: str = "report", details: str = "{}") -> bytes:
    return f'{{"error_message": "{message}", "error_details": {details}}}'.encode()


MALFORMED_BODIES = [
    pytest.param(b'{error_message: "x", error_details: {}}', id="invalid-json"),
    pytest.param(b"{'error_message': 'x', 'error_details': {}}", id="single-quotes"),
    pytest.param(b'{"error_message": "x", "error_details": {"a": [1, 2', id="truncated"),
    pytest.param(b'{"error_message": "x", "error_details": {},}', id="trailing-comma"),
    pytest.param(_body() + b' {"more": 1}', id="two-values"),
    pytest.param(b'{"error_message": "x", /* c */ "error_details": {}}', id="comment"),
    pytest.param(b"", id="empty"),
    pytest.param(b" \r\n\t ", id="whitespace-only"),
    pytest.param(b"\xef\xbb\xbf", id="bom-only"),
    pytest.param(b'{"error_message": "\xff\xfe", "error_details": {}}', id="invalid-utf8"),
    pytest.param(b'{"error_message": "\xc0\xaf", "error_details": {}}', id="overlong-utf8"),
    pytest.param(b'{"error_message": "\xed\xa0\x80", "error_details": {}}', id="encoded-surrogate"),
    pytest.param(b'{"error_message": "caf\xe9", "error_details": {}}', id="latin-1-byte"),
    pytest.param(_body().decode().encode("utf-16"), id="utf-16"),
    pytest.param(_body(details="NaN"), id="nan"),
    pytest.param(_body(details="Infinity"), id="infinity"),
    pytest.param(_body(details="-Infinity"), id="minus-infinity"),
    pytest.param(_body(details='{"n": [1e999]}'), id="1e999"),
    pytest.param(_body(details="-1e999"), id="minus-1e999"),
    pytest.param(_body(details="1" * 5000), id="5000-digit-integer"),
    pytest.param(b'{"error_message": "a", "error_message": "b", "error_details": {}}', id="duplicate-keys"),
    pytest.param(_body(details='{"errors": [{"code": "x", "code": "y"}]}'), id="duplicate-nested-keys"),
    pytest.param(b"[" * 100_000, id="100000-open-brackets"),
    pytest.param(_body(details="[" * 100_000 + "]" * 100_000), id="100000-nested-details"),
    pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="50000-nested-objects"),
]


@pytest.mark.parametrize("data", MALFORMED_BODIES)
def test_malformed_json_is_a_400_problem_and_changes_nothing(client, app, failed_job, data):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 400, "malformed-json")
    # Where the parser can know the place, an item names it; otherwise
    # (empty, not UTF-8) the problem has no items.
    for item in problem.get("errors", []):
        assert item["pointer"].startswith("#") and item["detail"]
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


@pytest.mark.parametrize(
    ("data", "pointer", "detail", "line_column"),
    [
        pytest.param(_body(details='{"n": [1, 1e400]}'), "#/error_details/n/1",
                     "A number in the body is too large to represent.", None, id="1e400"),
        # A trial: a 401-digit integer (beyond a double, as 1e400 is) was stored and read back as Infinity.
        pytest.param(_body(details='{"n": [2, -1' + "0" * 400 + "]}"), "#/error_details/n/1",
                     "A number in the body is too large to represent.", None, id="401-digit-integer"),
        pytest.param(_body(details='{"n": -1e-400}'), "#/error_details/n",
                     "A number in the body is too small to represent: it is not zero, but would be stored as 0.",
                     None, id="1e-400-underflows"),
        pytest.param(_body(details='{"errors": [{"code": "x", "code": "y"}]}'), "#/error_details/errors/0/code",
                     "The body has an object with a duplicate key; each name must appear once.", None,
                     id="duplicate-key"),
        pytest.param(_body(details='{"a/b": NaN}'), "#/error_details/a~1b",
                     "NaN is not valid JSON (RFC 8259 has no NaN or Infinity).", None, id="nan"),
        pytest.param(_body(details='{"n": [1, 2, }'), "#/error_details/n/2",
                     "Expecting value (line 1, column 59)", (1, 59), id="syntax-error"),
        pytest.param(b'{"error_message": "a\x00b",\n "error_details": {}}', "#/error_message",
                     "Invalid control character (line 1, column 21)", (1, 21), id="raw-nul"),
    ],
)
def test_unreadable_bodies_name_the_place(client, app, failed_job, data, pointer, detail, line_column):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 400, "malformed-json")
    [item] = problem["errors"]
    assert item["pointer"] == pointer
    assert item["detail"] == detail
    if line_column is None:
        assert problem["detail"] == detail and "line" not in item
    else:
        assert (item["line"], item["column"]) == line_column
        assert problem["detail"] == f"The body is not valid JSON: {detail}."
    assert row(app, failed_job["id"]) == before


@pytest.mark.parametrize("depth", [600, 5000], ids=["past-our-limit", "past-the-parsers-limit"])
def test_nesting_too_deep_names_where_the_limit_was_passed(client, failed_job, depth):
    limit = json_body.MAX_BODY_NESTING
    data = f'{{"error_message": "m", "error_details": {{"a": {"[" * depth}{"]" * depth}}}}}'
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 400, "malformed-json")
    [item] = problem["errors"]
    # Levels: the body (1), error_details (2), a (3): level 513 is 510 arrays into a.
    assert item["pointer"] == "#/error_details/a" + "/0" * (limit - 2)
    assert item["detail"] == f"level {limit + 1} begins here; at most {limit} levels"
    # For people, the path's start and end; the pointer above has every token.
    assert len(item["field"]) == 120
    assert item["field"].startswith("error_details.a.0.0.") and item["field"].endswith(".0.0")
    assert item["field"].count("\u2026") == 1


INVALID_FIELD_BODIES = [
    pytest.param(b"[]", "invalid-fields", [""], id="top-level-array"),
    pytest.param(
        b'["error_message", "error_details"]', "invalid-fields", [""], id="top-level-array-of-names"
    ),
    pytest.param(b'"report"', "invalid-fields", [""], id="top-level-string"),
    pytest.param(b"null", "invalid-fields", [""], id="top-level-null"),
    pytest.param(b"42", "invalid-fields", [""], id="top-level-number"),
    pytest.param(b"{}", "invalid-fields", ["error_details", "error_message"], id="empty-object"),
    pytest.param(b'{"error_message": "x"}', "invalid-fields", ["error_details"], id="missing-details"),
    pytest.param(b'{"error_details": {}}', "invalid-fields", ["error_message"], id="missing-message"),
    pytest.param(_body()[:-1] + b', "retry": true}', "invalid-fields", ["retry"], id="unknown-field"),
    pytest.param(
        _body()[:-1] + b', "Error_Message": "x"}', "invalid-fields", ["Error_Message"], id="wrong-case-field"
    ),
    pytest.param(
        b'{"error_message": "x", "status": "Completed"}',
        "invalid-fields",
        ["error_details", "status"],
        id="missing-and-unknown",
    ),
    # The error_message's type and length are the schema's (invalid-fields);
    # blank after trimming is a rule only the recorder knows (invalid-failure).
    pytest.param(
        b'{"error_message": 42, "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-number",
    ),
    pytest.param(
        b'{"error_message": ["x"], "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-list",
    ),
    pytest.param(
        b'{"error_message": {"text": "x"}, "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-object",
    ),
    pytest.param(
        b'{"error_message": null, "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-null",
    ),
    pytest.param(
        b'{"error_message": true, "error_details": {}}',
        "invalid-fields",
        ["error_message"],
        id="message-bool",
    ),
    pytest.param(_body(""), "invalid-fields", ["error_message"], id="message-empty"),
    pytest.param(_body(" \\t\\r\\n "), "invalid-failure", ["error_message"], id="message-whitespace"),
    pytest.param(
        _body("\\u00a0\\u2003\\u3000"), "invalid-failure", ["error_message"], id="message-unicode-spaces"
    ),
    # The length limit is the configured one, checked after trimming, by the recorder.
    pytest.param(_body("PHI-" + "x" * 997), "invalid-failure", ["error_message"], id="message-1001-chars"),
    pytest.param(_body("😀" * 1001), "invalid-failure", ["error_message"], id="message-1001-emoji"),
    pytest.param(
        b'{"error_message": 42, "error_details": {}, "error_format": "xml"}',
        "invalid-fields",
        ["error_format", "error_message"],
        id="two-bad-fields-in-the-schema",
    ),
    pytest.param(
        b'{"error_message": " \\t ", "error_details": ' + b"[" * 40 + b"]" * 40 + b"}",
        "invalid-failure",
        ["error_details" + ".0" * 32, "error_message"],
        id="two-bad-fields-in-the-recorder",
    ),
    # A schema error and the recorder's own check come in one answer: the
    # over-deep details are reported alongside the wrong message type.
    pytest.param(
        b'{"error_message": 42, "error_details": ' + b"[" * 40 + b"]" * 40 + b"}",
        "invalid-fields",
        ["error_details" + ".0" * 32, "error_message"],
        id="schema-error-with-recorder-error",
    ),
]


@pytest.mark.parametrize(("data", "slug", "bad_fields"), INVALID_FIELD_BODIES)
def test_wrong_fields_are_a_422_problem_and_change_nothing(client, app, failed_job, data, slug, bad_fields):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 422, slug)
    assert fields(problem) == bad_fields
    for error in problem["errors"]:
        expected_pointer = (
            "#" + "".join("/" + part for part in error["field"].split(".")) if error["field"] else "#"
        )
        assert error["pointer"] == expected_pointer
    # The detail names what is wrong without quoting what was sent.
    assert "PHI-" not in response.get_data(as_text=True)
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


def test_whole_body_error_points_at_the_root(client, job):
    response = client.post(
        job_url(job["id"], "validation-failure"), data=b"[]", content_type="application/json"
    )
    problem = assert_problem(response, 422, "invalid-fields")
    assert problem["errors"] == [{"field": "", "pointer": "#", "detail": "must be object"}]


def test_error_details_nested_too_deeply_are_a_422_naming_the_place(client, app, failed_job):
    depth = app.config["MAX_JSON_DEPTH"]
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        json={"error_message": "x", "error_details": {"trace": nested_list(40)}},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    # The array that would be level depth + 1: under "trace" and depth - 1 arrays.
    field = "error_details.trace" + ".0" * (depth - 1)
    assert problem["errors"] == [
        {
            "field": field,
            "pointer": "#/" + field.replace(".", "/"),
            "detail": f"nested deeper than {depth} levels",
        }
    ]
    assert row(app, failed_job["id"]) == before
    # 500 levels: readable by the parser, refused by the depth limit, never a 500.
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        json={"error_message": "x", "error_details": nested_list(500)},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    assert fields(problem) == ["error_details" + ".0" * depth]
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


def test_bodies_nested_near_the_parsers_limit_are_refused_before_any_work(client, app, failed_job):
    # The parser's limit is the interpreter's recursion limit less the frames
    # in use; a body a few levels under it used to parse and then overflow
    # the stack in deeper code (the idempotency fingerprint, a schema error's
    # repr): a 500 at one exact depth, between the 422s and the 400s.
    limit = json_body.MAX_BODY_NESTING
    before, jobs_before = row(app, failed_job["id"]), job_count(app)
    endpoints = {
        API: ("job_type", "invalid-fields"),
        job_url(failed_job["id"], "validation-failure"): ("error_details", "invalid-failure"),
        job_url(failed_job["id"], "result"): ("entities", "invalid-fields"),
    }
    for url, (field, slug) in endpoints.items():
        # ``depth`` arrays inside the body's object: depth + 1 levels. Around
        # our limit, and every depth up to past the parser's (the frames in
        # use differ between runners, so not one depth).
        ceiling = sys.getrecursionlimit()
        for depth in [*range(limit - 2, limit + 3), *range(ceiling - 200, ceiling + 3)]:
            data = f'{{"error_message": "m", "{field}": {"[" * depth}{"]" * depth}}}'
            response = client.post(
                url, data=data, content_type="application/json", headers={"Idempotency-Key": f"{url}{depth}"}
            )
            if depth + 1 <= limit:
                assert_problem(response, 422, slug)
            else:
                problem = assert_problem(response, 400, "malformed-json")
                assert problem["detail"] == f"The body nests arrays or objects more than {limit} levels deep."
    assert row(app, failed_job["id"]) == before
    assert job_count(app) == jobs_before
    assert_client_still_works(client, failed_job["id"])


def test_unknown_field_names_are_escaped_in_pointers(client, app, failed_job):
    before = row(app, failed_job["id"])
    data = _body()[:-1] + b', "a/b~c": 1, "a b": 2, "\xc3\xbc": 3, "\\ud800": 4}'
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 422, "invalid-fields")
    # Sorted by pointer (the fragment form), each named once.
    assert [(e["field"], e["pointer"], e["detail"]) for e in problem["errors"]] == [
        ("ü", "#/%C3%BC", "is not a known field"),
        # A lone surrogate follows the storage rule: U+FFFD, percent-encoded as
        # UTF-8 (echoing "\ud800" would put a string many JSON parsers refuse
        # into the answer, and "?" would point at no member of the body).
        ("\ufffd", "#/%EF%BF%BD", "is not a known field"),
        ("a b", "#/a%20b", "is not a known field"),
        ("a/b~c", "#/a~1b~0c", "is not a known field"),
    ]
    assert "\\ud800" not in response.get_data(as_text=True).lower()
    assert row(app, failed_job["id"]) == before


def test_control_characters_in_field_names_are_escaped_and_pointed_at_exactly(client, app, failed_job):
    """The third trial (session 16): a member name holding ESC came back raw
    in ``field``, and one holding NUL got a pointer to U+FFFD, a member the
    body does not have."""
    before = row(app, failed_job["id"])
    data = _body()[:-1] + b', "k\\u001b[31m": 1, "n\\u0000ul": 2, "d\x7fel": 3}'
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    problem = assert_problem(response, 422, "invalid-fields")
    assert sorted((e["field"], e["pointer"]) for e in problem["errors"]) == [
        ("d\\u007fel", "#/d%7Fel"), ("k\\u001b[31m", "#/k%1B%5B31m"), ("n\\u0000ul", "#/n%00ul")]
    # No control anywhere in the answer, raw or as JSON's own escape.
    assert not re.search("[\x00-\x1f\x7f-\x9f]", json.dumps(problem, ensure_ascii=False))
    assert row(app, failed_job["id"]) == before


# -- text the API accepts --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message", "details"),
    [
        pytest.param(
            b"\xef\xbb\xbf" + _body("with bom", '{"k": "v"}'), "with bom", {"k": "v"}, id="utf8-bom"
        ),
        pytest.param(
            _body("bad\\u0000byte", '{"k\\u0000": "v\\u0000", "list": ["\\u0000"]}'),
            "bad\ufffdbyte",
            {"k\ufffd": "v\ufffd", "list": ["\ufffd"]},
            id="nul",
        ),
        pytest.param(
            _body("\\ud800 high", '["\\udc00", "\\udc00\\ud800", {"\\udbff": 1}]'),
            "\ufffd high",
            ["\ufffd", "\ufffd\ufffd", {"\ufffd": 1}],
            id="lone-surrogates",
        ),
        pytest.param(
            _body("\\ud83d\\ude00 pair", '"\\ud83d\\ude00"'), "😀 pair", "😀", id="escaped-surrogate-pair"
        ),
        pytest.param(
            _body("Ünïcödé 😀 日本語 e\u0301 \u2028 \u202e", '{"ключ": "значение 🧬", "emoji": "👩🏽‍⚕️"}'),
            "Ünïcödé 😀 日本語 e\u0301 \u2028 \u202e",
            {"ключ": "значение 🧬", "emoji": "👩🏽‍⚕️"},
            id="raw-non-ascii",
        ),
        pytest.param(
            _body('quotes \\" \\\\ <script>&amp;', '{"html": "<b>&</b>", "tab": "\\t"}'),
            'quotes " \\ <script>&amp;',
            {"html": "<b>&</b>", "tab": "\t"},
            id="escapes-and-markup",
        ),
        pytest.param(
            # A zero literal with a tiny exponent is zero (1e-400 is refused:
            # see test_unreadable_bodies_name_the_place).
            _body("0e-400 is zero", "[0e-400, -0, 1E2, 123456789012345678901234567890]"),
            "0e-400 is zero",
            [0.0, 0, 100.0, 123456789012345678901234567890],
            id="numbers",
        ),
    ],
)
def test_accepted_text_is_stored_by_one_rule_on_both_backends(client, app, job, data, message, details):
    response = client.post(
        job_url(job["id"], "validation-failure"), data=data, content_type="application/json"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.get_json()
    stored = row(app, job["id"])
    assert updated["error_message"] == stored["error_message"] == message
    assert (
        canonical_json(updated["error_details"])
        == canonical_json(stored["error_details"])
        == canonical_json(details)
    )
    assert_matches_row(updated, stored)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        "application/json;charset=utf8",
        'application/json; charset="utf-8"',
        "Application/JSON",
        "application/merge-patch+json",
        "application/vnd.worker.result+json; charset=utf-8",
    ],
)
def test_json_media_types_are_accepted(client, job, content_type):
    response = client.post(
        job_url(job["id"], "validation-failure"), data=_body("typed"), content_type=content_type
    )
    assert response.status_code == 200
    assert response.get_json()["error_message"] == "typed"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "application/jsonl",
        "application/x-ndjson",
        "application/octet-stream",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/json; charset=us-ascii",
        None,
    ],
)
def test_non_json_bodies_are_a_415_problem_and_change_nothing(client, app, failed_job, content_type):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data=_body("sent"), content_type=content_type
    )
    problem = assert_problem(response, 415, "unsupported-media-type")
    # The header at fault is named, as an Idempotency-Key fault is (a trial).
    assert [e.get("header") for e in problem["errors"]] == ["Content-Type"]
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity, gzip", "x-gzip"])
@pytest.mark.parametrize("compressed", [True, False])
def test_a_content_coding_is_a_415_problem_with_accept_encoding(client, app, failed_job, coding, compressed):
    # A trial: a gzip body was read as its compressed bytes (400 "not UTF-8"),
    # and a plain body labelled gzip was stored as if it had been decoded.
    import gzip

    before = row(app, failed_job["id"])
    body = gzip.compress(_body("sent")) if compressed else _body("sent")
    response = client.post(job_url(failed_job["id"], "validation-failure"), data=body,
                           content_type="application/json", headers={"Content-Encoding": coding})
    problem = assert_problem(response, 415, "unsupported-media-type")
    assert response.headers["Accept-Encoding"] == "identity"
    assert [e.get("header") for e in problem["errors"]] == ["Content-Encoding"]
    assert row(app, failed_job["id"]) == before


@pytest.mark.parametrize("coding", ["identity", "Identity", ""])
def test_the_identity_coding_is_no_coding(client, app, failed_job, coding):
    response = client.post(job_url(failed_job["id"], "validation-failure"), data=_body("sent"),
                           content_type="application/json", headers={"Content-Encoding": coding})
    assert response.status_code == 200, response.get_json()
    assert row(app, failed_job["id"])["error_message"] == "sent"


def test_form_posts_are_a_415_problem(client, app, failed_job):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], "validation-failure"), data={"error_message": "x", "error_details": "{}"}
    )
    assert response.request.mimetype == "application/x-www-form-urlencoded"
    assert_problem(response, 415, "unsupported-media-type")
    assert row(app, failed_job["id"]) == before


# -- body size -------------------------------------------------------------------


def _padded(body: bytes, size: int) -> bytes:
    """``body`` followed by JSON whitespace up to ``size`` bytes."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_body_over_the_configured_limit_is_a_413_problem(make_app, auth_headers):
    small = make_app(MAX_CONTENT_LENGTH=1024)
    client = small.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = auth_headers["Authorization"]
    job = create_job(client)
    url = job_url(job["id"], "validation-failure")
    before = row(small, job["id"])
    response = client.post(url, data=_padded(_body("too big"), 1025), content_type="application/json")
    problem = assert_problem(response, 413, "content-too-large")
    assert "1024 bytes" in problem["detail"]
    # Where: the declared length (a trial found no place named).
    assert problem["errors"] == [{"field": "Content-Length", "header": "Content-Length",
                                  "detail": "must be at most 1024 bytes"}]
    assert row(small, job["id"]) == before
    # A body of exactly the limit is read.
    response = client.post(url, data=_padded(_body("just fits"), 1024), content_type="application/json")
    assert response.status_code == 200
    assert response.get_json()["error_message"] == "just fits"
    # Creating a job with an oversized body stores nothing.
    response = client.post(API, json={"document_id": "x" * 2000})
    assert_problem(response, 413, "content-too-large")
    assert job_count(small) == 1


def test_body_over_one_mebibyte_is_a_413_problem_by_default(client, app, failed_job):
    assert app.config["MAX_CONTENT_LENGTH"] == 1_048_576
    before = row(app, failed_job["id"])
    details = json.dumps(["x" * 1000] * 1100)
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        data=_body("huge", details),
        content_type="application/json",
    )
    assert_problem(response, 413, "content-too-large")
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


def test_a_415_names_the_type_sent_with_its_controls_as_escapes_and_cut_short(client, app, failed_job):
    before = row(app, failed_job["id"])
    url = job_url(failed_job["id"], "validation-failure")
    problem = assert_problem(client.post(url, data=_body(), content_type="text/\x1b[31mred"), 415,
                             "unsupported-media-type")
    assert "\x1b" not in problem["detail"] and "(got 'text/\\u001b[31mred')" in problem["detail"]
    long_type = "text/" + "x" * 500
    problem = assert_problem(client.post(url, data=_body(), content_type=long_type), 415, "unsupported-media-type")
    assert len(problem["detail"]) < 200 and "…')" in problem["detail"]
    assert row(app, failed_job["id"]) == before


def test_the_largest_integers_a_double_holds_are_kept(client, failed_job):
    # 10**308 (309 digits) is within a double's range and is kept exactly, as JSON integers are.
    big = "1" + "0" * 308
    response = client.post(job_url(failed_job["id"], "validation-failure"),
                           data=_body(details='{"n": ' + big + "}"), content_type="application/json")
    assert response.status_code == 200, response.get_json()
    stored = [item["error_details"].get("n") for item in client.get(job_url(failed_job["id"], "failures")).get_json()["items"]]
    assert int(big) in stored
