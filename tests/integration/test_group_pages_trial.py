"""What a new operator met on the failure-group pages (the trial of #14),
each fixed and kept fixed here, on both databases: the group page's "What
to do" line, form errors that say which field was wrong, warning-only
groups, and the bulk action's done page."""

from __future__ import annotations

from datetime import timedelta

import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup
from tests.integration.test_group_pages import ICD, UNIT, _csrf, _fail, _group_id, groups  # noqa: F401 (fixture)


def test_the_group_page_says_what_to_do_about_its_code(client, groups):  # noqa: F811
    html = client.get(f"/groups/{groups['unit']}").get_data(as_text=True)
    section = re.search(r'<section class="what-to-do".*?</section>', html, re.S).group(0)
    assert "What to do" in section and "<bdi>unit.not_ucum</bdi>" in section
    assert "The unit is not a UCUM code" in section and "then requeue" in section


def test_a_group_without_guidance_shows_no_empty_what_to_do(app, client):
    _fail(client, [{"code": "vendor.nobody_knows", "severity": "error", "message": "odd", "pointer": "/x"}])
    html = client.get(f"/groups/{_group_id(app, 'vendor.nobody_knows')}").get_data(as_text=True)
    assert 'class="what-to-do"' not in html


def _state(app, group_id: int) -> str:
    with app.app_context():
        return db.session.get(FailureGroup, group_id, populate_existing=True).state


