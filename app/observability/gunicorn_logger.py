"""Gunicorn's error log without the text of malformed requests.

Gunicorn answers a request it cannot parse (RFC 9112 message syntax, or its
own limits) with 400, 414 or 431 and logs why, quoting what the client sent
(``workers/base.py`` ``handle_error`` in gunicorn 27)::

    Invalid request from ip=10.0.0.7: Invalid HTTP request line: 'GET /jobs?mrn=... HTTP/1.1'

The same goes for a bad header name, a method, a chunk-size line and, at
DEBUG, the bytes read before a client hung up (``NoMoreData``). Request
targets, header names and bodies may hold patient identifiers, so
:class:`RedactingLogger` writes each such line from the exception's class and
the status gunicorn answered with, and nothing else::

    invalid request: InvalidRequestLine (status 400)

By construction rather than by pattern: the choice is made on the exception
being handled while gunicorn logs (it logs these lines inside its ``except``
blocks, so :func:`sys.exc_info` is the parse error), never on the message
text, so a reworded message in a later gunicorn is replaced all the same. Its
traceback is dropped: a client's bad request is not a bug to debug, and a
formatter that prints tracebacks would print the exception's text.

Lines logged with a traceback for any other exception (``log.exception``)
keep gunicorn's constant text and lose their arguments: ``Error handling
request %s %s`` would quote the method and the whole request target, query
string included. The traceback itself reaches the log as type and frames only
(:class:`app.observability.logs.JSONFormatter`).

Every other line (``Booting worker``, ``Listening at`` ...) passes unchanged.
Set as ``logger_class`` in ``gunicorn.conf.py``; see docs/operations.md, "Logs".
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn import glogging
from gunicorn.http import errors as http_errors
from gunicorn.http2 import errors as http2_errors

#: Exceptions meaning "what the client sent could not be parsed, or stopped
#: short": their text quotes the request.
CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    http_errors.ParseException,
    http_errors.NoMoreData,
    http2_errors.HTTP2Error,
)
#: Parse errors about the application's response, not the client's request:
#: gunicorn answers 500 and logs them like any application error.
APPLICATION_ERRORS: tuple[type[BaseException], ...] = (
    http_errors.InvalidResponseHeader,
    http_errors.InvalidResponseHeaderName,
)
#: After these gunicorn sends no answer (the client hung up, or HTTP/2 resets
#: the stream), so the line names no status.
UNANSWERED_ERRORS: tuple[type[BaseException], ...] = (http_errors.NoMoreData, http2_errors.HTTP2Error)
#: The status of gunicorn's answer where it is not 400 (``handle_error``).
_STATUS_OTHER_THAN_400: tuple[tuple[type[BaseException], int], ...] = (
    (http_errors.LimitRequestLine, 414),
    (http_errors.LimitRequestHeaders, 431),
    (http_errors.ExpectationFailed, 417),
    (http_errors.ForbiddenProxyRequest, 403),
    (http_errors.UnsupportedTransferCoding, 501),
    (http_errors.ConfigurationProblem, 500),
)


def is_client_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a malformed or cut-short request (see :data:`CLIENT_ERRORS`)."""
    return isinstance(exc, CLIENT_ERRORS) and not isinstance(exc, APPLICATION_ERRORS)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status gunicorn answers the client error ``exc`` with, or
    ``None`` when it answers nothing."""
    if isinstance(exc, UNANSWERED_ERRORS):
        return None
    for error_class, status in _STATUS_OTHER_THAN_400:
        if isinstance(exc, error_class):
            return status
    return 400


def describe_client_error(exc: BaseException) -> str:
    """``invalid request: <class> (status <code>)``: the whole of what is
    logged about a malformed request."""
    status = status_of(exc)
    suffix = "" if status is None else f" (status {status})"
    return f"invalid request: {type(exc).__name__}{suffix}"


def redact(msg: Any, args: tuple, exc_info: Any) -> tuple[Any, tuple, Any]:
    """The message, arguments and ``exc_info`` to log instead of gunicorn's.

    Args:
        msg, args: as given to a :mod:`logging` call.
        exc_info: the call's ``exc_info`` (``None``, a bool, an exception or
            a ``sys.exc_info()`` tuple).

    Returns:
        For a client error (given or being handled): its description, no
        arguments and no ``exc_info``. For a line with a traceback: the
        message's constant text, no arguments, the same ``exc_info``.
        Otherwise the call unchanged.
    """
    exc = _exception_of(exc_info)
    if is_client_error(exc):
        return describe_client_error(exc), (), None
    if isinstance(msg, BaseException):  # ``log.exception(e)``: str(e) quotes values
        return type(msg).__name__, (), exc_info
    if exc_info and args and isinstance(msg, str):
        return msg.split("%", 1)[0].rstrip(" :.") or "error", (), exc_info
    return msg, args, exc_info


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1]
    # Gunicorn logs a parse error inside the ``except`` that caught it, with
    # no exc_info: the exception being handled is the one the line is about.
    return sys.exc_info()[1]


class RedactingLogger(glogging.Logger):
    """``gunicorn.glogging.Logger`` whose error-log lines pass through
    :func:`redact` (see the module docstring). The access log, the handlers
    and ``logconfig_dict`` are gunicorn's."""

    def critical(self, msg, *args, **kwargs) -> None:
        self.log(logging.CRITICAL, msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def exception(self, msg, *args, exc_info=True, **kwargs) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info, **kwargs)

    def log(self, lvl, msg, *args, **kwargs) -> None:
        if isinstance(lvl, str):
            lvl = self.LOG_LEVELS.get(lvl.lower(), logging.INFO)
        msg, args, kwargs["exc_info"] = redact(msg, args, kwargs.get("exc_info"))
        self.error_log.log(lvl, msg, *args, **kwargs)
