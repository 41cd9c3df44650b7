"""The failure-group lifecycle: each transition, the version rule, wake-ups,
timeline and audit rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.errors import InvalidFieldsError
from app.extensions import db
from app.models import AuditEvent, FailureGroup
from app.observability import metrics
from app.registry import get_failure_recorder
from app.services.failure_groups.errors import GroupNotFoundError, InvalidGroupTransitionError
from app.services.failure_groups.lifecycle import ignore_group, recent_worker_names, reopen_group, resolve_group
from app.services.failure_groups.group_details import group_timeline
from app.services.failure_groups.queries import GroupFilter, get_group, list_groups
from app.services.processing_jobs.lifecycle import create_job

ITEM = {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/0/value/unit"}


def _fail(version: str | None = None, n: int = [0]) -> None:  # noqa: B006 (a counter for document ids)
    n[0] += 1
    worker = {"name": "extractor", "version": version} if version else None
    get_failure_recorder().record_validation_failure(
        create_job(f"doc-{n[0]}").id, "invalid", {"errors": [ITEM]}, worker=worker
    )


def _group() -> FailureGroup:
    db.session.rollback()
    return db.session.scalars(sa.select(FailureGroup)).one()


def _audit_actions() -> list[str]:
    return [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.occurred_at))]


def _value(counter) -> float:
    return counter._value.get()


def test_resolve_records_who_when_and_version_in_timeline_and_audit(app_ctx):
    _fail()
    group = resolve_group(_group().id, "alice", in_version="2.0.0")
    assert (group.state, group.substate, group.resolved_by, group.resolved_in_version) == (
        "resolved", None, "alice", "2.0.0"
    )
    assert group.resolved_at is not None
    events = group_timeline(group.id)
    assert [(e.reason, e.actor, e.from_state, e.to_state) for e in events] == [
        ("created", "system", None, "unresolved"), ("resolved", "alice", "unresolved", "resolved")
    ]
    # "": of the workers that send no name (the only ones the group has seen).
    assert events[1].details == {"in_version": "2.0.0", "of_worker": "", "via": "dashboard"}
    audit = db.session.scalars(sa.select(AuditEvent)).one()
    assert (audit.action, audit.actor, audit.filter["group_id"], audit.filter["in_version"]) == (
        "groups.resolved", "alice", group.id, "2.0.0"
    )
    with pytest.raises(InvalidGroupTransitionError):
        resolve_group(group.id, "alice")


def test_an_occurrence_on_a_resolved_group_is_a_regression(app_ctx):
    _fail()
    resolve_group(_group().id, "alice")
    before = _value(metrics.GROUPS_REGRESSED)
    _fail("0.0.1")
    group = _group()
    assert (group.state, group.substate, group.resolved_by) == ("unresolved", "regressed", None)
    assert [e.reason for e in group_timeline(group.id)][-1] == "regressed"
    assert _audit_actions() == ["groups.resolved", "groups.regressed"]
    assert _value(metrics.GROUPS_REGRESSED) == before + 1
    assert get_group(group.id).substate == "regressed"


@pytest.mark.parametrize(
    ("worker_version", "regressed"),
    [("1.9.0", False), ("2.0.0-rc.1", False), ("2.0.0", True), ("2.0.1", True), (None, True), ("nightly", True)],
)
def test_resolved_in_version_ignores_older_workers(app_ctx, worker_version, regressed):
    _fail("0.1.0")  # from "extractor", whose version the group is resolved in
    resolve_group(_group().id, "alice", in_version="2.0.0")
    _fail(worker_version)
    group = _group()
    assert group.state == ("unresolved" if regressed else "resolved")
    # The occurrence is counted either way.
    assert get_group(group.id).occurrence_count == 2


def _fail_as(name: str | None, version: str) -> None:
    worker = {"version": version, **({"name": name} if name else {})}
    get_failure_recorder().record_validation_failure(
        create_job(f"doc-{name}-{version}-{uuid.uuid4().hex[:6]}").id, "invalid", {"errors": [ITEM]}, worker=worker
    )


@pytest.mark.parametrize(
    ("in_worker", "then", "regressed"),
    [
        (None, ("extractor", "1.9.0"), False),  # of the worker failing now, by default
        (None, ("other", "1.0.0"), True),  # another worker's old version is a comeback
        (None, (None, "1.0.0"), True),  # so is a nameless one's
        ("other", ("other", "1.0.0"), False),  # named: that worker's older versions
        ("other", ("extractor", "1.0.0"), True),
    ],
)
def test_resolved_in_version_is_a_version_of_one_worker(app_ctx, in_worker, then, regressed):
    _fail_as("other", "0.9.0")
    _fail_as("extractor", "2.0.0")  # the latest occurrence
    group = resolve_group(_group().id, "alice", in_version="2.0.0", in_worker=in_worker)
    assert group.resolved_in_worker == (in_worker or "extractor")
    assert group_timeline(group.id)[-1].details == {
        "in_version": "2.0.0", "of_worker": in_worker or "extractor", "via": "dashboard"}
    _fail_as(*then)
    group = _group()
    assert group.state == ("unresolved" if regressed else "resolved")
    if regressed:
        facts = group_timeline(group.id)[-1].details
        assert (facts["resolved_in_worker"], facts.get("worker_name")) == (in_worker or "extractor", then[0] or "")
    else:
        assert group.resolved_in_worker == (in_worker or "extractor")


def test_a_version_of_the_workers_without_a_name_is_theirs_only(app_ctx):
    """A trial: a group whose failures came from a nameless worker, resolved
    in 1.6.0 after this rule, stayed resolved on another worker's 0.1.0."""
    _fail_as(None, "1.0.0")
    group = resolve_group(_group().id, "alice", in_version="1.6.0")
    assert group.resolved_in_worker == ""  # the workers that send no name
    _fail_as(None, "1.5.0")
    assert _group().state == "resolved"
    _fail_as("totally-other-worker", "0.1.0")
    group = _group()
    assert (group.state, group.substate) == ("unresolved", "regressed")
    assert group_timeline(group.id)[-1].details["worker_name"] == "totally-other-worker"