def _refused(client, path: str, action: str, form: dict) -> str:
    """Post a group action form that is refused: back to the group page
    (303, post/redirect/get, so a reload is safe), whose HTML is returned."""
    response = client.post(f"{path}/{action}", data={"csrf_token": _csrf(client, path), **form})
    assert response.status_code == 303 and response.headers["Location"] == path
    page = client.get(path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    return page.get_data(as_text=True)


def _flash_error(html: str) -> str:
    return re.search(r'<p class="flash flash-error">(.*?)</p>', html, re.S).group(1)


def test_ignore_until_with_no_or_a_wrong_date_reshows_the_group_page_naming_the_field(app, client, groups):  # noqa: F811
    path = f"/groups/{groups['icd']}"
    for until, says in (("", "Ignore until: enter a date."), ("31/12/2026", "Ignore until: enter a date as YYYY-MM-DD"),
                        ("2020-01-01", "Ignore until: enter a date after today.")):
        html = _refused(client, path, "ignore", {"mode": "until_date", "until": until})
        assert says in _flash_error(html) and "Nothing was changed." in _flash_error(html)
        # The group page itself, with its forms, not a bare error page leading to the job list.
        assert "<h1>Failure group:" in html and f'action="{path}/ignore"' in html
        assert _state(app, groups["icd"]) == "unresolved"


def test_ignore_until_n_more_with_no_or_a_wrong_number_names_the_field(app, client, groups):  # noqa: F811
    path = f"/groups/{groups['icd']}"
    for occurrences, says in (("", "enter how many more occurrences"), ("0", "enter a whole number from 1 to"),
                              ("2.5", "enter a whole number from 1 to"), ("-3", "enter a whole number from 1 to")):
        html = _refused(client, path, "ignore", {"mode": "until_occurrences", "occurrences": occurrences})
        assert f"Ignore until … more occurrences: {says}" in _flash_error(html)
        assert _state(app, groups["icd"]) == "unresolved"


def test_resolve_in_version_takes_a_semver_version_only(app, client, groups):  # noqa: F811
    path = f"/groups/{groups['unit']}"
    # 300 characters: over the form's field length, still this page's message, not a 400
    # "Invalid query parameter" page (third trial, session 16).
    for version in ("1.5 beta", "v1.5.0", "next release", "1" * 300):
        message = _flash_error(_refused(client, path, "resolve", {"in_version": version}))
        assert "Resolve in version: enter a version such as 1.5.0" in message and version not in message
        assert _state(app, groups["unit"]) == "unresolved"
    # The box is wide enough for its placeholder.
    html = client.get(path).get_data(as_text=True)
    assert re.search(r'name="in_version" size="(\d+)" placeholder="optional, e.g. 1.5.0"', html).group(1) == "24"
    response = client.post(path + "/resolve", data={"csrf_token": _csrf(client, path), "in_version": "2.0.0-rc.1"})
    assert response.status_code == 303 and _state(app, groups["unit"]) == "resolved"


def _ignored_until(app, group_id: int) -> tuple[str, object, object]:
    with app.app_context():
        group = db.session.get(FailureGroup, group_id, populate_existing=True)
        return group.state, group.ignore_until, group.ignore_until_occurrences


def test_a_filled_ignore_field_with_the_radio_left_on_forever_chooses_its_mode(app, client, groups):  # noqa: F811
    """The second trial: a date typed with "forever" still ticked ignored
    the group forever and dropped the date without a word."""
    path = f"/groups/{groups['icd']}"
    response = client.post(path + "/ignore", data={"csrf_token": _csrf(client, path), "mode": "forever",
                                                   "until": "2999-12-31", "occurrences": ""})
    assert response.status_code == 303
    state, until, occurrences = _ignored_until(app, groups["icd"])
    assert state == "ignored" and until.date().isoformat() == "2999-12-31" and occurrences is None
    path = f"/groups/{groups['unit']}"
    response = client.post(path + "/ignore", data={"csrf_token": _csrf(client, path), "mode": "forever",
                                                   "until": " ", "occurrences": "7"})
    assert response.status_code == 303
    assert _ignored_until(app, groups["unit"]) == ("ignored", None, 7)


def test_ignore_fields_that_disagree_with_the_chosen_option_are_refused_naming_them(app, client, groups):  # noqa: F811
    path = f"/groups/{groups['icd']}"
    for form, says in (({"mode": "forever", "until": "2999-12-31", "occurrences": "3"},
                        "Ignore: fill in either the date or the number of occurrences, not both"),
                       ({"mode": "until_date", "until": "2999-12-31", "occurrences": "3"},
                        "Ignore until … more occurrences: empty it, or choose that option"),
                       ({"mode": "until_occurrences", "until": "2999-12-31", "occurrences": "3"},
                        "Ignore until: empty it, or choose that option")):
        html = _refused(client, path, "ignore", form)
        assert says in _flash_error(html)
        assert _state(app, groups["icd"]) == "unresolved"
        # What was typed is still there, with the option that was chosen.
        assert 'name="until" ' in html and 'value="2999-12-31"' in html and 'min="1" size="6" value="3"' in html
        assert re.search(rf'value="{form["mode"]}" checked', html)


def test_a_refused_version_stays_in_its_field_and_the_date_field_asks_for_iso_dates(client, groups):  # noqa: F811
    path = f"/groups/{groups['unit']}"
    html = _refused(client, path, "resolve", {"in_version": "1.5 beta"})
    assert 'name="in_version" size="24" placeholder="optional, e.g. 1.5.0" value="1.5 beta"' in html
    # Shown once: a reload (or another visit) is the plain page again.
    assert 'value="1.5 beta"' not in client.get(path).get_data(as_text=True)
    # A type=date input shows the browser's locale (mm/dd/yyyy): the app's dates are YYYY-MM-DD.
    until = re.search(r'<input [^>]*name="until"[^>]*>', client.get(path).get_data(as_text=True)).group(0)
    assert 'type="text"' in until and 'placeholder="YYYY-MM-DD"' in until


LOW = {"code": "confidence.low", "severity": "warning", "message": "confidence is below 0.5",
       "pointer": "/entities/1/confidence"}


def test_a_warning_group_says_so_in_words_and_offers_no_requeue(app, client):
    # As the reference worker sends them: a document fails on its errors, its warnings travel along.
    _fail(client, [UNIT, LOW], document="doc-warned")
    warning, error = _group_id(app, "confidence.low"), _group_id(app, "unit.not_ucum")
    html = client.get(f"/groups/{warning}").get_data(as_text=True)
    assert '<span class="badge severity-warning">Warning</span>' in html
    assert "Warning: it does not make a job fail, so there is nothing to requeue for it." in html
    assert "failed on the errors reported with it" in html and f'href="/jobs?acknowledged=include&amp;group={warning}">1 job failing now</a>' in html
    assert 'value="requeue"' not in html and 'value="acknowledge"' not in html
    # Its jobs are failed jobs carrying it, not jobs "failing on" it.
    assert "<h3>Failed jobs carrying this warning now (1)</h3>" in html and "failing on this group" not in html
    # A crafted form asks anyway: refused, nothing frozen (a trial froze "Acknowledge 1 job").
    for op in ("acknowledge", "requeue"):
        refused = client.post(f"/groups/{warning}/jobs", data={"csrf_token": _csrf(client, f"/groups/{warning}"),
                                                               "op": op})
        assert refused.status_code == 400 and "warning items only" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.text("select count(*) from bulk_actions")) == 0
    # An error group keeps its actions, and says "Error" in words on both pages.
    html = client.get(f"/groups/{error}").get_data(as_text=True)
    assert '<span class="badge severity-error">Error</span>' in html and 'value="requeue">Requeue all…' in html
    rows = re.findall(r'<tr class="group .*?</tr>', client.get("/groups").get_data(as_text=True), re.S)
    assert sorted(re.search(r'badge severity-\w+">(\w+)<', r).group(1) for r in rows) == ["Error", "Warning"]


