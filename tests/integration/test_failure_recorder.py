"""The failure recorder service, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from datetime import datetime, timedelta, timezone

import pytest

from app.extensions import db
from app.models import JobStatus
from app.registry import get_failure_recorder
from app.services.json_values import canonical_json, json_equal
from app.services.processing_jobs import (
    FailureRecorder,
    InvalidFailurePayloadError,
    InvalidTransitionError,
    JobNotFoundError,
    JSONText,
    SQLAlchemyFailureRecorder,
)
from app.services.processing_jobs.lifecycle import complete_job, create_job, get_job, start_job
from tests.helpers import set_status, stored_job_row

DETAILS = {
    "errors": [
        {"code": "code.unknown_icd10cm", "severity": "error", "message": "not a code", "pointer": "/entities/0/code"},
        {"code": "schema.required", "severity": "error", "message": "span is required", "pointer": "/entities/1"},
    ]
}


@pytest.fixture
def job(app_ctx):
    # Only the id: tests drop the session to read back fresh values.
    return SimpleNamespace(id=create_job("doc-0001", "entity_extraction").id)


@pytest.fixture
def recorder(app_ctx) -> FailureRecorder:
    return get_failure_recorder()


def test_recorder_is_registered_once_on_the_app(app_ctx):
    first = get_failure_recorder()
    assert first is get_failure_recorder(app_ctx)
    assert isinstance(first, SQLAlchemyFailureRecorder)
    assert isinstance(first, FailureRecorder)
    assert first.limits.max_message_length == app_ctx.config["MAX_ERROR_MESSAGE_LENGTH"]


@pytest.mark.parametrize("starting", ["Pending", "Processing"])
def test_records_a_validation_failure(recorder, job, starting):
    if starting == "Processing":
        start_job(job.id)
    before = datetime.now(timezone.utc)
    returned = recorder.record_validation_failure(job.id, "  2 entities failed validation  ", DETAILS)
    row = stored_job_row(job.id)
    assert returned.status == row["status"] == "Validation_Failed"
    assert row["error_message"] == "2 entities failed validation"
    # Recognised as the normalized format: stored as the v1 envelope.
    assert json_equal(row["error_details"], {"schema_version": 1, **DETAILS, "error_count": 2, "truncated": False})
    assert row["error_format"] == "normalized"
    completed = returned.completed_at
    assert completed.tzinfo is not None and completed.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= completed <= datetime.now(timezone.utc) + timedelta(seconds=1)


def _nested(depth: int) -> list:
    value: list = ["deep"]
    for _ in range(depth - 1):
        value = [value]
    return value


ROUND_TRIP_VALUES = [
    DETAILS,
    [],
    {},
    "a plain string",
    0,
    -17,
    2**53 + 1,
    3.25,
    1e300,
    True,
    False,
    None,
    {"nested": {"deeper": [1, [2, [3, {"k": None}]]]}, "unicode": "ünïcödé 😀 日本語", "quote": "\"'<>&"},
    {"b": 1, "a": 2, "A": 3},
]


@pytest.mark.parametrize("details", ROUND_TRIP_VALUES, ids=lambda v: canonical_json(v)[:30])
def test_error_details_round_trip_as_json(recorder, job, details):
    recorder.record_validation_failure(job.id, "failed", details, error_format="free-form")
    db.session.remove()  # read back through a fresh session, not the identity map
    stored = stored_job_row(job.id)["error_details"]
    assert json_equal(stored, details)


def test_json_text_is_parsed(recorder, job):
    recorder.record_validation_failure(job.id, "failed", JSONText('{"errors": [{"code": "x"}]}'))
    assert stored_job_row(job.id)["error_details"] == {"errors": [{"code": "x"}]}  # not recognised: free-form
    recorder.record_validation_failure(job.id, "failed", b'["bytes", "are", "JSON text"]')
    assert stored_job_row(job.id)["error_details"] == ["bytes", "are", "JSON text"]


def test_unknown_job_raises_not_found_and_changes_nothing(recorder, job):
    before = stored_job_row(job.id)
    for unknown in (uuid.uuid4(), "not-a-uuid", ""):
        with pytest.raises(JobNotFoundError):
            recorder.record_validation_failure(unknown, "failed", DETAILS)
    assert stored_job_row(job.id) == before


@pytest.mark.parametrize(
    ("message", "details", "field"),
    [
        ("", DETAILS, "error_message"),
        ("   \t\n ", DETAILS, "error_message"),
        (None, DETAILS, "error_message"),
        (42, DETAILS, "error_message"),
        ("x" * 1001, DETAILS, "error_message"),
        ("failed", {"not": {"json"}}, "error_details.not"),
        ("failed", float("nan"), "error_details"),
        ("failed", JSONText("{not json"), "error_details"),
        ("failed", b"\xff\xfe", "error_details"),
        ("failed", _nested(33), "error_details"),
    ],
)
def test_refused_payloads_raise_and_change_nothing(recorder, job, message, details, field):
    recorder.record_validation_failure(job.id, "first failure", {"errors": []})
    before = stored_job_row(job.id)
    with pytest.raises(InvalidFailurePayloadError) as caught:
        recorder.record_validation_failure(job.id, message, details)
    assert any(e["field"].startswith(field) for e in caught.value.errors)
    assert stored_job_row(job.id) == before


def test_message_at_the_limit_is_accepted(recorder, job):
    recorder.record_validation_failure(job.id, "x" * 1000, DETAILS)
    assert len(stored_job_row(job.id)["error_message"]) == 1000


def test_recording_the_same_failure_again_is_idempotent(recorder, job):
    recorder.record_validation_failure(job.id, "failed", DETAILS)
    first = stored_job_row(job.id)
    # Same JSON value, other key order: still the same failure.
    same = {"errors": [dict(reversed(list(e.items()))) for e in DETAILS["errors"]]}
    recorder.record_validation_failure(job.id, "failed", same)
    assert stored_job_row(job.id) == first


def test_a_different_failure_replaces_the_stored_one(recorder, job):
    recorder.record_validation_failure(job.id, "first", DETAILS)
    first = stored_job_row(job.id)
    recorder.record_validation_failure(job.id, "second", {"free": "form"})
    second = stored_job_row(job.id)
    assert second["error_message"] == "second"
    assert second["error_details"] == {"free": "form"}
    assert second["completed_at"] >= first["completed_at"]


def test_json_true_and_one_are_different_failures(recorder, job):
    recorder.record_validation_failure(job.id, "failed", {"flag": 1})
    recorder.record_validation_failure(job.id, "failed", {"flag": True})
    assert stored_job_row(job.id)["error_details"] == {"flag": True}
    assert stored_job_row(job.id)["error_details"]["flag"] is True


def test_a_failed_job_can_be_marked_validation_failed(recorder, job):
    recorder.record_failure(job.id, "worker crashed")
    assert stored_job_row(job.id)["status"] == "Failed"
    recorder.record_validation_failure(job.id, "invalid entities", DETAILS)
    assert stored_job_row(job.id)["status"] == "Validation_Failed"


def test_completed_job_is_refused_and_unchanged(recorder, job):
    complete_job(job.id)
    before = stored_job_row(job.id)
    with pytest.raises(InvalidTransitionError) as caught:
        recorder.record_validation_failure(job.id, "too late", DETAILS)
    assert caught.value.status == 409
    assert stored_job_row(job.id) == before
    assert before["status"] == JobStatus.COMPLETED.value


def test_unstorable_text_follows_one_rule_on_both_backends(recorder, job):
    recorder.record_validation_failure(
        job.id, "bad\x00byte \ud83d", {"k\x00": "v\x00\udc00", "ok": "😀 é"}
    )
    row = stored_job_row(job.id)
    assert row["error_message"] == "bad\ufffdbyte \ufffd"
    assert row["error_details"] == {"k\ufffd": "v\ufffd\ufffd", "ok": "😀 é"}


def test_naive_datetimes_never_reach_the_database(app_ctx, job):
    job = get_job(job.id)
    job.completed_at = datetime(2026, 1, 1, 12, 0)  # naive
    with pytest.raises(Exception, match="naive datetime refused"):
        db.session.commit()
    db.session.rollback()
    assert stored_job_row(job.id)["completed_at"] is None


def test_other_time_zones_are_stored_as_utc(app_ctx, job):
    job_id = job.id
    get_job(job_id).started_at = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    db.session.commit()
    db.session.remove()
    started = stored_job_row(job_id)["started_at"]
    # The raw row: SQLite gives naive UTC text back, PostgreSQL an aware value.
    assert started.replace(tzinfo=timezone.utc) == datetime(2026, 1, 1, 17, 0, tzinfo=timezone.utc)
    assert get_job(job_id).started_at == datetime(2026, 1, 1, 17, 0, tzinfo=timezone.utc)
    assert get_job(job_id).started_at.tzinfo is not None


def test_status_check_constraint_refuses_unknown_status(app_ctx, job):
    with pytest.raises(Exception):
        set_status(job.id, "validation_failed")
    db.session.rollback()
    assert stored_job_row(job.id)["status"] == "Pending"