def test_the_default_worker_is_the_one_most_recent_occurrences_came_from(app_ctx):
    """A trial: 38 failures from one worker and the latest from another
    prefilled the other."""
    for _ in range(3):
        _fail_as("clinical-extractor", "1.4.0")
    _fail_as("reference-worker", "1.0.0")
    assert recent_worker_names(_group().id) == [("clinical-extractor", 3), ("reference-worker", 1)]
    assert resolve_group(_group().id, "alice", in_version="1.5.0").resolved_in_worker == "clinical-extractor"


def test_an_emptied_worker_has_no_default_when_the_group_has_a_usual_worker(app_ctx):
    """A form whose worker field was emptied: filling in the usual worker
    would resolve in the worker just removed, so the resolve is refused."""
    _fail_as("clinical-extractor", "1.4.0")
    with pytest.raises(InvalidFieldsError) as refused:
        resolve_group(_group().id, "alice", in_version="1.5.0", worker_emptied=True)
    assert [(e["pointer"], "(lately: clinical-extractor)" in e["detail"]) for e in refused.value.errors] == [
        ("#/worker", True)]
    assert _group().state == "unresolved" and _audit_actions() == []


def test_an_emptied_worker_resolves_in_the_nameless_workers_when_no_occurrence_named_one(app_ctx):
    _fail_as(None, "1.4.0")
    group = resolve_group(_group().id, "alice", in_version="1.5.0", worker_emptied=True)
    assert (group.state, group.resolved_in_worker) == ("resolved", "")


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"in_worker": "extractor"}, "give it with in_version only"),
    ({"in_version": "2.0.0", "in_worker": "ex\u202etractor"},
     "must not hold control, format or line-separator characters"),
    ({"in_version": "2.0.0", "in_worker": " extractor"}, "without surrounding spaces"),
])
def test_a_resolve_refuses_a_bad_worker_name_and_changes_nothing(app_ctx, kwargs, says):
    _fail_as("extractor", "2.0.0")
    with pytest.raises(InvalidFieldsError) as refused:
        resolve_group(_group().id, "alice", **kwargs)
    assert [(e["pointer"], says in e["detail"]) for e in refused.value.errors] == [("#/worker", True)]
    assert _group().state == "unresolved" and _audit_actions() == []


@pytest.mark.parametrize("kwargs", [
    {"in_version": "2.0.0\u001f"}, {"in_version": "\u001f2.0.0"}, {"in_version": "2.0.0\u2028"},
    {"in_version": "2.0.0", "in_worker": "extractor\u0085"},
])
def test_a_resolve_names_a_control_at_an_end_as_such(app_ctx, kwargs):
    # A re-check: str.strip() takes these off the ends, so they were told "without surrounding spaces".
    _fail_as("extractor", "2.0.0")
    with pytest.raises(InvalidFieldsError) as refused:
        resolve_group(_group().id, "alice", **kwargs)
    assert ["control, format or line-separator" in e["detail"] for e in refused.value.errors] == [True]
    assert _group().state == "unresolved" and _audit_actions() == []


