"""``error_format``: free-form details kept as sent, recognised formats normalised, unknown ones refused.

Every refusal is checked as ``helpers.assert_problem`` says, with the stored row
unchanged and a working client afterwards."""

from __future__ import annotations


import pytest

from app.services.json_values import canonical_json
from tests.integration.api.helpers import (
    assert_client_still_works,
    assert_matches_row,
    assert_problem,
    fields,
    job_url,
    post_ok,
    row,
)


#: Items in the normalized shape (error-details v1).
NORMALIZED_ITEMS = [
    {
        "code": "unit.not_ucum",
        "severity": "error",
        "message": "unit is not a valid UCUM code",
        "pointer": "/entities/1/value/unit",
    },
    {
        "code": "code.unknown_icd10cm",
        "severity": "warning",
        "message": "unknown code",
        "pointer": "/entities/0/code",
    },
]

#: Every way a failure report reaches the recorder over HTTP: (action, body
#: without error_format). failed_job is Validation_Failed, from which all three
#: are allowed, so only the payload decides the answer.
FAILURE_REPORTS = [
    pytest.param(
        "validation-failure",
        {"error_message": "invalid", "error_details": {"k": "v"}},
        id="validation-failure",
    ),
    pytest.param(
        "result",
        {"status": "validation_failed", "error_message": "invalid", "error_details": {"k": "v"}},
        id="result-validation_failed",
    ),
    pytest.param(
        "result",
        {"status": "failed", "error_message": "crashed", "error_details": {"k": "v"}},
        id="result-failed",
    ),
]


@pytest.mark.parametrize(("action", "body"), FAILURE_REPORTS)
@pytest.mark.parametrize(
    ("error_format", "bad_fields"),
    [
        pytest.param("xml", ["error_format"], id="xml"),
        pytest.param("Pydantic", ["error_format"], id="wrong-case"),
        pytest.param("free_form", ["error_format"], id="underscore"),
        pytest.param("FREE-FORM", ["error_format"], id="upper-case"),
        pytest.param(" normalized", ["error_format"], id="leading-space"),
        pytest.param("", ["error_format"], id="empty"),
        # Not a string: one fault, named once, by the list of the names.
        pytest.param(None, ["error_format"], id="null"),
        pytest.param(3, ["error_format"], id="number"),
        pytest.param(["normalized"], ["error_format"], id="list"),
    ],
)
def test_unknown_error_format_is_a_422_naming_it_and_changes_nothing(
    client, app, failed_job, action, body, error_format, bad_fields
):
    url = job_url(failed_job["id"], action)
    before = row(app, failed_job["id"])
    response = client.post(url, json={**body, "error_format": error_format})
    problem = assert_problem(response, 422, "invalid-fields")
    assert fields(problem) == bad_fields
    assert {e["pointer"] for e in problem["errors"]} == {"#/error_format"}
    assert any(e["detail"].startswith("must be one of: ") for e in problem["errors"])
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])
    # The same report with a known format is accepted: only the name was wrong.
    accepted = post_ok(client, url, {**body, "error_format": "free-form"})
    assert accepted["error_details"] == {"k": "v"}
    assert accepted["error_format"] == "free-form"


@pytest.mark.parametrize(
    "details",
    [
        {"errors": NORMALIZED_ITEMS},
        {"errors": []},
        NORMALIZED_ITEMS,
        {"schema_version": 1, "errors": NORMALIZED_ITEMS, "error_count": 2, "truncated": False},
        # Would be refused as a malformed normalized payload; free-form takes it as is.
        {"errors": [{**NORMALIZED_ITEMS[0], "severity": "catastrophic", "extra": True}]},
        [{"loc": ["entities", 0, "text"], "msg": "too long", "type": "string_too_long"}],
    ],
    ids=["v0-items", "v0-empty", "bare-items", "v1-envelope", "malformed-items", "pydantic-looking"],
)
def test_free_form_format_stores_details_as_sent_even_when_they_look_structured(client, app, job, details):
    url = job_url(job["id"], "validation-failure")
    updated = post_ok(
        client, url, {"error_message": "invalid", "error_details": details, "error_format": "free-form"}
    )
    assert updated["error_format"] == "free-form"
    assert canonical_json(updated["error_details"]) == canonical_json(details)
    stored = row(app, job["id"])
    assert stored["error_format"] == "free-form"
    assert canonical_json(stored["error_details"]) == canonical_json(details)
    assert_matches_row(updated, stored)
    assert client.get(job_url(job["id"])).get_json() == updated


def test_normalized_looking_details_are_stored_as_the_envelope(client, app, job):
    url = job_url(job["id"], "validation-failure")
    envelope = {"schema_version": 1, "errors": NORMALIZED_ITEMS, "error_count": 2, "truncated": False}
    # No format given: recognised from the items' markers.
    updated = post_ok(
        client, url, {"error_message": "invalid", "error_details": {"errors": NORMALIZED_ITEMS}}
    )
    assert updated["status"] == "Validation_Failed"
    assert updated["error_format"] == "normalized"
    assert updated["error_details"] == envelope
    stored = row(app, job["id"])
    assert stored["error_format"] == "normalized"
    assert canonical_json(stored["error_details"]) == canonical_json(envelope)
    assert_matches_row(updated, stored)
    # Declared, and sent again as the envelope: the same stored failure, so nothing changes.
    for body in (
        {
            "error_message": "invalid",
            "error_details": {"errors": NORMALIZED_ITEMS},
            "error_format": "normalized",
        },
        {"error_message": "invalid", "error_details": envelope},
    ):
        assert post_ok(client, url, body) == updated
        assert row(app, job["id"]) == stored
    # The same details declared free-form are a different failure: stored as sent.
    free = post_ok(
        client,
        url,
        {
            "error_message": "invalid",
            "error_details": {"errors": NORMALIZED_ITEMS},
            "error_format": "free-form",
        },
    )
    assert free["error_format"] == "free-form"
    assert free["error_details"] == {"errors": NORMALIZED_ITEMS}
    assert_matches_row(free, row(app, job["id"]))


