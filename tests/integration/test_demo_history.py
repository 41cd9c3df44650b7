"""demo/seed_history.py: batches played over HTTP land at their time in the
past, and the plan's resolve makes a later batch a regression."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.config import ROOT
from app.extensions import db
from app.models import FailureGroup, FailureGroupEvent, JobFailure
from app.services import access, audit_log, worker_tokens
from app.models.types import utcnow
from app.services.failure_groups import group_details, queries, series
from demo import generate_corpus
from tests.live_server import serve

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

_spec = importlib.util.spec_from_file_location("seed_history", ROOT / "demo" / "seed_history.py")
seed_history = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("seed_history", seed_history)
_spec.loader.exec_module(seed_history)

FUTURE_DATE = "doc-0010-lab-result-future-date.json"


def test_batches_are_aged_and_a_resolved_group_regresses(app, worker_token, tmp_path):
    for folder in ("old", "new"):
        (tmp_path / folder).mkdir()
        shutil.copy(ROOT / "demo" / "corpus" / FUTURE_DATE, tmp_path / folder / FUTURE_DATE)
    plan = {
        "seed": 0,
        "batches": [
            {"folder": "old", "worker": {"name": "extractor", "version": "1.4.0"}, "hours_ago": 72},
            {"folder": "new", "worker": {"name": "extractor", "version": "1.5.0"}, "hours_ago": 2},
        ],
        "actions": [{"after": "old", "action": "resolve", "code": "date.in_future"}],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    with serve(app) as base_url, app.app_context():
        seed_history.seed(tmp_path, base_url, worker_token)
        now = utcnow()
        group = db.session.scalars(sa.select(FailureGroup).where(FailureGroup.code == "date.in_future")).one()
        assert abs(group.first_seen - (now - timedelta(hours=72))) < timedelta(minutes=5)
        assert abs(group.last_seen - (now - timedelta(hours=2))) < timedelta(minutes=5)
        view = queries.get_group(group.id)
        assert (group.state, view.substate) == ("unresolved", "regressed")
        assert view.worker_versions and set(view.worker_versions) == {"1.4.0", "1.5.0"}
        hourly = series.hourly_occurrences([group.id], now - timedelta(hours=80), now)[group.id]
        assert sum(hourly) == 2 and hourly[-3] + hourly[-4] >= 1  # the 1.5.0 failure, two hours back
        events = group_details.group_timeline(group.id)
        assert [e.reason for e in events] == ["created", "resolved", "regressed"]
        assert all(e.at < now - timedelta(hours=1) for e in events)
        recorded = sorted(db.session.scalars(sa.select(JobFailure.recorded_at)))
        assert recorded[0] < now - timedelta(hours=71) and recorded[1] < now - timedelta(hours=1)


def test_each_state_change_is_audited_at_the_time_of_its_timeline_event(app, tmp_path):
    """The demo's own history (demo/generate_corpus.py, seed 12, as
    scripts/demo plays it): /admin/audit and /groups/<id> give one time for
    one change, so the audit row of every resolve and regression moves back
    with its event, and the audit log lists each group's changes in its
    timeline's order. The account and token made before the history keep
    the time they were made."""
    plan_dir = tmp_path / "plan"  # generate() empties its folder
    generate_corpus.generate(plan_dir, seed=12)
    with app.app_context():
        before = utcnow()
        access.create_user("demo-admin", "a long enough password", "admin", actor="cli")
        token, _ = worker_tokens.create_worker_token("demo-worker", actor="cli")
    with serve(app) as base_url, app.app_context():
        seed_history.seed(plan_dir, base_url, token)
        now = utcnow()
        changes = db.session.scalars(
            sa.select(FailureGroupEvent).where(FailureGroupEvent.reason != "created")
            .order_by(FailureGroupEvent.at, FailureGroupEvent.id)
        ).all()
        timelines = {e.group_id: group_details.group_timeline(e.group_id) for e in changes}
        # The audit page's own query, newest first, every row on one page.
        listed = audit_log.list_audit_events(audit_log.AuditQuery(), limit=10_000).events
    assert {e.reason for e in changes} == {"resolved", "regressed"}
    assert all(e.at < now - timedelta(minutes=30) for e in changes)  # in the past, by an hour or more
    audited = [  # oldest first
        (e.occurred_at, e.action, e.filter["group_id"]) for e in reversed(listed) if e.action.startswith("groups.")
    ]
    assert sorted(audited) == sorted((e.at, f"groups.{e.reason}", e.group_id) for e in changes)
    for group_id, timeline in timelines.items():
        assert [action for _, action, group in audited if group == group_id] == [
            f"groups.{e.reason}" for e in timeline if e.reason != "created"
        ]
    accounts = [e for e in listed if not e.action.startswith("groups.")]
    assert sorted(e.action for e in accounts) == ["tokens.create", "users.create"]
    assert all(before <= e.occurred_at <= now for e in accounts), accounts
