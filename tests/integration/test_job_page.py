"""The job page for the operator on call: its history (failures, requeues,
acknowledgements, state changes: who and when), the back link to the list
it came from, the confirmation before a requeue, text details shown as
text, the validator's name and what to do about each code. SQLite and
PostgreSQL."""

from __future__ import annotations

import re
import uuid
from html import unescape
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import BulkActionJob, FailureOccurrence
from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import create_job, start_job
from tests.conftest import make_user, sign_in
from tests.helpers import stored_job_row


def _csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _history(html: str) -> list[tuple[str, str]]:
    """(what, who) of each history entry, oldest first."""
    timeline = re.search(r'<ol class="timeline">.*?</ol>', html, re.S).group(0)
    entries = re.findall(r'<li class="event event-(\w+)[^"]*">(.*?)</li>', timeline, re.S)
    return [(kind, (re.search(r'<span class="who">(.*?)</span>', body, re.S) or re.search("()", "")).group(1))
            for kind, body in entries]


@pytest.fixture
def failed(app) -> str:
    with app.app_context():
        job = create_job("doc-page")
        start_job(job.id)
        get_failure_recorder().record_validation_failure(job.id, "2 errors", {"errors": [
            {"code": "code.unknown_icd10cm", "severity": "error", "message": "not ICD-10-CM",
             "pointer": "/entities/0/code", "entity": {"type": "Condition", "code": "R07.9X"}},
            {"code": "vendor.rule", "severity": "error", "message": "m", "pointer": "/entities/1"},
        ]})
        return str(job.id)


def test_history_has_requeues_acknowledgements_and_state_changes_with_who(app, client, failed):
    operator = sign_in(app.test_client(), make_user(app, "olga", "operator"))
    operator.post(f"/jobs/{failed}/requeue", data={"csrf_token": _csrf(operator, f"/jobs/{failed}")})
    with app.app_context():
        start_job(failed)
        get_failure_recorder().record_failure(failed, "crashed again")
    client.post(f"/jobs/{failed}/acknowledge", data={"csrf_token": _csrf(client, f"/jobs/{failed}")})
    html = client.get(f"/jobs/{failed}").get_data(as_text=True)
    # Both starts: the requeue cleared the job's started_at, the failure kept the first.
    assert _history(html) == [
        ("created", "by the worker"), ("started", "by the worker"), ("failed", ""),
        ("requeued", "by <bdi>olga</bdi>"), ("started", "by the worker"), ("failed", ""),
        ("acknowledged", "by <bdi>test-admin</bdi>"),
    ]
    times = re.findall(r'<time datetime="([^"]+)"', re.search(r'<ol class="timeline">.*?</ol>', html, re.S).group(0))
    assert times == sorted(times)


def test_every_start_stays_in_the_history_across_requeues(app, client, failed):
    for attempt in range(2):
        token = _csrf(client, f"/jobs/{failed}")
        assert client.post(f"/jobs/{failed}/requeue", data={"csrf_token": token}).status_code == 303
        with app.app_context():
            start_job(failed)
            if attempt == 0:
                get_failure_recorder().record_failure(failed, "crashed again")
    kinds = [kind for kind, _ in _history(client.get(f"/jobs/{failed}").get_data(as_text=True))]
    assert kinds == ["created", "started", "failed", "requeued", "started", "failed", "requeued", "started"]


def _run_bulk(client, confirm_html: str) -> None:
    run_path = re.search(r'action="(/bulk-actions/[^"]+/run)"', confirm_html).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm_html).group(1)
    assert client.post(run_path, data={"csrf_token": token}).status_code == 303


def _failed_like(app, document_id: str) -> str:
    with app.app_context():
        job = create_job(document_id)
        start_job(job.id)
        get_failure_recorder().record_validation_failure(job.id, "1 error", {"errors": [
            {"code": "code.unknown_icd10cm", "severity": "error", "message": "not ICD-10-CM",
             "pointer": "/entities/0/code"}]})
        return str(job.id)


