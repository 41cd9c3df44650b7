"""The worker's HTTP client against a real local HTTP server that follows a script.

No mocking of ``requests``: a small werkzeug app served on a loopback port
answers each call as its script says (an error status, a dropped connection,
a slow answer) and records what it received, so the tests see the requests
exactly as they went over the wire.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app.worker.client import KEY_IN_PROGRESS_TYPE, ApiError, WorkerApiClient

#: Script actions besides ``(status, headers)`` answers.
DROP = "drop"  # read the request, then close the connection without answering
SLOW = "slow"  # answer only once the client has given up and sent its next request

JOB = {"id": "0b0e8a52-3f0a-4a7e-9c55-000000000001", "status": "Pending"}
PROBLEM = {"type": "about:blank", "title": "Unprocessable Content", "status": 422, "detail": "bad field"}


@dataclass
class Call:
    """One request as the server received it; ``at`` is ``time.monotonic()`` seconds."""

    method: str
    path: str
    key: str | None
    body: Any
    at: float


@dataclass
class ScriptedApi:
    """A WSGI app answering calls in turn from ``script``, then 200/201 with a job."""

    script: list[Any] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    #: Slow answers waiting for the client's next request.
    held: list[threading.Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        data = request.get_data()  # read the whole body first, even when dropping
        with self.lock:
            self.calls.append(
                Call(
                    request.method,
                    request.path,
                    request.headers.get("Idempotency-Key"),
                    json.loads(data) if data else None,
                    time.monotonic(),
                )
            )
            for slow in self.held:
                slow.set()
            self.held.clear()
            action = self.script.pop(0) if self.script else None
            if action == SLOW:
                release = threading.Event()
                self.held.append(release)
        if action == DROP:
            # Both directions shut: the client sees the connection closed
            # without an answer, as when a server process dies mid-request.
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            return Response(status=500)(environ, start_response)
        if action == SLOW:
            # Not a fixed delay longer than the client's read timeout: on a
            # busy machine the client may be descheduled for longer than any
            # such margin. Held until the client's retry arrives, the answer
            # always comes after the client stopped waiting for it.
            release.wait(timeout=60)
            action = None
        if action is None:
            status = 201 if request.method == "POST" and request.path.endswith("/processing-jobs") else 200
            return Response(json.dumps(JOB), status=status, mimetype="application/json")(environ, start_response)
        status, headers, *problem_type = action
        problem = {**PROBLEM, "status": status, **({"type": problem_type[0]} if problem_type else {})}
        body = json.dumps(problem) if status < 500 else "<html>Service Unavailable</html>"
        mimetype = "application/problem+json" if status < 500 else "text/html"
        return Response(body, status=status, headers=headers, mimetype=mimetype)(environ, start_response)


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    """A :class:`ScriptedApi` served over HTTP on a free loopback port (``api.url``)."""
    app = ScriptedApi()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    app.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def make_client(api: ScriptedApi) -> Iterator[Any]:
    """Build clients on ``api`` with a tiny base backoff; their sessions are closed afterwards."""
    clients: list[WorkerApiClient] = []

    def make(**options: Any) -> WorkerApiClient:
        options.setdefault("backoff", 0.001)
        client = WorkerApiClient(api.url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.session.close()


def unavailable(**headers: str) -> tuple[int, dict[str, str]]:
    return 503, headers


def test_post_retries_after_5xx_and_dropped_connections_reuse_one_idempotency_key(api, make_client):
    api.script = [unavailable(), DROP, (502, {})]
    job = make_client(retries=3).create_job("doc-1")
    assert job == JOB
    assert [(c.method, c.path) for c in api.calls] == [("POST", "/api/v1/processing-jobs")] * 4
    keys = {c.key for c in api.calls}
    assert len(keys) == 1
    assert uuid.UUID(keys.pop()).version == 4
    assert all(c.body == {"document_id": "doc-1", "job_type": "entity_extraction"} for c in api.calls)


def test_read_timeout_is_retried_with_the_same_key(api, make_client):
    api.script = [SLOW]
    client = make_client(retries=1, timeout=(2.0, 0.2))
    assert client.record_result(JOB["id"], {"status": "failed", "error_message": "x"}) == JOB
    assert len(api.calls) == 2
    assert api.calls[0].key == api.calls[1].key is not None


def test_each_logical_post_gets_a_fresh_key(api, make_client):
    client = make_client()
    client.create_job("doc-1")
    client.start_job(JOB["id"])
    client.record_result(JOB["id"], {"status": "completed", "entities": []})
    assert [c.path for c in api.calls] == [
        "/api/v1/processing-jobs",
        f"/api/v1/processing-jobs/{JOB['id']}/start",
        f"/api/v1/processing-jobs/{JOB['id']}/result",
    ]
    assert len({c.key for c in api.calls}) == 3
    assert api.calls[1].body is None
    assert api.calls[2].body == {"status": "completed", "entities": []}


def test_get_is_retried_and_carries_no_idempotency_key(api, make_client):
    api.script = [unavailable()]
    assert make_client(retries=1).get_job(JOB["id"]) == JOB
    assert [(c.method, c.key) for c in api.calls] == [("GET", None), ("GET", None)]


@pytest.mark.parametrize("status", [400, 404, 409, 422, 429])
def test_4xx_is_not_retried_and_raises_api_error_with_the_problem(api, make_client, status):
    api.script = [(status, {"Retry-After": "0"})]
    with pytest.raises(ApiError) as raised:
        make_client(retries=3).start_job(JOB["id"])
    assert raised.value.status == status
    assert raised.value.problem == {**PROBLEM, "status": status}
    assert len(api.calls) == 1


def test_a_409_key_in_progress_is_retried_with_the_same_key_after_retry_after(api, make_client):
    """The server's answer to a retry that overtook the first attempt: wait, then ask again."""
    api.script = [(409, {"Retry-After": "1"}, KEY_IN_PROGRESS_TYPE)]
    assert make_client(retries=1, backoff=0.001).start_job(JOB["id"]) == JOB
    assert len(api.calls) == 2
    assert api.calls[0].key == api.calls[1].key is not None
    assert api.calls[1].at - api.calls[0].at >= 1.0


