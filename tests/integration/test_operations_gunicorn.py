"""The production start: gunicorn with gunicorn.conf.py, as docs/operations.md says.

Each test starts a real gunicorn (one worker) in a subprocess; a start that
must be refused exits before opening its port.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import requests

from app.config import ROOT
from tests.live_server import START_DEADLINE_S, free_port, stop, wait_for_exit, wait_until_ready

SECRET = "s" * 40
#: Seconds one HTTP request to the server may take: generous, because the
#: machine may be running another test suite at the same time.
REQUEST_TIMEOUT_S = 60
#: gunicorn workers in the shared sign-in limit test.
WORKERS = 3


def _environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "SECRET_KEY", "APP_ENV", "RATELIMIT_STORAGE_URI"}
    }
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
        _environment(tmp_path, APP_ENV="production", GUNICORN_BIND=f"127.0.0.1:{free_port()}")
    )
    _, stderr = wait_for_exit(process)
    assert process.returncode == 1
    assert "APP_ENV=production requires these environment variables: SECRET_KEY, DATABASE_URL" in stderr


def test_a_bad_log_level_stops_the_start_naming_the_variable(tmp_path):
    # A trial: LOG_LEVEL=LOUD ended in "Unable to configure logger 'gunicorn.error'", the variable unnamed.
    process = _gunicorn(_environment(tmp_path, LOG_LEVEL="LOUD", GUNICORN_BIND=f"127.0.0.1:{free_port()}"))
    _, stderr = wait_for_exit(process)
    assert process.returncode == 1
    # One line, not gunicorn's "Failed to read config file" and a traceback around it (a re-check).
    assert stderr.strip() == ("Error: environment variable LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, "
                              "CRITICAL, got 'LOUD'")
    threads = _gunicorn(_environment(tmp_path, GUNICORN_THREADS="x", GUNICORN_BIND=f"127.0.0.1:{free_port()}"))
    _, stderr = wait_for_exit(threads)
    assert threads.returncode == 1
    assert stderr.strip() == "Error: environment variable GUNICORN_THREADS must be an integer, got 'x'"


def test_the_metrics_folder_gunicorn_makes_is_gone_after_it_stops(tmp_path):
    # A trial found a clinical-metrics-* folder left in /tmp by every start, a refused one included.
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {k: v for k, v in _environment(tmp_path, TMPDIR=str(temporary)).items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    refused = _gunicorn({**env, "LOG_LEVEL": "LOUD", "GUNICORN_BIND": f"127.0.0.1:{free_port()}"})
    wait_for_exit(refused)
    assert refused.returncode != 0 and list(temporary.iterdir()) == []
    with _running_gunicorn({**env, "GUNICORN_BIND": f"127.0.0.1:{free_port()}"}):
        made = list(temporary.glob("clinical-metrics-*"))
        assert len(made) == 1 and made[0].is_dir()  # the workers' metric files live there meanwhile
    assert list(temporary.iterdir()) == []


def test_production_start_is_refused_when_the_schema_is_behind(tmp_path):
    url = f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}"
    env = _environment(
        tmp_path,
        APP_ENV="production",
        DATABASE_URL=url,
        SECRET_KEY=SECRET,
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
    )
    process = _gunicorn(env)
    _, stderr = wait_for_exit(process)
    assert process.returncode == 1
    assert "never migrated" in stderr and "flask --app wsgi db upgrade" in stderr
    assert str(tmp_path) not in stderr  # the database URL stays out of the output


def test_production_start_is_refused_with_per_process_sign_in_limits_and_several_workers(tmp_path):
    env = _environment(
        tmp_path,
        APP_ENV="production",
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        SECRET_KEY=SECRET,
        WEB_CONCURRENCY="2",
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
    )  # RATELIMIT_STORAGE_URI unset: memory://
    process = _gunicorn(env)
    _, stderr = wait_for_exit(process)
    assert process.returncode == 1
    assert "not starting: RATELIMIT_STORAGE_URI is memory:// (counted per process)" in stderr
    assert "redis://HOST:6379/0" in stderr


def _create_token(tmp_path: Path, database_url: str, name: str) -> str:
    """A worker token made by the operator's command, ``flask tokens create``, in the test database."""
    env = _environment(tmp_path, APP_ENV="production", DATABASE_URL=database_url, SECRET_KEY=SECRET)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "tokens", "create", "--name", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (token,) = result.stdout.split()
    return token