def test_a_group_with_no_job_failing_now_offers_no_action_on_its_jobs(app, client, groups):  # noqa: F811
    client.post(f"/api/v1/processing-jobs/{groups['icd_job']}/requeue")
    with app.app_context():
        assert db.session.scalar(sa.text("select count(*) from failure_occurrences where group_id = :g and is_current"),
                                 {"g": groups["icd"]}) == 0
    html = client.get(f"/groups/{groups['icd']}").get_data(as_text=True)
    assert "No job is failing on this group now: nothing to requeue or acknowledge." in html
    assert "Requeue all" not in html and "Acknowledge all" not in html


def test_the_done_page_leads_back_to_the_group_and_says_what_skipped_a_requeue(app, client, groups):  # noqa: F811
    path = f"/groups/{groups['unit']}"
    confirm = client.post(path + "/jobs", data={"csrf_token": _csrf(client, path), "op": "requeue"}, follow_redirects=True)
    run_path = re.search(r'action="(/bulk-actions/[^"]+/run)"', confirm.get_data(as_text=True)).group(1)
    # One of the frozen jobs is requeued meanwhile: the action skips it.
    client.post(f"/api/v1/processing-jobs/{groups['unit_jobs'][0]}/requeue")
    done = client.post(run_path, data={"csrf_token": _csrf(client, "/groups")})
    html = client.get(done.headers["Location"]).get_data(as_text=True)
    assert f'<a href="{path}">← Back to the failure group</a>' in html
    skipped = re.search(r'<dd class="skipped">(.*?)</dd>', html, re.S).group(1)
    assert skipped.startswith("1 ") and "requeued, started, completed or failed again meanwhile" in skipped
    assert "acknowledged" not in skipped
    # What was done, in the heading and the title ("done" over nothing done read as success, a trial).
    jobs = len(groups["unit_jobs"])
    assert f"<h1>Requeue {jobs} jobs: done ({jobs - 1} requeued, 1 skipped)</h1>" in html
    assert f"Requeue {jobs} jobs: done ({jobs - 1} requeued, 1 skipped) · Clinical Intelligence</title>" in html


def test_the_done_page_of_a_filter_action_leads_back_to_its_filtered_list(app, client, groups):  # noqa: F811
    form = {"csrf_token": _csrf(client, "/jobs"), "op": "acknowledge:filter", "error_code": "unit.not_ucum"}
    confirm = client.post("/jobs/bulk", data=form, follow_redirects=True).get_data(as_text=True)
    run_path = re.search(r'action="(/bulk-actions/[^"]+/run)"', confirm).group(1)
    done = client.post(run_path, data={"csrf_token": _csrf(client, "/groups")})
    html = client.get(done.headers["Location"]).get_data(as_text=True)
    back = re.search(r'<a href="([^"]+)">← Back to the jobs this filter lists</a>', html).group(1)
    assert back.startswith("/jobs?") and "error_code=unit.not_ucum" in back
    assert "no longer failing, failing again with a new failure, or acknowledged already" in html


