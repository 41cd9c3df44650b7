"""Refusing a dashboard form's fields that the form does not have.

The query-string counterpart is :func:`app.web.query.refuse_unknown_parameters`
(and, for a repeated parameter, :mod:`app.request_input`). A field a form
does not read was silently dropped before, so a misspelt filter field
(``stauts=x`` in a bulk action's form) widened what the action chose, and a
second value of a filter field was ignored (trials).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from flask import request

from app.errors import InvalidFormError, InvalidQueryError, field_error
from app.request_input import has_different_values
from app.services.json_pointer import escape_token
from app.web.query import refuse_unknown_parameters
from app.web.query_time import parse_rfc3339


#: The field every form of the dashboard carries: Flask-WTF's CSRF token.
CSRF_FIELD = "csrf_token"


def refuse_stray_form_input(known: Iterable[str], *, repeatable: Iterable[str] = ()) -> None:
    """Refuse the current request's form (Flask's ``request``) when its POST
    has a query string (the pages' forms send none, and a parameter there was
    silently ignored, a trial), a file part (none of them takes a file), a
    field is neither in ``known`` nor
    :data:`CSRF_FIELD`, or a field not in ``repeatable`` is given two
    different values (the query string's rule,
    :func:`~app.request_input.has_different_values`).

    Raises:
        InvalidQueryError: a query-string name, named (checked first).
        InvalidFormError: one error per such field, its location a JSON
            Pointer (RFC 6901) to the field, ``""`` when the name is not
            printable (not echoed); the detail says nothing was done.
    """
    refuse_unknown_parameters(request.args, ())
    form = request.form
    allowed, many = {CSRF_FIELD, *known}, set(repeatable)
    unknown, repeated = [], []
    # A file part (multipart/form-data) is a field too: Werkzeug keeps it
    # in ``request.files``, out of ``request.form``, so it was dropped
    # without a word (a trial).
    for name in [*form, *(n for n in request.files if n not in form)]:
        location = "/" + escape_token(name) if name.isprintable() else ""
        if name not in allowed:
            unknown.append(field_error(location, "is not a field of this form"))
        elif name in request.files:
            unknown.append(field_error(location, "is a file, and this form takes none"))
        elif name not in many and has_different_values(form.getlist(name)):
            repeated.append(field_error(location, "is given more than once with different values"))
    # Said as it is: a trial read "a field it should not" about a filter
    # field the form has, given twice.
    faults = [*(["has " + ("fields" if len(unknown) > 1 else "a field") + " it should not"] if unknown else []),
              *(["gives " + ("fields" if len(repeated) > 1 else "a field") + " two different values"]
                if repeated else [])]
    if faults:
        raise InvalidFormError(
            f"The form {' and '.join(faults)}: nothing was done. Use the page's own form.", unknown + repeated
        )


def form_time(value: str | None, pointer: str, message: str) -> datetime | None:
    """A hidden form field's RFC 3339 time, as the page wrote it (aware
    UTC): the failure or the state a page showed, for an action to refuse
    if it changed since. ``None`` when absent (a form not sent from the
    page is not checked).

    Raises:
        InvalidFormError: not an RFC 3339 time: ``message``, named by
            ``pointer`` (RFC 6901, ``/failure_at``).
    """
    if not value:
        return None
    try:
        return parse_rfc3339(value, pointer.lstrip("/"))
    except InvalidQueryError:
        raise InvalidFormError(
            message, [field_error(pointer, "must be an RFC 3339 time, as the page gave it")]) from None
