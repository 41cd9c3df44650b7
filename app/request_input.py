"""One check of every request's query string and form fields, before any view runs.

A NUL character (U+0000) cannot be stored by PostgreSQL (``text`` and
``jsonb`` refuse it) and means nothing in a filter, a redirect target or a
form field. Rather than have each view (or the audit insert of an export that
is already streaming) trip over it, every request whose query parameters or
form fields hold one -- in a name or a value, known parameter or not -- is
refused here with a 400 that names the parameter, before authentication,
audit or any service runs, so nothing is changed. The rule is the one of
:mod:`app.services.json_values` (NUL and unpaired surrogates), widened to
the other C0 controls but TAB, LF and CR, DEL and the C1 controls: none
belongs in a parameter, and ESC, CSI and the like act in a terminal or log
instead of showing.
A query parameter whose percent-escapes are not UTF-8 is refused too
(Werkzeug would keep the escape as text, and a search for it find nothing),
and so is a single-valued one given twice with different values (which one
counts is not guessed: ``limit=10&limit=500`` is a 400 naming ``limit``);
an empty copy beside a value is dropped, so the value counts.

:func:`whole_number` is the one reader of a whole number typed into a
parameter, a path or a field.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, unquote_to_bytes

from flask import Flask, g, request
from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from app.errors import FieldError, InvalidFormError, InvalidQueryError, field_error, parameter_error, shown_name
from app.services.json_pointer import json_pointer
from app.services.json_values import has_acting_control, has_unstorable_text


def whole_number(text: str, maximum: int) -> int | None:
    """``text`` as a whole number from 0 to ``maximum``: ASCII digits only
    (``str.isdigit`` also takes "²" and "٣"), leading zeros allowed. ``None``
    for anything else. Over-long digit strings are refused by their length
    before ``int()``, which raises ``ValueError`` past 4,300 digits (CPython's
    guard against quadratic conversion) and was a 500 (a trial)."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):
        return None
    value = int(digits)
    return value if value <= maximum else None


#: Query parameters that take several values (each a list of choices:
#: the jobs' ``status``, the groups' ``state`` and ``substate``); any other
#: given twice must repeat the same value.
MULTI_VALUED_PARAMETERS = frozenset({"status", "state", "substate"})

#: Form bodies Werkzeug parses into ``request.form``; other bodies (JSON) are
#: left to their own readers, which apply the storage rule themselves.
FORM_MEDIA_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _refused(text: str) -> bool:
    # No filter, id, user name or redirect target holds a control character.
    return has_unstorable_text(text) or has_acting_control(text)


def _bad_fields(fields: MultiDict[str, str], *, query: bool) -> list[FieldError]:
    # Query parameters are named as such; form fields are the body's, so a pointer.
    bad: list[FieldError] = []
    for name, value in fields.items(multi=True):
        if _refused(name):
            what = "a parameter name holds a NUL or another control character"
            # Named with each control as its escape: the exact name would
            # act in a terminal or a log line that quotes the answer.
            shown = shown_name(name)
            bad.append(parameter_error(shown, what) if query else field_error(json_pointer([shown]), what))
        elif _refused(value):
            what = "must not hold a NUL or another control character"
            bad.append(parameter_error(name, what) if query else field_error(json_pointer([name]), what))
    return bad


def _not_utf8(query_string: bytes) -> list[FieldError]:
    """The query's parameters whose name or value is not percent-encoded
    UTF-8 (RFC 3986 sections 2.5 and 3.4: a query is ASCII, and text in it
    is UTF-8, percent-encoded).

    Werkzeug keeps an escape that is not UTF-8 as text, so ``?q=a%C3``
    searched for "a%C3" and answered an empty list as if the search were
    meant. A byte sent raw (not percent-encoded) reaches the app as
    Latin-1 (PEP 3333): "é" as two raw UTF-8 bytes was searched for as
    "Ã©" (a trial); gunicorn refuses such a request line itself.
    """
    bad: list[FieldError] = []
    for pair in query_string.split(b"&"):
        name, _, value = pair.partition(b"=")
        name_bytes = unquote_to_bytes(name.replace(b"+", b" "))
        try:
            name_text = name_bytes.decode("utf-8")
        except UnicodeDecodeError:
            name_text = None
        if name_text is None or not name.isascii():
            # Named with each control as its escape (a raw byte may decode to one).
            bad.append(parameter_error(shown_name(_as_typed(name_bytes.decode("utf-8", "replace"))),
                                       "a parameter name is not percent-encoded UTF-8 (RFC 3986)"))
        elif not value.isascii():
            bad.append(parameter_error(shown_name(name_text), "holds a character that is not percent-encoded "
                                                              "(RFC 3986: send \"é\" as %C3%A9)"))
        else:
            try:
                unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                bad.append(parameter_error(shown_name(name_text), "is not UTF-8 once percent-decoded (RFC 3986)"))
    return bad


