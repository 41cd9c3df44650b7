"""``failure_group_hot_occurrences`` on /metrics, and the alert rules name only exported metrics."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.config import ROOT
from app.extensions import db
from app.models import FailureGroup
from app.observability import group_metrics
from app.observability.metrics import REGISTRY
from app.services.failure_groups import lifecycle

ITEM = {"code": "unit.not_ucum", "severity": "error", "message": "not UCUM", "pointer": "/entities/0/value/unit"}


def _fail(client, code: str) -> None:
    job = client.post("/api/v1/processing-jobs", json={"document_id": f"doc-{code}"}).get_json()
    answer = client.post(
        f"/api/v1/processing-jobs/{job['id']}/validation-failure",
        json={"error_message": "failed", "error_details": {"errors": [{**ITEM, "code": code}]}},
    )
    assert answer.status_code == 200


def _hot(client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}  # the whole scrape parses
    return {s.labels["code"]: s.value for s in families[group_metrics.NAME].samples}


def test_the_busiest_unresolved_groups_are_on_metrics(app, client):
    for _ in range(3):
        _fail(client, "unit.not_ucum")
    _fail(client, "schema.required")
    _fail(client, "code.unknown_icd10cm")
    hot = _hot(client)
    assert set(hot) == {"unit.not_ucum", "schema.required", "code.unknown_icd10cm"}
    assert hot["unit.not_ucum"] == pytest.approx(3 * hot["schema.required"]) and hot["schema.required"] > 0
    with app.app_context():
        group_id = db.session.scalar(sa.select(FailureGroup.id).where(FailureGroup.code == "schema.required"))
        lifecycle.resolve_group(group_id, "test")
    assert "schema.required" not in _hot(client)  # resolved: not alerting


def test_a_code_that_is_free_text_is_other_on_metrics(app, client):
    """A support trial: a code "MRN 12345678 Jane Doe" was a label value."""
    _fail(client, "MRN 12345678 Jane Doe")
    _fail(client, "@SUM(A1)")
    _fail(client, "unit.not_ucum")
    text = client.get("/metrics").get_data(as_text=True)
    assert "Jane" not in text and "12345678" not in text and "SUM(A1)" not in text
    assert sorted(_hot_codes(client)) == ["other", "other", "unit.not_ucum"]


def _hot_codes(client) -> list[str]:
    text = client.get("/metrics").get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return [s.labels["code"] for s in families[group_metrics.NAME].samples]


def test_the_gauge_is_bounded(app, client, monkeypatch):
    monkeypatch.setattr(group_metrics, "HOT_GROUPS", 2)
    for code in ("a.one", "a.two", "a.three"):
        _fail(client, code)
    with app.app_context():
        assert len(group_metrics.hot_groups(group_metrics.utcnow(), limit=2)) == 2


def test_every_metric_the_rules_name_is_exported():
    rules = (ROOT / "deploy" / "prometheus" / "failure-groups.rules.yml").read_text(encoding="utf-8")
    expressions = "\n".join(re.findall(r"^\s*expr: (.+)$", rules, re.M))
    named = set(re.findall(r"\b(failure_groups?_[a-z_]+)\b", expressions))
    exported = {metric.name for metric in REGISTRY.collect()} | {group_metrics.NAME}
    # prometheus_client reports counters without their _total suffix.
    exported |= {name + "_total" for name in exported}
    assert named and named <= exported, named - exported
