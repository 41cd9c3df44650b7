"""RFC 6901 JSON Pointers: the one place that escapes and unescapes them.

Pointers name a place in a JSON document in the API's field errors, in the
error items of the error-details contract and in the reference worker's
items. Each of those used to escape reference tokens itself; one copy with
the order wrong (``/`` before ``~``) would turn ``a/b`` into ``a~01b``
instead of ``a~1b``, so the rule lives here and nowhere else.

Pure functions on strings: no Flask, no database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# RFC 6901 section 3: json-pointer = *( "/" reference-token ); "~" only as "~0" or "~1".
_JSON_POINTER = re.compile(r"(?:/(?:[^~/]|~[01])*)*", re.DOTALL)


def escape_token(token: str | int) -> str:
    """Escape one reference token (RFC 6901 section 3: ``~`` -> ``~0`` first,
    then ``/`` -> ``~1``, so that the ``~`` of ``~1`` is not escaped again).
    Integers (array indices) are written in decimal."""
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape_token(token: str) -> str:
    """Undo :func:`escape_token` (RFC 6901 section 4: ``~1`` -> ``/`` first, then ``~0`` -> ``~``)."""
    return token.replace("~1", "/").replace("~0", "~")


def json_pointer(tokens: Iterable[str | int]) -> str:
    """Build an RFC 6901 pointer from path tokens: ``["a", 0, "b/c"]`` -> ``"/a/0/b~1c"``
    (``[]`` -> ``""``, the whole document)."""
    return "".join("/" + escape_token(token) for token in tokens)


def pointer_tokens(pointer: str) -> list[str]:
    """Split a valid RFC 6901 pointer into unescaped tokens (``""`` -> ``[]``)."""
    return [unescape_token(token) for token in pointer.split("/")[1:]]


def is_json_pointer(text: object) -> bool:
    """Whether ``text`` is a string that is an RFC 6901 JSON Pointer."""
    return isinstance(text, str) and _JSON_POINTER.fullmatch(text) is not None