def _as_typed(name: str) -> str:
    """A raw parameter name as the client typed it. Werkzeug's development
    server (``make demo``) hands the request line's bytes on encoded twice
    (read as Latin-1, then written as UTF-8): "é" sent raw arrived as "Ã©"
    and was named so (a re-check). Undone when the result is UTF-8; a name
    gunicorn or a test hands on once stays as it is."""
    try:
        return name.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


def _query_fault(query_string: bytes, read_args: Callable[[], MultiDict[str, str]]) -> InvalidQueryError | None:
    """The first fault of a query, in the order :func:`refuse_unstorable_input`
    reports them, or ``None``: a byte not percent-encoded (checked before
    ``read_args`` is called: Werkzeug's ``request.args`` raised on a raw
    Latin-1 byte, a 500), then a NUL or another control character, then an
    escape that is not UTF-8, then a single-valued parameter given two values."""
    if not query_string.isascii():
        return InvalidQueryError("A query parameter holds characters that are not percent-encoded; percent-encode "
                                 "text as UTF-8 (RFC 3986).", _not_utf8(query_string))
    args = read_args()
    bad = _bad_fields(args, query=True)
    if bad:
        return InvalidQueryError("A query parameter holds a NUL or another control character; remove it.", bad)
    # Only a percent-escape can carry a byte that is not UTF-8 (Werkzeug
    # keeps the escape as text: "a%C3" was searched for literally).
    bad = _not_utf8(query_string) if b"%" in query_string else []
    if bad:
        return InvalidQueryError("A query parameter is not UTF-8 once percent-decoded; encode text as UTF-8.", bad)
    repeated = _repeated(args)
    if repeated:
        return InvalidQueryError("A query parameter that takes one value is given two; give it once.", repeated)
    return None


def query_string_faults(query_string: bytes) -> list[FieldError]:
    """What :func:`refuse_unstorable_input` would refuse in ``query_string``
    (a link's query, such as a ``back`` target), by the same rule
    (:func:`_query_fault`). Empty when a page would read it."""
    fault = _query_fault(
        query_string, lambda: MultiDict(parse_qsl(query_string.decode("ascii"), keep_blank_values=True))
    )
    return fault.errors if fault else []


def has_different_values(values: list[str]) -> bool:
    """Whether a single-valued parameter or field was given two different
    values (empty values aside: a form submits its empty fields)."""
    return len({value for value in values if value != ""}) > 1


def _repeated(args: MultiDict[str, str]) -> list[FieldError]:
    """Single-valued query parameters given with two different values
    (:func:`has_different_values`)."""
    bad: list[FieldError] = []
    for name in args:
        if name in MULTI_VALUED_PARAMETERS:
            continue
        if has_different_values(args.getlist(name)):
            bad.append(parameter_error(name, "is given more than once with different values; give it once"))
    return bad


def refuse_unstorable_input() -> None:
    """``before_request``: refuse NUL and the C0 controls other than TAB, LF,
    CR (DEL and C1 too) in any query parameter or form field, a query parameter
    that is not UTF-8, and a single-valued one given two values (400); then
    drop the empty copies of a name given a value (:func:`without_empty_copies`).

    Raises:
        InvalidQueryError: naming each offending parameter (problem+json on
            the API, an HTML page elsewhere), never quoting its value.
        InvalidFormError: the same for a form field (the query is clean).
    """
    fault = _query_fault(request.query_string, lambda: request.args)
    if fault is not None:
        raise fault
    if request.mimetype in FORM_MEDIA_TYPES:
        bad = _bad_fields(request.form, query=False)
        if bad:
            raise InvalidFormError("A form field holds a NUL or another control character; remove it.", bad)
    # The one value read is the non-empty one. Readers take a parameter's
    # first value, so ``error_code=&error_code=X`` dropped the filter: an
    # export or a bulk action then covered every failed job (a trial).
    # Werkzeug's cached ``args``/``form`` may be replaced for the request.
    for name in ("args", "form") if request.mimetype in FORM_MEDIA_TYPES else ("args",):
        given = getattr(request, name)
        kept = without_empty_copies(given)
        if kept is not given:
            setattr(request, name, kept)
            g.setdefault("empty_copies_dropped", set()).add(name)


def empty_copies_dropped() -> bool:
    """Whether this request's query string had empty copies beside values,
    dropped by :func:`refuse_unstorable_input`: a list page then redirects
    to its URL without them, as it does for any empty parameter."""
    return "args" in g.get("empty_copies_dropped", ())


def without_empty_copies(fields: MultiDict[str, str]) -> MultiDict[str, str]:
    """``fields`` without the empty values of a name that also has a
    non-empty one (a form submits its empty fields, so ``x=&x=1`` is ``x=1``);
    ``fields`` itself when there are none (as :func:`has_different_values`
    sets empties aside)."""
    names = [name for name in fields if "" in fields.getlist(name) and any(fields.getlist(name))]
    if not names:
        return fields
    return ImmutableMultiDict([(name, value) for name, value in fields.items(multi=True)
                               if value != "" or name not in names])


def init_request_input(app: Flask) -> None:
    """Install :func:`refuse_unstorable_input` (before the access rules, so even
    the sign-in page and unknown parameters are covered)."""
    app.before_request(refuse_unstorable_input)