@pytest.mark.parametrize(("action", "body"), FAILURE_REPORTS)
@pytest.mark.parametrize(
    ("details", "bad_fields"),
    [
        ({"free": "PHI-note"}, ["error_details"]),
        ("PHI-plain string", ["error_details"]),
        (None, ["error_details"]),
        ({"errors": NORMALIZED_ITEMS}, ["error_details"]),
        # Every item's fault at once, not only the first's.
        (NORMALIZED_ITEMS, [f"error_details.{n}.type" for n in range(len(NORMALIZED_ITEMS))]),
        (["PHI-x"], ["error_details.0"]),
        ([{"loc": ["a", 0], "msg": "PHI-m", "type": 5}], ["error_details.0.type"]),
    ],
    ids=[
        "object", "string", "null", "normalized-v0", "normalized-items", "array-of-strings", "type-not-string"
    ],
)
def test_pydantic_format_with_a_non_pydantic_payload_is_a_422_and_changes_nothing(
    client, app, failed_job, action, body, details, bad_fields
):
    before = row(app, failed_job["id"])
    response = client.post(
        job_url(failed_job["id"], action),
        json={**body, "error_details": details, "error_format": "pydantic"},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    assert fields(problem) == bad_fields
    for error in problem["errors"]:
        assert error["field"].startswith("error_details")
        assert error["pointer"] == "#/" + error["field"].replace(".", "/")
    # The detail says what was expected without quoting what was sent.
    assert "PHI-" not in response.get_data(as_text=True)
    assert row(app, failed_job["id"]) == before
    assert_client_still_works(client, failed_job["id"])


def test_one_422_names_the_fault_of_every_bad_item_beside_the_message_and_changes_nothing(client, app, failed_job):
    # A worker that sent three malformed items (and an empty message) learns
    # of all four faults in one answer, instead of one per retry.
    before = row(app, failed_job["id"])
    items = [
        {**NORMALIZED_ITEMS[0], "severity": "fatalish"},
        NORMALIZED_ITEMS[0],
        {key: value for key, value in NORMALIZED_ITEMS[0].items() if key != "message"},
        {**NORMALIZED_ITEMS[0], "pointer": "entities/0"},
    ]
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        json={"error_message": "", "error_details": items, "error_format": "normalized"},
    )
    problem = assert_problem(response, 422, "invalid-fields")  # the empty message breaks the schema
    assert fields(problem) == [
        "error_details.0.severity", "error_details.2.message", "error_details.3.pointer", "error_message",
    ]
    assert row(app, failed_job["id"]) == before
    # Without the schema's fault, the recorder's own 422 names every item too.
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        json={"error_message": "bad items", "error_details": items, "error_format": "normalized"},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    assert fields(problem) == ["error_details.0.severity", "error_details.2.message", "error_details.3.pointer"]
    assert row(app, failed_job["id"]) == before


def test_an_envelopes_own_faults_are_named_beside_its_items_faults(client, app, failed_job):
    # A trial: a v1 envelope whose error_count was short named only that,
    # and the worker learnt of its items' faults on the next try.
    before = row(app, failed_job["id"])
    envelope = {"schema_version": 2, "error_count": 1, "truncated": "no",
                "errors": [{**NORMALIZED_ITEMS[0], "severity": "fatalish"}, NORMALIZED_ITEMS[0]]}
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        json={"error_message": "bad envelope", "error_details": envelope, "error_format": "normalized"},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    # In order: the envelope's fields, then the items'.
    assert [error["field"] for error in problem["errors"]] == [
        "error_details.schema_version", "error_details.error_count", "error_details.truncated",
        "error_details.errors.0.severity"]
    assert row(app, failed_job["id"]) == before
    # A right error_count with a truncated flag that disagrees with it: that alone.
    envelope = {"schema_version": 1, "error_count": 3, "truncated": False, "errors": [NORMALIZED_ITEMS[0]]}
    response = client.post(
        job_url(failed_job["id"], "validation-failure"),
        json={"error_message": "bad envelope", "error_details": envelope, "error_format": "normalized"},
    )
    assert fields(assert_problem(response, 422, "invalid-failure")) == ["error_details.truncated"]
    assert row(app, failed_job["id"]) == before


def test_a_value_of_the_wrong_type_is_one_error_not_also_its_enums(client, app, failed_job):
    # A trial: error_format 5 was "must be string" and "must be one of ...":
    # the list of the names is the one that helps.
    before = row(app, failed_job["id"])
    response = client.post(job_url(failed_job["id"], "validation-failure"),
                           json={"error_message": 5, "error_format": 5, "error_details": {}})
    problem = assert_problem(response, 422, "invalid-fields")
    assert [(e["pointer"], e["detail"][:16]) for e in problem["errors"]] == [
        ("#/error_format", "must be one of: "), ("#/error_message", "must be string")]
    assert row(app, failed_job["id"]) == before
