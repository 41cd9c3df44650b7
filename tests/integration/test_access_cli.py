"""``flask users`` and ``flask tokens``: what an admin runs to let people and workers in."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, WorkerToken
from app.models.access import User
from app.services import access


def test_users_create_then_sign_in(app, runner, anonymous_client):
    result = runner.invoke(
        args=["users", "create", "--username", "first-admin", "--role", "admin", "--password-stdin"],
        input="a good long password\n",
    )
    assert result.exit_code == 0, result.output
    assert "created user first-admin (admin)" in result.output
    with app.app_context():
        assert access.authenticate("first-admin", "a good long password") is not None
        assert access.authenticate("first-admin", "wrong password here") is None
    listed = runner.invoke(args=["users", "list"])
    assert "first-admin\tadmin\tactive" in listed.output
    assert "a good long password" not in listed.output


def test_users_create_drops_surrounding_spaces_from_the_user_name(app, runner):
    result = runner.invoke(args=["users", "create", "--username", "  spaced-admin \t", "--password-stdin"],
                           input="a good long password\n")
    assert result.exit_code == 0, result.output
    assert "created user spaced-admin (viewer)" in result.output
    with app.app_context():
        assert access.authenticate("spaced-admin", "a good long password") is not None
    # The same name with spaces is the same account: a duplicate.
    again = runner.invoke(args=["users", "create", "--username", "spaced-admin ", "--password-stdin"],
                          input="a good long password\n")
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.parametrize("name", ["bob\u001f", "bob\u2028", "\u001cbob"])
def test_users_create_refuses_a_control_at_an_end_rather_than_dropping_it(app, runner, name):
    # A re-check: strip() took it off and made "bob", another name than the one typed.
    result = runner.invoke(args=["users", "create", "--username", name, "--password-stdin"],
                           input="a good long password\n")
    assert result.exit_code == 1 and "control, format, line-separator" in result.output, result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_users_create_refuses_short_passwords_and_duplicates(runner):
    short = runner.invoke(args=["users", "create", "--username", "x", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "password" in short.output
    ok = ["users", "create", "--username", "dup", "--password-stdin"]
    assert runner.invoke(args=ok, input="a good long password\n").exit_code == 0
    again = runner.invoke(args=ok, input="a good long password\n")
    assert again.exit_code == 1 and "already exists" in again.output


def test_users_create_refuses_a_name_differing_only_in_case_or_form(app, runner):
    # A trial: "U-VIEWER" beside "u-viewer" read as one person in the audit log.
    make = ["users", "create", "--password-stdin", "--username"]
    assert runner.invoke(args=[*make, "u-viewer"], input="a good long password\n").exit_code == 0
    assert runner.invoke(args=[*make, "\ufb01x-admin"], input="a good long password\n").exit_code == 0
    for twin, existing in (("U-VIEWER", "u-viewer"), ("fix-ADMIN", "\ufb01x-admin")):
        result = runner.invoke(args=[*make, twin], input="a good long password\n")
        assert result.exit_code == 1, result.output
        assert f"A user named {existing!r}" in result.output or existing in result.output
        assert "only in letter case or character form" in result.output
    with app.app_context():
        assert sorted(u.username for u in access.list_users() if "-" in u.username) == ["u-viewer", "\ufb01x-admin"]


@pytest.mark.parametrize(("first", "twin"), [
    ("s\u015b", "\u00df\u0301"),  # folds alike only with NFKC after the case fold (NFKC_Casefold)
    ("op-b", "OP-B"),
])
def test_users_and_tokens_refuse_a_name_folding_to_a_taken_one(runner, first, twin):
    make = ["users", "create", "--password-stdin", "--username"]
    assert runner.invoke(args=[*make, first], input="a good long password\n").exit_code == 0
    refused = runner.invoke(args=[*make, twin], input="a good long password\n")
    assert refused.exit_code == 1 and "only in letter case or character form" in refused.output
    assert runner.invoke(args=["tokens", "create", "--name", first]).exit_code == 0
    refused = runner.invoke(args=["tokens", "create", "--name", twin])
    assert refused.exit_code == 1 and "only in letter case or character form" in refused.output


def test_token_names_are_stored_in_nfc_and_found_in_either_form(app, runner):
    # A re-check: "host-é" in two Unicode forms made two tokens that listed alike.
    assert runner.invoke(args=["tokens", "create", "--name", "host-e\u0301"]).exit_code == 0
    again = runner.invoke(args=["tokens", "create", "--name", "host-\u00e9"])
    assert again.exit_code == 1 and "already exists" in again.output
    with app.app_context():
        assert db.session.scalars(sa.select(WorkerToken.name).where(WorkerToken.name.like("host-%"))).all() == [
            "host-\u00e9"]
    assert runner.invoke(args=["tokens", "revoke", "host-e\u0301"]).exit_code == 0


def test_a_name_s_length_is_that_of_its_stored_form(runner):
    # U+0958 is one character that NFC makes two (a composition exclusion):
    # 150 of them were stored as 300 in a 150-character column (a re-check).
    result = runner.invoke(args=["users", "create", "--password-stdin", "--username", "\u0958" * 150],
                           input="a good long password\n")
    assert result.exit_code == 1 and "must be 1 to 150 characters" in result.output


def test_tokens_create_list_revoke(app, runner, anonymous_client):
    created = runner.invoke(args=["tokens", "create", "--name", "worker-host-1"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("cit_")
    headers = {"Authorization": f"Bearer {token}"}
    assert anonymous_client.get("/api/v1/processing-jobs", headers=headers).status_code == 200
    listed = runner.invoke(args=["tokens", "list"])
    assert "worker-host-1" in listed.output and token not in listed.output and "active" in listed.output
    revoked = runner.invoke(args=["tokens", "revoke", "worker-host-1"])
    assert revoked.exit_code == 0
    assert anonymous_client.get("/api/v1/processing-jobs", headers=headers).status_code == 401
    assert "revoked" in runner.invoke(args=["tokens", "list"]).output
    unknown = runner.invoke(args=["tokens", "revoke", "nobody"])
    assert unknown.exit_code == 1 and "No token is named" in unknown.output


@pytest.mark.parametrize(("name", "said"), [
    ("a\x01b", "must not hold control"),
    # A trial forged a line of `tokens list` with a tab and a line break.
    ("fake\tcit_Yj_LGr\tcreated 2026-12-07 15:58Z\tused never\tactive\ndemo-worker2", "must not hold control"),
    ("evil\u202egnp.exe", "must not hold control"),
    ("line\u2028break", "must not hold control"),
    (" spaced ", "without surrounding spaces"),
    ("spaced\u001f", "control, format, line-separator"),  # str.strip() takes it off the end too
    ("x" * 101, "must be 1 to 100 characters"),
    # Default-ignorable and blank-looking characters (a re-check): each read as "op-b" or as nothing.
    ("op-b\u034f", "invisible"), ("op-b\ufe00", "invisible"), ("\u3164", "invisible"), ("\u2800", "invisible"),
])
def test_token_names_follow_the_user_names_rule(app, runner, name, said):
    result = runner.invoke(args=["tokens", "create", "--name", name])
    assert result.exit_code == 1 and said in result.output, result.output
    assert "cit_" not in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WorkerToken).where(
            WorkerToken.name == name)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "tokens.create")) == 0


def test_revoking_a_revoked_token_changes_and_audits_nothing(app, runner):
    assert runner.invoke(args=["tokens", "create", "--name", "twice"]).exit_code == 0
    assert runner.invoke(args=["tokens", "revoke", "twice"]).output.strip() == "revoked token twice"
    with app.app_context():
        first = db.session.scalar(sa.select(WorkerToken.revoked_at).where(WorkerToken.name == "twice"))
    again = runner.invoke(args=["tokens", "revoke", "twice"])
    assert again.exit_code == 0, again.output
    assert again.output.strip() == f"token twice was already revoked at {first:%Y-%m-%d %H:%M}Z; nothing changed"
    with app.app_context():
        assert db.session.scalar(sa.select(WorkerToken.revoked_at).where(WorkerToken.name == "twice")) == first
        actions = list(db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.action == "tokens.revoke")))
    assert actions == ["tokens.revoke"]


def test_tokens_rotate_gives_a_name_a_new_secret_revoked_or_not(app, runner, anonymous_client):
    # A trial: a revoked token's name could never be used again, so rotating a host's token changed its name
    # (the audit log's actor) too.
    old = runner.invoke(args=["tokens", "create", "--name", "host-7"]).stdout.strip()
    job = anonymous_client.post("/api/v1/processing-jobs", json={"document_id": "d"},
                                headers={"Authorization": f"Bearer {old}"}).get_json()["id"]
    rotated = runner.invoke(args=["tokens", "rotate", "host-7"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    assert new.startswith("cit_") and new != old and "the old secret no longer works" in rotated.stderr
    assert anonymous_client.get("/api/v1/processing-jobs", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    failed = anonymous_client.post(f"/api/v1/processing-jobs/{job}/validation-failure",
                                   json={"error_message": "bad unit", "error_details": {"errors": []}},
                                   headers={"Authorization": f"Bearer {new}"})
    assert failed.status_code == 200, failed.get_json()
    listed = anonymous_client.get(f"/api/v1/processing-jobs/{job}", headers={"Authorization": f"Bearer {new}"})
    assert listed.status_code == 200  # a failure's text: audited as seen by the token's name
    # Revoked, then rotated: active again under the same name, with one more new secret.
    assert runner.invoke(args=["tokens", "revoke", "host-7"]).exit_code == 0
    again = runner.invoke(args=["tokens", "create", "--name", "host-7"])
    assert again.exit_code == 1 and "already exists (revoked)" in again.output and "tokens rotate host-7" in again.output
    third = runner.invoke(args=["tokens", "rotate", "host-7"]).stdout.strip()
    assert anonymous_client.get("/api/v1/processing-jobs", headers={"Authorization": f"Bearer {new}"}).status_code == 401
    assert anonymous_client.get("/api/v1/processing-jobs", headers={"Authorization": f"Bearer {third}"}).status_code == 200
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "tokens.rotate")
                                  .order_by(AuditEvent.occurred_at)).all()
        assert all(e.actor.startswith("cli") for e in rows)
        assert [(e.filter["name"], e.filter["old_prefix"], e.filter["prefix"], e.filter["was_revoked"])
                for e in rows] == [("host-7", old[:10], new[:10], False), ("host-7", new[:10], third[:10], True)]
        # The API's audit rows keep naming the host.
        actors = set(db.session.scalars(sa.select(AuditEvent.actor).where(AuditEvent.action.like("seen.api.%"))))
        assert actors == {"host-7"}
    unknown = runner.invoke(args=["tokens", "rotate", "nobody"])
    assert unknown.exit_code == 1 and "No token is named" in unknown.output
    long = runner.invoke(args=["tokens", "rotate", "n" * 5000])  # not repeated whole (a re-check)
    assert long.exit_code == 1 and f"No token is named '{'n' * 100}'…." in long.output and len(long.output) < 300


def test_token_use_is_recorded_for_tokens_list(app, runner, anonymous_client):
    token = runner.invoke(args=["tokens", "create", "--name", "used-one"]).stdout.strip().splitlines()[0]
    assert "used never" in runner.invoke(args=["tokens", "list"]).output
    anonymous_client.get("/api/v1/processing-jobs", headers={"Authorization": f"Bearer {token}"})
    listed = runner.invoke(args=["tokens", "list"]).output
    assert "used never" not in listed


def test_metrics_and_api_refusals_are_problem_json(anonymous_client):
    for path in ("/metrics", "/api/v1/processing-jobs"):
        response = anonymous_client.get(path)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json", path


def test_job_json_for_signed_in_operators(client, app):
    job_id = client.post("/api/v1/processing-jobs", json={"document_id": "doc-json"}).get_json()["id"]
    response = client.get(f"/jobs/{job_id}/job.json")
    assert response.status_code == 200 and response.get_json()["id"] == job_id
    anonymous = app.test_client().get(f"/jobs/{job_id}/job.json")
    assert anonymous.status_code == 302
