"""A list page's links and heading that keep the current query string:
its pairs, the same pairs with some changed, and the heading's removable
filter chips. Shared by the dashboard's lists and the audit log.

Query strings are encoded with ``urlencode`` rather than passed to
``url_for`` as keyword arguments: ``url_for`` gives names such as
``_external``, ``_scheme``, ``_anchor`` and ``endpoint`` a meaning of its
own, so a visitor could change (or crash) the links by sending them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from app.text_marks import isolate_text

#: A query string as its (name, value) pairs, in order.
Pairs = list[tuple[str, str]]


def query_pairs(args: Iterable[tuple[str, str]]) -> Pairs:
    """The query's pairs without ``cursor`` and without empty values, in order."""
    return [(k, v) for k, v in args if k != "cursor" and v != ""]


def with_changes(pairs: Sequence[tuple[str, str]], changes: Mapping[str, Sequence[str]]) -> Pairs:
    """``pairs`` with every name in ``changes`` replaced by its values (none: removed)."""
    kept = [(k, v) for k, v in pairs if k not in changes]
    return kept + [(name, value) for name, values in changes.items() for value in values]


def href(path: str, pairs: Sequence[tuple[str, str]]) -> str:
    """``path`` with ``pairs`` as its query string (none: the bare path)."""
    return f"{path}?{urlencode(pairs)}" if pairs else path


@dataclass(frozen=True)
class FilterChip:
    """One active filter in the list's heading, removable.

    Attributes:
        label: what is filtered, in words (``code``, ``created from``).
        value: the value as text (worker text: the template isolates it).
        remove: the list without this filter (other filters kept, no cursor).
        shown: the text shown when it is shorter than ``value`` (which is
            then the chip's hover text), e.g. a long group title cut.
    """

    label: str
    value: str
    remove: str
    shown: str | None = None


@dataclass(frozen=True)
class ListHeading:
    """The heading of a list page: ``title`` (``Failed jobs``) and its ``chips``."""

    title: str
    chips: list[FilterChip]

    @property
    def text(self) -> str:
        """The heading as one line of text, for ``<title>`` and the table's
        caption: ``Failed jobs · code = x``, each value bidi-isolated and its
        directional or invisible characters marked (``[RLO]``:
        :func:`~app.text_marks.isolate_text`), as ``<bdi>`` and markup cannot
        be used there (a trial: a raw U+202E reversed the browser tab's title)."""
        return " · ".join([self.title, *(f"{chip.label} = {isolate_text(chip.value)}" for chip in self.chips)])

    @property
    def active_count(self) -> int:
        """The "Filters (N active)" count: every chip the heading shows, so
        the two agree (``status = any`` and ``acknowledged = included`` are
        choices away from the default too, and removable like the others)."""
        return len(self.chips)
