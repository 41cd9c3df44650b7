"""Characters of worker text that would not show, or would reorder what a
reader sees, and the visible marks the pages and titles write instead.

Pure text (no markup, no web framework): the dashboard's filters
(:mod:`app.dashboard.formatting`) wrap each mark in markup; list headings
and page titles (:mod:`app.web.list_heading`) write it as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: Unicode's explicit directional formatting characters (UAX #9), each with
#: its short name: inside worker text they reorder what a reader sees, so
#: that "gnp.exe" after U+202E reads "exe.png" (CVE-2021-42574, "Trojan Source").
BIDI_CONTROLS = {
    "\u061c": ("ALM", "ARABIC LETTER MARK"), "\u200e": ("LRM", "LEFT-TO-RIGHT MARK"),
    "\u200f": ("RLM", "RIGHT-TO-LEFT MARK"), "\u202a": ("LRE", "LEFT-TO-RIGHT EMBEDDING"),
    "\u202b": ("RLE", "RIGHT-TO-LEFT EMBEDDING"), "\u202c": ("PDF", "POP DIRECTIONAL FORMATTING"),
    "\u202d": ("LRO", "LEFT-TO-RIGHT OVERRIDE"), "\u202e": ("RLO", "RIGHT-TO-LEFT OVERRIDE"),
    "\u2066": ("LRI", "LEFT-TO-RIGHT ISOLATE"), "\u2067": ("RLI", "RIGHT-TO-LEFT ISOLATE"),
    "\u2068": ("FSI", "FIRST STRONG ISOLATE"), "\u2069": ("PDI", "POP DIRECTIONAL ISOLATE"),
}
#: Each bidi control as its JSON-style escape (``\\u202e``), for
#: :func:`bidi_escaped`.
_BIDI_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in BIDI_CONTROLS}
_BIDI_CONTROL = re.compile("[" + "".join(BIDI_CONTROLS) + "]")


def bidi_escaped(text: str) -> str:
    """``text`` with each bidi control (:data:`BIDI_CONTROLS`) written as its
    JSON-style escape in ASCII (U+202E -> ``\\u202e``); ``text`` itself when
    it holds none.

    For the exports, where no ``[RLO]`` mark can be shown: a spreadsheet or
    a terminal printing the file would otherwise reverse the text after an
    override, so one document id or message reads as another (a trial). In
    NDJSON the escape is JSON's own (the string reads back the same); in
    CSV it is written like the escaped control characters."""
    if _BIDI_CONTROL.search(text) is None:
        return text
    return text.translate(_BIDI_ESCAPES)


#: Characters that take no room on the page: a title copied with one into
#: the search box finds nothing, and two codes that read alike differ. Marked
#: as the directional ones are. The line and paragraph separators (Zl, Zp)
#: show as nothing in HTML text, where the NDJSON export writes them escaped
#: and a splitlines() reader breaks a line at them (a trial).
INVISIBLE_CHARACTERS = {
    "\u200b": ("ZWSP", "ZERO WIDTH SPACE"), "\u2060": ("WJ", "WORD JOINER"),
    "\ufeff": ("ZWNBSP", "ZERO WIDTH NO-BREAK SPACE"),
    "\u2028": ("LSEP", "LINE SEPARATOR"), "\u2029": ("PSEP", "PARAGRAPH SEPARATOR"),
}
#: Every character always shown as a mark, with its short and full name.
MARKED_CHARACTERS = {**BIDI_CONTROLS, **INVISIBLE_CHARACTERS}
#: The joiners, marked only beside an ASCII character or at an end of the
#: text: emoji sequences and several scripts (Persian, the Indic ones) need
#: them between their own characters, where they are left alone; beside
#: ASCII they join nothing, and made "unit.not<ZWJ>_ucum" a second group
#: that reads as "unit.not_ucum" (a trial).
JOINERS = {"\u200c": ("ZWNJ", "ZERO WIDTH NON-JOINER"), "\u200d": ("ZWJ", "ZERO WIDTH JOINER")}
#: Every character that may be marked, with its short and full name.
NAMED_CHARACTERS = {**MARKED_CHARACTERS, **JOINERS}

_JOINER = "[" + "".join(JOINERS) + "]"
_MARKED = re.compile(
    "[" + "".join(MARKED_CHARACTERS) + "]"
    + rf"|(?:^|(?<=[\x00-\x7f])){_JOINER}|{_JOINER}(?=[\x00-\x7f]|$)"
)


def marked(text: str, mark: Callable[[str, str], str]) -> str:
    """``text`` with each character it would hide replaced by
    ``mark(character, short mark)``: the short mark is ``[RLO]``, ``[ZWSP]``,
    ``[ZWJ]``; :data:`NAMED_CHARACTERS` names each character."""
    if _MARKED.search(text) is None:
        return text
    return _MARKED.sub(lambda found: mark(found.group(0), f"[{NAMED_CHARACTERS[found.group(0)][0]}]"), text)


def isolate_text(value: str | None) -> str:
    """``value`` between U+2068 FIRST STRONG ISOLATE and U+2069 POP DIRECTIONAL
    ISOLATE (Unicode UAX #9), ``""`` for ``None`` or ``""``.

    For worker text where markup cannot go (a page ``<title>``, a ``title``
    attribute, a flash message, a list heading): like ``<bdi>`` in the page,
    it keeps a right-to-left override inside the value from reordering the
    text around it. A directional formatting or invisible character inside
    the value is written as its mark (``[RLO]``, as the pages show it).
    """
    if not value:
        return ""
    return f"\u2068{marked(value, lambda _, short: short)}\u2069"
