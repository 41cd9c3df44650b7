"""An operator's "yes" is about the failure they were shown.

A job can fail again (after a requeue, or straight over its failure)
between the page or question an operator read and their click. Its new
failure was never seen: acknowledging it would hide it, requeueing it
would act on a reason nobody read. Every path -- the job page, the requeue
question, the selected jobs' question, a filter's and a group's frozen
selection -- carries the failure it showed (the job's ``completed_at``) and
leaves a changed job alone. Found by a new user's trial: a question page
left open, a new fatal failure, then "Changed 1, Skipped 0".
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import FailureOccurrence
from app.models.access import AuditEvent
from app.registry import get_failure_recorder
from app.services import bulk_actions
from app.services.processing_jobs.lifecycle import create_job, get_job, requeue_job
from tests.helpers import aborted_statement
from tests.integration.test_dashboard_filters import item
from tests.integration.test_filter_table import _Forms


def _fail(app, job_id: str | None = None, *, document: str = "doc-shown", code: str = "code.first") -> str:  # noqa: ANN001
    with app.app_context():
        job = get_job(job_id) if job_id else create_job(document)
        get_failure_recorder().record_validation_failure(job.id, f"failed with {code}", {"errors": [item(code)]})
        return str(job.id)


def _fail_again(app, job_id: str, *, requeue: bool = True) -> None:  # noqa: ANN001
    """A new failure nobody has seen: after a requeue, or straight over the first."""
    with app.app_context():
        if requeue:
            requeue_job(job_id)
    _fail(app, job_id, code="code.unseen_fatal")


def _acknowledged(app, job_id: str) -> bool:  # noqa: ANN001
    with app.app_context():
        return get_job(job_id).acknowledged_at is not None


def _audit_actions(app) -> list[tuple[str, int | None]]:  # noqa: ANN001
    with app.app_context():
        return [(e.action, e.row_count) for e in db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action.like("jobs.%")).order_by(AuditEvent.occurred_at))]


@pytest.mark.parametrize("requeue", [True, False], ids=["requeued-and-failed", "failed-over"])
def test_the_job_pages_acknowledge_leaves_a_failure_it_did_not_show(app, client, requeue):
    job_id = _fail(app)
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    fields = _Forms(page).hidden[f"/jobs/{job_id}/acknowledge"]
    assert [name for name, _ in fields].count("failure_at") == 1
    _fail_again(app, job_id, requeue=requeue)
    response = client.post(f"/jobs/{job_id}/acknowledge", data=MultiDict(fields))
    assert response.status_code == 303 and response.headers["Location"] == f"/jobs/{job_id}"
    assert not _acknowledged(app, job_id)
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The job changed after the page you acted on was shown" in shown and "code.unseen_fatal" in shown
    assert _audit_actions(app) == []  # nothing took effect
    # The page now shows the new failure; acknowledging from it works.
    fields = _Forms(shown).hidden[f"/jobs/{job_id}/acknowledge"]
    assert client.post(f"/jobs/{job_id}/acknowledge", data=MultiDict(fields)).status_code == 303
    assert _acknowledged(app, job_id)
    assert _audit_actions(app) == [("jobs.acknowledge", 1)]


def test_the_requeue_question_leaves_a_failure_it_did_not_name(app, client):
    job_id = _fail(app)
    question = client.get(f"/jobs/{job_id}/requeue").get_data(as_text=True)
    fields = _Forms(question).hidden[f"/jobs/{job_id}/requeue"]
    _fail_again(app, job_id)
    response = client.post(f"/jobs/{job_id}/requeue", data=MultiDict(fields))
    assert response.headers["Location"] == f"/jobs/{job_id}"
    with app.app_context():
        job = get_job(job_id)
        assert (job.status, job.error_message) == ("Validation_Failed", "failed with code.unseen_fatal")


def test_a_failure_time_that_is_not_one_is_a_400_and_changes_nothing(app, client):
    job_id = _fail(app)
    fields = _Forms(client.get(f"/jobs/{job_id}").get_data(as_text=True)).hidden[f"/jobs/{job_id}/acknowledge"]
    form = MultiDict([(k, v) for k, v in fields if k != "failure_at"] + [("failure_at", "yesterday")])
    response = client.post(f"/jobs/{job_id}/acknowledge", data=form)
    assert response.status_code == 400
    assert "<h1>400 · Invalid form field</h1>" in response.get_data(as_text=True)
    assert not _acknowledged(app, job_id)


def test_the_selected_jobs_question_skips_a_job_that_failed_again(app, client):
    seen, changed = _fail(app, document="doc-seen"), _fail(app, document="doc-changed")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/jobs").get_data(as_text=True)).group(1)
    question = client.post("/jobs/bulk", data={"csrf_token": token, "op": "acknowledge:selected",
                                               "job_id": [seen, changed]}, follow_redirects=True).get_data(as_text=True)
    assert "A job that fails again or is requeued before you answer is skipped" in question
    fields = _Forms(question).hidden["/jobs/bulk/confirm"]
    assert sorted(v.split("@")[0] for k, v in fields if k == "shown") == sorted([seen, changed])
    _fail_again(app, changed)
    done = client.post("/jobs/bulk/confirm", data=MultiDict(fields))
    assert done.status_code == 303
    assert _acknowledged(app, seen) and not _acknowledged(app, changed)
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Acknowledged 1 job; skipped 1 that changed after the question" in page
    assert _audit_actions(app) == [("jobs.acknowledge", 1)]


@pytest.mark.parametrize("shown", ["not-a-time", "no-at-sign"])
def test_a_bad_shown_field_is_a_400_and_changes_nothing(app, client, shown):
    job_id = _fail(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/jobs").get_data(as_text=True)).group(1)
    value = f"{job_id}@{shown}" if shown == "not-a-time" else shown
    response = client.post("/jobs/bulk/confirm", data={"csrf_token": token, "op": "acknowledge:selected",
                                                       "job_id": [job_id], "shown": [value]})
    assert response.status_code == 400
    assert not _acknowledged(app, job_id)
    assert _audit_actions(app) == []


def test_a_filters_frozen_selection_skips_a_job_that_failed_again(app, client):
    seen, changed = _fail(app, document="doc-frozen-1"), _fail(app, document="doc-frozen-2")
    page = client.get("/jobs?" + urlencode({"document_id_prefix": "doc-frozen-"})).get_data(as_text=True)
    fields = _Forms(page).hidden["/jobs/bulk"]
    frozen = client.post("/jobs/bulk", data=MultiDict([*fields, ("op", "acknowledge:filter")]))
    assert frozen.status_code == 303
    question = client.get(frozen.headers["Location"]).get_data(as_text=True)
    assert "jobs that change meanwhile (a new failure, a requeue) are skipped" in question
    ((action, confirm),) = [(a, f) for a, f in _Forms(question).hidden.items() if a.startswith("/bulk-actions/")]
    _fail_again(app, changed)  # the question stays open meanwhile
    assert client.post(action, data=MultiDict(confirm)).status_code == 303
    assert _acknowledged(app, seen) and not _acknowledged(app, changed)
    progress = client.get(frozen.headers["Location"]).get_data(as_text=True)
    assert re.search(r"asked [^<]*UTC, confirmed [^<]*UTC", progress)
    assert re.search(r'<dt>Skipped</dt><dd class="skipped">1 ', progress)
    assert _audit_actions(app) == [("jobs.acknowledge", 1)]


def test_a_groups_frozen_selection_skips_a_job_that_failed_over_its_failure(app):
    first, second = _fail(app, document="doc-group-1"), _fail(app, document="doc-group-2")
    with app.app_context():
        group_id = db.session.scalar(sa.select(FailureOccurrence.group_id).where(
            FailureOccurrence.job_id == get_job(first).id, FailureOccurrence.is_current))
        bulk = bulk_actions.freeze_group_selection("requeue", group_id, "alice")
        bulk_id = bulk.id
        assert bulk.total == 2
    # Straight over the failure (Validation_Failed again), no requeue between.
    _fail_again(app, second, requeue=False)
    with app.app_context():
        assert bulk_actions.start(bulk_id, "alice", {"scope": "group", "group_id": group_id})
        done = bulk_actions.run(bulk_id)
        assert done.state == "done"
        assert (done.changed, done.skipped) == (1, 1)
        assert get_job(first).status == "Pending"
        assert get_job(second).error_message == "failed with code.unseen_fatal"


def test_a_batch_aborted_as_a_deadlock_victim_runs_again_and_counts_once(app, monkeypatch):
    # A batch moves its jobs' group-rollup rows in job order while recorders
    # lock them in key order; PostgreSQL may abort the batch (40P01). It is
    # replayed from its start: each job changed once, counted once.
    jobs = [_fail(app, document=f"doc-batch-{n}") for n in range(3)]
    with app.app_context():
        group_id = db.session.scalar(sa.select(FailureOccurrence.group_id).where(
            FailureOccurrence.job_id == get_job(jobs[0]).id, FailureOccurrence.is_current))
        bulk_id = bulk_actions.freeze_group_selection("acknowledge", group_id, "alice").id
        assert bulk_actions.start(bulk_id, "alice", {"scope": "group", "group_id": group_id})
    real = bulk_actions._apply
    calls: list[int] = []

    def deadlocked_once(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        real(*args, **kwargs)
        if len(calls) == 1:
            raise aborted_statement()

    monkeypatch.setattr(bulk_actions, "_apply", deadlocked_once)
    with app.app_context():
        done = bulk_actions.run(bulk_id)
        assert done.state == "done"
        assert (done.changed, done.skipped) == (3, 0)
    assert calls == [1, 1]
    assert all(_acknowledged(app, job_id) for job_id in jobs)
    assert _audit_actions(app) == [("jobs.acknowledge", 3)]
