"""The production start: gunicorn with gunicorn.conf.py, as docs/operations.md says.

Each test starts a real gunicorn (one worker) in a subprocess; a start that
must be refused exits before opening its port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.config import ROOT

SECRET = "s" * 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "APP_ENV"}}
    env.update(
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        STARTUP_DB_WAIT_S="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def _gunicorn(env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_production_start_is_refused_without_required_settings(tmp_path):
    process = _gunicorn(
        _environment(tmp_path, APP_ENV="production", GUNICORN_BIND=f"127.0.0.1:{_free_port()}")
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "APP_ENV=production requires these environment variables: SECRET_KEY, DATABASE_URL" in stderr


def test_production_start_is_refused_when_the_schema_is_behind(tmp_path):
    url = f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}"
    env = _environment(
        tmp_path,
        APP_ENV="production",
        DATABASE_URL=url,
        SECRET_KEY=SECRET,
        GUNICORN_BIND=f"127.0.0.1:{_free_port()}",
    )
    process = _gunicorn(env)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "never migrated" in stderr and "flask --app wsgi db upgrade" in stderr
    assert str(tmp_path) not in stderr  # the database URL stays out of the output


def _create_token(tmp_path: Path, database_url: str, name: str) -> str:
    """A worker token made by the operator's command, ``flask tokens create``, in the test database."""
    env = _environment(tmp_path, APP_ENV="production", DATABASE_URL=database_url, SECRET_KEY=SECRET)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "tokens", "create", "--name", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (token,) = result.stdout.split()
    return token


def _answers_healthz(base: str) -> bool:
    """Whether the server at ``base`` is up (a refused connection means not yet)."""
    try:
        return requests.get(base + "/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture
def gunicorn_server(tmp_path: Path, database_url: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn in production mode on the migrated test PostgreSQL."""
    port = _free_port()
    env = _environment(
        tmp_path,
        APP_ENV="production",
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET,
        GUNICORN_BIND=f"127.0.0.1:{port}",
    )
    process = _gunicorn(env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers_healthz(base):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start: {process.communicate(timeout=5)[1][-2000:]}")
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_gunicorn_serves_probes_metrics_and_writes_safe_json_logs(gunicorn_server, tmp_path, database_url):
    base, process = gunicorn_server
    assert requests.get(base + "/readyz", timeout=5).json()["status"] == "ready"
    token = _create_token(tmp_path, database_url, "gunicorn-test-worker")
    auth = {"Authorization": f"Bearer {token}"}
    job = requests.post(
        base + "/api/v1/processing-jobs", json={"document_id": "doc-g"}, headers=auth, timeout=5
    ).json()
    patient = "Jane Doe MRN-7Q4Z"
    response = requests.post(
        f"{base}/api/v1/processing-jobs/{job['id']}/validation-failure?mrn=7Q4Z",
        json={
            "error_message": f"validation failed for {patient}",
            "error_details": {
                "errors": [
                    {"code": "schema.required", "severity": "error", "message": patient, "pointer": ""}
                ]
            },
        },
        headers={"X-Request-ID": "gunicorn-test-1", **auth},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "gunicorn-test-1"
    # A wrong token is refused, and stays out of the logs like the right one.
    refused = requests.post(
        f"{base}/api/v1/processing-jobs/{job['id']}/validation-failure",
        json={"error_message": "x", "error_details": {"errors": []}},
        headers={"X-Request-ID": "gunicorn-test-2", "Authorization": "Bearer tok-secret"},
        timeout=5,
    )
    assert refused.status_code == 401
    assert requests.get(base + "/metrics", timeout=5).status_code == 401
    metrics = requests.get(base + "/metrics", headers=auth, timeout=5).text
    assert 'clinical_job_failure_codes_total{code="schema.required"} 1.0' in metrics
    assert 'endpoint="api.record_validation_failure"' in metrics
    assert "db_pool_size_connections" in metrics

    process.terminate()
    _, stderr = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # every line is JSON
    (request_line,) = [e for e in lines if e.get("request_id") == "gunicorn-test-1"]
    assert request_line["endpoint"] == "api.record_validation_failure"
    assert request_line["status"] == 200 and request_line["method"] == "POST"
    assert [e["status"] for e in lines if e.get("request_id") == "gunicorn-test-2"] == [401]
    for secret in ("Jane", "7Q4Z", "mrn", "tok-secret", token, SECRET):
        assert secret not in stderr
    assert any("start-up check: ready" in e["message"] for e in lines)
