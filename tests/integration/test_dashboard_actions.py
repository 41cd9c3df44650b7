"""Operator actions: requeue and acknowledge, one job or many, with CSRF and confirmation."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models.access import AuditEvent
from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import complete_job, create_job, list_failures
from tests.helpers import aborted_statement, stored_job_row

#: Audit rows other than the views (``seen.*``) the pages write before they show error text.
NOT_VIEWS = AuditEvent.action.not_like("seen.%")


def _failed_job(app, document_id: str = "doc-act", message: str = "crashed") -> str:
    with app.app_context():
        job = create_job(document_id)
        get_failure_recorder().record_failure(job.id, message)
        return str(job.id)


def _csrf(client, path: str = "/jobs") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _row(app, job_id):
    with app.app_context():
        return stored_job_row(job_id)


def test_requeue_one_job_keeps_its_history_and_says_so(app, client):
    job_id = _failed_job(app)
    response = client.post(f"/jobs/{job_id}/requeue", data={"csrf_token": _csrf(client, f"/jobs/{job_id}")})
    assert response.status_code == 303
    assert _row(app, job_id)["status"] == "Pending"
    with app.app_context():
        assert [f.error_message for f in list_failures(job_id)] == ["crashed"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Requeued the job for document <bdi>doc-act</bdi>." in page


def test_action_without_csrf_token_changes_nothing(app, client):
    job_id = _failed_job(app)
    before = _row(app, job_id)
    response = client.post(f"/jobs/{job_id}/requeue")
    assert response.status_code == 400
    assert _row(app, job_id) == before


def test_acknowledge_hides_the_failure_from_the_default_view(app, client):
    job_id = _failed_job(app, "doc-ack")
    assert job_id in client.get("/jobs").get_data(as_text=True)
    client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": _csrf(client)})
    row = _row(app, job_id)
    assert row["acknowledged_at"] is not None and row["acknowledged_by"] == "test-admin"
    assert f'href="/jobs/{job_id}?back=' not in client.get("/jobs").get_data(as_text=True)
    assert f'href="/jobs/{job_id}?back=' in client.get("/jobs?acknowledged=include").get_data(as_text=True)



def test_an_acknowledgement_can_be_taken_back_from_the_job_page_and_is_audited_and_in_the_history(app, client):
    """An acknowledge by mistake could not be undone (a trial's note)."""
    job_id = _failed_job(app, "doc-undo")
    client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": _csrf(client)})
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Undo acknowledge" in page and ">Acknowledge</button>" not in page
    failure_at = re.search(r'name="failure_at" value="([^"]+)"', page).group(1)
    form = {"csrf_token": _csrf(client, f"/jobs/{job_id}"), "failure_at": failure_at}
    response = client.post(f"/jobs/{job_id}/unacknowledge", data=form)
    assert (response.status_code, response.headers["Location"]) == (303, f"/jobs/{job_id}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Took back the acknowledgement of document <bdi>doc-undo</bdi>" in page
    assert ">Acknowledge</button>" in page and "Undo acknowledge" not in page
    assert "Acknowledgement taken back" in page  # the history
    row = _row(app, job_id)
    assert (row["acknowledged_at"], row["acknowledged_by"]) == (None, None)
    assert f'href="/jobs/{job_id}?back=' in client.get("/jobs").get_data(as_text=True)
    # Again (an old tab): nothing to take back, said so, no second audit row.
    again = client.post(f"/jobs/{job_id}/unacknowledge", data=form)
    assert "Nothing was changed: the failure of document <bdi>doc-undo</bdi> is not acknowledged." in client.get(
        again.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        events = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS).order_by(AuditEvent.occurred_at)).all()
        assert [(e.action, e.actor, e.filter["job_ids"]) for e in events if e.action.startswith("jobs.")] == [
            ("jobs.acknowledge", "test-admin", [job_id]), ("jobs.unacknowledge", "test-admin", [job_id])]


def test_taking_back_an_acknowledgement_leaves_a_job_that_failed_again_since_alone(app, client):
    job_id = _failed_job(app, "doc-undo-late")
    client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": _csrf(client)})
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    failure_at = re.search(r'name="failure_at" value="([^"]+)"', page).group(1)
    with app.app_context():
        get_failure_recorder().record_failure(job_id, "crashed again")
        client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": _csrf(client)})
    before = _row(app, job_id)
    assert before["acknowledged_at"] is not None
    response = client.post(f"/jobs/{job_id}/unacknowledge",
                           data={"csrf_token": _csrf(client), "failure_at": failure_at})
    assert "changed after the page you acted on was shown" in client.get(response.headers["Location"]).get_data(
        as_text=True)
    assert _row(app, job_id) == before


def test_an_acknowledge_aborted_as_a_deadlock_victim_is_done_and_audited_once(app, client, monkeypatch):
    # The operator's click runs again when PostgreSQL picks its transaction
    # as a deadlock's victim (a recorder moving the job's groups at the turn
    # of an hour): one change, one audit row, no 503 page.
    from app.services.processing_jobs import actions

    job_id = _failed_job(app, "doc-ack-deadlock")
    real = actions.apply_action
    calls: list[int] = []

    def deadlocked_once(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        outcome = real(*args, **kwargs)
        if len(calls) == 1:
            raise aborted_statement()
        return outcome

    monkeypatch.setattr(actions, "apply_action", deadlocked_once)
    response = client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": _csrf(client)})
    assert response.status_code == 303
    assert calls == [1, 1]
    assert _row(app, job_id)["acknowledged_by"] == "test-admin"
    with app.app_context():
        events = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS)).all()
        assert [(e.action, e.row_count) for e in events] == [("jobs.acknowledge", 1)]

