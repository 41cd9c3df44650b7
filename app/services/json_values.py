"""Checking and cleaning JSON values before they are stored.

One rule for text neither database can hold, applied here and nowhere else:
NUL (U+0000) — PostgreSQL's ``text`` and ``jsonb`` refuse it — and unpaired
UTF-16 surrogates (U+D800–U+DFFF) — they cannot be encoded as UTF-8, so SQLite
and psycopg both fail on them — are each replaced by U+FFFD REPLACEMENT
CHARACTER, in object keys and string values alike. Everything else, including
non-ASCII text and emoji, is kept as sent. The same input therefore stores the
same value on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

from app.services.json_pointer import escape_token

REPLACEMENT_CHARACTER = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJSONValueError(ValueError):
    """A value is not JSON, or breaks a limit.

    Attributes:
        pointer: RFC 6901 pointer to the offending place, relative to the
            value checked (``""`` for the value itself).
        reason: what is wrong, without quoting the value.
    """

    def __init__(self, pointer: str, reason: str) -> None:
        super().__init__(f"{pointer or '(root)'}: {reason}")
        self.pointer = pointer
        self.reason = reason


class NonStandardJSONError(ValueError):
    """A JSON text uses ``NaN``, ``Infinity`` or ``-Infinity``, which Python's
    ``json`` reads but RFC 8259 does not allow (and PostgreSQL's ``jsonb`` refuses)."""


def refuse_json_constant(name: str) -> Any:
    """``parse_constant`` for :func:`json.loads`: refuse NaN and the infinities.

    Raises:
        NonStandardJSONError: always; the message names the constant.
    """
    raise NonStandardJSONError(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)")


def has_unstorable_text(text: str) -> bool:
    """Whether ``text`` holds a character the module rule replaces (NUL, lone surrogate)."""
    return _UNSTORABLE.search(text) is not None


#: C0 control characters other than NUL (which the module rule replaces),
#: TAB, LF and CR; DEL; and the C1 controls (U+0080-U+009F: NEL, CSI...):
#: in a terminal or a log they act (ESC and CSI start a control sequence)
#: or break lines instead of showing. No query parameter may hold one
#: (app/request_input.py), so no identifier a filter must find may either.
ACTING_CONTROLS = "\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_ACTING_CONTROL = re.compile(f"[{ACTING_CONTROLS}]")


#: Unicode categories a name that must read as it is may not hold: controls
#: (Cc: NUL, ESC), format characters (Cf: U+200B, the bidi overrides),
#: surrogates (Cs) and the line and paragraph separators (Zl U+2028, Zp
#: U+2029: a line break inside an identifier, in a log line or a CSV viewer).
UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def has_unseen_character(text: str) -> bool:
    """Whether ``text`` holds a character of :data:`UNSEEN_CATEGORIES`: what
    a name that must read as it is (a worker's, a version, a document id)
    may not hold."""
    return any(unicodedata.category(c) in UNSEEN_CATEGORIES for c in text)


def has_acting_control(text: str) -> bool:
    """Whether ``text`` holds a C0 control other than NUL, TAB, LF and CR,
    DEL, or a C1 control (U+0080-U+009F)."""
    return _ACTING_CONTROL.search(text) is not None


def with_controls_escaped(text: str) -> str:
    """``text`` with each acting control (:func:`has_acting_control`) written
    as its JSON-style escape in ASCII (ESC -> ``\\u001b``, U+009B CSI ->
    ``\\u009b``); TAB, LF and CR kept, and NUL, which the module rule
    replaces. Returns ``text`` itself when it holds none.

    For text shown in a page (HTML 5 text may not hold them: a parse error,
    shown as nothing or a box), written to a CSV file (a terminal that
    prints it would act on them), or stored as an identifier that a filter
    must find. ASCII rather than the Unicode Control Pictures: few fonts
    have those (none of a stock Debian Chromium's), so ESC, BEL and DEL
    showed as the same empty box."""
    if _ACTING_CONTROL.search(text) is None:
        return text
    return _ACTING_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


_CONTROL_ESCAPE = re.compile(r"\\u(00[01][0-9a-fA-F]|007[fF]|008[0-9a-fA-F]|009[0-9a-fA-F])")


def controls_from_escapes(text: str) -> str:
    """The inverse of :func:`with_controls_escaped` for what a person types:
    each ``\\uXXXX`` that stands for an acting control becomes that
    character; any other (``\\u0041``, ``\\u0000``, TAB's ``\\u0009``)
    stays as typed. So a search for the text a page shows (``\\u001b[31m``)
    finds the stored ESC, which no query parameter may hold raw."""
    if "\\u" not in text:
        return text

    def character(match: re.Match[str]) -> str:
        found = chr(int(match.group(1), 16))
        return found if has_acting_control(found) else match.group()

    return _CONTROL_ESCAPE.sub(character, text)


def clean_text(text: str) -> str:
    """Apply the module rule to one string: NUL and lone surrogates -> U+FFFD."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, text)


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone UTF-16 surrogate (no UTF-8 can encode it)."""
    return _SURROGATE.search(text) is not None


def _sent_token(key: str) -> str:
    # A pointer names a key as the body sent it (NUL included: a problem's
    # pointer is JSON text, and its URI form percent-encodes it); only a lone
    # surrogate, which no answer can carry, is written U+FFFD.
    return escape_token(without_surrogates(key))


def without_surrogates(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate as U+FFFD and NUL kept: for
    text that is answered but never stored (a JSON answer cannot be encoded
    as UTF-8 with a surrogate in it)."""
    return _SURROGATE.sub(REPLACEMENT_CHARACTER, text)


def clean_json_value(value: Any, *, max_depth: int, max_string_length: int | None = None) -> Any:
    """Check that ``value`` is a JSON value and return a cleaned deep copy.

    Args:
        value: ``dict`` (``str`` keys), ``list``, ``str``, ``int``, finite
            ``float``, ``bool`` or ``None``, nested freely (RFC 8259 values).
        max_depth: most arrays/objects that may enclose one another; a scalar
            has depth 0, ``[]`` depth 1.
        max_string_length: most characters in any string or object key
            (``None``: no limit).

    Returns:
        A new value, equal as JSON to ``value`` except that strings and keys
        follow the module's text rule. Tuples are returned as lists.

    Raises:
        InvalidJSONValueError: a non-JSON type (set, bytes, object...), a
            non-string key, two keys of one object that the text rule makes
            equal (``"a\\u0000"`` and ``"a\\ufffd"``), NaN or an infinity,
            nesting deeper than ``max_depth``, or a string longer than
            ``max_string_length``. Iterative, so hostile nesting cannot
            exhaust the stack.
    """
    root: list[Any] = [None]
    # Work items: (value, container, key-in-container, pointer, depth)
    stack: list[tuple[Any, Any, Any, str, int]] = [(value, root, 0, "", 0)]
    while stack:
        item, container, key, pointer, depth = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, int):
            container[key] = item
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidJSONValueError(pointer, "NaN and infinite numbers are not JSON")
            container[key] = item
        elif isinstance(item, str):
            if max_string_length is not None and len(item) > max_string_length:
                raise InvalidJSONValueError(pointer, f"strings must be at most {max_string_length} characters")
            container[key] = clean_text(item)
        elif isinstance(item, dict):
            if depth + 1 > max_depth:
                raise InvalidJSONValueError(pointer, f"nested deeper than {max_depth} levels")
            copy: dict[str, Any] = {}
            container[key] = copy
            members = []
            sent_as: dict[str, str] = {}  # each stored key, as sent
            for child_key, child in item.items():
                if not isinstance(child_key, str):
                    raise InvalidJSONValueError(pointer, "object keys must be strings")
                if max_string_length is not None and len(child_key) > max_string_length:
                    raise InvalidJSONValueError(pointer, f"keys must be at most {max_string_length} characters")
                clean_key = clean_text(child_key)
                if clean_key in copy:
                    # Keys are unique as sent (the parser refuses duplicates):
                    # two became one by the rule. Keeping either would drop
                    # the other's value without a word. Named as sent (a
                    # trial was pointed at "k\ufffd", which no key was),
                    # the one a pointer can hold if either can.
                    named = next((k for k in (sent_as[clean_key], child_key) if not has_lone_surrogate(k)), child_key)
                    raise InvalidJSONValueError(
                        f"{pointer}/{_sent_token(named)}",
                        "two keys of this object are the same once NUL and lone surrogates are replaced"
                        " by U+FFFD: rename one")
                copy[clean_key] = None
                sent_as[clean_key] = child_key
                members.append((child, copy, clean_key, f"{pointer}/{_sent_token(child_key)}", depth + 1))
            # Reversed: the first member is taken next, so the fault named is
            # the first in the document (a trial's 422 named the last item).
            stack.extend(reversed(members))
        elif isinstance(item, (list, tuple)):
            if depth + 1 > max_depth:
                raise InvalidJSONValueError(pointer, f"nested deeper than {max_depth} levels")
            copy_list: list[Any] = [None] * len(item)
            container[key] = copy_list
            stack.extend((item[index], copy_list, index, f"{pointer}/{index}", depth + 1)
                         for index in range(len(item) - 1, -1, -1))
        else:
            raise InvalidJSONValueError(pointer, f"a {type(item).__name__} is not a JSON value")
    return root[0]


def json_equal(left: Any, right: Any) -> bool:
    """Whether two JSON values are equal as JSON (RFC 8259), not as Python.

    Objects compare without regard to key order; numbers compare by value
    (JSON has one number type: PostgreSQL's ``jsonb`` gives ``1e300`` back as
    the integer ``10**300``), compared at double precision when either side
    is a float; an integer beyond double range equals no float; ``true`` is
    not ``1``.
    """
    stack = [(left, right)]
    while stack:
        a, b = stack.pop()
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str):
            if type(a) is not type(b) or a != b:
                return False
        elif isinstance(a, (int, float)):
            if not isinstance(b, (int, float)) or isinstance(b, bool):
                return False
            if isinstance(a, float) or isinstance(b, float):
                if _as_double(a) != _as_double(b):
                    return False
            elif a != b:
                return False
        elif isinstance(a, dict):
            if not isinstance(b, dict) or a.keys() != b.keys():
                return False
            stack.extend((a[k], b[k]) for k in a)
        elif isinstance(a, list):
            if not isinstance(b, list) or len(a) != len(b):
                return False
            stack.extend(zip(a, b))
        else:
            return False
    return True


def json_integer(value: Any) -> Any:
    """``value`` as an ``int`` when it is a float with no fractional part
    and within +/-2**53 (JSON Schema 2020-12 validation, section 6.1.1:
    ``integer`` is any number with a zero fractional part, so ``2.0`` is 2);
    any other value as it is. Beyond 2**53 a double no longer holds every
    integer, so such a float stays a float for the caller to refuse.

    Used wherever a field's schema says ``integer``, so that ``1.0`` is taken
    alike in the envelope, the entity reference and the API's bodies (a
    trial found ``error_count: 1.0`` refused beside an accepted ``index``).
    """
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _as_double(number: int | float) -> float:
    # float(10**400) raises OverflowError: JSON allows such integers and
    # stored details may hold one. No finite double equals it, and infinity
    # is not JSON, so infinity stands for it without matching any float.
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def canonical_json(value: Any) -> str:
    """Serialise a JSON value canonically (sorted keys, no spaces, UTF-8 kept).

    Used to compare JSON values: Python ``==`` says ``True == 1`` and
    ``1 == 1.0``, JSON does not.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