def test_the_requeue_question_is_a_page_of_its_own_that_a_reload_does_not_resend(app, client, groups):  # noqa: F811
    from app.models import BulkAction

    path = f"/groups/{groups['unit']}"
    response = client.post(path + "/jobs", data={"csrf_token": _csrf(client, path), "op": "requeue"})
    assert response.status_code == 303 and re.fullmatch(r"/bulk-actions/[0-9a-f-]{36}", response.headers["Location"])
    for _ in range(2):  # a reload reads the same frozen question again
        html = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "Requeue 4 jobs?" in html and 'value="requeue"' not in html
        assert f'<a href="{path}">Cancel</a>' in html
    # When it was frozen, and by whom; fresh: no warning.
    assert re.search(r'<p class="frozen-at">Selected <time datetime="[^"]+Z" title="[^"]+ UTC">'
                     r'(just now|\d+ s ago)<span class="exact-utc"> \([^)]+ UTC\)</span></time>'
                     r' by <bdi>test-admin</bdi>.</p>', html), html
    # A question left open a while says so and offers a fresh count (a trial confirmed "44" for 35).
    with app.app_context():
        bulk = db.session.scalars(sa.select(BulkAction)).one()
        bulk.created_at = bulk.created_at - timedelta(minutes=11)
        db.session.commit()
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    note = re.search(r'<p class="frozen-at notice">(.*?)</p>', html, re.S)
    assert note and "11 min ago" in note.group(1) and "fewer may be done than this says" in note.group(1)
    assert f'<a href="{path}">Start again</a>' in note.group(1)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BulkAction)) == 1
    assert client.post("/groups/999999/jobs", data={"csrf_token": _csrf(client, path), "op": "requeue"}).status_code == 404


def test_groups_take_error_code_as_the_code_filter(client, groups):  # noqa: F811
    """The second trial: /groups?error_code=x listed every group (the name
    /jobs and the exports use was silently ignored)."""
    for query in ("error_code=unit.not_ucum", "code=unit.not_ucum", "code=unit.not_ucum&error_code=unit.not_ucum"):
        html = client.get(f"/groups?{query}").get_data(as_text=True)
        assert html.count('<tr class="group') == 1 and "unit.not_ucum" in html and "code.unknown_icd10cm" not in html, query
    response = client.get("/groups?code=unit.not_ucum&error_code=code.unknown_icd10cm")
    assert response.status_code == 400 and "error_code" in response.get_data(as_text=True)


def test_dashboard_lists_refuse_an_unknown_parameter_with_the_same_page_without_it(client, groups):  # noqa: F811
    for path, kept in (("/groups", "state=all"), ("/jobs", "status=all"), ("/admin/audit", "actor=test-admin"),
                       ("/search", "q=doc")):
        response = client.get(f"{path}?{kept}&error_cod=x")
        assert response.status_code == 400 and response.mimetype == "text/html", path
        html = response.get_data(as_text=True)
        assert "Unknown query parameter" in html and "is not a parameter of this page" in html
        assert f'<a class="retry" href="{path}?{kept}">The same page without <code>error_cod</code></a>' in html, path
    # What the pages themselves send is taken.
    for query in ("/groups?state=all&sort=last_seen&limit=10&from=2020-01-01T00:00:00Z&job_type=x&worker_version=1.0.0",
                  f"/jobs?status=all&time_field=created&acknowledged=include&limit=25&group={groups['unit']}&q=doc&job_type=x",
                  "/admin/audit?actor=a&action=jobs.*&limit=10"):
        assert client.get(query).status_code == 200, query


def test_the_detail_pages_refuse_an_unknown_parameter_too(app, client, groups):  # noqa: F811
    """The sixth trial: /groups/<id>?foo=1 and /jobs/<id>?foo=1 answered 200."""
    from app.models import ProcessingJob

    with app.app_context():
        job_id = db.session.scalar(sa.select(ProcessingJob.id).where(ProcessingJob.status == "Validation_Failed").limit(1))
    group = f"/groups/{groups['unit']}"
    made = client.post(group + "/jobs", data={"csrf_token": _csrf(client, group), "op": "requeue"})
    bulk = made.headers["Location"]
    pages = {
        group: "cursor=", f"/jobs/{job_id}": "back=/jobs&match=doc", f"/jobs/{str(job_id)[:8]}": "back=/jobs",
        f"/jobs/{job_id}/job.json": "", f"/jobs/{job_id}/requeue": "next=/jobs", bulk: "",
        "/jobs/summary": "status=all&limit=10&cursor=",
    }
    for path, kept in pages.items():
        response = client.get(f"{path}?{kept}&foo=1" if kept else f"{path}?foo=1")
        assert response.status_code == 400, path
        assert "Unknown query parameter" in response.get_data(as_text=True), path
        assert client.get(f"{path}?{kept}" if kept else path).status_code in (200, 302), path
    assert "this page takes none." in client.get(f"{bulk}?foo=1").get_data(as_text=True)


