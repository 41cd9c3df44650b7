"""Names of accounts: users' and worker tokens'.

An account's name is the audit log's actor: shown in lists and on the audit
page, typed at sign-in and at the command line. Two accounts must never read
the same, and a name must read as what it is. So a name:

* is stored and compared in Unicode NFC (RFC 8265, PRECIS usernames):
  "Zoë" typed as ``o`` + U+0308 is the "Zoë" of U+00EB;
* holds no character that does not show as itself: controls, format
  characters, line separators (:func:`~app.services.json_values.has_unseen_character`),
  Unicode's default-ignorable code points (a combining grapheme joiner, a
  variation selector, a Hangul filler) and blank-looking letters;
* may not differ from another account's name only in letter case or
  compatibility form (:func:`folded`: Unicode's ``NFKC_Casefold`` order).

Text rules, and the one query that finds an account by a typed name
(:func:`named_query`); the services run it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from app.errors import FieldError, field_error
from app.services.json_values import has_unseen_character

#: Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, 15.1):
#: characters a renderer may show as nothing. With U+2800 BRAILLE PATTERN
#: BLANK, a symbol that shows as a space.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]"
)


def name_form(name: str) -> str:
    """``name`` as account names are stored and compared: NFC. Case is kept."""
    return unicodedata.normalize("NFC", name)


def forms(name: str) -> list[str]:
    """The names a typed ``name`` may find: as typed (an account made before
    names were stored in NFC) and its :func:`name_form`; one or two."""
    return sorted({name, name_form(name)})


_Account = TypeVar("_Account")


def named_query(
    account: type[_Account], name_column: InstrumentedAttribute[Any], name: str
) -> sa.Select[tuple[_Account]]:
    """The query of the ``account`` (a user or a worker token) whose
    ``name_column`` holds a typed ``name``: exactly as typed first (an
    account made before names were stored in NFC), else its NFC form; at
    most one row. The caller adds its lock (``with_for_update``)."""
    return (
        sa.select(account)
        .where(name_column.in_(forms(name)))
        .order_by((name_column == name).desc())
        .limit(1)
    )


def name_errors(pointer: str, name: str, max_length: int) -> list[FieldError]:
    """The faults of an account's name (already in :func:`name_form`), at
    ``pointer``: empty or over ``max_length`` characters, a space at either
    end, or a character that does not show as itself (a control such as ESC
    or a line break, a bidi override such as U+202E, a default-ignorable
    character such as U+034F or U+3164) that would make one name look like
    another or forge a line of ``tokens list``."""
    if not name or len(name) > max_length:
        return [field_error(pointer, f"must be 1 to {max_length} characters")]
    # Before the spaces: str.strip() takes U+001F or U+2028 off the ends
    # too, which would be told "surrounding spaces".
    if has_unseen_character(name) or _INVISIBLE.search(name):
        return [field_error(pointer, "must not hold control, format, line-separator or invisible characters "
                                     "(such as U+202E or U+034F)")]
    if name != name.strip():
        return [field_error(pointer, f"must be 1 to {max_length} characters without surrounding spaces")]
    return []


def folded(name: str) -> str:
    """``name`` with letter case and compatibility forms folded away, in
    the order of Unicode's ``NFKC_Casefold`` (NFKC, case fold, NFKC again:
    "ß" + U+0301 and "SS" + U+0301 fold alike only with the second NFKC)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def look_alike(name: str, taken: Iterable[str]) -> str | None:
    """The first of the ``taken`` names that reads as ``name`` (equal once
    :func:`folded`), or ``None``."""
    key = folded(name)
    return next((other for other in taken if folded(other) == key), None)
