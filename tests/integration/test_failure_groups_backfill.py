"""``flask groups backfill`` / ``regroup``: stored failures grouped in batches,
with the same groups and counts the recorder would have written."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup, FailureGroupCount, FailureGroupEvent, FailureGroupHourly, FailureOccurrence
from app.registry import get_failure_recorder
from app.services.failure_groups.lifecycle import resolve_group
from app.services.failure_groups.queries import group_counts
from app.services.failure_groups.recording import rebuild_counts_check
from app.services.processing_jobs.lifecycle import create_job, requeue_job

UCUM = {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/1/value/unit"}
ICD = {"code": "code.unknown_icd10cm", "severity": "fatal", "message": "unknown", "pointer": "/entities/0/code"}


def _record_some_failures() -> None:
    recorder = get_failure_recorder()
    jobs = [create_job(f"doc-{i}").id for i in range(4)]
    recorder.record_validation_failure(jobs[0], "x", {"errors": [UCUM]}, worker={"version": "1.0.0"})
    recorder.record_validation_failure(jobs[0], "y", {"errors": [ICD, UCUM]})
    recorder.record_validation_failure(jobs[1], "x", {"errors": [UCUM, UCUM]})
    recorder.record_failure(jobs[2], "timed out after 30 s")
    recorder.record_validation_failure(jobs[3], "x", {"errors": [ICD]})
    requeue_job(jobs[3])  # no longer failing on ICD


def _snapshot() -> dict[str, tuple]:
    groups = list(db.session.scalars(sa.select(FailureGroup)))
    counts = group_counts([g.id for g in groups])
    current = {
        (fingerprint, str(job_id))
        for fingerprint, job_id in db.session.execute(
            sa.select(FailureGroup.fingerprint, FailureOccurrence.job_id)
            .join(FailureGroup, FailureGroup.id == FailureOccurrence.group_id)
            .where(FailureOccurrence.is_current.is_(True))
        )
    }
    return {
        g.fingerprint: (
            g.title, g.severity, counts[g.id].job_count, counts[g.id].current_job_count,
            counts[g.id].occurrence_count, sorted(j for f, j in current if f == g.fingerprint),
        )
        for g in groups
    }


def _forget_groups() -> None:
    for model in (FailureOccurrence, FailureGroupCount, FailureGroupHourly, FailureGroupEvent, FailureGroup):
        db.session.execute(sa.delete(model))
    db.session.commit()


def test_backfill_rebuilds_what_the_recorder_wrote(app_ctx):
    _record_some_failures()
    recorded = _snapshot()
    assert len(recorded) == 3
    _forget_groups()

    result = app_ctx.test_cli_runner().invoke(args=["groups", "backfill", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "5 failures grouped into 6 occurrences in 3 batches" in result.stdout
    db.session.rollback()
    assert _snapshot() == recorded
    # Running it again finds nothing left to do.
    again = app_ctx.test_cli_runner().invoke(args=["groups", "backfill"])
    assert "0 failures grouped" in again.stdout
    db.session.rollback()
    assert _snapshot() == recorded


def test_a_backfill_skips_what_another_grouped_after_it_read_its_batch(app_ctx, monkeypatch):
    # A trial ran `groups backfill` and `groups regroup --version 1` at once:
    # both read the same ungrouped failures, and the second to lock their
    # jobs stopped on the occurrences' unique key. Here the other one runs
    # between this one's read and its lock.
    from app.services.failure_groups import backfill

    _record_some_failures()
    recorded = _snapshot()
    _forget_groups()
    stale = backfill._ungrouped(1, None, 500)
    db.session.rollback()
    assert len(stale) == 5
    assert backfill.backfill_groups().failures == 5  # the other backfill
    reads = iter([stale, []])
    monkeypatch.setattr(backfill, "_ungrouped", lambda *_args: next(reads))
    result = backfill.backfill_groups()
    assert (result.failures, result.occurrences, result.batches) == (0, 0, 1)
    db.session.rollback()
    assert _snapshot() == recorded


def test_backfill_keeps_live_groups_and_adds_the_missing_failures(app_ctx):
    _record_some_failures()
    recorded = _snapshot()
    # Only the newest occurrences are lost, as if recorded before the migration.
    db.session.execute(sa.delete(FailureOccurrence))
    db.session.execute(sa.delete(FailureGroupCount))
    db.session.commit()
    result = app_ctx.test_cli_runner().invoke(args=["groups", "regroup", "--version", "1"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    assert _snapshot() == recorded


def test_regroup_refuses_an_unknown_version(app_ctx):
    result = app_ctx.test_cli_runner().invoke(args=["groups", "regroup", "--version", "99"])
    assert result.exit_code == 2
    assert "grouping version 99" in result.output


def _exact_counts() -> dict[int, tuple]:
    """Each group's counters, hourly total and the counts rebuilt from its occurrences."""
    groups = [g.id for g in db.session.scalars(sa.select(FailureGroup))]
    counts = group_counts(groups)
    rebuilt = rebuild_counts_check(groups)
    hourly = dict(db.session.execute(
        sa.select(FailureGroupHourly.group_id, sa.func.sum(FailureGroupHourly.occurrences))
        .group_by(FailureGroupHourly.group_id)
    ).all())
    return {
        g: ((counts[g].occurrence_count, counts[g].job_count, counts[g].current_job_count), int(hourly[g]),
            (rebuilt[g]["occurrences"], rebuilt[g]["jobs"], rebuilt[g]["current_jobs"]))
        for g in groups
    }