@pytest.mark.parametrize(("until", "says"), [
    ("9999-12-31", "Ignore until: enter a date up to 9998-12-31"),  # the API refuses it too
    ("0000-01-01", "Ignore until: enter a date after today"),  # well-formed: not a format error
    ("2026-02-30", "Ignore until: February 2026 has 28 days"),  # well-formed: say why it is no date
    ("2028-02-30", "Ignore until: February 2028 has 29 days"),
])
def test_ignore_dates_beyond_what_the_api_accepts_are_refused_in_words(app, client, groups, until, says):  # noqa: F811
    path = f"/groups/{groups['icd']}"
    html = _refused(client, path, "ignore", {"mode": "until_date", "until": until, "occurrences": ""})
    assert says in _flash_error(html)
    assert _state(app, groups["icd"]) == "unresolved"


def test_a_filtered_group_list_says_so_with_chips_as_the_job_list_does(client, groups):  # noqa: F811
    """The sixth trial: on a phone (Filters folded), /groups?state=resolved&
    worker_version=1.0.0 looked unfiltered: no chip, a plain "Filters"."""
    html = client.get("/groups?state=resolved&worker_version=1.0.0&code=unit.not_ucum").get_data(as_text=True)
    assert "<summary>Filters (3 active)</summary>" in html
    chips = re.findall(r'<li class="chip"><span class="chip-text" title="([^"]+)">.*?href="([^"]+)"', html)
    assert chips == [
        ("state = \u2068resolved\u2069", "/groups?worker_version=1.0.0&amp;code=unit.not_ucum"),
        ("code = \u2068unit.not_ucum\u2069", "/groups?state=resolved&amp;worker_version=1.0.0"),
        ("worker version = \u20681.0.0\u2069", "/groups?state=resolved&amp;code=unit.not_ucum"),
    ]
    assert "<title>Failure groups · state = \u2068resolved\u2069" in html
    # The default list has none.
    html = client.get("/groups").get_data(as_text=True)
    assert '<li class="chip">' not in html and "<summary>Filters</summary>" in html


def test_a_chip_of_only_a_bidi_control_is_marked_not_blank(client, groups):  # noqa: F811
    """The sixth trial: /search?q=%E2%80%AE showed the chip "search = " blank."""
    html = client.get("/jobs?q=%E2%80%AE&status=all").get_data(as_text=True)
    chip = re.search(r'<li class="chip"><span class="chip-text" title="search = [^"]*">(.*?)</span>', html).group(1)
    assert "[RLO]" in chip and "\u202e" not in chip


def test_a_second_resolve_of_a_resolved_group_leads_back_to_it_saying_why(app, client, groups):  # noqa: F811
    """A trial: of two operators resolving at once, the loser got a bare
    409 page with no way back to the group."""
    path = f"/groups/{groups['unit']}"
    token = _csrf(client, path)
    assert client.post(path + "/resolve", data={"csrf_token": token, "in_version": "1.6.0"}).status_code == 303
    response = client.post(path + "/resolve", data={"csrf_token": token, "in_version": "2.0.0"})
    assert (response.status_code, response.headers["Location"]) == (303, path)
    html = client.get(path).get_data(as_text=True)
    assert "Nothing was changed: the group is resolved now, so it cannot be resolved" in html
    assert "in version <code><bdi>1.6.0</bdi></code>" in html  # the first one stands


def test_a_refused_worker_name_is_not_shown_again_as_its_mark(app, client, groups):  # noqa: F811
    """A trial: "extractor\\u200b" was refused, came back in the field as the
    text "extractor[ZWSP]", and a second submit resolved with that text."""
    path = f"/groups/{groups['unit']}"
    html = _refused(client, path, "resolve", {"in_version": "1.6.0", "in_worker": "extractor\u200b"})
    said = "Resolve in version … of worker: must not hold control, format or line-separator characters"
    assert said in _flash_error(html)
    field = re.search(r'<input type="text" name="in_worker"[^>]*value="([^"]*)"', html).group(1)
    assert field == "" and "[ZWSP]" not in field
    assert _state(app, groups["unit"]) == "unresolved"
    # What the field offers: the workers seen lately, most first.
    assert re.search(r'lately: <bdi>extractor</bdi> \(\d+\)', html)


