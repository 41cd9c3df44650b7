"""Refusing a dashboard form's fields that the form does not have.

The query-string counterpart is :func:`app.web.query.refuse_unknown_parameters`.
A field a form does not read was silently dropped before, so a misspelt
filter field (``stauts=x`` in a bulk action's form) widened what the action
chose (a trial).
"""

from __future__ import annotations

from collections.abc import Iterable

from app.errors import InvalidFormError, field_error
from app.services.json_pointer import escape_token


def refuse_unknown_form_fields(names: Iterable[str], known: Iterable[str]) -> None:
    """Refuse the form when a field name in ``names`` is not in ``known``.

    Raises:
        InvalidFormError: one error per unknown field, its location a JSON
            Pointer (RFC 6901) to the field, ``""`` when the name is not
            printable (not echoed); the detail says nothing was done.
    """
    allowed = set(known)
    unknown = [name for name in dict.fromkeys(names) if name not in allowed]
    if unknown:
        raise InvalidFormError(
            f"Unknown form field{'s' if len(unknown) > 1 else ''}: nothing was done. Use the page's own form.",
            [field_error("/" + escape_token(name) if name.isprintable() else "", "is not a field of this form")
             for name in unknown],
        )
