"""Load benchmark: the record-failure endpoint under gunicorn, against psycopg direct.

Run it on a throwaway PostgreSQL (scripts/with-postgres starts one and sets
TEST_DATABASE_URL)::

    scripts/with-postgres .venv/bin/python bench/load.py

It drops and re-creates the ``public`` schema of that database, migrates it,
seeds jobs, starts gunicorn with gunicorn.conf.py (``APP_ENV=production``) on
a free loopback port and runs four phases, each bounded in time and in
requests:

1. ``endpoint-peak``: ``--concurrency`` closed-loop clients POST
   ``/api/v1/processing-jobs/<id>/validation-failure`` (a new message each
   time, so every request locks, updates and appends history) as fast as
   answers come back;
2. ``mixed-peak``: the same, while the dashboard is read at
   ``--dashboard-rate`` page views per second (``GET /jobs`` and the summary
   it frames, ``GET /jobs/summary``);
3. ``endpoint-half-rate``: open loop at half the endpoint's throughput in
   phase 2 (its peak under the same mixed load), with the dashboard load;
   latency counted from each request's scheduled start (so a queue in front
   of the server is not hidden);
4. ``psycopg-direct``: the same lock-update-insert-commit written by hand with
   psycopg, one connection per client, at the same concurrency: the ceiling
   the database and this machine allow;
5. ``flask-floor`` (not a target; ``--no-floor`` skips it): the same
   transaction behind a bare Flask route under gunicorn with the app's
   worker settings (bench/minimal_app.py), to tell the framework's share of
   the gap from the app's.

Access control: the script creates a worker token in that database with
``flask tokens create`` (unless ``--token`` is given) and sends it on every API
request; for the dashboard it creates a ``viewer`` account with
``flask users create --password-stdin`` and signs in through the ``/login``
form (with its CSRF token), so ``GET /jobs`` is measured as an operator sees it.

Prints throughput, p50/p95/p99 latency and error counts per phase and checks
the targets (>= 60 % of the direct throughput; zero errors; p99 < 50 ms at
half rate). Traffic goes to loopback only; the script stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import html
import http.cookies
import json
import math
import re
import secrets
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_schema, loopback_database_url  # noqa: E402 (bench/ is on sys.path as the script's folder)
from tests.live_server import free_port  # noqa: E402 (the suite's helper; ROOT is on sys.path)
DETAILS = {
    "errors": [
        {
            "code": "schema.required",
            "severity": "error",
            "message": "missing required property 'code'",
            "pointer": "/entities/3",
        },
        {
            "code": "unit.not_ucum",
            "severity": "error",
            "message": "unit is not a valid UCUM code",
            "pointer": "/entities/5/unit",
        },
    ]
}


# -- measurements ---------------------------------------------------------------------


@dataclass
class Tally:
    """Latencies (s) of successful requests and the count of failed ones."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def fail(self, kind: str) -> None:
        with self.lock:
            self.errors += 1
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))  # nearest rank, 1-based
    index = max(0, min(len(ordered) - 1, rank - 1))
    return ordered[index]