def test_a_group_wide_requeue_and_a_filter_wide_acknowledge_are_in_each_jobs_history(app, client):
    failed, *others = [_failed_like(app, f"doc-page-{i}") for i in range(3)]
    with app.app_context():
        group_id = db.session.scalar(sa.select(FailureOccurrence.group_id).where(
            FailureOccurrence.job_id == uuid.UUID(others[0]), FailureOccurrence.is_current.is_(True)).limit(1))
    # The group's POST freezes the selection and redirects to its bulk-action page, which asks.
    confirm = client.post(f"/groups/{group_id}/jobs", data={"csrf_token": _csrf(client, f"/groups/{group_id}"),
                                                            "op": "requeue"}, follow_redirects=True)
    _run_bulk(client, confirm.get_data(as_text=True))
    with app.app_context():
        for job_id in [failed, *others]:
            start_job(job_id)
            get_failure_recorder().record_failure(job_id, "timeout")
    form = {"csrf_token": _csrf(client, "/jobs"), "op": "acknowledge:filter", "q": "timeout"}
    _run_bulk(client, client.post("/jobs/bulk", data=form, follow_redirects=True).get_data(as_text=True))

    html = client.get(f"/jobs/{failed}").get_data(as_text=True)
    history = _history(html)
    assert [kind for kind, _ in history] == [
        "created", "started", "failed", "requeued", "started", "failed", "acknowledged"]
    requeued, acknowledged = history[3][1], history[6][1]
    assert requeued.startswith("by <bdi>test-admin</bdi>, with 2 other jobs of ")
    assert f'href="/groups/{group_id}"' in requeued and 'href="/bulk-actions/' in requeued
    assert acknowledged.startswith("by <bdi>test-admin</bdi>, with 2 other jobs matching a filter")
    # The link names the action that did it; a viewer sees the words without it.
    bulk_page = re.search(r'href="(/bulk-actions/[^"]+)"', requeued).group(1)
    assert client.get(bulk_page).status_code == 200
    viewer = sign_in(app.test_client(), make_user(app, "vic", "viewer"))
    viewer_history = _history(viewer.get(f"/jobs/{failed}").get_data(as_text=True))
    assert viewer_history[3][1].startswith("by <bdi>test-admin</bdi>, with 2 other jobs of ")
    assert "/bulk-actions/" not in viewer_history[3][1]


def test_a_job_the_bulk_action_skipped_has_no_such_event(app, client):
    other = _failed_like(app, "doc-page-skip")
    form = {"csrf_token": _csrf(client, "/jobs"), "op": "requeue:filter", "document_id": "doc-page-skip"}
    confirm = client.post("/jobs/bulk", data=form, follow_redirects=True).get_data(as_text=True)
    token = _csrf(client, f"/jobs/{other}")
    client.post(f"/jobs/{other}/requeue", data={"csrf_token": token})  # meanwhile, by hand
    _run_bulk(client, confirm)
    kinds = _history(client.get(f"/jobs/{other}").get_data(as_text=True))
    assert [kind for kind, _ in kinds] == ["created", "started", "failed", "requeued"]
    assert kinds[-1][1] == "by <bdi>test-admin</bdi>"


def test_a_requeue_through_the_api_and_an_acknowledgement_by_filter_are_listed(app, client, failed, auth_headers):
    client.post(f"/api/v1/processing-jobs/{failed}/requeue", headers=auth_headers)
    with app.app_context():
        get_failure_recorder().record_failure(failed, "again")
    form = {"csrf_token": _csrf(client, "/jobs"), "op": "acknowledge:filter", "document_id": "doc-page"}
    _run_bulk(client, client.post("/jobs/bulk", data=form, follow_redirects=True).get_data(as_text=True))
    kinds = _history(client.get(f"/jobs/{failed}").get_data(as_text=True))
    assert ("requeued", "by <bdi>test-worker</bdi> (through the API)") in kinds
    assert kinds[-1][0] == "acknowledged"
    assert kinds[-1][1].startswith("by <bdi>test-admin</bdi>, with 0 other jobs matching a filter")


def _fail_again(app, job_ids: list[str]) -> None:
    with app.app_context():
        for job_id in job_ids:
            start_job(job_id)
            get_failure_recorder().record_failure(job_id, "timeout")