def test_a_refused_ignore_leaves_the_resolve_forms_worker_filled_in(app, client, groups):  # noqa: F811
    """A trial: after a refused Ignore ("until 2020-01-01"), Resolve's "of
    worker", first filled in with the usual worker, came back empty, and a
    resolve in a version then named no worker."""
    path = f"/groups/{groups['unit']}"
    first = client.get(path).get_data(as_text=True)
    usual = re.search(r'<input type="text" name="in_worker"[^>]*value="([^"]*)"', first).group(1)
    assert usual == "extractor"
    html = _refused(client, path, "ignore", {"mode": "until_date", "until": "2020-01-01"})
    assert "Ignore until" in _flash_error(html)
    assert re.search(r'<input type="text" name="in_worker"[^>]*value="([^"]*)"', html).group(1) == usual
    assert re.search(r'name="until"[^>]*value="2020-01-01"', html)  # the refused form's own field, as typed


def test_the_group_list_refuses_a_range_ending_before_it_starts_and_says_each_state_once(client, groups):  # noqa: F811
    """A trial: from after to listed nothing (where /jobs answers 400); the
    chip said "all or all" and kept a space typed before a state."""
    response = client.get("/groups?from=2026-12-05T10:00:00Z&to=2026-12-04T00:00:00Z")
    assert response.status_code == 400 and "from must not be later than to" in response.get_data(as_text=True)
    html = client.get("/groups?state=resolved&state=%20resolved,new").get_data(as_text=True)
    assert re.search(r'<span class="chip-text" title="state = \u2068resolved or new\u2069">', html)
    # "all" beside a state is every state, and the chip says so (not "all or new").
    html = client.get("/groups?state=all&state=new").get_data(as_text=True)
    assert re.search(r'<span class="chip-text" title="state = \u2068all\u2069">', html)


def test_an_emptied_worker_field_is_refused_not_filled_in_with_the_usual_worker(app, client, groups):  # noqa: F811
    """A trial: resolving in 1.6.0 with "of worker" emptied recorded "of
    extractor", the worker the field had held. A version is of one worker:
    the emptied field is refused, naming it; left out of the form (as a
    script might), the usual worker is still the default."""
    path = f"/groups/{groups['unit']}"
    html = _refused(client, path, "resolve", {"in_version": "1.6.0", "in_worker": ""})
    assert "of worker: enter the worker 1.6.0 is a version of (lately: extractor)" in _flash_error(html)
    assert _state(app, groups["unit"]) == "unresolved"
    token = _csrf(client, path)
    assert client.post(path + "/resolve", data={"csrf_token": token, "in_version": "1.6.0"}).status_code == 303
    assert "in version 1.6.0 of " in client.get(path).get_data(as_text=True)
    assert _state(app, groups["unit"]) == "resolved"


def test_the_ignore_message_says_the_condition_taken(client, groups):  # noqa: F811
    path = f"/groups/{groups['icd']}"
    client.post(path + "/ignore", data={"csrf_token": _csrf(client, path), "mode": "until_occurrences",
                                        "occurrences": "1"})
    assert f"Ignored group {groups['icd']} until 1 more occurrence." in client.get(path).get_data(as_text=True)


def test_a_dashboard_405_names_the_methods_allowed(client):
    # A trial (session 27): the API's 405s had Allow (RFC 9110 section
    # 15.5.6), the pages' did not.
    response = client.get("/groups/3/resolve")
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"POST", "OPTIONS"}


def test_the_bulk_actions_address_opened_directly_is_a_405_page_not_a_missing_job(client):
    # A trial (session 27): GET /jobs/bulk was read as the job page of a
    # job called "bulk" and said "Job not found".
    response = client.get("/jobs/bulk")
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert response.headers["Allow"] == "POST"
    html = response.get_data(as_text=True)
    assert "Job not found" not in html and "tick jobs on the job list" in html


