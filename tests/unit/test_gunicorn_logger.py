"""Gunicorn's error log through RedactingLogger: malformed requests by class and status only.

Requests are parsed by gunicorn's own parser and their errors handled by its
own ``Worker.handle_error`` (the code that writes the 400 and the log line in
production), with a socket pair standing in for the client.
"""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.http import errors as http_errors
from gunicorn.http.parser import RequestParser
from gunicorn.workers.base import Worker

from app.observability.gunicorn_logger import RedactingLogger
from app.observability.logs import JSONFormatter

SENTINEL = "SENTINEL-MRN-4242"
PEER = ("127.0.0.1", 40000)


class _Captured:
    """What reached ``gunicorn.error``: the records, and their text as a
    plain :class:`logging.Formatter` writes it (tracebacks included, message
    and all, unlike the JSON formatter)."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def gunicorn_log() -> Iterator[tuple[RedactingLogger, _Captured]]:
    """A RedactingLogger with gunicorn's default settings; its handlers are
    removed afterwards, because ``gunicorn.error`` is a process-wide logger."""
    error_log = logging.getLogger("gunicorn.error")
    saved = (list(error_log.handlers), error_log.propagate, error_log.level)
    captured = _Captured()
    logger = RedactingLogger(Config())
    for handler in list(error_log.handlers):  # gunicorn's stderr handler: the test reads the records
        error_log.removeHandler(handler)
    error_log.setLevel(logging.DEBUG)
    plain = logging.StreamHandler(captured.stream)
    plain.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    recorder = logging.Handler()
    recorder.emit = captured.records.append  # type: ignore[method-assign]
    error_log.addHandler(plain)
    error_log.addHandler(recorder)
    try:
        yield logger, captured
    finally:
        for handler in list(error_log.handlers):
            error_log.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            error_log.addHandler(handler)
        error_log.propagate, error_log.level = saved[1], saved[2]


def _parse(raw: bytes):
    """Parse ``raw`` as gunicorn does; returns ``(request or None, the
    exception raised)``. A chunked body is read to the end, as an app would."""
    parser = RequestParser(Config(), iter([raw]), PEER)
    req = None
    try:
        req = next(parser)
        req.body.read()
    except Exception as exc:  # the parse error under test
        return req, exc
    pytest.fail(f"gunicorn parsed {raw[:60]!r} without an error")


def _handle(logger: RedactingLogger, req, exc: BaseException) -> str:
    """Run gunicorn's ``Worker.handle_error`` for ``exc`` inside an ``except``
    block, as its workers do; returns the status line the client got."""
    worker = SimpleNamespace(log=logger, cfg=Config())
    server, client = socket.socketpair()
    with server, client:
        try:
            raise exc
        except Exception as handled:
            Worker.handle_error(worker, req, server, PEER, handled)
        server.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode()


#: (raw request, the error gunicorn raises, the status it answers); ids are the error classes.
MALFORMED = [
    pytest.param(raw.encode("latin-1"), error_class, status, id=error_class)
    for raw, error_class, status in [
        (f"GET /jobs?mrn=1 {SENTINEL} HTTP/1.1\r\n\r\n", "InvalidHTTPVersion", 400),
        (f"GET /x?a={SENTINEL}\x01 HTTP/1.1\r\n\r\n", "InvalidRequestLine", 400),
        (f"GET({SENTINEL} / HTTP/1.1\r\n\r\n", "InvalidRequestMethod", 400),
        (f"GET / HTTP/1.1\r\nX-{SENTINEL}(: v\r\n\r\n", "InvalidHeaderName", 400),
        (f"GET /?mrn={SENTINEL}{'a' * 5000} HTTP/1.1\r\n\r\n", "LimitRequestLine", 414),
        (f"GET / HTTP/1.1\r\nX-Note: {SENTINEL}{'a' * 9000}\r\n\r\n", "LimitRequestHeaders", 431),
        (f"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{SENTINEL}\r\n", "InvalidChunkSize", 400),
    ]
]


@pytest.mark.parametrize(("raw", "error_class", "status"), MALFORMED)
def test_malformed_request_is_logged_by_error_class_and_status(gunicorn_log, raw, error_class, status):
    logger, captured = gunicorn_log
    req, exc = _parse(raw)
    assert type(exc).__name__ == error_class
    if not error_class.startswith("Limit"):  # limits quote sizes, the others what was sent
        assert SENTINEL in str(exc)

    status_line = _handle(logger, req, exc)

    assert status_line.startswith(f"HTTP/1.1 {status} ")  # the status named is the one answered
    assert captured.text == f"WARNING invalid request: {error_class} (status {status})\n"
    assert [r.exc_info for r in captured.records] == [None]  # no traceback to print the text


def test_traceback_of_a_client_error_is_dropped_with_its_text(gunicorn_log):
    logger, captured = gunicorn_log
    try:
        raise http_errors.InvalidRequestLine(f"GET /?mrn={SENTINEL}")
    except http_errors.InvalidRequestLine:
        logger.exception("Error parsing %s", f"/?mrn={SENTINEL}")
    assert captured.text == "ERROR invalid request: InvalidRequestLine (status 400)\n"


def test_client_hanging_up_mid_request_is_logged_without_the_bytes_read(gunicorn_log):
    logger, captured = gunicorn_log
    _, exc = _parse(f"GET /?mrn={SENTINEL} HTTP/1.1\r\nHost: x".encode())
    assert isinstance(exc, http_errors.NoMoreData)
    try:
        raise exc
    except http_errors.NoMoreData as handled:  # workers/gthread.py handle()
        logger.debug("Ignored premature client disconnection. %s", handled)
    assert captured.text == "DEBUG invalid request: NoMoreData\n"


def test_application_error_keeps_its_traceback_but_not_the_request_target(gunicorn_log):
    logger, captured = gunicorn_log
    req = next(RequestParser(Config(), iter([f"GET /jobs?mrn={SENTINEL} HTTP/1.1\r\n\r\n".encode()]), PEER))

    status_line = _handle(logger, req, ValueError(f"bad value {SENTINEL}"))

    assert status_line.startswith("HTTP/1.1 500 ")
    (record,) = captured.records
    assert record.getMessage() == "Error handling request"
    line = json.loads(JSONFormatter().format(record))
    assert line["exc_type"] == "ValueError" and line["exc_frames"]
    assert SENTINEL not in json.dumps(line)


def test_exception_given_as_the_message_is_logged_by_class(gunicorn_log):
    logger, captured = gunicorn_log
    try:
        raise SyntaxError(f"invalid syntax near {SENTINEL}")
    except SyntaxError as exc:  # workers/base.py load_wsgi: log.exception(e)
        logger.exception(exc)
    (record,) = captured.records
    assert record.getMessage() == "SyntaxError"
    assert record.exc_info[0] is SyntaxError


def test_operational_lines_pass_unchanged(gunicorn_log):
    logger, captured = gunicorn_log
    logger.info("Booting worker with pid: %s", 4242)
    logger.log("info", "Listening at: %s (%s)", "http://127.0.0.1:8000", 1)
    try:
        raise ConnectionResetError
    except OSError:  # an exception being handled that is no client error
        logger.debug("Ignoring connection reset")
        logger.warning("Worker %s took %s s", 7, 3)
    assert captured.text == (
        "INFO Booting worker with pid: 4242\n"
        "INFO Listening at: http://127.0.0.1:8000 (1)\n"
        "DEBUG Ignoring connection reset\n"
        "WARNING Worker 7 took 3 s\n"
    )