def test_ignore_forever_never_wakes(app_ctx):
    _fail()
    group = ignore_group(_group().id, "bob")
    assert (group.state, group.ignore_mode) == ("ignored", "forever")
    _fail()
    _fail()
    assert _group().state == "ignored"
    assert get_group(_group().id).occurrence_count == 3


def test_ignore_until_a_date_wakes_on_the_first_occurrence_after_it(app_ctx):
    _fail()
    now = datetime.now(timezone.utc)
    ignore_group(_group().id, "bob", until=now - timedelta(minutes=1), now=now - timedelta(hours=1))
    before = _value(metrics.GROUPS_WOKEN)
    _fail()
    group = _group()
    assert (group.state, group.substate, group.ignore_mode) == ("unresolved", "ongoing", None)
    reasons = [e.reason for e in group_timeline(group.id)]
    assert reasons[-1] == "woken" and "ignored" in reasons
    assert _value(metrics.GROUPS_WOKEN) == before + 1


def test_ignore_until_a_future_date_stays_ignored(app_ctx):
    _fail()
    ignore_group(_group().id, "bob", until=datetime.now(timezone.utc) + timedelta(days=1))
    _fail()
    assert _group().state == "ignored"


def test_ignore_until_n_more_occurrences_wakes_at_exactly_the_nth(app_ctx):
    _fail()
    _fail()
    ignore_group(_group().id, "bob", occurrences=3)
    _fail()
    _fail()
    assert _group().state == "ignored"
    _fail()
    group = _group()
    assert group.state == "unresolved"
    assert get_group(group.id).occurrence_count == 5


def test_reopen_makes_a_group_ongoing_again(app_ctx):
    _fail()
    group_id = _group().id
    with pytest.raises(InvalidGroupTransitionError):
        reopen_group(group_id, "carol")
    ignore_group(group_id, "carol")
    group = reopen_group(group_id, "carol", via="api")
    assert (group.state, group.substate, group.ignore_mode) == ("unresolved", "ongoing", None)
    resolve_group(group_id, "carol")
    assert reopen_group(group_id, "carol").state == "unresolved"
    assert _audit_actions() == ["groups.ignored", "groups.reopened", "groups.resolved", "groups.reopened"]


def test_resolving_an_ignored_group_and_ignoring_a_resolved_one(app_ctx):
    _fail()
    group_id = _group().id
    ignore_group(group_id, "dan", occurrences=10)
    group = resolve_group(group_id, "dan")
    assert (group.state, group.ignore_mode, group.ignore_until_occurrences) == ("resolved", None, None)
    group = ignore_group(group_id, "dan")
    assert (group.state, group.resolved_by) == ("ignored", None)


@pytest.mark.parametrize(
    ("kwargs", "pointer"),
    [
        ({"occurrences": 0}, "#/occurrences"),
        ({"occurrences": True}, "#/occurrences"),
        ({"until": datetime(2000, 1, 1, tzinfo=timezone.utc)}, "#/until"),
        ({"until": datetime(2999, 1, 1)}, "#/until"),
        ({"until": datetime(2999, 1, 1, tzinfo=timezone.utc), "occurrences": 3}, "#"),
    ],
)
def test_bad_ignore_conditions_are_refused_and_change_nothing(app_ctx, kwargs, pointer):
    _fail()
    with pytest.raises(InvalidFieldsError) as caught:
        ignore_group(_group().id, "eve", **kwargs)
    assert pointer in [e["pointer"] for e in caught.value.errors]
    assert _group().state == "unresolved" and _audit_actions() == []


@pytest.mark.parametrize("version", ["", " 1.0.0", "1" * 101, "1.0\x00", "1.0", "01.0.0", "release-7"])
def test_bad_versions_are_refused(app_ctx, version):
    _fail()
    with pytest.raises(InvalidFieldsError):
        resolve_group(_group().id, "eve", in_version=version)
    assert _group().state == "unresolved"


def test_unknown_groups_are_not_found(app_ctx):
    for group_id in (12345, 0, -1, "x", True):
        with pytest.raises(GroupNotFoundError):
            resolve_group(group_id, "eve")
        with pytest.raises(GroupNotFoundError):
            get_group(group_id)


def test_substate_filters_agree_with_substates_on_read(app_ctx):
    _fail()
    group = _group()
    later = datetime.now(timezone.utc) + timedelta(hours=25)
    assert [v.substate for v in list_groups(GroupFilter(substates=("new",))).items] == ["new"]
    assert list_groups(GroupFilter(substates=("new",)), now=later).items == []
    assert [v.substate for v in list_groups(GroupFilter(substates=("ongoing",)), now=later).items] == ["ongoing"]
    assert get_group(group.id, now=later).substate == "ongoing"
