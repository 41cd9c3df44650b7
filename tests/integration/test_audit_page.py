"""The audit log page: filters (actor, action, time), keyset paging, links
to the jobs an event names, its facts as ``key = value`` chips, 400 on bad
parameters. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from html import unescape

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.access import AuditEvent
from app.services import audit_log
from app.services.audit_log import AuditQuery

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def _event(actor: str, action: str, minutes: int, facts=None, row_count=None) -> AuditEvent:
    event = AuditEvent(id=uuid.uuid4(), actor=actor, action=action, filter=facts, row_count=row_count,
                       occurred_at=T0 + timedelta(minutes=minutes))
    db.session.add(event)
    return event


@pytest.fixture
def events(app):
    """25 events a minute apart: alice requeues (even minutes), bob exports (odd)."""
    with app.app_context():
        job = str(uuid.uuid4())
        for n in range(25):
            if n % 2 == 0:
                _event("alice", "jobs.requeue", n, {"scope": "job", "job_ids": [job]}, 1)
            else:
                _event("bob", "export.job_errors.csv", n, {"status": ["Failed"], "error_code": ["code.x"]}, n)
        db.session.commit()
        return job


def _times(html: str) -> list[str]:
    return re.findall(r'<time datetime="([^"]+)"', html)


def test_pages_follow_one_another_without_gaps_or_repeats(client, events):
    seen: list[str] = []
    url = "/admin/audit?limit=10"
    pages = 0
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += _times(html)
        pages += 1
        match = re.search(r'<a rel="next" href="([^"]+)"', html)
        url = "/admin/audit" + unescape(match.group(1)) if match else None
    assert pages == 3
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 25


def test_filters_by_actor_action_and_time(client, events):
    html = client.get("/admin/audit?actor=alice").get_data(as_text=True)
    assert len(_times(html)) == 13 and "bob" not in html
    html = client.get("/admin/audit?action=export.job_errors.csv").get_data(as_text=True)
    assert len(_times(html)) == 12
    html = client.get("/admin/audit?action=jobs.*").get_data(as_text=True)
    assert len(_times(html)) == 13
    html = client.get("/admin/audit?from=2026-01-05T12:10:00Z&to=2026-01-05T12:15:00Z").get_data(as_text=True)
    assert _times(html) == [f"2026-01-05T12:{m}:00Z" for m in (14, 13, 12, 11, 10)]
    # A date alone is its whole UTC day.
    assert len(_times(client.get("/admin/audit?from=2026-01-05&to=2026-01-05").get_data(as_text=True))) == 25
    assert _times(client.get("/admin/audit?to=2026-01-04").get_data(as_text=True)) == []
    # The filter is kept in the next page's link.
    html = client.get("/admin/audit?actor=bob&limit=5").get_data(as_text=True)
    next_link = unescape(re.search(r'<a rel="next" href="([^"]+)"', html).group(1))
    assert "actor=bob" in next_link and "limit=5" in next_link


def test_active_filters_are_removable_chips_in_the_heading(client, events):
    # A trial: a date filter was told only inside the form's fields.
    html = client.get("/admin/audit?actor=bob&from=2026-01-05&to=2026-01-05&limit=5").get_data(as_text=True)
    chips = re.search(r'<ul class="chips" aria-label="Active filters">(.*?)</ul>', html, re.S).group(1)
    texts = [re.sub(r"<[^>]+>", "", t) for t in re.findall(r'<span class="chip-text"[^>]*>(.*?)</span>', chips)]
    assert texts == ["who = bob", "from = 2026-01-05 00:00:00 UTC", "before = 2026-01-06 00:00:00 UTC"]
    removes = [unescape(h) for h in re.findall(r'<a class="chip-remove" href="([^"]+)"', chips)]
    assert removes == ["/admin/audit?from=2026-01-05&to=2026-01-05&limit=5",
                       "/admin/audit?actor=bob&to=2026-01-05&limit=5",
                       "/admin/audit?actor=bob&from=2026-01-05&limit=5"]
    assert len(_times(client.get(removes[0]).get_data(as_text=True))) == 5
    assert "<title>Audit log · who = \u2068bob\u2069" in html
    assert 'aria-label="Active filters"' not in client.get("/admin/audit").get_data(as_text=True)


def test_views_can_be_hidden_to_see_the_changes(app, client, events):
    # A trial: after ten minutes of use the newest 200 rows were mostly seen.group, with no way to leave them out.
    with app.app_context():
        for n, action in enumerate(("seen.job", "seen.group", "seen.api.jobs")):
            _event("carol", action, 30 + n, {"job_ids": [events]})
        db.session.commit()
    assert len(_times(client.get("/admin/audit").get_data(as_text=True))) == 28
    html = client.get("/admin/audit?views=hide").get_data(as_text=True)
    assert len(_times(html)) == 25 and "carol" not in html.split('<table class="audit">')[1]
    assert 'name="views" value="hide" checked' in html
    chips = re.search(r'<ul class="chips" aria-label="Active filters">(.*?)</ul>', html, re.S).group(1)
    assert [re.sub(r"<[^>]+>", "", t) for t in re.findall(r'<span class="chip-text"[^>]*>(.*?)</span>', chips)] == [
        "views = hidden"]
    # With another filter, and kept in the next page's link.
    html = client.get("/admin/audit?views=hide&actor=carol").get_data(as_text=True)
    assert _times(html) == []
    html = client.get("/admin/audit?views=hide&limit=5").get_data(as_text=True)
    assert "views=hide" in unescape(re.search(r'<a rel="next" href="([^"]+)"', html).group(1))
    with app.app_context():
        kept = audit_log.list_audit_events(AuditQuery(hide_views=True), limit=100).events
        assert len(kept) == 25 and not any(e.action.startswith("seen.") for e in kept)


def test_job_ids_are_links_and_facts_are_chips(client, events):
    html = client.get("/admin/audit").get_data(as_text=True)
    assert f'href="/jobs/{events}?back=%2Fadmin%2Faudit"' in html
    assert '"job_ids"' not in html and "{" not in re.sub(r"<style.*?</style>", "", html.split('<main id="content">')[1])
    assert re.search(r'<span class="chip-key">status</span> = <bdi>Failed</bdi>', html)
    assert re.search(r'<span class="chip-key">error_code</span> = <bdi>code.x</bdi>', html)
    assert re.search(r'<span class="chip-key">scope</span> = <bdi>job</bdi>', html)


@pytest.mark.parametrize("query", [
    "from=yesterday", "to=2026-01-32", "from=2026-01-06&to=2026-01-05", "from=2026-01-06T00:00:00Z&to=2026-01-05T00:00:00Z",
    "limit=0", "limit=abc", "cursor=not-a-cursor", "actor=" + "x" * 201, "views=show", "views=%00",
])
def test_bad_parameters_are_400(client, events, query):
    response = client.get(f"/admin/audit?{query}")
    assert response.status_code == 400
    assert response.mimetype == "text/html"


def test_nested_filters_are_flattened(app):
    from app.admin import fact_chips

    assert fact_chips({"scope": "filter", "query": {"status": ["Failed", "Validation_Failed"]},
                       "job_ids": ["x"], "ok": True, "n": None}) == [
        ("scope", "filter"), ("n", "—"), ("ok", "true"), ("status", "Failed, Validation_Failed"),
    ]
    assert fact_chips(None) == []


def test_facts_read_in_one_order_whatever_order_the_database_kept():
    # PostgreSQL's jsonb keeps keys shortest first, SQLite as written: one
    # export's chips read "rows, items, status, ..." on one and "status, ..., rows" on the other.
    from app.admin import fact_chips

    written = {"reason": "x", "status": "Failed", "acknowledged": "false", "rows": "items", "outcome": "failure"}
    jsonb_order = dict(sorted(written.items(), key=lambda item: (len(item[0]), item[0])))
    assert list(jsonb_order) != list(written)
    # A state change's from and to stand together (a re-check found them split by other facts).
    change = {"worker_name": "w", "to": "unresolved", "resolved_in_version": "1.5.0", "from": "resolved"}
    assert [key for key, _ in fact_chips(change)] == ["from", "to", "resolved_in_version", "worker_name"]
    assert fact_chips(jsonb_order) == fact_chips(written) == [
        ("outcome", "failure"), ("reason", "x"), ("acknowledged", "false"), ("rows", "items"), ("status", "Failed"),
    ]


def test_job_audit_events_find_the_jobs_named(app_ctx, events):
    other = str(uuid.uuid4())
    _event("carol", "jobs.acknowledge", 30, {"scope": "selected", "job_ids": [other, events]}, 2)
    _event("dave", "export.job_errors.csv", 31, {"job_ids": [events]})  # not a job action
    _event("erin", "jobs.requeue", -5, {"job_ids": [events]})  # before "since"
    db.session.commit()
    found = audit_log.job_audit_events(uuid.UUID(events), since=T0)
    assert [e.actor for e in found] == ["alice"] * 13 + ["carol"]
    assert audit_log.job_audit_events(uuid.UUID(other), since=T0)[0].actor == "carol"


def test_the_service_pages_by_time_then_id(app_ctx):
    for n in range(4):
        _event(f"same-{n}", "auth.sign_in", 0)  # four events in the same microsecond
    db.session.commit()
    first = audit_log.list_audit_events(AuditQuery(), limit=3)
    second = audit_log.list_audit_events(AuditQuery(), limit=3, cursor=first.next_cursor)
    assert second.next_cursor is None
    assert {e.actor for e in first.events + second.events} == {f"same-{n}" for n in range(4)}


def _group_failure(client, document: str) -> str:
    job = client.post("/api/v1/processing-jobs", json={"document_id": document}).get_json()
    client.post(f"/api/v1/processing-jobs/{job['id']}/start")
    item = {"code": "unit.not_ucum", "severity": "error", "message": "unit is not a valid UCUM code",
            "pointer": "/entities/0/value/unit"}
    answer = client.post(f"/api/v1/processing-jobs/{job['id']}/result", json={
        "status": "validation_failed", "error_message": "Entity validation failed",
        "error_details": {"errors": [item]}, "error_format": "normalized",
        "worker": {"name": "extractor", "version": "1.4.0"}})
    assert answer.status_code == 200, answer.get_json()
    return job["id"]


def test_group_actions_link_their_group_and_bulk_action(app, client):
    from app.models import FailureGroup

    _group_failure(client, "doc-audit-group")
    with app.app_context():
        group_id = db.session.scalar(sa.select(FailureGroup.id))
    path = f"/groups/{group_id}"

    def token(at: str = path) -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', client.get(at).get_data(as_text=True)).group(1)

    confirm = client.post(path + "/jobs", data={"csrf_token": token(), "op": "requeue"}, follow_redirects=True).get_data(as_text=True)
    run_path = re.search(r'action="(/bulk-actions/([^"/]+)/run)"', confirm)
    assert client.post(run_path.group(1), data={"csrf_token": token()}).status_code == 303
    assert client.post(path + "/resolve", data={"csrf_token": token(), "in_version": "1.5.0"}).status_code == 303
    assert client.post(path + "/reopen", data={"csrf_token": token()}).status_code == 303

    html = client.get("/admin/audit").get_data(as_text=True)
    rows = {re.search(r'<td class="action"><code>([^<]+)</code>', r).group(1): r
            for r in re.findall(r'<tr class="audit-event">.*?</tr>', html, re.S)}
    assert {"groups.resolved", "groups.reopened", "jobs.requeue"} <= rows.keys()
    for action in ("groups.resolved", "groups.reopened", "jobs.requeue"):
        assert f'<a class="group-link" href="/groups/{group_id}">group <code>#{group_id}</code></a>' in rows[action]
        assert "chip-key\">group_id<" not in rows[action]
    bulk_id = run_path.group(2)
    assert f'<a class="bulk-link" href="/bulk-actions/{bulk_id}">' in rows["jobs.requeue"]
    assert "chip-key\">bulk_action_id<" not in rows["jobs.requeue"]
    # The page says it lists group actions, and offers them as choices.
    assert "failure groups resolved, ignored, reopened" in html
    assert '<option value="groups.*">' in html and '<option value="groups.resolved">' in html
    assert len(_times(client.get("/admin/audit?action=groups.*").get_data(as_text=True))) == 2


def test_linked_ids_keep_only_well_formed_ids(app):
    bulk = str(uuid.uuid4())
    assert audit_log.linked_ids({"group_id": 7, "bulk_action_id": bulk.upper(), "job_id": "nope"}) == {
        "job_ids": [], "group_ids": ["7"], "bulk_action_ids": [bulk]}
    assert audit_log.linked_ids({"scope": "filter", "query": {"group": ["12"]}, "group_ids": [12, True, 0, "x"]}) == {
        "job_ids": [], "group_ids": ["12"], "bulk_action_ids": []}
    assert audit_log.linked_ids({"group_id": 2**31})["group_ids"] == []