def test_a_new_failure_brings_an_acknowledged_job_back(app, client):
    job_id = _failed_job(app, "doc-back")
    client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": _csrf(client)})
    with app.app_context():
        get_failure_recorder().record_failure(job_id, "crashed again")
    assert _row(app, job_id)["acknowledged_at"] is None


def test_actions_on_a_completed_job_change_nothing_and_lead_back_to_it_saying_why(app, client):
    """A trial: a second requeue, or an action on a job completed meanwhile,
    answered a bare 409 page in the API's words, leading away from the job."""
    with app.app_context():
        job_id = str(create_job("doc-done").id)
        complete_job(job_id)
    before = _row(app, job_id)
    token = _csrf(client, f"/jobs/{job_id}")
    for action, done in (("requeue", "requeued"), ("acknowledge", "acknowledged"), ("unacknowledge", "unacknowledged")):
        response = client.post(f"/jobs/{job_id}/{action}", data={"csrf_token": token})
        assert (response.status_code, response.headers["Location"]) == (303, f"/jobs/{job_id}")
        html = client.get(response.headers["Location"]).get_data(as_text=True)
        assert f"Nothing was changed: the job is Completed now, so it cannot be {done}" in html
    assert _row(app, job_id) == before


def test_bulk_requeue_of_selected_jobs_asks_first_then_acts_and_audits(app, client):
    ids = [_failed_job(app, f"doc-bulk-{i}") for i in range(3)]
    token = _csrf(client)
    confirm = client.post(
        "/jobs/bulk", data={"csrf_token": token, "op": "requeue:selected", "job_id": ids[:2]}
    )
    # Post/redirect/get: Back from the answer finds a page, not "Confirm Form Resubmission".
    assert confirm.status_code == 303 and confirm.headers["Location"].startswith("/jobs/bulk/selected/")
    confirm = client.get(confirm.headers["Location"])
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "Requeue 2 jobs?" in html
    assert all(_row(app, i)["status"] == "Failed" for i in ids)  # nothing changed yet
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    done = client.post(
        "/jobs/bulk/confirm", data={"csrf_token": token, "op": "requeue:selected", "job_id": ids[:2]}
    )
    assert done.status_code == 303
    assert [_row(app, i)["status"] for i in ids] == ["Pending", "Pending", "Failed"]
    assert "Requeued 2 jobs." in client.get(done.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS)).one()
    assert (event.actor, event.action, event.row_count) == ("test-admin", "jobs.requeue", 2)
    assert sorted(event.filter["job_ids"]) == sorted(ids[:2])