def test_every_bulk_path_leaves_its_line_in_each_jobs_history(app, client):
    """The selection bar (selected jobs; all matching the filter), the
    group page, and a form posted straight to ``/jobs/bulk/confirm`` with
    the filter scope (no page sends one): each requeue shows on every job
    it changed, with who and how many others."""
    jobs = [_failed_like(app, f"doc-paths-{i}") for i in range(3)]
    token = _csrf(client, "/jobs")
    selected = {"csrf_token": token, "op": "requeue:selected", "job_id": jobs}
    assert client.post("/jobs/bulk/confirm", data=selected).status_code == 303
    _fail_again(app, jobs)
    by_filter = {"csrf_token": token, "op": "requeue:filter", "q": "timeout"}
    _run_bulk(client, client.post("/jobs/bulk", data=by_filter, follow_redirects=True).get_data(as_text=True))
    _fail_again(app, jobs)
    # The hand-made form is frozen and asked about like the list's; nothing changes before "Yes".
    frozen = client.post("/jobs/bulk/confirm", data=by_filter)
    assert frozen.status_code == 303 and frozen.headers["Location"].startswith("/bulk-actions/")
    with app.app_context():
        assert {stored_job_row(j)["status"] for j in jobs} == {"Failed"}
    _run_bulk(client, client.get(frozen.headers["Location"]).get_data(as_text=True))
    _fail_again(app, jobs)
    with app.app_context():
        group_id = db.session.scalar(sa.select(FailureOccurrence.group_id).where(
            FailureOccurrence.job_id == uuid.UUID(jobs[0]), FailureOccurrence.is_current.is_(True)).limit(1))
    path = f"/groups/{group_id}"
    _run_bulk(client, client.post(f"{path}/jobs", data={"csrf_token": _csrf(client, path), "op": "requeue"},
                                  follow_redirects=True).get_data(as_text=True))
    for job_id in jobs:
        requeues = [who for kind, who in _history(client.get(f"/jobs/{job_id}").get_data(as_text=True))
                    if kind == "requeued"]
        assert len(requeues) == 4, job_id
        assert requeues[0] == "by <bdi>test-admin</bdi> (with other selected jobs)"
        assert requeues[1].startswith("by <bdi>test-admin</bdi>, with 2 other jobs matching a filter")
        assert requeues[2].startswith("by <bdi>test-admin</bdi>, with 2 other jobs matching a filter")
        assert requeues[3].startswith("by <bdi>test-admin</bdi>, with 2 other jobs of ")
    with app.app_context():
        links = db.session.scalar(sa.select(sa.func.count()).select_from(BulkActionJob)
                                  .where(BulkActionJob.changed_at.is_not(None)))
    assert links == 9  # 3 jobs x the 3 frozen paths (the selected one is found by its audit row)


def test_the_back_link_returns_to_the_list_and_filter_it_came_from(client, failed):
    listing = "/jobs?error_code=code.unknown_icd10cm&status=Validation_Failed"
    html = client.get(listing).get_data(as_text=True)
    link = unescape(re.search(rf'href="(/jobs/{failed}\?back=[^"]+)"', html).group(1))
    page = client.get(link).get_data(as_text=True)
    assert unescape(re.search(r'<a class="back" href="([^"]+)"', page).group(1)) == listing
    # The requeue confirmation and the acknowledge form carry it through the action.
    confirm = unescape(re.search(rf'href="(/jobs/{failed}/requeue\?next=[^"]+)"', page).group(1))
    answer = client.post(f"/jobs/{failed}/acknowledge", data={
        "csrf_token": _csrf(client, link), "next": unescape(re.search(r'name="next" value="([^"]+)"', page).group(1)),
    })
    assert client.get(answer.headers["Location"]).status_code == 200
    assert f"back={quote(listing, safe='')}" in answer.headers["Location"]
    assert "next=" in confirm


@pytest.mark.parametrize("back", ["https://evil.example/jobs", "//evil.example/x", "javascript:alert(1)", "/\\evil",
                                  # Pages of the site no job is opened from (a trial: the export ran when clicked).
                                  "/exports/job-errors.csv", "/login", "/jobs/summary"])
def test_a_foreign_back_target_is_replaced_by_the_list(client, failed, back):
    page = client.get(f"/jobs/{failed}?back={quote(back, safe='')}").get_data(as_text=True)
    assert re.search(r'<a class="back" href="([^"]+)"', page).group(1) == "/jobs"


def test_the_referring_list_is_the_back_link_without_a_parameter(client, failed):
    page = client.get(f"/jobs/{failed}", headers={"Referer": "http://localhost/jobs?status=all"}).get_data(as_text=True)
    assert unescape(re.search(r'<a class="back" href="([^"]+)"', page).group(1)) == "/jobs?status=all"
    page = client.get(f"/jobs/{failed}", headers={"Referer": "http://elsewhere/jobs?x=1"}).get_data(as_text=True)
    assert re.search(r'<a class="back" href="([^"]+)"', page).group(1) == "/jobs"


@pytest.mark.parametrize(("referrer", "href", "words"), [
    # Browsers send the sign-in page as the referrer of the page it leads
    # to (Referrer-Policy same-origin since session 27): never "back" to it.
    ("/login?next=/jobs/x", "/jobs", "Back to the list"),
    ("/admin/users", "/jobs", "Back to the list"),
    ("/groups?sort=job_count", "/groups?sort=job_count", "Back to failure groups"),
    ("/groups/3?tab=jobs", "/groups/3?tab=jobs", "Back to the group"),
])
def test_only_a_page_that_opens_jobs_is_the_back_link(client, failed, referrer, href, words):
    page = client.get(f"/jobs/{failed}", headers={"Referer": f"http://localhost{referrer}"}).get_data(as_text=True)
    link = re.search(r'<a class="back" href="([^"]+)">([^<]+)</a>', page)
    assert (unescape(link.group(1)), link.group(2)) == (href, f"← {words}")


