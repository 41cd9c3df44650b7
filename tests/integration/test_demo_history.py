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
from app.models import AuditEvent, FailureGroup, JobFailure
from app.services import access, worker_tokens
from app.models.types import utcnow
from app.services.failure_groups import group_details, queries, series
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


def test_the_audit_log_keeps_its_real_times(app, tmp_path):
    """The account and token made before the history (scripts/demo) and the
    events the history audits (a resolve, a regression) keep the time they
    were written: the demo ages its story, never the audit log."""
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
    with app.app_context():
        before = utcnow()
        access.create_user("demo-admin", "a long enough password", "admin", actor="cli")
        token, _ = worker_tokens.create_worker_token("demo-worker", actor="cli")
    with serve(app) as base_url, app.app_context():
        seed_history.seed(tmp_path, base_url, token)
        now = utcnow()
        events = db.session.execute(sa.select(AuditEvent.action, AuditEvent.occurred_at)).all()
    actions = {action for action, _ in events}
    assert {"users.create", "tokens.create", "groups.resolved", "groups.regressed"} <= actions
    assert all(before <= at <= now for _, at in events), events