def test_gives_up_on_5xx_after_the_configured_retries(api, make_client):
    api.script = [unavailable()] * 10
    with pytest.raises(ApiError) as raised:
        make_client(retries=2).record_result(JOB["id"], {"status": "failed", "error_message": "x"})
    assert raised.value.status == 503
    assert raised.value.problem == {}  # the body was HTML
    assert len(api.calls) == 3
    assert len({c.key for c in api.calls}) == 1


def test_gives_up_on_dropped_connections_after_the_configured_retries(api, make_client):
    api.script = [DROP] * 10
    with pytest.raises(requests.ConnectionError):
        make_client(retries=2).start_job(JOB["id"])
    assert len(api.calls) == 3
    assert len({c.key for c in api.calls}) == 1


def test_no_retries_means_one_attempt(api, make_client):
    api.script = [unavailable()]
    with pytest.raises(ApiError):
        make_client(retries=0).create_job("doc-1")
    assert len(api.calls) == 1


def test_backoff_doubles_between_attempts(api, make_client):
    api.script = [unavailable()] * 3
    make_client(retries=3, backoff=0.05).create_job("doc-1")
    gaps = [later.at - earlier.at for earlier, later in zip(api.calls, api.calls[1:])]
    # Lower bounds only: a busy machine may wait longer, never shorter.
    assert [gap >= wanted for gap, wanted in zip(gaps, [0.05, 0.1, 0.2])] == [True] * 3


def test_backoff_honours_retry_after_seconds(api, make_client):
    api.script = [unavailable(**{"Retry-After": "1"})]
    make_client(retries=1, backoff=0.001).create_job("doc-1")
    assert api.calls[1].at - api.calls[0].at >= 1.0


def test_retry_after_is_capped(api, make_client):
    api.script = [unavailable(**{"Retry-After": "3600"})]
    make_client(retries=1, backoff=0.001, max_retry_after=0.2).create_job("doc-1")
    gap = api.calls[1].at - api.calls[0].at
    assert 0.2 <= gap < 60  # far from 3600 s, with room for a busy machine


@pytest.mark.parametrize("value", ["Wed, 21 Oct 2037 07:28:00 GMT", "-5", "1.5", "soon"])
def test_retry_after_that_is_not_delay_seconds_falls_back_to_the_backoff(api, make_client, value):
    api.script = [unavailable(**{"Retry-After": value})]
    started = time.monotonic()
    # Honouring the header would wait the 60 s cap; the 20 s bound leaves a
    # busy machine room without hiding that.
    make_client(retries=1, backoff=0.001, max_retry_after=60).create_job("doc-1")
    assert time.monotonic() - started < 20
    assert len(api.calls) == 2


def test_negative_settings_are_refused():
    with pytest.raises(ValueError):
        WorkerApiClient("http://127.0.0.1:9", retries=-1)
    with pytest.raises(ValueError):
        WorkerApiClient("http://127.0.0.1:9", backoff=-0.1)
