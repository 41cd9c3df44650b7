"""One check of every request's query string and form fields, before any view runs.

A NUL character (U+0000) cannot be stored by PostgreSQL (``text`` and
``jsonb`` refuse it) and means nothing in a filter, a redirect target or a
form field. Rather than have each view (or the audit insert of an export that
is already streaming) trip over it, every request whose query parameters or
form fields hold one -- in a name or a value, known parameter or not -- is
refused here with a 400 that names the parameter, before authentication,
audit or any service runs, so nothing is changed. The rule is the one of
:mod:`app.services.json_values` (NUL and unpaired surrogates); Werkzeug
decodes malformed UTF-8 to U+FFFD, so in practice this is NUL.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.datastructures import MultiDict

from app.errors import FieldError, InvalidQueryError, field_error
from app.services.json_pointer import json_pointer
from app.services.json_values import has_unstorable_text

#: Form bodies Werkzeug parses into ``request.form``; other bodies (JSON) are
#: left to their own readers, which apply the storage rule themselves.
FORM_MEDIA_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _bad_fields(fields: MultiDict[str, str]) -> list[FieldError]:
    bad: list[FieldError] = []
    for name, value in fields.items(multi=True):
        if has_unstorable_text(name):
            bad.append(field_error("", "a parameter name holds a NUL character"))
        elif has_unstorable_text(value):
            bad.append(field_error(json_pointer([name]), "must not hold a NUL character"))
    return bad


def refuse_unstorable_input() -> None:
    """``before_request``: refuse NUL in any query parameter or form field (400).

    Raises:
        InvalidQueryError: naming each offending parameter (problem+json on
            the API, an HTML page elsewhere), never quoting its value.
    """
    bad = _bad_fields(request.args)
    if request.mimetype in FORM_MEDIA_TYPES:
        bad += _bad_fields(request.form)
    if bad:
        raise InvalidQueryError("A query parameter or form field holds a NUL character; remove it.", bad)


def init_request_input(app: Flask) -> None:
    """Install :func:`refuse_unstorable_input` (before the access rules, so even
    the sign-in page and unknown parameters are covered)."""
    app.before_request(refuse_unstorable_input)
