"""The README's account and token commands, as someone who ran ``make demo``
types them: from the project folder, on the demo's database (a trial:
``users create`` stopped at "no SQLite database at
instance/clinical_intelligence.sqlite3", the default, which the demo does
not use)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import sqlalchemy as sa

from app.config import ROOT
from tests.live_server import STOP_DEADLINE_S

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_demo_database_url() -> str:
    """The ``DATABASE_URL`` the README gives for the demo's database, as typed."""
    found = re.findall(r"`export DATABASE_URL=([^`]+)`", README)
    assert len(found) == 1, "the README gives no (or more than one) DATABASE_URL for the demo's database"
    return found[0]


def _readme_command(group: str) -> str:
    """The README's ``flask ... <group> create`` command, as written."""
    found = re.findall(rf"`(\.venv/bin/flask --app wsgi {group} create [^`]+)`", README)
    assert len(found) == 1, (group, found)
    return found[0]


def test_the_readme_gives_the_database_url_scripts_demo_uses():
    demo = (ROOT / "scripts" / "demo").read_text(encoding="utf-8")
    assert f'DEFAULT_DATABASE="{_readme_demo_database_url()}"' in demo


def test_the_readme_account_and_token_commands_work_on_the_demo_database(sqlite_template, tmp_path):
    # A project folder as make demo leaves it: its migrated database where
    # scripts/demo puts it, and .venv/bin/flask running this code.
    project = tmp_path / "project"
    (project / "instance").mkdir(parents=True)
    database = project / "instance" / "demo.sqlite3"
    shutil.copyfile(sqlite_template, database)
    flask = project / ".venv" / "bin" / "flask"
    flask.parent.mkdir(parents=True)
    flask.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m flask "$@"\n')
    flask.chmod(0o755)
    users_create = _readme_command("users").replace("NAME", "readme-admin") + " --password-stdin"
    tokens_create = _readme_command("tokens").replace("HOST", "readme-host")
    script = "\n".join([
        "set -e",
        f"export DATABASE_URL={_readme_demo_database_url()}",
        f"echo 'a long enough password' | {users_create}",
        tokens_create,
    ])
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # nothing else: no DATABASE_URL of ours
    done = subprocess.run(["bash", "-c", script], cwd=project, env=environment, capture_output=True, text=True,
                          timeout=STOP_DEADLINE_S)
    assert done.returncode == 0, done.stderr
    assert "created user readme-admin (admin)" in done.stdout
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            users = connection.execute(sa.text("SELECT username, role FROM users")).all()
            tokens = connection.execute(sa.text("SELECT name FROM worker_tokens")).scalars().all()
    finally:
        engine.dispose()
    assert users == [("readme-admin", "admin")] and tokens == ["readme-host"]
