"""Recording a validation failure: ``POST .../validation-failure``.

Every refusal is checked as ``helpers.assert_problem`` says, with the stored row
unchanged and a working client afterwards."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app.registry import get_failure_recorder
from app.services.json_values import canonical_json
from tests.helpers import aborted_statement
from tests.integration.api.helpers import (
    DETAILS,
    FIRST_FAILURE,
    assert_client_still_works,
    assert_job_json,
    assert_matches_row,
    assert_problem,
    job_url,
    nested_list,
    parse_timestamp,
    post_ok,
    row,
)


def test_record_validation_failure_returns_the_updated_job(client, app, job):
    before = datetime.now(timezone.utc)
    response = client.post(
        job_url(job["id"], "validation-failure"),
        json={"error_message": "  2 entities failed validation\n", "error_details": DETAILS},
    )
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    updated = response.get_json()
    assert_job_json(updated)
    assert updated["id"] == job["id"]
    assert updated["status"] == "Validation_Failed"
    assert updated["error_message"] == "2 entities failed validation"
    assert updated["error_details"] == DETAILS
    assert updated["error_format"] == "free-form"
    assert updated["created_at"] == job["created_at"]
    assert updated["started_at"] is None
    completed = parse_timestamp(updated["completed_at"])
    assert before - timedelta(seconds=1) <= completed <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert parse_timestamp(updated["updated_at"]) >= parse_timestamp(job["updated_at"])
    assert client.get(job_url(job["id"])).get_json() == updated
    assert_matches_row(updated, row(app, job["id"]))


@pytest.mark.parametrize(
    "details",
    [
        DETAILS,
        [],
        {},
        "a plain string",
        "",
        0,
        -17,
        2**53 + 1,
        3.25,
        True,
        False,
        None,
        {"b": [1, {"c": None}], "a": "z"},
        nested_list(32),
    ],
    ids=lambda v: canonical_json(v)[:30],
)
def test_error_details_accept_any_json_value(client, app, job, details):
    updated = post_ok(
        client,
        job_url(job["id"], "validation-failure"),
        {"error_message": "failed", "error_details": details},
    )
    assert canonical_json(updated["error_details"]) == canonical_json(details)
    # JSON null means "no details": there is no format to name.
    assert updated["error_format"] == (None if details is None else "free-form")
    assert_matches_row(updated, row(app, job["id"]))
    assert canonical_json(row(app, job["id"])["error_details"]) == canonical_json(details)


def test_null_details_name_no_format_even_when_free_form_is_declared(client, app, job):
    """A trial: ``"error_format": "free-form"`` with null details was stored
    as free-form, though the contract says null when there are no details."""
    updated = post_ok(client, job_url(job["id"], "validation-failure"),
                      {"error_message": "failed", "error_format": "free-form", "error_details": None})
    assert updated["error_format"] is None and updated["error_details"] is None
    assert row(app, job["id"])["error_format"] is None


def test_message_at_the_limit_is_accepted(client, app, job):
    updated = post_ok(
        client, job_url(job["id"], "validation-failure"), {"error_message": "m" * 1000, "error_details": {}}
    )
    assert updated["error_message"] == "m" * 1000
    assert row(app, job["id"])["error_message"] == "m" * 1000


def test_recording_the_same_failure_twice_gives_the_same_answer(client, app, job):
    url = job_url(job["id"], "validation-failure")
    first = client.post(url, json={"error_message": "failed", "error_details": DETAILS})
    stored = row(app, job["id"])
    # Same message after trimming, same JSON value in another key order.
    again = {"problems": [dict(reversed(list(DETAILS["problems"][0].items())))], "document": "note-17"}
    second = client.post(url, json={"error_message": " failed ", "error_details": again})
    assert first.status_code == second.status_code == 200
    assert second.get_json() == first.get_json()
    assert second.get_json()["completed_at"] == first.get_json()["completed_at"]
    assert second.get_json()["updated_at"] == first.get_json()["updated_at"]
    assert row(app, job["id"]) == stored


def test_a_different_failure_replaces_the_stored_one(client, app, failed_job):
    updated = post_ok(
        client,
        job_url(failed_job["id"], "validation-failure"),
        {"error_message": "second failure", "error_details": {"problems": []}},
    )
    assert updated["error_message"] == "second failure"
    assert updated["error_details"] == {"problems": []}
    assert updated["error_format"] == "free-form"
    assert parse_timestamp(updated["completed_at"]) >= parse_timestamp(failed_job["completed_at"])
    assert parse_timestamp(updated["updated_at"]) >= parse_timestamp(failed_job["updated_at"])
    assert_matches_row(updated, row(app, failed_job["id"]))


def test_an_integer_beyond_double_range_is_refused_and_one_stored_before_compares_safely(client, app, job):
    # JSON's grammar allows 1 followed by 400 zeros, but no double holds it: refused like 1e400 (a trial:
    # JavaScript and jq read it back as Infinity), pointer at the number, nothing stored.
    url = job_url(job["id"], "validation-failure")
    huge = b'{"error_message": "m", "error_details": {"n": 1' + b"0" * 400 + b"}}"
    before = row(app, job["id"])
    problem = assert_problem(client.post(url, data=huge, content_type="application/json"), 400, "malformed-json")
    assert [e["pointer"] for e in problem["errors"]] == ["#/error_details/n"]
    assert row(app, job["id"]) == before
    # A row stored before that rule may hold one: comparing it with the next report's float must not overflow.
    with app.app_context():
        get_failure_recorder().record_validation_failure(uuid.UUID(job["id"]), "m", {"n": 10**400})
    assert row(app, job["id"])["error_details"] == {"n": 10**400}
    updated = post_ok(client, url, {"error_message": "m", "error_details": {"n": 1.5}})
    assert updated["error_details"] == {"n": 1.5}
    assert_matches_row(updated, row(app, job["id"]))


def test_a_fhir_expression_index_longer_than_int_reads_is_kept_as_a_capped_pointer(client, app, job):
    index = "9" * 5000  # more digits than int() converts
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "expression": [f"Patient.name[{index}]"]}],
    }
    updated = post_ok(
        client,
        job_url(job["id"], "validation-failure"),
        {"error_message": "m", "error_details": outcome, "error_format": "fhir-operationoutcome"},
    )
    # Too long for a stored pointer: cut to its longest ancestor that fits.
    assert updated["error_details"]["errors"][0]["pointer"] == "/name"
    assert_matches_row(updated, row(app, job["id"]))


def test_validation_failure_on_a_completed_job_is_a_409_and_changes_nothing(client, app, job):
    post_ok(client, job_url(job["id"], "result"), {"status": "completed"})
    before = row(app, job["id"])
    response = client.post(job_url(job["id"], "validation-failure"), json=FIRST_FAILURE)
    problem = assert_problem(response, 409, "invalid-transition")
    assert "Completed" in problem["detail"]
    assert row(app, job["id"]) == before
    assert before["status"] == "Completed" and before["error_message"] is None
    assert_client_still_works(client, job["id"])


def test_a_report_deadlocked_on_every_attempt_is_a_503_saying_so_and_stores_nothing(client, app, job, monkeypatch):
    # Each replay waits a random pause first; after the last attempt the
    # answer names the conflict, not an unreachable database.
    from app import unit_of_work
    from app.services.processing_jobs.failure_recorder import SQLAlchemyFailureRecorder

    real = SQLAlchemyFailureRecorder.record_checked
    calls: list[int] = []
    pauses: list[float] = []

    def always_deadlocked(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(1)
        real(self, *args, **kwargs)
        raise aborted_statement()

    monkeypatch.setattr(SQLAlchemyFailureRecorder, "record_checked", always_deadlocked)
    monkeypatch.setattr(unit_of_work.time, "sleep", pauses.append)
    before = row(app, job["id"])
    response = client.post(job_url(job["id"], "validation-failure"), headers={"Idempotency-Key": "conflict-1"},
                           json={"error_message": "2 entities failed validation", "error_details": DETAILS})
    problem = assert_problem(response, 503, "service-unavailable")
    assert "concurrent writes" in problem["detail"] and "nothing was stored" in problem["detail"]
    assert response.headers["Retry-After"]
    assert len(calls) == unit_of_work.WRITE_ATTEMPTS == len(pauses) + 1
    # Full jitter: each pause is at most its doubling ceiling.
    assert all(0 <= pause <= unit_of_work.REPLAY_PAUSE_S * 2 ** n for n, pause in enumerate(pauses))
    assert row(app, job["id"]) == before


@pytest.mark.parametrize("key", [None, "replay-after-deadlock-1"])
def test_a_report_aborted_as_a_deadlock_victim_is_recorded_once(client, app, job, monkeypatch, key):
    # PostgreSQL aborts one of two deadlocked transactions (40P01); the API
    # runs the request's transaction again instead of answering 503. The
    # first run's failure, history row and claim were rolled back with it.
    import uuid

    import sqlalchemy as sa

    from app.extensions import db
    from app.models import JobFailure
    from app.services.processing_jobs.failure_recorder import SQLAlchemyFailureRecorder

    real = SQLAlchemyFailureRecorder.record_checked
    calls: list[int] = []

    def deadlocked_once(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(1)
        recorded = real(self, *args, **kwargs)
        if len(calls) == 1:
            raise aborted_statement()
        return recorded

    monkeypatch.setattr(SQLAlchemyFailureRecorder, "record_checked", deadlocked_once)
    headers = {} if key is None else {"Idempotency-Key": key}
    response = client.post(job_url(job["id"], "validation-failure"), headers=headers,
                           json={"error_message": "2 entities failed validation", "error_details": DETAILS})
    assert response.status_code == 200, response.get_json()
    assert calls == [1, 1]
    assert response.get_json()["status"] == "Validation_Failed"
    with app.app_context():
        history = db.session.scalars(
            sa.select(JobFailure).where(JobFailure.job_id == uuid.UUID(job["id"]))).all()
        assert len(history) == 1
    assert_matches_row(response.get_json(), row(app, job["id"]))
    if key is not None:  # the stored answer is the replay's, given again without a third run
        again = client.post(job_url(job["id"], "validation-failure"), headers=headers,
                            json={"error_message": "2 entities failed validation", "error_details": DETAILS})
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.get_json() == response.get_json()
        assert calls == [1, 1]


def test_a_normalized_code_with_a_control_character_is_a_422_at_its_pointer(client, app, job):
    # The error_code filter could never find it: no query parameter may hold ESC.
    before = row(app, job["id"])
    details = {"errors": [{"code": "unit\x1b[31m", "severity": "error", "message": "m", "pointer": "/entities/0"}]}
    response = client.post(
        job_url(job["id"], "validation-failure"),
        json={"error_message": "failed", "error_details": details, "error_format": "normalized"},
    )
    problem = assert_problem(response, 422, "invalid-failure")
    assert [e["pointer"] for e in problem["errors"]] == ["#/error_details/errors/0/code"]
    assert "control character" in problem["errors"][0]["detail"]
    assert row(app, job["id"]) == before
    assert_client_still_works(client, job["id"])


@pytest.mark.parametrize(("path", "extra"), [
    ("validation-failure", {}), ("result", {"status": "validation_failed"}), ("result", {"status": "failed"}),
])
def test_a_report_is_normalized_once_before_the_transaction(client, app, job, monkeypatch, path, extra):
    # The API checks a report with its schema (so one 422 names every fault)
    # and the recorder stores that checked report: its details are not
    # normalized a second time inside the transaction, under the job's lock.
    from app.services.processing_jobs import failure_recorder
    from app.unit_of_work import in_write_transaction

    calls = []
    normalize = failure_recorder.normalize_error_details
    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(in_write_transaction())
        return normalize(*args, **kwargs)

    monkeypatch.setattr(failure_recorder, "normalize_error_details", counted)
    response = client.post(job_url(job["id"], path), json={**FIRST_FAILURE, **extra},
                           headers={"Idempotency-Key": f"once-{path}-{len(extra)}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert calls == [False]  # once, and outside the write transaction
    answer = response.get_json()
    assert answer["status"] == ("Failed" if extra.get("status") == "failed" else "Validation_Failed")
    assert answer["error_details"] == row(app, job["id"])["error_details"]


def test_record_checked_records_only_failures(app_ctx, job):
    from app.models import JobStatus
    from app.registry import get_failure_recorder

    recorder = get_failure_recorder()
    report = recorder.check_report("bad", {"errors": []})
    with pytest.raises(ValueError, match="not Completed"):
        recorder.record_checked(job["id"], JobStatus.COMPLETED, report)
    assert recorder.record_checked(job["id"], JobStatus.FAILED, report).status == JobStatus.FAILED
