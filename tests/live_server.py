"""Real servers around the tests: the app in a thread, or a program in a subprocess.

Waits here are deadlines, never fixed sleeps, and generous ones: on a busy
machine (two test runs at once, see README) a server may take many seconds
to answer its first request. A deadline only decides how long a broken
server takes to fail the test, so it costs nothing when things work.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

#: Seconds a started server may take to answer before the test fails.
START_DEADLINE_S = 120
#: Seconds a stopped process may take to exit before it is killed.
STOP_DEADLINE_S = 60


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread (one thread per request).

    Yields the base URL, e.g. ``http://127.0.0.1:40123``; the server stops
    when the block ends.
    """
    server = make_server(
        "127.0.0.1", 0, _RememberBody(app), threaded=True, request_handler=_ClosingRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=STOP_DEADLINE_S)
        server.server_close()


#: Where :class:`_RememberBody` leaves the response body in the WSGI environ.
_BODY_KEY = "tests.live_server.body"


class _CloseOnce:
    """A WSGI response body whose ``close()`` runs the wrapped one's at most once
    (PEP 3333: the server must call it; calling it twice would run Flask's and
    Werkzeug's close callbacks twice)."""

    def __init__(self, body) -> None:
        self._body = body
        self._closed = False

    def __iter__(self):
        return iter(self._body)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if hasattr(self._body, "close"):
                self._body.close()


class _RememberBody:
    """WSGI middleware: keeps the app's response body in the environ, so that
    :class:`_ClosingRequestHandler` can close it whatever happened to the
    connection."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def __call__(self, environ, start_response):
        body = environ[_BODY_KEY] = _CloseOnce(self._app(environ, start_response))
        return body


class _ClosingRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, plus: the response body is always closed.

    Werkzeug 3.1 calls the body's ``close()`` at the end of a ``finally``
    block that first drains what the client still sends; when the client
    resets the connection (Chromium does when it drops a connection it no
    longer needs), that read raises ``ConnectionResetError`` and ``close()``
    is skipped. For a static file the open file is then only closed by the
    garbage collector, with a ``ResourceWarning`` that ``filterwarnings =
    error`` turns into some browser test's failure, about one run in four.
    """

    def run_wsgi(self) -> None:
        try:
            super().run_wsgi()
        finally:
            body = getattr(self, "environ", {}).get(_BODY_KEY)
            if body is not None:
                body.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(
    ready: Callable[[], bool], process: subprocess.Popen, what: str, deadline_s: float = START_DEADLINE_S
) -> None:
    """Poll ``ready()`` until it is true; fail the test (with the end of the
    process's output) if ``process`` exits first or ``deadline_s`` passes.

    ``ready`` must answer ``False``, not raise, while the server is still
    starting (refused connection, timeout ...).
    """
    deadline = time.monotonic() + deadline_s
    pause = 0.05
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            state = "exited" if process.poll() is not None else f"did not answer within {deadline_s:.0f} s"
            _, errors = stop(process)
            pytest.fail(f"{what} {state}: {errors[-2000:]}")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)  # back off: polling must not add to the load


def stop(process: subprocess.Popen) -> tuple[str, str]:
    """Stop ``process`` (SIGTERM, then SIGKILL after :data:`STOP_DEADLINE_S`)
    and return what it wrote on stdout and stderr.

    Always reads its pipes to the end and closes them: an unclosed pipe is a
    ``ResourceWarning`` that ``filterwarnings = error`` turns into another
    test's failure.
    """
    if process.poll() is None:
        process.terminate()
    try:
        out, err = process.communicate(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return _text(out), _text(err)


def _text(output: str | bytes | None) -> str:
    if output is None:
        return ""
    return output if isinstance(output, str) else output.decode("utf-8", "replace")


def wait_for_exit(process: subprocess.Popen, deadline_s: float = START_DEADLINE_S) -> tuple[str, str]:
    """Wait for ``process`` to end by itself and return its stdout and stderr;
    fail the test (after stopping it) if it is still running at the deadline."""
    try:
        out, err = process.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        _, err = stop(process)
        pytest.fail(f"still running after {deadline_s:.0f} s: {err[-2000:]}")
    return _text(out), _text(err)


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port, nothing saved to
    disk, working in ``folder``; yields its URL (``redis://127.0.0.1:PORT/0``).

    Fails the test, never skips it, when Redis is missing or does not start
    (``scripts/ensure-test-tools`` installs it).
    """
    binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} not found: run scripts/ensure-test-tools (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until_ready(lambda: _answers_ping(url), process, "redis-server")
        yield url
    finally:
        stop(process)


def _answers_ping(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
