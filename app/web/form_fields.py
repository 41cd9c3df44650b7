"""Refusing a dashboard form's fields that the form does not have.

The query-string counterpart is :func:`app.web.query.refuse_unknown_parameters`
(and, for a repeated parameter, :mod:`app.request_input`). A field a form
does not read was silently dropped before, so a misspelt filter field
(``stauts=x`` in a bulk action's form) widened what the action chose, and a
second value of a filter field was ignored (trials).
"""

from __future__ import annotations

from collections.abc import Iterable

from werkzeug.datastructures import MultiDict

from app.errors import InvalidFormError, field_error
from app.request_input import has_different_values
from app.services.json_pointer import escape_token
from app.web.query import refuse_unknown_parameters


def refuse_unknown_form_fields(
    form: MultiDict[str, str], known: Iterable[str], *, repeatable: Iterable[str] = (),
    query: Iterable[str] = (),
) -> None:
    """Refuse the form when a field is not in ``known``, or a field not in
    ``repeatable`` is given two different values (the query string's rule,
    :func:`~app.request_input.has_different_values`), or when the POST has a
    query string (``query``: its names; the pages' forms send none, and a
    parameter there was silently ignored, a trial).

    Raises:
        InvalidQueryError: a ``query`` name, named (checked first).
        InvalidFormError: one error per such field, its location a JSON
            Pointer (RFC 6901) to the field, ``""`` when the name is not
            printable (not echoed); the detail says nothing was done.
    """
    refuse_unknown_parameters(query, ())
    allowed, many = set(known), set(repeatable)
    unknown, repeated = [], []
    for name in form:
        location = "/" + escape_token(name) if name.isprintable() else ""
        if name not in allowed:
            unknown.append(field_error(location, "is not a field of this form"))
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
