"""The request id: taken from a valid ``X-Request-ID`` header or generated.

Every response carries it back in ``X-Request-ID``, every log line written
while the request runs has it as ``request_id``, and every problem+json body
names it (``request_id``), so a worker's report, the server's log lines and
an operator's question can be matched up.
"""

from __future__ import annotations

import re
import uuid

from flask import g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
#: What an incoming id may look like: 1 to 128 of letters, digits and
#: ``._:-`` (UUIDs, ULIDs, hex trace ids). Anything else is replaced rather
#: than echoed, so a header cannot inject text into logs or responses.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    """A fresh id: 32 lower-case hex digits (a random UUID)."""
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """Return ``value`` if it is a valid request id, else a fresh one."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    """The id of the request being handled (``None`` outside a request).

    Set by the ``before_request`` hook; a handler that runs before it (an
    error raised while the request is being set up) gets one made here.
    """
    if not has_request_context():
        return None
    request_id = g.get("request_id")
    if request_id is None:
        request_id = g.request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    return request_id
