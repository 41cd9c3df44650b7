"""What a second new operator met on the job pages (the second trial of
#14), each fixed and kept fixed here, on both databases."""

from __future__ import annotations

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
