"""Links of the job list that keep the current query string.

Query strings are encoded here with ``urlencode`` rather than passed to
``url_for`` as keyword arguments: ``url_for`` gives names such as
``_external``, ``_scheme``, ``_anchor`` and ``endpoint`` a meaning of its
own, so a visitor could change (or crash) the links by sending them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from app.models import JobStatus
from app.timestamps import rfc3339

#: Quick time ranges offered above the list: label -> how far back ``from`` goes.
QUICK_RANGES: tuple[tuple[str, timedelta], ...] = (
    ("Last hour", timedelta(hours=1)),
    ("24 hours", timedelta(hours=24)),
    ("7 days", timedelta(days=7)),
    ("30 days", timedelta(days=30)),
)

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
class ListLinks:
    """Every link of ``/jobs`` that depends on the current query.

    Attributes:
        next_page: the next page (``cursor`` added), or ``None``.
        statuses: each status -> the list of that status alone.
        codes: each top error code -> the list filtered by it.
        ranges: quick time ranges (label, link) ending now.
        csv, ndjson: the exports of the current filter (one row per error item).
        csv_jobs: the CSV export with one row per job.
        entities_csv: the entities of the completed jobs matching the filter.
        clear: the list with no filter (the defaults).
    """

    next_page: str | None
    statuses: dict[JobStatus, str]
    codes: dict[str, str]
    ranges: list[tuple[str, str]]
    csv: str
    ndjson: str
    csv_jobs: str
    entities_csv: str
    clear: str


def list_links(
    list_path: str,
    csv_path: str,
    ndjson_path: str,
    entities_path: str,
    args: Iterable[tuple[str, str]],
    *,
    next_cursor: str | None,
    codes: Iterable[str],
    now: datetime,
) -> ListLinks:
    """Build the :class:`ListLinks` of a list page.

    Args:
        list_path, csv_path, ndjson_path, entities_path: paths of the list and the exports.
        args: the request's query pairs (repeated names repeated).
        next_cursor: the page's ``next_cursor``.
        codes: the error codes of the top-codes table.
        now: the current time (aware UTC), for the quick ranges.
    """
    pairs = query_pairs(args)
    return ListLinks(
        next_page=href(list_path, pairs + [("cursor", next_cursor)]) if next_cursor else None,
        statuses={s: href(list_path, with_changes(pairs, {"status": [s.value]})) for s in JobStatus},
        codes={c: href(list_path, with_changes(pairs, {"error_code": [c]})) for c in codes},
        ranges=[
            (label, href(list_path, with_changes(pairs, {"from": [rfc3339(now.replace(microsecond=0) - back) or ""],
                                                         "to": []})))
            for label, back in QUICK_RANGES
        ],
        csv=href(csv_path, pairs),
        ndjson=href(ndjson_path, pairs),
        csv_jobs=href(csv_path, pairs + [("rows", "jobs")]),
        entities_csv=href(entities_path, pairs),
        clear=list_path,
    )
