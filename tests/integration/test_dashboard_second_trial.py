"""What a second new operator met on the job pages (the second trial of
#14), each fixed and kept fixed here, on both databases."""

from __future__ import annotations

import re

from app.extensions import db
from app.models.access import AuditEvent
from tests.integration.test_dashboard_actions import _csrf, _failed_job, _row


def test_requeue_with_nothing_ticked_returns_to_the_list_saying_to_tick_a_job(app, client):
    job_id = _failed_job(app, "doc-untouched")
    before = _row(app, job_id)
    back = "/jobs?document_id=doc-untouched"
    for op in ("requeue:selected", "acknowledge:selected"):
        response = client.post("/jobs/bulk", data={"csrf_token": _csrf(client, back), "op": op, "next": back,
                                                   "document_id": "doc-untouched"})
        # Back to the same list, not a question about 0 jobs.
        assert response.status_code == 303 and response.headers["Location"] == back, op
        html = client.get(back).get_data(as_text=True)
        assert "Tick at least one job, or use &#39;All jobs matching the filter&#39;." in html
        assert "0 jobs" not in html
    assert _row(app, job_id) == before
    with app.app_context():
        assert db.session.query(AuditEvent).filter(AuditEvent.action.like("jobs.%")).count() == 0


def _failed_with_items(app, document_id: str, items: list[dict]) -> str:
    from app.registry import get_failure_recorder
    from app.services.processing_jobs.lifecycle import create_job

    with app.app_context():
        job = create_job(document_id)
        get_failure_recorder().record_failure(job.id, "1 error (unit.not_ucum)", {"errors": items})
        return str(job.id)


def test_a_list_filtered_by_code_names_the_matching_item_on_each_row(app, client):
    _failed_with_items(app, "doc-billable", [
        {"code": "unit.not_ucum", "severity": "error", "message": "unit", "pointer": "/entities/0/unit"},
        {"code": "code.icd10cm_not_billable", "severity": "warning", "message": "<b>not billable</b>",
         "pointer": "/entities/1/code"},
    ])
    html = client.get("/jobs?error_code=code.icd10cm_not_billable").get_data(as_text=True)
    row = re.search(r'<tr class="job.*?</tr>', html, re.S).group(0)
    assert ('<mark class="match">matches: warning <code><bdi>code.icd10cm_not_billable</bdi></code> at '
            '<code><bdi>/entities/1/code</bdi></code></mark>') in row
    # Unfiltered, the row is as before.
    assert 'class="match"' not in client.get("/jobs").get_data(as_text=True)


def test_an_empty_list_says_no_jobs_match_without_a_summary_of_zeros(app, client):
    _failed_job(app, "doc-present")
    html = client.get("/jobs?document_id=doc-absent").get_data(as_text=True)
    assert 'class="summary-frame"' not in html
    assert ('<p class="empty">No jobs match this filter. <a href="/jobs?document_id=doc-absent&amp;status=all'
            '&amp;acknowledged=include">Look in every status, acknowledged jobs included</a>.</p>') in html
    # A search over every status and acknowledged jobs has nowhere else to look.
    html = client.get("/jobs?q=nothing-at-all&status=all&acknowledged=include").get_data(as_text=True)
    assert '<p class="empty">No jobs match this filter.</p>' in html and 'class="summary-frame"' not in html
    # With jobs, the summary is there.
    assert 'class="summary-frame"' in client.get("/jobs?document_id=doc-present").get_data(as_text=True)


def test_codes_and_pointers_may_wrap_only_after_their_separators_and_stay_escaped():
    from app.dashboard.failure_details import break_after

    assert break_after("/entities/0/code", "/") == "/<wbr>entities/<wbr>0/<wbr>code"
    assert break_after("schema.additionalProperties", ".") == "schema.<wbr>additionalProperties"
    assert break_after("/<b>/x", "/") == "/<wbr>&lt;b&gt;/<wbr>x"


def test_an_audit_action_that_names_nothing_known_suggests_the_family(client):
    from app.admin import action_suggestions

    assert action_suggestions("exports") == ["export.*"]
    assert action_suggestions("job") == ["jobs.*"]
    assert action_suggestions("export.*") == action_suggestions("jobs.requeue") == action_suggestions(None) == []
    html = client.get("/admin/audit?action=exports&actor=test-admin").get_data(as_text=True)
    assert ('No action is named <code>exports</code>; try <a href="?actor=test-admin&amp;action=export.%2A">'
            '<code>export.*</code></a>') in html
    assert "try" not in client.get("/admin/audit?action=export.*").get_data(as_text=True).split('class="empty"')[-1]
    # A family no action starts with is told the close one, and a word close
    # to none is told every family (the fourth trial met both in silence).
    assert action_suggestions("exports.*") == ["export.*"]
    from app.services.audit_log import KNOWN_ACTIONS

    families = sorted({f"{known.split('.')[0]}.*" for known in KNOWN_ACTIONS})
    assert action_suggestions("bogus") == action_suggestions("bogus.*") == families and "jobs.*" in families
    html = client.get("/admin/audit?action=exports.*").get_data(as_text=True)
    assert "No action is named <code>exports.*</code>; try" in html and "<code>export.*</code></a>" in html
    assert action_suggestions("export.job_errors.*") == []


def test_api_wording_year_0000_an_empty_document_id_and_a_missing_job(client):
    for year in ("0000", "0001"):
        response = client.get(f"/api/v1/processing-jobs?from={year}-01-01T00:00:00Z")
        assert response.status_code == 400 and response.mimetype == "application/problem+json"
        assert response.get_json()["errors"] == [
            {"field": "from", "parameter": "from", "detail": "must be from 0002-01-01T00:00:00Z to 9998-12-31T23:59:59Z"}]
    for blank in ("", "   "):
        response = client.post("/api/v1/processing-jobs", json={"document_id": blank})
        assert response.status_code == 422 and response.mimetype == "application/problem+json"
        errors = response.get_json()["errors"]
        assert [(e["pointer"], e["detail"]) for e in errors] == [("#/document_id", "must not be empty or only spaces")]
    response = client.get("/api/v1/processing-jobs/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404 and response.get_json()["title"] == "Job not found"
    assert response.get_json()["type"].endswith("/problems/job-not-found")
