"""Job lifecycle services: start, complete with entities, requeue, failure history."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ExtractedEntity, JobFailure
from app.registry import get_failure_recorder
from app.services.processing_jobs import InvalidTransitionError
from app.services.processing_jobs.errors import InvalidEntitiesError
from app.services.processing_jobs.lifecycle import (
    complete_job,
    create_job,
    list_entities,
    list_failures,
    requeue_job,
    start_job,
)
from tests.helpers import stored_job_row

ENTITIES = [
    {
        "entity_type": "Condition", "text": "type 2 diabetes", "code": "E11.9",
        "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.97,
        "span": {"page": 1, "start": 120, "end": 135},
    },
    {
        "entity_type": "Observation", "text": "HbA1c 7.2 %", "code": "4548-4", "code_system": "http://loinc.org",
        "confidence": 0.9, "span": {"start": 200, "end": 211},
        "attributes": {"value": {"value": 7.2, "unit": "%"}},
    },
]


def _count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_start_sets_started_at_and_refuses_twice(app_ctx):
    job_id = create_job("doc-1").id
    started = start_job(job_id)
    assert started.status == "Processing" and started.started_at is not None
    with pytest.raises(InvalidTransitionError):
        start_job(job_id)


def test_complete_stores_entities_with_typed_columns(app_ctx):
    job_id = create_job("doc-1").id
    start_job(job_id)
    complete_job(job_id, ENTITIES)
    db.session.remove()
    assert stored_job_row(job_id)["status"] == "Completed"
    entities = list_entities(job_id)
    assert [e.position for e in entities] == [0, 1]
    first, second = entities
    assert (first.entity_type, first.text, first.code, first.code_system) == (
        "Condition", "type 2 diabetes", "E11.9", "http://hl7.org/fhir/sid/icd-10-cm",
    )
    assert first.confidence == pytest.approx(0.97)
    assert (first.page, first.span_start, first.span_end) == (1, 120, 135)
    assert second.page is None and second.attributes == {"value": {"value": 7.2, "unit": "%"}}


def test_bad_entity_stores_nothing_and_leaves_the_job(app_ctx):
    job_id = create_job("doc-1").id
    start_job(job_id)
    before = stored_job_row(job_id)
    bad = [ENTITIES[0], {**ENTITIES[1], "span": {"start": 10, "end": 5}}]
    with pytest.raises(InvalidEntitiesError) as caught:
        complete_job(job_id, bad)
    assert caught.value.errors[0]["pointer"] == "#/entities/1/span/end"
    assert stored_job_row(job_id) == before
    assert _count(ExtractedEntity) == 0


def test_completed_job_refuses_a_second_result_and_keeps_its_entities(app_ctx):
    job_id = create_job("doc-1").id
    complete_job(job_id, ENTITIES)
    with pytest.raises(InvalidTransitionError):
        complete_job(job_id, ENTITIES[:1])
    assert _count(ExtractedEntity) == 2


def test_history_keeps_every_failure_across_a_requeue(app_ctx):
    recorder = get_failure_recorder()
    job_id = create_job("doc-1").id
    recorder.record_validation_failure(job_id, "first", {"free": 1})
    recorder.record_validation_failure(job_id, "first", {"free": 1})  # the same: not a new failure
    requeued = requeue_job(job_id)
    assert requeued.status == "Pending"
    assert requeued.error_message is None and requeued.completed_at is None
    start_job(job_id)
    recorder.record_failure(job_id, "second", {"free": 2})
    db.session.remove()
    history = list_failures(job_id)
    assert [(f.status, f.error_message, f.error_details) for f in history] == [
        ("Validation_Failed", "first", {"free": 1}),
        ("Failed", "second", {"free": 2}),
    ]
    assert history[0].recorded_at <= history[1].recorded_at
    row = stored_job_row(job_id)
    assert (row["status"], row["error_message"]) == ("Failed", "second")  # the row holds the latest


@pytest.mark.parametrize("status", ["Pending", "Processing", "Completed"])
def test_only_failed_jobs_can_be_requeued(app_ctx, status):
    job_id = create_job("doc-1").id
    if status == "Processing":
        start_job(job_id)
    elif status == "Completed":
        complete_job(job_id)
    with pytest.raises(InvalidTransitionError):
        requeue_job(job_id)
    assert stored_job_row(job_id)["status"] == status


def test_refused_failure_adds_no_history(app_ctx):
    job_id = create_job("doc-1").id
    complete_job(job_id)
    with pytest.raises(InvalidTransitionError):
        get_failure_recorder().record_validation_failure(job_id, "late", {})
    assert _count(JobFailure) == 0


def test_history_rows_are_new_objects_read_back_fresh(app_ctx):
    """Details are replaced, never mutated in place: a fresh session sees the new value."""
    recorder = get_failure_recorder()
    job_id = create_job("doc-1").id
    details = {"nested": {"count": 1}}
    recorder.record_validation_failure(job_id, "one", details)
    details["nested"]["count"] = 2  # mutating the caller's object changes nothing stored
    recorder.record_validation_failure(job_id, "two", details)
    db.session.remove()
    assert stored_job_row(job_id)["error_details"] == {"nested": {"count": 2}}
    assert [f.error_details for f in list_failures(job_id)] == [{"nested": {"count": 1}}, {"nested": {"count": 2}}]