def test_a_job_named_twice_in_a_selection_is_acted_on_and_audited_once(app, client):
    # A trial: six copies of one id acknowledged it, said "skipped 5 that
    # changed after the question" and listed it six times in the audit row.
    job = _failed_job(app, "doc-named-twice")
    token = _csrf(client)
    named = [job, job.upper(), job, job, job, job]
    done = client.post("/jobs/bulk/confirm", data={"csrf_token": token, "op": "acknowledge:selected", "job_id": named})
    assert done.status_code == 303
    said = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Acknowledged 1 job." in said and "skipped" not in said
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS)).one()
    assert (event.row_count, event.filter["job_ids"]) == (1, [job])


def test_the_selected_jobs_question_counts_only_the_jobs_failing_now(app, client):
    # A trial (session 27): an id of no job, or of a job requeued meanwhile,
    # was counted in "Acknowledge N jobs?", a yes that could do nothing.
    failing = _failed_job(app, "doc-still-failing")
    requeued = _failed_job(app, "doc-requeued-meanwhile")
    token = _csrf(client)
    assert client.post(f"/jobs/{requeued}/requeue", data={"csrf_token": token}).status_code == 303
    missing = "00000000-0000-4000-8000-000000000000"
    ticked = {"csrf_token": token, "op": "acknowledge:selected", "job_id": [failing, requeued, missing]}
    html = client.get(client.post("/jobs/bulk", data=ticked).headers["Location"]).get_data(as_text=True)
    question = html[html.index('<section class="confirm">'):]  # the requeue's own notice comes before it
    assert "Acknowledge 1 job?" in question and "doc-still-failing" in question
    assert "doc-requeued-meanwhile" not in question
    nothing = client.post("/jobs/bulk", data={**ticked, "job_id": [requeued, missing]})
    assert nothing.status_code == 303 and not nothing.headers["Location"].startswith("/jobs/bulk/")
    assert "None of the ticked jobs is failing now" in client.get(nothing.headers["Location"]).get_data(as_text=True)


def test_bulk_acknowledge_of_everything_matching_the_filter(app, client):
    ids = [_failed_job(app, f"doc-filter-{i}", message="timeout") for i in range(4)]
    other = _failed_job(app, "doc-other", message="crashed")
    token = _csrf(client)
    form = {"csrf_token": token, "op": "acknowledge:filter", "q": "timeout"}
    frozen = client.post("/jobs/bulk", data=form)
    # Post/redirect/get, as the group-wide action: a reload re-reads the question.
    assert frozen.status_code == 303 and frozen.headers["Location"].startswith("/bulk-actions/")
    html = client.get(frozen.headers["Location"]).get_data(as_text=True)
    assert "Acknowledge 4 jobs?" in html
    # The confirmation froze the selection: it runs in batches, once.
    run_path = re.search(r'action="(/bulk-actions/[^"]+/run)"', html).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    page = client.get(client.post(run_path, data={"csrf_token": token}).headers["Location"]).get_data(as_text=True)
    assert "Acknowledged 4 jobs." in page
    client.post(run_path, data={"csrf_token": token})
    assert all(_row(app, i)["acknowledged_at"] is not None for i in ids)
    assert _row(app, other)["acknowledged_at"] is None
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS)).one()
    assert event.filter["scope"] == "filter" and event.filter["query"] == {"q": ["timeout"]}
    assert event.filter["selected"] == 4 and event.row_count == 4


def test_bulk_skips_jobs_that_no_longer_apply(app, client):
    failed = _failed_job(app, "doc-still-failed")
    with app.app_context():
        done = str(create_job("doc-completed").id)
        complete_job(done)
    token = _csrf(client)
    html = client.post("/jobs/bulk", data={"csrf_token": token, "op": "requeue:selected", "job_id": [failed, done]},
                       follow_redirects=True).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = client.post("/jobs/bulk/confirm", data={"csrf_token": token, "op": "requeue:selected", "job_id": [failed, done]})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Requeued 1 job; skipped 1 that changed after the question or no longer applied." in page
    assert _row(app, done)["status"] == "Completed"


