"""The load generator of bench/load.py: clients, loops and what they measure.

Closed loop (``closed_loop``: N clients, each sends its next request when the
last is answered) and open loop (``open_loop``: requests scheduled at a fixed
rate, latency counted from the scheduled start); the API client (one
keep-alive ``http.client`` connection per client), the dashboard reader run
beside it (``Background``), and the psycopg baseline (the endpoint's
transaction written by hand).
"""

from __future__ import annotations

import http.client
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

#: The error details every report sends: a normalized envelope of two items.
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
