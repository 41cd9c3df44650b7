"""The helpers that start and stop the test servers' processes."""

from __future__ import annotations

import gc
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from flask import Flask

from app.config import ROOT
from tests.live_server import STOP_DEADLINE_S, serve, stop, wait_for_exit, wait_until_ready


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_stop_ends_the_process_and_closes_its_pipes():
    process = _python("import sys, time; print('started', flush=True); time.sleep(600)")
    assert process.stdout.readline() == "started\n"
    stop(process)
    assert process.returncode is not None
    assert process.stdout.closed and process.stderr.closed  # no ResourceWarning later


def test_a_server_that_exits_while_starting_fails_the_test_with_its_output():
    process = _python("import sys; sys.exit('no such setting')")
    with pytest.raises(pytest.fail.Exception, match="exited: no such setting"):
        wait_until_ready(lambda: False, process, "server")
    assert process.stdout.closed and process.stderr.closed


def test_a_server_that_never_answers_is_stopped_at_the_deadline():
    process = _python("import time; time.sleep(600)")
    with pytest.raises(pytest.fail.Exception, match="did not answer within 0 s"):
        wait_until_ready(lambda: False, process, "server", deadline_s=0)
    assert process.returncode is not None and process.stderr.closed


def test_wait_for_exit_returns_the_output_of_a_process_that_ends_by_itself():
    assert wait_for_exit(_python("print('done')")) == ("done\n", "")


def _get_then_reset(base_url: str, path: str) -> bytes:
    """GET ``path``, read the whole response, then reset the connection (RST).

    Bytes sent after the request keep the server draining the socket after
    its response, so the reset reaches it inside that drain every time, as
    when Chromium drops a connection.
    """
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=STOP_DEADLINE_S) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() + b"x" * 200_000)
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head, body = received.split(b"\r\n\r\n", 1)
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
                     .split(b":")[1])
        while len(body) < length:
            body += sock.recv(65536)
        # linger on, timeout 0: close() sends RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return head


def _wait_for_request_threads_to_end() -> None:
    deadline = time.monotonic() + STOP_DEADLINE_S
    while any("process_request_thread" in thread.name for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "a request thread of the live server is still running"
        time.sleep(0.01)


def test_a_static_file_is_closed_when_the_client_resets_the_connection(monkeypatch):
    unclosed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: unclosed.append(report.exc_value))
    app = Flask(__name__, static_folder=str(ROOT / "static"))
    with serve(app) as base_url:
        for _ in range(3):
            assert _get_then_reset(base_url, "/static/css/app.css").startswith(b"HTTP/1.1 200")
        _wait_for_request_threads_to_end()
    gc.collect()
    assert unclosed == []  # not: ResourceWarning('unclosed file <... app.css>') from the server's thread
