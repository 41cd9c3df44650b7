"""Server helpers of bench/load.py: the database, the credentials and the gunicorn processes.

``prepare_database`` re-creates the schema and seeds jobs;
``create_credentials`` makes a worker token and a viewer account with the
app's own commands; ``sign_in`` goes through ``/login`` as an operator does;
``start_gunicorn`` serves the app with this repository's gunicorn.conf.py and
``start_minimal_app`` the Flask floor (bench/minimal_app.py), each started
and awaited on ``/readyz``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import html
import http.client
import http.cookies
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

from common import fresh_schema, metrics_directory
from load_generator import DETAILS, Client

ROOT = Path(__file__).resolve().parent.parent


# -- set-up -------------------------------------------------------------------------------


def prepare_database(url: str, jobs: int, failed: int) -> list[str]:
    """Fresh schema, migrations, ``jobs`` Pending jobs and ``failed`` failed ones for the dashboard."""

    fresh_schema(url)

    from app import create_app
    from app.extensions import db
    from app.models import ProcessingJob

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        pending = [ProcessingJob(document_id=f"bench-doc-{n}") for n in range(jobs)]
        db.session.add_all(pending)
        db.session.commit()
        recorder_app_jobs = [ProcessingJob(document_id=f"bench-failed-{n}") for n in range(failed)]
        db.session.add_all(recorder_app_jobs)
        db.session.commit()
        from app.registry import get_failure_recorder

        recorder = get_failure_recorder()
        for n, job in enumerate(recorder_app_jobs):
            recorder.record_validation_failure(job.id, f"Entity validation failed (seed {n})", DETAILS)
        ids = [str(job.id) for job in pending]
        db.engine.dispose()
    # The seed leaves tables without planner statistics and with every page
    # unvacuumed: autovacuum would then analyze them during phase 1 only,
    # which measured its work and its first plans, not the endpoint's.
    # A production database is analyzed; so is this one, before phase 1.
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")
    return ids


def flask_command(url: str, *args: str, stdin: str | None = None) -> str:
    """Run ``flask --app wsgi <args>`` on ``url``; its standard output."""
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "development"}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"flask {' '.join(args[:2])} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def create_credentials(url: str) -> tuple[str, str, str]:
    """A worker token and a viewer account (name, password) in the bench database."""
    token = flask_command(url, "tokens", "create", "--name", "bench-worker").strip()
    username, password = "bench-viewer", secrets.token_urlsafe(24)
    flask_command(
        url,
        "users",
        "create",
        "--username",
        username,
        "--role",
        "viewer",
        "--password-stdin",
        stdin=password + "\n",
    )
    return token, username, password


def _cookies(headers: http.client.HTTPMessage) -> dict[str, str]:
    jar: dict[str, str] = {}
    for value in headers.get_all("Set-Cookie") or []:
        cookie = http.cookies.SimpleCookie()
        cookie.load(value)
        jar.update({name: morsel.value for name, morsel in cookie.items()})
    return jar


def sign_in(host: str, port: int, username: str, password: str) -> dict[str, str]:
    """Sign in through the ``/login`` form; the ``Cookie`` header of the session."""
    client = Client(host, port)
    try:
        status, headers, page = client.exchange("GET", "/login")
        match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            rb'value="([^"]+)"[^>]*name="csrf_token"', page
        )
        if status != 200 or match is None:
            raise SystemExit(f"GET /login: no sign-in form (HTTP {status})")
        jar = _cookies(headers)
        form = urlencode(
            {
                "csrf_token": html.unescape(match.group(1).decode()),
                "username": username,
                "password": password,
            }
        ).encode()
        client.extra_headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        status, headers, _ = client.exchange("POST", "/login", form, "application/x-www-form-urlencoded")
        if status != 302:
            raise SystemExit(f"POST /login: sign-in refused (HTTP {status})")
        jar.update(_cookies(headers))
        cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        check = Client(host, port, cookie)
        try:
            status = check.request("GET", "/jobs")
        finally:
            check.close()
        if status != 200:
            raise SystemExit(f"GET /jobs after sign-in: HTTP {status}")
        return cookie
    finally:
        client.close()


def start_gunicorn(
    url: str, port: int, args: argparse.Namespace, log_path: Path, *, ratelimit_storage: str,
    app_module: str = "wsgi:app",
) -> subprocess.Popen:
    """gunicorn serving the app with gunicorn.conf.py (``APP_ENV=production``) on ``port``;
    ``ratelimit_storage`` is the shared store of the sign-in limit (``redis://...``);
    ``app_module`` the WSGI app (``bench.ungrouped_app:app``: grouping off)."""
    env = {
        **os.environ,
        "APP_ENV": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",  # a line per request would cost the server CPU here
        "PROMETHEUS_MULTIPROC_DIR": metrics_directory("bench-metrics-"),
        "RATELIMIT_STORAGE_URI": ratelimit_storage,
    }
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    return spawn_and_wait(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app_module], env, port, log_path,
        f"gunicorn ({app_module})",
    )


def spawn_and_wait(command: list[str], env: dict[str, str], port: int, log_path: Path, name: str) -> subprocess.Popen:
    """Start ``command`` (output to ``log_path``) and wait up to 60 s until
    ``GET /readyz`` on ``port`` answers 200; exit the script if it does not.
    The log is removed when the script ends if nothing was written to it
    (a server that logged something keeps its log, to be read)."""
    log = log_path.open("w")
    atexit.register(_remove_if_empty, log_path)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}; see {log_path}")
        try:
            client = Client("127.0.0.1", port)
            if client.request("GET", "/readyz") == 200:
                client.close()
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"{name} did not become ready in 60 s")


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # gone already, or not ours
        if path.stat().st_size == 0:
            path.unlink()


def start_minimal_app(dsn: str, port: int, log_path: Path, target: str = "app") -> subprocess.Popen:
    """gunicorn serving bench/minimal_app.py's ``target`` (``app``: the app's
    statements; ``classic_app``: the floor before failure groups) with the
    app's worker settings (gthread, gunicorn.conf.py's default worker and
    thread counts, keep-alive 5 s)."""
    workers = os.environ.get("WEB_CONCURRENCY") or str(max(2, 2 * len(os.sched_getaffinity(0))))
    threads = os.environ.get("GUNICORN_THREADS") or "2"
    command = [
        sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", workers, "--threads", threads,
        "--keep-alive", "5", "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"), f"minimal_app:{target}",
    ]
    return spawn_and_wait(command, {**os.environ, "BENCH_DSN": dsn}, port, log_path, "gunicorn (minimal app)")