@pytest.mark.parametrize(
    ("form", "title"),
    [
        ({"op": "delete:selected"}, "Invalid form field"),
        ({"op": "requeue:everything"}, "Invalid form field"),
        ({"op": "requeue:selected", "job_id": "not-a-uuid"}, "Invalid form field"),
        ({"op": "requeue:selected", "job_id": "a\x00b"}, "Invalid form field"),
        # The filter's fields are read by the same reader as the list's query,
        # but they are fields of the form here, and called so.
        ({"op": "requeue:filter", "status": "bogus"}, "Invalid form field"),
        ({"op": "requeue:filter", "status": "all", "to": "0001-01-01T00:30:00Z"}, "Invalid form field"),
    ],
)
def test_bad_bulk_requests_are_a_400(app, client, form, title):
    response = client.post("/jobs/bulk", data={"csrf_token": _csrf(client), **form})
    assert response.status_code == 400
    # A form's field is called one, not a query parameter (a trial's "op=delete:all").
    assert f"<h1>400 · {title}</h1>" in response.get_data(as_text=True)


def test_every_bad_filter_field_of_the_bulk_form_is_named(client):
    response = client.post("/jobs/bulk", data={"csrf_token": _csrf(client), "op": "requeue:filter", "status": "bogus",
                                               "from": "soon"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "<h1>400 · Invalid form field</h1>" in html
    assert "<li><code>status</code>: must be one of" in html and "<li><code>from</code>:" in html
    assert "(query)" not in html  # fields of the form, not of a query string


def test_flash_messages_escape_worker_text(app, client):
    job_id = _failed_job(app, '<script>alert("doc")</script>')
    response = client.post(f"/jobs/{job_id}/requeue", data={"csrf_token": _csrf(client, f"/jobs/{job_id}")})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;doc&#34;)&lt;/script&gt;" in page


UNSAFE_NEXT = [
    "/jobs\r\nSet-Cookie: x=1", "/\t/evil.example", "/\\evil.example",
    # On this site, but no page a browser can open (a trial: the action
    # ran, then the browser landed on the 405 of GET /logout).
    "/logout", "/jobs/bulk/confirm", "/no-such-page",
    # GET routes that are no page: the 405 of a form-only address, the API, the probes.
    "/jobs/bulk", "/api/v1/processing-jobs", "/metrics", "/healthz",
]


def test_a_c1_control_in_next_is_refused_before_the_action(app, client):
    # NEL (U+0085) is a control like ESC: the form is refused, named, and nothing is done.
    job_id = _failed_job(app)
    response = client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": _csrf(client), "next": "/jobs\x85"})
    assert response.status_code == 400 and "next" in response.get_data(as_text=True)
    assert _row(app, job_id)["acknowledged_at"] is None
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(NOT_VIEWS)) == 0


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_an_unsafe_next_on_one_job_action_goes_to_the_job_page(app, client, target):
    # A control character in Location used to raise after the action was
    # applied and audited: a 500 saying "nothing was changed".
    job_id = _failed_job(app)
    response = client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": _csrf(client), "next": target})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/jobs/{job_id}"
    assert _row(app, job_id)["acknowledged_at"] is not None
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(NOT_VIEWS)) == 1


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_an_unsafe_next_on_a_bulk_action_goes_to_the_list(app, client, target):
    job_id = _failed_job(app)
    form = {"csrf_token": _csrf(client), "op": "requeue:selected", "job_id": [job_id], "next": target}
    html = client.post("/jobs/bulk", data=form, follow_redirects=True).get_data(as_text=True)
    assert 'name="next" value="/jobs"' in html
    response = client.post("/jobs/bulk/confirm", data=form)
    assert response.status_code == 303
    assert response.headers["Location"] == "/jobs"
    assert _row(app, job_id)["status"] == "Pending"


def test_a_safe_next_is_followed(app, client):
    job_id = _failed_job(app)
    target = "/jobs?status=Failed&q=crash"
    response = client.post(f"/jobs/{job_id}/requeue", data={"csrf_token": _csrf(client), "next": target})
    assert response.headers["Location"] == target