@pytest.mark.parametrize("batch_size", [1, 3, 500])
def test_backfill_counts_match_the_occurrences_whatever_the_batches(app_ctx, batch_size):
    # Several failures of one job in one group, within a batch and across
    # batches: "jobs ever" counts each job once, "current" only its newest.
    recorder = get_failure_recorder()
    jobs = [create_job(f"doc-{i}").id for i in range(3)]
    for run in range(3):
        for job in jobs:
            recorder.record_validation_failure(job, f"run {run}", {"errors": [UCUM, dict(ICD, pointer=f"/entities/{run}/code")]})
    requeue_job(jobs[2])
    recorded = _snapshot()
    _forget_groups()

    result = app_ctx.test_cli_runner().invoke(args=["groups", "backfill", "--batch-size", str(batch_size)])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    assert _snapshot() == recorded
    counts = _exact_counts()
    assert sorted(counts.values()) == [((9, 3, 2), 9, (9, 3, 2))] * 2
    for kept, hourly, rebuilt in counts.values():
        assert kept == rebuilt and hourly == kept[0]


@pytest.mark.parametrize(("resolved_after", "state"), [("first", "unresolved"), ("last", "resolved")])
def test_backfill_applies_the_regression_rule_to_occurrences_newer_than_the_resolution(
    app_ctx, resolved_after, state
):
    recorder = get_failure_recorder()
    jobs = [create_job(f"doc-{i}").id for i in range(2)]
    recorder.record_validation_failure(jobs[0], "x", {"errors": [UCUM]})
    recorder.record_validation_failure(jobs[1], "y", {"errors": [UCUM]})
    times = sorted(db.session.scalars(sa.select(FailureOccurrence.occurred_at)))
    group_id = db.session.scalars(sa.select(FailureGroup.id)).one()
    db.session.execute(sa.delete(FailureOccurrence))
    db.session.execute(sa.delete(FailureGroupCount))
    db.session.commit()
    at = times[0] if resolved_after == "first" else times[-1]
    resolve_group(group_id, "alice", now=at + timedelta(microseconds=1) if resolved_after == "last" else at)

    result = app_ctx.test_cli_runner().invoke(args=["groups", "backfill", "--batch-size", "500"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    group = db.session.get(FailureGroup, group_id)
    assert group.state == state
    reasons = [e.reason for e in db.session.scalars(
        sa.select(FailureGroupEvent).where(FailureGroupEvent.group_id == group.id).order_by(FailureGroupEvent.id)
    )]
    assert reasons == (["created", "resolved", "regressed"] if state == "unresolved" else ["created", "resolved"])
    assert all(kept == rebuilt for kept, _, rebuilt in _exact_counts().values())