@dataclass
class PhaseResult:
    name: str
    seconds: float
    tally: Tally
    dashboard: Tally | None = None

    @property
    def throughput(self) -> float:
        return len(self.tally.latencies) / self.seconds if self.seconds else 0.0

    def row(self, tally: Tally, label: str) -> dict:
        ms = [x * 1000 for x in tally.latencies]
        return {
            "phase": label,
            "requests_ok": len(ms),
            "errors": tally.errors,
            "error_kinds": tally.error_kinds,
            "throughput_per_s": round(len(ms) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(percentile(ms, 0.50), 2),
            "p95_ms": round(percentile(ms, 0.95), 2),
            "p99_ms": round(percentile(ms, 0.99), 2),
        }

    def rows(self) -> list[dict]:
        rows = [self.row(self.tally, self.name)]
        if self.dashboard is not None:
            rows.append(self.row(self.dashboard, self.name + " (dashboard view)"))
        return rows


# -- HTTP clients -------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection (http.client: the least client CPU)."""

    #: Extra headers on every request (``--token`` adds ``Authorization``).
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        #: Headers of this client only, over the class-wide ones (the
        #: dashboard's session cookie).
        self.extra_headers = dict(headers or {})
        self.connection = http.client.HTTPConnection(host, port, timeout=30)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> int:
        return self.exchange(method, path, body, content_type)[0]

    def exchange(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Send one request: status, headers and body of the answer."""
        headers = {**self.headers, **self.extra_headers}
        if body is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.reconnect()
                return response.status, response.headers, data
            except (ConnectionError, http.client.HTTPException, OSError):
                # A keep-alive connection the server closed while idle: once
                # more on a new one (the request was not processed).
                self.reconnect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def reconnect(self) -> None:
        self.connection.close()
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def close(self) -> None:
        self.connection.close()


def record_failure_body(n: int) -> bytes:
    return json.dumps(
        {
            "error_message": f"Entity validation failed: 2 errors (run {n})",
            "error_details": DETAILS,
            "error_format": "normalized",
        }
    ).encode()


class JobPicker:
    """Hands out job ids round-robin from a shuffled list, and a sequence number."""

    def __init__(self, job_ids: list[str]) -> None:
        self.job_ids = job_ids[:]
        random.Random(7).shuffle(self.job_ids)
        self.n = 0
        self.lock = threading.Lock()

    def next(self) -> tuple[str, int]:
        with self.lock:
            self.n += 1
            return self.job_ids[self.n % len(self.job_ids)], self.n


def closed_loop(
    concurrency: int,
    seconds: float,
    max_requests: int,
    make_worker: Callable[[], Callable[[], None]],
    cleanup: Callable[[], None] | None = None,
) -> float:
    """Run ``concurrency`` threads calling their worker until time or count runs out."""
    deadline = time.monotonic() + seconds
    count = {"n": 0}
    lock = threading.Lock()

    def loop() -> None:
        work = make_worker()
        try:
            while time.monotonic() < deadline:
                with lock:
                    if count["n"] >= max_requests:
                        return
                    count["n"] += 1
                work()
        finally:
            close = getattr(work, "close", None)
            if close:
                close()

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def open_loop(rate: float, seconds: float, max_requests: int, workers: int, make_worker: Callable) -> float:
    """Start requests at ``rate`` per second on a schedule; the worker gets the scheduled time."""
    total = min(max_requests, int(rate * seconds))
    start = time.monotonic() + 0.05
    schedule = iter(range(total))
    lock = threading.Lock()

    def loop() -> None:
        work = make_worker()
        try:
            while True:
                with lock:
                    i = next(schedule, None)
                if i is None:
                    return
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                work(due)
        finally:
            close = getattr(work, "close", None)
            if close:
                close()

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - start


class Background:
    """The dashboard load: ``rate`` page views per second until stopped (open
    loop); a view is ``GET /jobs`` then ``GET /jobs/summary``, timed together."""

    def __init__(
        self, host: str, port: int, rate: float, tally: Tally, headers: dict[str, str] | None = None
    ) -> None:
        self.host, self.port, self.rate, self.tally = host, port, rate, tally
        self.headers = headers or {}  # the signed-in operator's session cookie
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(2)]

    def run(self, index: int) -> None:
        if self.rate <= 0:
            return
        client = Client(self.host, self.port, self.headers)
        interval = 2 / self.rate  # two threads share the rate
        due = time.monotonic() + index * interval / 2
        try:
            while not self.stop.is_set():
                delay = due - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
                    if self.stop.is_set():
                        break
                try:
                    # A page view: the page, then the summary it frames (as a browser loads them).
                    status = client.request("GET", "/jobs")
                    if status == 200:
                        status = client.request("GET", "/jobs/summary")
                except OSError as exc:
                    self.tally.fail(type(exc).__name__)
                else:
                    if status == 200:
                        self.tally.ok(time.monotonic() - due)
                    else:
                        self.tally.fail(f"http {status}")
                due += interval
        finally:
            client.close()

    def __enter__(self) -> Background:  # noqa: PYI034 (3.11 has Self, but this is plain enough)
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def endpoint_worker(host: str, port: int, picker: JobPicker, tally: Tally) -> Callable:
    client = Client(host, port)

    def work(scheduled: float | None = None) -> None:
        job_id, n = picker.next()
        started = time.monotonic() if scheduled is None else scheduled
        try:
            status = client.request(
                "POST", f"/api/v1/processing-jobs/{job_id}/validation-failure", record_failure_body(n)
            )
        except OSError as exc:
            tally.fail(type(exc).__name__)
            return
        if status == 200:
            tally.ok(time.monotonic() - started)
        else:
            tally.fail(f"http {status}")

    work.close = client.close  # type: ignore[attr-defined]
    return work


# -- the psycopg baseline ---------------------------------------------------------------


def psycopg_worker(dsn: str, picker: JobPicker, tally: Tally) -> Callable:
    import psycopg
    from psycopg.types.json import Jsonb

    connection = psycopg.connect(dsn)
    details = {"schema_version": 1, **DETAILS, "error_count": 2, "truncated": False}

    def work() -> None:
        job_id, n = picker.next()
        started = time.monotonic()
        message = f"Entity validation failed: 2 errors (run {n})"
        try:
            with connection.transaction():
                row = connection.execute(
                    "SELECT id, status, error_message, error_details FROM processing_jobs"
                    " WHERE id = %s FOR UPDATE",
                    (job_id,),
                ).fetchone()
                if row is None:
                    raise LookupError(job_id)
                connection.execute(
                    "UPDATE processing_jobs SET status = 'Validation_Failed', error_message = %s,"
                    " error_details = %s, error_format = 'normalized', completed_at = now(),"
                    " acknowledged_at = NULL, acknowledged_by = NULL, updated_at = now() WHERE id = %s",
                    (message, Jsonb(details), job_id),
                )
                connection.execute(
                    "INSERT INTO job_failures (id, job_id, status, error_message, error_details,"
                    " error_format, recorded_at)"
                    " VALUES (%s, %s, 'Validation_Failed', %s, %s, 'normalized', now())",
                    (uuid.uuid4(), job_id, message, Jsonb(details)),
                )
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            tally.fail(type(exc).__name__)
            return
        tally.ok(time.monotonic() - started)

    work.close = connection.close  # type: ignore[attr-defined]
    return work


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


def start_gunicorn(url: str, port: int, args: argparse.Namespace, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "APP_ENV": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",  # a line per request would cost the server CPU here
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-metrics-"),
    }
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    return spawn_and_wait(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], env, port, log_path, "gunicorn"
    )


def spawn_and_wait(command: list[str], env: dict[str, str], port: int, log_path: Path, name: str) -> subprocess.Popen:
    """Start ``command`` (output to ``log_path``) and wait up to 60 s until
    ``GET /readyz`` on ``port`` answers 200; exit the script if it does not."""
    log = log_path.open("w")
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


def start_minimal_app(dsn: str, port: int, log_path: Path) -> subprocess.Popen:
    """gunicorn serving bench/minimal_app.py with the app's worker settings
    (gthread, gunicorn.conf.py's default worker and thread counts, keep-alive 5 s)."""
    workers = os.environ.get("WEB_CONCURRENCY") or str(max(2, 2 * len(os.sched_getaffinity(0))))
    threads = os.environ.get("GUNICORN_THREADS") or "2"
    command = [
        sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", workers, "--threads", threads,
        "--keep-alive", "5", "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"), "minimal_app:app",
    ]
    return spawn_and_wait(command, {**os.environ, "BENCH_DSN": dsn}, port, log_path, "gunicorn (minimal app)")


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="throwaway PostgreSQL on loopback (default: TEST_DATABASE_URL)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="clients in the closed-loop phases")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--max-requests", type=int, default=50_000, help="cap per phase")
    parser.add_argument(
        "--dashboard-rate", type=float, default=5.0, help="GET /jobs per second beside the API load"
    )
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs the failures are recorded on")
    parser.add_argument(
        "--workers", type=int, default=0, help="WEB_CONCURRENCY (default: gunicorn.conf.py's)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="GUNICORN_THREADS (default: gunicorn.conf.py's)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--token",
        default=os.environ.get("BENCH_WORKER_TOKEN"),
        help="ignored (kept for old command lines): the schema is re-created, so the script "
        "makes its own worker token with `flask tokens create`",
    )
    parser.add_argument("--peak-only", action="store_true", help="phase 1 only (for sizing gunicorn)")
    parser.add_argument("--no-floor", action="store_true", help="skip phase 5, the Flask floor")
    args = parser.parse_args()

    url = loopback_database_url(parser, args)
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)

    print(f"preparing the database: {args.jobs} jobs ...", flush=True)
    job_ids = prepare_database(url, args.jobs, failed=200)
    # The schema was just re-created: the token and account go in after it.
    token, username, password = create_credentials(url)
    if args.token:
        print("note: --token/BENCH_WORKER_TOKEN ignored; using a token created in the fresh database")
    Client.headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"bench-gunicorn-{port}.log"
    server = start_gunicorn(url, port, args, log_path)
    host = "127.0.0.1"
    results: list[PhaseResult] = []
    try:
        operator = sign_in(host, port, username, password)
        # Warm up: every worker imports, connects, fills its pool.
        warm = Tally()
        closed_loop(
            args.concurrency, 2.0, 2_000, lambda: endpoint_worker(host, port, JobPicker(job_ids), warm)
        )

        print("phase 1/5: endpoint alone, closed loop ...", flush=True)
        tally = Tally()
        picker = JobPicker(job_ids)
        seconds = closed_loop(
            args.concurrency,
            args.seconds,
            args.max_requests,
            lambda: endpoint_worker(host, port, picker, tally),
        )
        peak = PhaseResult("endpoint-peak", seconds, tally)
        results.append(peak)
        if args.peak_only:
            row = peak.rows()[0]
            print(
                f"endpoint-peak: {row['throughput_per_s']}/s p50 {row['p50_ms']} p99 {row['p99_ms']} "
                f"errors {row['errors']}"
            )
            return 0

        print("phase 2/5: endpoint + dashboard, closed loop ...", flush=True)
        tally, dashboard = Tally(), Tally()
        with Background(host, port, args.dashboard_rate, dashboard, operator):
            seconds = closed_loop(
                args.concurrency,
                args.seconds,
                args.max_requests,
                lambda: endpoint_worker(host, port, picker, tally),
            )
        mixed = PhaseResult("mixed-peak", seconds, tally, dashboard)
        results.append(mixed)

        half = mixed.throughput / 2
        print(
            f"phase 3/5: endpoint at half its mixed peak ({half:.0f}/s) + dashboard, open loop ...",
            flush=True,
        )
        tally, dashboard = Tally(), Tally()
        with Background(host, port, args.dashboard_rate, dashboard, operator):
            seconds = open_loop(
                half,
                args.seconds,
                args.max_requests,
                max(args.concurrency, 16),
                lambda: endpoint_worker(host, port, picker, tally),
            )
        results.append(PhaseResult("endpoint-half-rate", seconds, tally, dashboard))
    finally:
        server.terminate()
        server.wait(timeout=60)

    print("phase 4/5: psycopg direct, closed loop ...", flush=True)
    tally = Tally()
    picker = JobPicker(job_ids)
    seconds = closed_loop(
        args.concurrency, args.seconds, args.max_requests, lambda: psycopg_worker(dsn, picker, tally)
    )
    direct = PhaseResult("psycopg-direct", seconds, tally)
    results.append(direct)

    floor = None
    if not args.no_floor:
        print("phase 5/5: Flask floor (bench/minimal_app.py: the same transaction, nothing else) ...", flush=True)
        floor_port = free_port()
        floor_log = Path(tempfile.gettempdir()) / f"bench-gunicorn-floor-{floor_port}.log"
        floor_server = start_minimal_app(dsn, floor_port, floor_log)
        try:
            closed_loop(args.concurrency, 2.0, 2_000,
                        lambda: endpoint_worker(host, floor_port, JobPicker(job_ids), Tally()))  # warm up
            tally = Tally()
            picker = JobPicker(job_ids)
            seconds = closed_loop(
                args.concurrency, args.seconds, args.max_requests,
                lambda: endpoint_worker(host, floor_port, picker, tally),
            )
        finally:
            floor_server.terminate()
            floor_server.wait(timeout=60)
        floor = PhaseResult("flask-floor", seconds, tally)
        results.append(floor)

    rows = [row for result in results for row in result.rows()]
    print()
    print(f"{'phase':44} {'ok':>7} {'err':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(
            f"{row['phase']:44} {row['requests_ok']:7d} {row['errors']:5d} {row['throughput_per_s']:8.1f} "
            f"{row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['p99_ms']:8.2f}"
        )
    ratio = peak.throughput / direct.throughput if direct.throughput else 0.0
    half_row = results[2].rows()[0]
    errors = sum(row["errors"] for row in rows)
    checks = {
        "endpoint alone >= 60% of psycopg direct": (ratio >= 0.60, f"{ratio:.0%}"),
        "zero errors": (errors == 0, str(errors)),
        "p99 < 50 ms at half rate": (half_row["p99_ms"] < 50, f"{half_row['p99_ms']} ms"),
    }
    print()
    for name, (passed, value) in checks.items():
        print(f"{'PASS' if passed else 'MISS'}  {name}: {value}")
    if floor is not None and direct.throughput and floor.throughput:
        print(f"(not a target) Flask floor / psycopg direct: {floor.throughput / direct.throughput:.0%}; "
              f"endpoint / Flask floor: {peak.throughput / floor.throughput:.0%}")
    print(
        f"(gunicorn log: {log_path}; concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": rows, "ratio": ratio, "checks": {k: v[0] for k, v in checks.items()}}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