@pytest.mark.parametrize("action", ["requeue", "acknowledge"])
def test_one_job_actions_are_audited(app, client, action):
    job_id = _failed_job(app, "doc-audit")
    client.post(f"/jobs/{job_id}/{action}", data={"csrf_token": _csrf(client)})
    with app.app_context():
        (event,) = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS).where(AuditEvent.action == f"jobs.{action}")).all()
        assert event.actor == "test-admin"
        assert event.filter == {"scope": "job", "job_ids": [job_id]}
        assert event.row_count == 1


def test_the_summary_counts_the_operators_own_action_at_once(app, client):
    """The summary is cached (DASHBOARD_STATS_TTL), but an action clears it."""
    app.config["DASHBOARD_STATS_TTL"] = 300
    job_id = _failed_job(app, "doc-own")
    _failed_job(app, "doc-other")

    def failed_count() -> str:
        html = client.get("/jobs/summary?status=Failed").get_data(as_text=True)
        return re.search(r'status-failed">Failed</span></a> <span class="count">(\d+)<', html).group(1)

    assert failed_count() == "2"
    client.post(f"/jobs/{job_id}/requeue", data={"csrf_token": _csrf(client)})
    assert failed_count() == "1"


def test_after_an_action_every_process_counts_it_for_that_operator(app, client, monkeypatch):
    """Another gunicorn process keeps its own cache; the acting operator's
    session makes any process compute their summary afresh for the TTL."""
    from app.services import dashboard_stats

    app.config["DASHBOARD_STATS_TTL"] = 300
    job_id = _failed_job(app, "doc-own")
    _failed_job(app, "doc-other")

    def failed_count(who) -> str:  # noqa: ANN001
        html = who.get("/jobs/summary?status=Failed").get_data(as_text=True)
        return re.search(r'status-failed">Failed</span></a> <span class="count">(\d+)<', html).group(1)

    other_operator = app.test_client()
    with client.session_transaction() as mine, other_operator.session_transaction() as theirs:
        theirs.update(dict(mine))
        theirs.pop("fresh_summary_until", None)
    assert failed_count(client) == "2"
    # As if the action ran in another process: this process's cache is not cleared.
    monkeypatch.setattr(dashboard_stats, "forget_summaries", lambda: None)
    client.post(f"/jobs/{job_id}/requeue", data={"csrf_token": _csrf(client)})
    assert failed_count(client) == "1"  # the acting operator: computed afresh
    # The fresh summary replaced the cached one: another operator served by
    # this process sees it too.
    assert failed_count(other_operator) == "1"


def test_the_question_about_selected_jobs_is_a_page_to_come_back_to_and_a_replaced_one_says_so(app, client):
    """An operator's trial: Back from the result of a selection's action
    showed "Confirm Form Resubmission" (the question was a POST's answer)."""
    first, second = _failed_job(app, "doc-q-1"), _failed_job(app, "doc-q-2")
    token = _csrf(client)
    asked = client.post("/jobs/bulk", data={"csrf_token": token, "op": "acknowledge:selected", "job_id": [first]})
    question = asked.headers["Location"]
    for _ in range(2):  # a reload (or Back) asks again and changes nothing
        page = client.get(question).get_data(as_text=True)
        assert "Acknowledge 1 job?" in page and "doc-q-1" in page
    assert _row(app, first)["acknowledged_at"] is None
    # Another question (another tab) leaves it open; the eight newest are kept.
    for _ in range(7):
        client.post("/jobs/bulk", data={"csrf_token": token, "op": "requeue:selected", "job_id": [second]})
    assert "Acknowledge 1 job?" in client.get(question).get_data(as_text=True)
    client.post("/jobs/bulk", data={"csrf_token": token, "op": "requeue:selected", "job_id": [second]})
    stale = client.get(question)
    assert (stale.status_code, stale.headers["Location"]) == (303, "/jobs")
    assert "That question is no longer open" in client.get("/jobs").get_data(as_text=True)