def _answers_healthz(base: str) -> bool:
    """Whether the server at ``base`` is up. Any failure to get an answer
    (refused connection, a slow start's read timeout ...) means not yet: the
    caller's deadline decides when "not yet" becomes "never"."""
    try:
        return requests.get(base + "/healthz", timeout=10).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def _running_gunicorn(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn started with ``env`` (which must set ``GUNICORN_BIND``), once
    it answers ``/healthz``; stopped, and its pipes closed, afterwards."""
    process = _gunicorn(env)
    try:
        wait_until_ready(lambda: _answers_healthz("http://" + env["GUNICORN_BIND"]), process, "gunicorn")
        yield "http://" + env["GUNICORN_BIND"], process
    finally:
        stop(process)


@pytest.fixture
def gunicorn_server(tmp_path: Path, database_url: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn in production mode on the migrated test PostgreSQL."""
    env = _environment(
        tmp_path,
        APP_ENV="production",
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET,
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        # The database is up: waiting only matters when a busy machine makes
        # the first connection slow, and then the start must not be refused.
        STARTUP_DB_WAIT_S="60",
    )
    with _running_gunicorn(env) as server:
        yield server


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_gunicorn_serves_probes_metrics_and_writes_safe_json_logs(gunicorn_server, tmp_path, database_url):
    base, process = gunicorn_server
    assert requests.get(base + "/readyz", timeout=REQUEST_TIMEOUT_S).json()["status"] == "ready"
    token = _create_token(tmp_path, database_url, "gunicorn-test-worker")
    auth = {"Authorization": f"Bearer {token}"}
    # Every state's occurrence series is there before its first occurrence (a trial: after a restart
    # it was born with it, and Prometheus's increase() does not count a series' first sample).
    scraped = requests.get(base + "/metrics", headers=auth, timeout=REQUEST_TIMEOUT_S).text
    for state in ("ignored", "resolved", "unresolved"):
        assert re.search(rf'^failure_group_occurrences_total{{state="{state}"}} \d', scraped, re.M), state
    job = requests.post(
        base + "/api/v1/processing-jobs", json={"document_id": "doc-g"}, headers=auth, timeout=REQUEST_TIMEOUT_S
    ).json()
    patient = "Jane Doe MRN-7Q4Z"
    response = requests.post(
        f"{base}/api/v1/processing-jobs/{job['id']}/validation-failure",
        json={
            "error_message": f"validation failed for {patient}",
            "error_details": {
                "errors": [
                    {"code": "schema.required", "severity": "error", "message": patient, "pointer": ""}
                ]
            },
        },
        headers={"X-Request-ID": "gunicorn-test-1", **auth},
        timeout=REQUEST_TIMEOUT_S,
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "gunicorn-test-1"
    # A wrong token is refused, and stays out of the logs like the right one.
    refused = requests.post(
        f"{base}/api/v1/processing-jobs/{job['id']}/validation-failure",
        json={"error_message": "x", "error_details": {"errors": []}},
        headers={"X-Request-ID": "gunicorn-test-2", "Authorization": "Bearer tok-secret"},
        timeout=REQUEST_TIMEOUT_S,
    )
    assert refused.status_code == 401
    # The valid token in two Authorization fields (gunicorn joins them with a comma): a 400 naming the header,
    # not the 401 "unknown or revoked" that a worker would read as a revoked token (a trial).
    status, headers, body = _get_with_headers(
        base, "/api/v1/processing-jobs?limit=1", [("Authorization", f"Bearer {token}")] * 2
    )
    assert status == 400, status
    assert json.loads(body)["errors"][0]["header"] == "Authorization"
    assert 'error="invalid_request"' in headers["www-authenticate"]
    # Patient text in a query string: refused (a write takes no query parameter), and kept out of the logs.
    queried = requests.post(
        f"{base}/api/v1/processing-jobs/{job['id']}/validation-failure?mrn=7Q4Z",
        json={"error_message": "x", "error_details": {"errors": []}},
        headers={"X-Request-ID": "gunicorn-test-3", **auth},
        timeout=REQUEST_TIMEOUT_S,
    )
    assert queried.status_code == 400
    assert requests.get(base + "/metrics", timeout=REQUEST_TIMEOUT_S).status_code == 401
    metrics = requests.get(base + "/metrics", headers=auth, timeout=REQUEST_TIMEOUT_S).text
    assert 'clinical_job_failure_codes_total{code="schema.required"} 1.0' in metrics
    assert 'endpoint="api.record_validation_failure"' in metrics
    assert "db_pool_size_connections" in metrics

    _, stderr = stop(process)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # every line is JSON
    (request_line,) = [e for e in lines if e.get("request_id") == "gunicorn-test-1"]
    assert request_line["endpoint"] == "api.record_validation_failure"
    assert request_line["status"] == 200 and request_line["method"] == "POST"
    assert [e["status"] for e in lines if e.get("request_id") == "gunicorn-test-2"] == [401]
    assert [e["status"] for e in lines if e.get("request_id") == "gunicorn-test-3"] == [400]
    for secret in ("Jane", "7Q4Z", "mrn", "tok-secret", token, SECRET):
        assert secret not in stderr
    assert any("start-up check: ready" in e["message"] for e in lines)


def _get_with_headers(base: str, path: str, headers: list[tuple[str, str]]) -> tuple[int, dict[str, str], bytes]:
    """``GET path`` with ``headers`` as given, repeated fields included
    (requests folds them into one), on a connection of its own: the
    answer's status, header fields (names in lower case) and body."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)
    try:
        connection.putrequest("GET", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _failed_sign_in(base: str, username: str, request_id: str) -> int:
    """One wrong-password sign-in on a new connection (a new session: GET the
    form for its CSRF token, then POST); returns the POST's status."""
    with requests.Session() as session:
        form = session.get(base + "/login", timeout=REQUEST_TIMEOUT_S).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        response = session.post(
            base + "/login",
            data={"username": username, "password": "wrong password", "csrf_token": token},
            headers={"X-Request-ID": request_id},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT_S,
        )
        return response.status_code


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_sign_in_limit_holds_across_gunicorn_workers(tmp_path, database_url, redis_url):
    """11 attempts from one address within a minute: the 11th is refused
    although no single worker saw 10 of them.

    Which worker accepts a new connection is up to the kernel, and it may
    give one worker all 11 (then even per-process counters would refuse the
    11th). So the experiment runs in rounds, the counters emptied in between,
    and the log says which process served each attempt: at least one round
    must have spread its first 11 over several workers.
    """
    env = _environment(
        tmp_path,
        APP_ENV="production",
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET,
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        STARTUP_DB_WAIT_S="60",
        WEB_CONCURRENCY=str(WORKERS),
        RATELIMIT_STORAGE_URI=redis_url,
    )
    rounds = 3
    codes: list[list[int]] = []
    with _running_gunicorn(env) as (base, process), redis.Redis.from_url(redis_url) as counters:
        for round_ in range(rounds):
            counters.flushall()  # a new minute for the limit
            # A different name each time: the per-address limit is the one tested.
            codes.append([_failed_sign_in(base, f"guess-{n}", f"limit-{round_}-{n}") for n in range(11)])
        _, stderr = stop(process)
    assert codes == [[401] * 10 + [429]] * rounds
    served_by = {
        e["request_id"]: e["process"] for e in map(json.loads, stderr.splitlines()) if e.get("endpoint") == "auth.login"
    }
    spread = [len({served_by[f"limit-{r}-{n}"] for n in range(11)}) for r in range(rounds)]
    assert max(spread) >= 2, "one worker served every attempt of every round: the test proved nothing"


#: Stands for a patient identifier in a request gunicorn cannot parse.
SENTINEL = "SENTINEL-MRN-4242"
#: Raw requests gunicorn refuses before the app sees them: (bytes, the error
#: class, the status answered). All but the first and the limit quote the
#: sentinel in gunicorn's own message.
MALFORMED_REQUESTS = [
    (f"GET /jobs?mrn={SENTINEL} HTTP/9.9\r\n\r\n", "InvalidHTTPVersion", 400),
    (f"GET /jobs?mrn=1 {SENTINEL} HTTP/1.1\r\n\r\n", "InvalidHTTPVersion", 400),
    (f"GET /jobs?mrn={SENTINEL}\x01 HTTP/1.1\r\n\r\n", "InvalidRequestLine", 400),
    (f"GET({SENTINEL} /jobs HTTP/1.1\r\n\r\n", "InvalidRequestMethod", 400),
    (f"GET /jobs HTTP/1.1\r\nX-{SENTINEL}(: v\r\n\r\n", "InvalidHeaderName", 400),
    (f"GET /jobs?mrn={SENTINEL}{'a' * 5000} HTTP/1.1\r\n\r\n", "LimitRequestLine", 414),
]


def _send_raw(bind: str, raw: bytes, *, hang_up: bool = False) -> bytes:
    """Send ``raw`` on a new connection and return all that comes back until
    the server closes it. ``hang_up``: stop sending (half-close) right after.

    A reset after the answer counts as the end: gunicorn closes the socket
    with the rest of an over-long request unread, which makes the kernel
    reset the connection."""
    host, port = bind.rsplit(":", 1)
    answer = b""
    with socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT_S) as sock:
        sock.sendall(raw)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        # gunicorn may reset the connection after its error answer: what
        # arrived before the reset is the answer.
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_gunicorn_logs_malformed_requests_by_error_class_never_their_text(tmp_path, database_url):
    """Gunicorn's own lines about requests it cannot parse name the error
    class and status (app/observability/gunicorn_logger.py); at DEBUG, so the
    lines gunicorn logs only then (a client hanging up mid-request) are seen."""
    env = _environment(
        tmp_path,
        APP_ENV="production",
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET,
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        STARTUP_DB_WAIT_S="60",
        LOG_LEVEL="DEBUG",
    )
    with _running_gunicorn(env) as (_, process):
        answers = [_send_raw(env["GUNICORN_BIND"], raw.encode("latin-1")) for raw, _, _ in MALFORMED_REQUESTS]
        cut_short = _send_raw(
            env["GUNICORN_BIND"], f"GET /jobs?mrn={SENTINEL} HTTP/1.1\r\nHost: x".encode(), hang_up=True
        )
        chunked = _send_raw(
            env["GUNICORN_BIND"],
            f"POST /jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{SENTINEL}\r\n".encode(),
        )
        stdout, stderr = stop(process)

    for answer, (_, _, status) in zip(answers, MALFORMED_REQUESTS, strict=True):
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
    assert cut_short == b""
    assert chunked.startswith(b"HTTP/1.1 ")  # the app's answer; the bad chunk is found after it
    assert SENTINEL not in stderr and SENTINEL not in stdout
    messages = [e["message"] for e in map(json.loads, stderr.splitlines()) if e["logger"] == "gunicorn.error"]
    for _, error_class, status in MALFORMED_REQUESTS:
        assert f"invalid request: {error_class} (status {status})" in messages
    assert "invalid request: InvalidChunkSize (status 400)" in messages
    assert "invalid request: NoMoreData" in messages
    # gunicorn's operational lines are still there
    assert any(m.startswith("Listening at: http://127.0.0.1:") for m in messages)
    assert any(m.startswith("Booting worker with pid: ") for m in messages)