def test_a_form_refused_with_a_400_page_links_back_to_the_page_it_was_on(app, client, groups):  # noqa: F811
    # A trial: a control character in "In version" gave a 400 page at
    # /groups/<id>/resolve that linked only to the lists.
    path = f"/groups/{groups['unit']}"
    response = client.post(f"{path}/resolve", data={"csrf_token": _csrf(client, path), "in_version": "1.0\x01"},
                           headers={"Referer": f"http://localhost{path}"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and f'<a class="retry" href="{path}">Back to the form</a>' in html
    assert _state(app, groups["unit"]) == "unresolved"
    # Another site's page is never linked.
    response = client.post(f"{path}/resolve", data={"csrf_token": _csrf(client, path), "in_version": "1.0\x01"},
                           headers={"Referer": "http://evil.example/groups"})
    assert "Back to the form" not in response.get_data(as_text=True)


def _state_at(client, path: str) -> str:
    return re.search(r'name="state_at" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _events_and_audit(app, group_id: int) -> tuple[int, int]:
    from app.models import AuditEvent
    from app.models.failure_group import FailureGroupEvent

    with app.app_context():
        events = db.session.scalar(sa.select(sa.func.count()).where(FailureGroupEvent.group_id == group_id))
        audited = db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action.like("groups.%")))
        return events, audited


@pytest.mark.parametrize("action, form", [
    ("resolve", {"in_version": ""}),
    ("ignore", {"mode": "forever"}),
])
def test_a_stale_group_page_does_not_replace_a_colleagues_decision(app, client, groups, action, form):  # noqa: F811
    """A trial: two operators opened an unresolved group; one ignored it until
    5 more occurrences, the other, on the page as it was, then resolved it
    (or ignored it forever), and the first one's decision was replaced
    unseen. The forms carry the time of the state they showed."""
    from app.services.failure_groups import lifecycle

    path = f"/groups/{groups['unit']}"
    token, shown = _csrf(client, path), _state_at(client, path)
    with app.app_context():
        lifecycle.ignore_group(groups["unit"], "op-two", occurrences=5)
    before = _events_and_audit(app, groups["unit"])
    response = client.post(f"{path}/{action}", data={"csrf_token": token, "state_at": shown, **form})
    assert (response.status_code, response.headers["Location"]) == (303, path)
    with app.app_context():
        group = db.session.get(FailureGroup, groups["unit"])
        assert (group.state, group.ignore_mode, group.ignore_until_occurrences) == ("ignored", "until_occurrences", 5)
    assert _events_and_audit(app, groups["unit"]) == before  # no event, no audit row
    message = _flash_error(client.get(path).get_data(as_text=True))
    assert "Nothing was changed: group" in message and "was ignored by" in message and "op-two" in message
    assert "after this page showed it; it is ignored now" in message
    # The page as it is now acts.
    fresh = {"csrf_token": _csrf(client, path), "state_at": _state_at(client, path), **form}
    assert client.post(f"{path}/{action}", data=fresh).status_code == 303
    with app.app_context():
        assert db.session.get(FailureGroup, groups["unit"]).ignore_until_occurrences is None


def test_a_stale_refusal_keeps_what_was_typed_for_acting_again(app, client, groups):  # noqa: F811
    # A trial: after "group 15 was resolved by ... after this page showed it", the ignore form came back empty.
    from app.services.failure_groups import lifecycle

    path = f"/groups/{groups['unit']}"
    token, shown = _csrf(client, path), _state_at(client, path)
    with app.app_context():
        lifecycle.resolve_group(groups["unit"], "op-two")
    form = {"csrf_token": token, "state_at": shown, "mode": "until_occurrences", "occurrences": "7"}
    assert client.post(f"{path}/ignore", data=form).status_code == 303
    page = client.get(path).get_data(as_text=True)
    assert "after this page showed it" in _flash_error(page)
    assert re.search(r'value="until_occurrences" checked>.*?name="occurrences"[^>]*value="7"', page, re.S)
    assert 'aria-invalid' not in page.split('name="occurrences"')[1].split(">")[0]  # kept, not marked wrong
    # Once only: the next view is the page as it is.
    assert 'value="7"' not in client.get(path).get_data(as_text=True)


def test_a_stale_reopen_is_refused_and_a_malformed_state_time_is_a_400(app, client, groups):  # noqa: F811
    from app.services.failure_groups import lifecycle

    path = f"/groups/{groups['unit']}"
    with app.app_context():
        lifecycle.resolve_group(groups["unit"], "op-two")
    token, shown = _csrf(client, path), _state_at(client, path)
    with app.app_context():
        lifecycle.ignore_group(groups["unit"], "op-two")
    assert client.post(f"{path}/reopen", data={"csrf_token": token, "state_at": shown}).status_code == 303
    assert _state(app, groups["unit"]) == "ignored"
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "\u0663"):
        response = client.post(f"{path}/reopen", data={"csrf_token": token, "state_at": bad})
        assert response.status_code == 400, bad
        assert "The time of the group&#39;s state shown is not valid." in response.get_data(as_text=True), bad
    assert _state(app, groups["unit"]) == "ignored"