def test_a_yes_answered_twice_is_one_action_in_each_jobs_history(app, client):
    """A trial: Back to the question and "Yes" again skipped every job, but
    each job's history showed two requeues (the second audit row names them)."""
    ids = [_failed_job(app, f"doc-twice-{n}") for n in range(2)]
    token = _csrf(client)
    question = client.post("/jobs/bulk", data={"csrf_token": token, "op": "requeue:selected", "job_id": ids},
                           follow_redirects=True).get_data(as_text=True)
    # The question's own form (the header's search form has a hidden field too).
    confirm = re.search(r'<form[^>]*action="/jobs/bulk/confirm".*?</form>', question, re.S).group(0)
    form = MultiDict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', confirm))
    for _ in range(2):
        assert client.post("/jobs/bulk/confirm", data=form).status_code == 303
    page = client.get(f"/jobs/{ids[0]}").get_data(as_text=True)
    assert page.count('class="kind">Requeued</strong>') == 1
    with app.app_context():
        events = db.session.scalars(sa.select(AuditEvent).where(NOT_VIEWS).where(AuditEvent.action == "jobs.requeue")
                                    .order_by(AuditEvent.occurred_at)).all()
        assert [(e.row_count, sorted(e.filter.get("skipped_job_ids", []))) for e in events] == [
            (2, []), (0, sorted(ids))]


def test_a_back_link_to_a_form_only_address_is_not_followed(app, client):
    job_id = _failed_job(app)
    html = client.get(f"/jobs/{job_id}?back=%2Flogout").get_data(as_text=True)
    assert 'href="/logout"' not in html and '<a class="back" href="/jobs">' in html
    html = client.get(f"/jobs/{job_id}?back=%2Fgroups").get_data(as_text=True)
    assert '<a class="back" href="/groups">' in html  # a page is still followed


@pytest.mark.parametrize(("path", "field"), [
    ("/jobs/bulk", "/stauts"), ("/jobs/bulk?from=2026-02-29", "from"), ("/jobs/bulk/confirm", "/stauts"),
    ("/jobs/bulk", "/document_id"),  # a filter field twice (a trial: the first value was taken)
])
def test_a_bulk_form_with_a_field_it_does_not_have_is_refused_and_freezes_nothing(app, client, path, field):
    # A trial: "stauts=x" was dropped, and "Requeue all…" asked about every failing job.
    from app.models.bulk_action import BulkAction

    _failed_job(app, "doc-typo")
    form = {"csrf_token": _csrf(client), "op": "requeue:filter", "status": "Failed"}
    if field == "/document_id":
        form["document_id"] = ["doc-typo", "zzz"]
    elif "?" not in path:
        form["stauts"] = "x"
    response = client.post(path, data=form)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert f"<code>{field.lstrip('/')}</code>" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BulkAction)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(NOT_VIEWS)) == 0


@pytest.mark.parametrize("action", ["requeue", "acknowledge"])
def test_a_one_job_action_form_with_a_field_it_does_not_have_changes_nothing(app, client, action):
    # A trial found the group forms taking fields they do not have; the one-job forms did too.
    job_id = _failed_job(app, "doc-extra")
    before = _row(app, job_id)
    response = client.post(f"/jobs/{job_id}/{action}",
                           data={"csrf_token": _csrf(client, f"/jobs/{job_id}"), "failure_at_": "x"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "The form has a field it should not" in text and "<code>failure_at_</code>" in text
    # ... or a query string, which the forms never send (it was ignored).
    token = _csrf(client, f"/jobs/{job_id}")
    response = client.post(f"/jobs/{job_id}/{action}?next=/groups", data={"csrf_token": token})
    assert response.status_code == 400 and "<code>next</code>" in response.get_data(as_text=True)
    assert _row(app, job_id) == before
    with app.app_context():  # the job page's own rows aside (seen.job)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(NOT_VIEWS)
                                 .where(~AuditEvent.action.like("seen.%"))) == 0


def test_a_filter_action_on_a_group_that_does_not_exist_is_a_404_and_freezes_nothing(app, client):
    # A trial: "Requeue 0 jobs?" was asked, and a bulk action stored; /jobs and the exports say 404.
    from app.models.bulk_action import BulkAction

    _failed_job(app, "doc-nogroup")
    response = client.post("/jobs/bulk", data={"csrf_token": _csrf(client), "op": "requeue:filter", "group": "999999"})
    assert response.status_code == 404 and response.mimetype == "text/html"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BulkAction)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(NOT_VIEWS)) == 0
