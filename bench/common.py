"""Set-up shared by the benchmark scripts: a loopback database URL, a fresh
migrated schema, and a Flask test client signed in as a new account."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def loopback_database_url(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """``args.database_url`` (from ``--database-url`` or ``TEST_DATABASE_URL``).

    Exits through ``parser.error`` when it is missing or not on loopback: the
    scripts drop its ``public`` schema.
    """
    if not args.database_url:
        parser.error("no database: run under scripts/with-postgres or pass --database-url")
    if urlsplit(args.database_url).hostname not in LOOPBACK:
        parser.error("the database must be on loopback (this drops its schema)")
    return args.database_url


def fresh_schema(url: str) -> None:
    """Drop and re-create the ``public`` schema of ``url``, then run the app's
    migrations to head (Flask-Migrate ``upgrade``)."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()


def signed_in_client(app: Any, role: str) -> Any:
    """A ``FlaskClient`` of ``app`` whose session is a new ``role`` account.

    The account (``bench-<role>-<8 hex>``) has no usable password, so it
    cannot sign in by form; the client's session cookie carries Flask-Login's
    ``_user_id`` instead, skipping the password hash (as tests/conftest.py's
    ``sign_in``). Needs the app's database to be migrated.
    """
    from app.extensions import db
    from app.models.access import User

    with app.app_context():
        user = User(username=f"bench-{role}-{uuid.uuid4().hex[:8]}", password_hash="!unusable", role=role)
        db.session.add(user)
        db.session.commit()
        session_user_id = user.get_id()  # "<id>.<session generation>", as Flask-Login keeps it
        db.session.remove()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = session_user_id
        session["_fresh"] = True
    return client


def record_in_threads(app: Any, concurrency: int, seconds: float, items: list[dict[str, Any]], *,
                      prefix: str, job_type: str | None = None) -> int:
    """Record ``validation_failed`` reports (details ``{"errors": items}``)
    from ``concurrency`` threads, each with its own connection and 400 jobs
    of its own (documents ``{prefix}-{slot}-{n}``, ``job_type`` or the
    default), round-robin, for ``seconds`` of wall time started together
    by a barrier. Returns the number of failures recorded (all threads)."""
    from app.extensions import db
    from app.registry import get_failure_recorder
    from app.services.processing_jobs.lifecycle import create_job

    done = [0] * concurrency
    barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def run(slot: int) -> None:
        with app.app_context():
            extra = {} if job_type is None else {"job_type": job_type}
            jobs = [create_job(f"{prefix}-{slot}-{i}", **extra).id for i in range(400)]
            recorder = get_failure_recorder()
            barrier.wait()
            i = 0
            while time.monotonic() < deadline[0]:
                recorder.record_validation_failure(jobs[i % len(jobs)], f"failure {i}", {"errors": items})
                i += 1
            done[slot] = i
            db.session.remove()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + 3600  # until every thread has its jobs
    barrier.wait()
    deadline[0] = time.monotonic() + seconds
    for thread in threads:
        thread.join()
    return sum(done)


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user + system CPU seconds) of every process, from ``/proc``."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return table


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU seconds (user + system) used so far by the processes ``roots``
    and their children, from ``/proc`` (a gunicorn master and its workers;
    the PostgreSQL postmaster and its backends). A process that exited
    meanwhile no longer counts: compare two readings around a short run."""
    table = _process_table()
    members, frontier = set(), set(roots)
    while frontier:
        members |= frontier
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - members
    return sum(table[pid][1] for pid in members if pid in table)


def child_processes(parent: int, name: bytes) -> list[int]:
    """The children of ``parent`` whose command line holds ``name``."""
    found = []
    for pid, (ppid, _) in _process_table().items():
        if ppid == parent:
            try:
                if name in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
    return found


def postmaster_pid(url: str) -> list[int]:
    """The pid of the PostgreSQL server at ``url`` (a SQLAlchemy or libpq
    URL), as a one-item list; none when its data directory is not on this
    machine."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as connection:
        directory = connection.execute("SHOW data_directory").fetchone()[0]
    try:
        return [int((Path(directory) / "postmaster.pid").read_text().split()[0])]
    except OSError:
        return []


def metrics_directory(prefix: str) -> str:
    """A fresh ``PROMETHEUS_MULTIPROC_DIR``, removed when this process exits
    (the benchmark's servers are gone by then)."""
    directory = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, directory, True)
    return directory