def _title(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1)


def test_the_page_an_action_leads_to_says_its_outcome_first_in_its_title(app, client, groups):  # noqa: F811
    """A trial: after Resolve the title still read "Group …" and the outcome
    was only in a status message already on the page when it loaded, which
    screen readers do not announce."""
    path = f"/groups/{groups['unit']}"
    assert _title(client.get(path).get_data(as_text=True)).startswith("Group ")
    client.post(f"{path}/resolve", data={"csrf_token": _csrf(client, path), "state_at": _state_at(client, path)})
    html = client.get(path).get_data(as_text=True)
    assert _title(html).startswith(f"Resolved group {groups['unit']}. · Group ")
    assert _title(client.get(path).get_data(as_text=True)).startswith("Group ")  # shown once
    stale = {"csrf_token": _csrf(client, path), "state_at": "2020-01-01T00:00:00Z"}
    client.post(f"{path}/reopen", data=stale)
    assert _title(client.get(path).get_data(as_text=True)).startswith("Error: Group ")


def test_the_group_page_links_the_export_of_the_errors_failing_on_it_now(app, client, groups):  # noqa: F811
    """A trial: the export was two pages and a folded filter panel away."""
    from tests.conftest import make_user, sign_in

    html = client.get(f"/groups/{groups['unit']}").get_data(as_text=True)
    links = re.findall(r'<a href="(/exports/job-errors\.(?:csv|ndjson)\?[^"]+)"', html)
    assert len(links) == 2
    export = client.get(links[0].replace("&amp;", "&"))
    rows = export.get_data(as_text=True).splitlines()[1:]
    assert export.status_code == 200 and len(rows) == len(groups["unit_jobs"])
    assert {job for job in groups["unit_jobs"] if any(job in row for row in rows)} == set(groups["unit_jobs"])
    viewer = sign_in(app.test_client(), make_user(app, "vic", "viewer"))
    assert "/exports/" not in viewer.get(f"/groups/{groups['unit']}").get_data(as_text=True)


def test_groups_sort_by_jobs_failing_now_on_the_page_and_in_the_api(app, client, groups):  # noqa: F811
    """A trial: sorted by jobs affected (ever), groups with none failing now
    ranked above the group failing now, and no order put it on top."""
    for job in groups["unit_jobs"]:
        client.post(f"/api/v1/processing-jobs/{job}/requeue")

    def titles(query: str) -> list[str]:
        html = client.get("/groups?state=all" + query).get_data(as_text=True)
        return re.findall(r'<td class="title"><a href="/groups/\d+(?:\?back=[^"]*)?"><bdi>([^<]+)</bdi>', html)

    assert titles("&sort=job_count")[0].startswith("unit.not_ucum")  # 4 ever, 0 now
    assert titles("&sort=current_job_count")[0].startswith("code.unknown_icd10cm")  # 1 ever, 1 now
    assert '<strong aria-current="true">Failing now</strong>' in client.get(
        "/groups?sort=current_job_count").get_data(as_text=True)
    first = client.get("/api/v1/failure-groups?sort=current_job_count&limit=1").get_json()
    assert [(g["id"], g["current_job_count"]) for g in first["items"]] == [(groups["icd"], 1)]
    second = client.get(f"/api/v1/failure-groups?sort=current_job_count&limit=1&cursor={first['next_cursor']}")
    assert [(g["id"], g["current_job_count"]) for g in second.get_json()["items"]] == [(groups["unit"], 0)]
    other = client.get(f"/api/v1/failure-groups?sort=job_count&cursor={first['next_cursor']}")
    assert other.status_code == 400 and other.get_json()["errors"][0]["parameter"] == "cursor"