def test_a_single_requeue_asks_first_and_the_question_changes_nothing(app, client, failed):
    page = client.get(f"/jobs/{failed}").get_data(as_text=True)
    assert f'action="/jobs/{failed}/requeue"' not in page  # no one-click requeue
    confirm = client.get(f"/jobs/{failed}/requeue?next=/jobs/{failed}")
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "Requeue the job for document <code><bdi>doc-page</bdi></code>?" in html
    with app.app_context():
        assert stored_job_row(failed)["status"] == "Validation_Failed"
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    done = client.post(f"/jobs/{failed}/requeue", data={"csrf_token": token, "next": f"/jobs/{failed}"})
    assert done.headers["Location"] == f"/jobs/{failed}"
    with app.app_context():
        assert stored_job_row(failed)["status"] == "Pending"
    assert "Requeued the job" in client.get(done.headers["Location"]).get_data(as_text=True)
    after = client.get(f"/jobs/{failed}/requeue")  # Back to the question, once requeued
    assert after.status_code == 409  # not failed any more
    # Its title says so as its heading does; it asked still (a trial).
    assert re.search(r"<title>(.*?) · ", after.get_data(as_text=True)).group(1) == "This job cannot be requeued"
    assert client.get(f"/jobs/{uuid.uuid4()}/requeue").status_code == 404


def test_viewers_are_not_asked(app, failed):
    viewer = sign_in(app.test_client(), make_user(app, "vera", "viewer"))
    assert viewer.get(f"/jobs/{failed}/requeue").status_code == 403


def test_what_to_do_entity_and_validator_are_shown(client, failed):
    html = client.get(f"/jobs/{failed}").get_data(as_text=True)
    guidance = re.search(r'<section class="what-to-do".*?</section>', html, re.S).group(0)
    assert "<dt><code><bdi>code.unknown_icd10cm</bdi></code></dt><dd>The code is not in ICD-10-CM" in guidance
    assert "vendor.rule" not in guidance  # no line for it: nothing made up
    assert "<bdi>Condition · R07.9X</bdi>" in html
    assert "Error format" not in html and "Validator" not in html  # normalized: the worker's own items


def test_the_validator_is_named(app, client):
    with app.app_context():
        job = create_job("doc-pydantic")
        get_failure_recorder().record_validation_failure(
            job.id, "bad", [{"type": "missing", "loc": ["entities", 0, "code"], "msg": "Field required"}],
            error_format="pydantic",
        )
        job_id = str(job.id)
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "<dt>Validator</dt><dd>pydantic</dd>" in html


def test_each_failure_in_the_history_names_the_worker_that_reported_it(app, client):
    with app.app_context():
        job = create_job("doc-worker")
        get_failure_recorder().record_validation_failure(
            job.id, "bad", {"errors": [{"code": "x.y", "message": "m"}]},
            worker={"name": "entity-extractor <b>", "version": "1.5.0-rc.1"},
        )
        get_failure_recorder().record_failure(job.id, "crashed")  # no worker given
        job_id = str(job.id)
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert html.count('<span class="who">reported by') == 1
    assert ('<span class="who">reported by <bdi>entity-extractor &lt;b&gt;</bdi> <bdi>1.5.0-rc.1</bdi></span>'
            in html)


def test_text_details_are_shown_as_text_at_once(app, client):
    traceback = 'Traceback (most recent call last):\n  File "worker.py", line 3\nValueError: <boom>'
    with app.app_context():
        text_job = create_job("doc-text")
        get_failure_recorder().record_failure(text_job.id, "crashed", traceback)
        object_job = create_job("doc-object")
        get_failure_recorder().record_failure(object_job.id, "crashed", {"traceback": traceback, "exit": 3})
        text_id, object_id = str(text_job.id), str(object_job.id)
    html = client.get(f"/jobs/{text_id}").get_data(as_text=True)
    current = html.split('<section class="history">')[0]
    assert '<pre class="details-text"><bdi>Traceback (most recent call last):\n  File &#34;worker.py&#34;' in current
    assert "&lt;boom&gt;" in current and "<boom>" not in html
    assert '<details class="raw-json">' not in current  # the text is all there is: no second click
    html = client.get(f"/jobs/{object_id}").get_data(as_text=True).split('<section class="history">')[0]
    assert '<p class="text-label"><code><bdi>traceback</bdi></code></p>' in html
    assert '<pre class="details-text"><bdi>Traceback' in html
    assert '<details class="raw-json">' in html  # the whole object is still there as JSON


def test_the_back_link_names_where_it_goes(client, failed):
    page = client.get(f"/jobs/{failed}?back=%2Fadmin%2Faudit%3Factor%3Dx").get_data(as_text=True)
    assert '<a class="back" href="/admin/audit?actor=x">← Back to the audit log</a>' in page
    page = client.get(f"/jobs/{failed}").get_data(as_text=True)
    assert '<a class="back" href="/jobs">← Back to the list</a>' in page
