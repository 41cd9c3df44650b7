"""Retention: ``flask jobs purge`` and :mod:`app.services.retention`, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ExtractedEntity, IdempotencyRecord, JobFailure, ProcessingJob
from app.models.access import WorkerToken
from app.services import worker_tokens
from app.services.retention import count_expired, parse_age, purge_finished_jobs

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=400)
RECENT = NOW - timedelta(days=10)


def _job(status: str, completed_at: datetime | None, *, failures: int = 0, entities: int = 0) -> uuid.UUID:
    job = ProcessingJob(document_id="doc", status=status, completed_at=completed_at, created_at=OLD)
    db.session.add(job)
    db.session.flush()
    for n in range(failures):
        db.session.add(
            JobFailure(
                job_id=job.id, status="Validation_Failed", error_message=f"failure {n}", recorded_at=OLD
            )
        )
    for n in range(entities):
        db.session.add(
            ExtractedEntity(
                job_id=job.id,
                position=n,
                entity_type="Condition",
                text="asthma",
                confidence=0.9,
                span_start=0,
                span_end=6,
            )
        )
    db.session.commit()
    return job.id


def _idempotency(key: str, created_at: datetime, token: str = "retention-worker") -> None:
    record = db.session.scalar(sa.select(WorkerToken).where(WorkerToken.name == token))
    if record is None:
        _, record = worker_tokens.create_worker_token(token)
    db.session.add(
        IdempotencyRecord(
            token_id=record.id,
            key=key,
            fingerprint="0" * 64,
            method="POST",
            path="/x",
            response_status=200,
            response_body={},
            created_at=created_at,
        )
    )
    db.session.commit()


def _count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.fixture
def mixed_jobs(app_ctx) -> dict[str, uuid.UUID]:
    """Expired and kept jobs of every kind, with history and entities."""
    jobs = {
        "old_completed": _job("Completed", OLD, entities=3),
        "old_failed": _job("Failed", OLD, failures=1),
        "old_validation_failed": _job("Validation_Failed", OLD, failures=2),
        "recent_validation_failed": _job("Validation_Failed", RECENT, failures=1),
        "old_pending": _job("Pending", None, failures=1),  # requeued: history kept
        "old_processing": _job("Processing", None),
    }
    _idempotency("old-key", OLD)
    _idempotency("recent-key", RECENT)
    return jobs


def test_purge_keeps_another_tokens_recent_answer_under_the_same_key(app_ctx):
    """Keys are per token: an old answer's key may be another token's recent one."""
    _idempotency("shared-key", OLD, token="old-worker")
    _idempotency("shared-key", RECENT, token="recent-worker")
    assert purge_finished_jobs(NOW - timedelta(days=180), batch_size=1).idempotency_records == 1
    kept = db.session.execute(sa.select(IdempotencyRecord.key, IdempotencyRecord.created_at)).all()
    assert [(key, created_at > OLD) for key, created_at in kept] == [("shared-key", True)]


#: What a purge at 180 days deletes of ``mixed_jobs``.
MIXED_JOBS_PURGED = {"processing_jobs": 3, "job_failures": 3, "extracted_entities": 3, "idempotency_records": 1}


def test_purge_deletes_finished_jobs_older_than_the_cutoff_with_their_rows(mixed_jobs):
    counts = purge_finished_jobs(NOW - timedelta(days=180), batch_size=2)
    assert counts.as_dict() == MIXED_JOBS_PURGED
    kept = set(db.session.scalars(sa.select(ProcessingJob.id)))
    assert kept == {mixed_jobs[k] for k in ("recent_validation_failed", "old_pending", "old_processing")}
    assert _count(JobFailure) == 2 and _count(ExtractedEntity) == 0
    assert set(db.session.scalars(sa.select(IdempotencyRecord.key))) == {"recent-key"}


def test_purge_again_finds_nothing(mixed_jobs):
    purge_finished_jobs(NOW - timedelta(days=180))
    assert purge_finished_jobs(NOW - timedelta(days=180)).as_dict() == dict.fromkeys(
        ("processing_jobs", "job_failures", "extracted_entities", "idempotency_records"), 0
    )


def test_dry_run_counts_the_same_rows_and_deletes_nothing(mixed_jobs):
    cutoff = NOW - timedelta(days=180)
    expected = count_expired(cutoff)
    assert expected.as_dict() == {
        "processing_jobs": 3,
        "job_failures": 3,
        "extracted_entities": 3,
        "idempotency_records": 1,
    }
    assert _count(ProcessingJob) == 6
    assert purge_finished_jobs(cutoff, batch_size=1) == expected


def test_purge_command_prints_counts(runner, mixed_jobs):
    result = runner.invoke(args=["jobs", "purge", "--older-than", "180d", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("cutoff: ") and lines[0].endswith("(older than 180d)")
    assert lines[1:] == [
        "deleted 3 processing_jobs",
        "deleted 3 job_failures",
        "deleted 3 extracted_entities",
        "deleted 1 idempotency_records",
        # The fixture's failures are added as rows, so no group holds them.
        "cleared the text of 0 failure_groups left with no failure",
        "took the sample message of 0 failure_groups from a failure they kept",
    ]


def test_the_purge_is_audited_before_it_deletes_and_says_what_it_deleted(app, runner, mixed_jobs, monkeypatch):
    # An SRE trial: the purge deleted clinical data and left no trace.
    from app.models.access import AuditEvent
    from app.services import retention

    seen = []
    purge = retention.purge_finished_jobs

    def purge_seeing_the_audit(*args, **kwargs):
        seen.append(db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                      .where(AuditEvent.action == "jobs.purge")))
        return purge(*args, **kwargs)

    monkeypatch.setattr(retention, "purge_finished_jobs", purge_seeing_the_audit)
    result = runner.invoke(args=["jobs", "purge", "--older-than", "180d"])
    assert result.exit_code == 0, result.output
    assert seen == [1]  # the row was there before the first deletion
    with app.app_context():
        (event,) = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "jobs.purge")).all()
        assert event.actor.startswith("cli") and event.row_count == 3
        assert event.filter["older_than"] == "180d" and event.filter["deleted"]["processing_jobs"] == 3
    assert runner.invoke(args=["jobs", "purge", "--older-than", "180d", "--dry-run"]).exit_code == 0
    with app.app_context():  # a dry run deletes nothing and is not a purge
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "jobs.purge")) == 1


def test_purge_command_dry_run_deletes_nothing(runner, mixed_jobs):
    result = runner.invoke(args=["jobs", "purge", "--older-than", "26w", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would delete 3 processing_jobs" in result.output
    assert _count(ProcessingJob) == 6 and _count(IdempotencyRecord) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--older-than", "180"],
        ["--older-than", "0d"],
        ["--older-than", "-5d"],
        ["--older-than", "1y"],
        ["--older-than", "999999w"],  # before year 1: OverflowError computing the cutoff
        ["--older-than", "180d", "--batch-size", "0"],
        ["--older-than", "180d", "--batch-size", "5001"],
        [],
    ],
)
def test_purge_command_refuses_bad_arguments(runner, args):
    result = runner.invoke(args=["jobs", "purge", *args])
    assert result.exit_code == 2
    assert "Error" in result.output


def test_parse_age_units():
    assert parse_age("180d") == timedelta(days=180)
    assert parse_age("48h") == timedelta(hours=48)
    assert parse_age(" 2w ") == timedelta(weeks=2)
    assert parse_age("999999h") == timedelta(hours=999999)


@pytest.mark.parametrize(("text", "said"), [
    ("5000000d", "at most 999999"), ("0d", "positive whole number"), ("1y", "positive whole number"),
    ("", "positive whole number"), ("-3d", "positive whole number"),
])
def test_parse_age_says_what_is_wrong(text, said):
    with pytest.raises(ValueError, match=said):
        parse_age(text)


def test_purge_refuses_a_naive_cutoff(app_ctx):
    with pytest.raises(ValueError, match="timezone-aware"):
        purge_finished_jobs(datetime(2020, 1, 1))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_purge_skips_a_job_another_transaction_is_changing(mixed_jobs):
    locked = mixed_jobs["old_failed"]
    with db.engine.connect() as other:
        transaction = other.begin()
        other.execute(sa.text("SELECT id FROM processing_jobs WHERE id = :id FOR UPDATE"), {"id": locked})
        counts = purge_finished_jobs(NOW - timedelta(days=180))
        transaction.rollback()
    assert counts.processing_jobs == 2
    assert db.session.get(ProcessingJob, locked) is not None
    assert purge_finished_jobs(NOW - timedelta(days=180)).processing_jobs == 1


def test_a_batch_aborted_as_a_deadlock_victim_runs_again_and_counts_once(mixed_jobs, monkeypatch):
    # A trial: beside live reports the purge's deletes met a recorder on the
    # summary rollups' rows, PostgreSQL aborted the purge (40P01) and it
    # stopped half-way with a traceback. The batch is replayed from its start.
    from app.services import retention
    from tests.helpers import aborted_statement

    real, calls = retention._delete, []

    def deadlocked_once(table, condition):  # noqa: ANN001, ANN202
        deleted = real(table, condition)
        if table.name == "processing_jobs":
            calls.append(deleted)
            if len(calls) == 1:
                raise aborted_statement()
        return deleted

    monkeypatch.setattr(retention, "_delete", deadlocked_once)
    monkeypatch.setattr("app.unit_of_work.REPLAY_PAUSE_S", 0.0)
    counts = purge_finished_jobs(NOW - timedelta(days=180), batch_size=2)
    assert counts.as_dict() == MIXED_JOBS_PURGED
    assert calls == [2, 2, 1]  # the first batch's jobs deleted twice: once rolled back, once committed
    kept = set(db.session.scalars(sa.select(ProcessingJob.id)))
    assert kept == {mixed_jobs[k] for k in ("recent_validation_failed", "old_pending", "old_processing")}
