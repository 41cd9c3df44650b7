"""Sparklines: a small bar chart of counts as inline SVG, drawn on the server.

The one dashboard filter that returns markup (registered in
:mod:`app.dashboard.jinja_filters`): SVG built from numbers, its one text
part escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from markupsafe import Markup, escape

from app.dashboard.formatting import plural

#: Size of a sparkline in SVG user units (CSS may scale it; the viewBox keeps the shape).
SPARKLINE_WIDTH = 120
SPARKLINE_HEIGHT = 24
#: Height of the mark drawn for an empty bucket, so a gap reads as "none", not "missing".
SPARKLINE_ZERO_HEIGHT = 1.0
#: Drawing units per user unit: the path is drawn in whole numbers on a
#: viewBox ten times the size (a tenth of a unit is finer than a pixel at
#: 120 x 24), because formatting integers is several times cheaper than
#: floats and /groups draws 100 sparklines per page.
_SCALE = 10
_BASELINE = SPARKLINE_HEIGHT * _SCALE


@lru_cache(maxsize=64)
def _slots(n: int) -> tuple[tuple[str, ...], str]:
    """For ``n`` buckets: each bar's path up to its height (``M<x> <base>v-``)
    and what follows the height (``h<width>v``), in drawing units."""
    slot = SPARKLINE_WIDTH * _SCALE / n
    bar_width = max(round(slot * 0.8), 5)
    starts = tuple(f"M{round(position * slot + (slot - bar_width) / 2)} {_BASELINE}v-" for position in range(n))
    return starts, f"h{bar_width}v"


def sparkline(counts: Sequence[int], label: str = "Occurrences", unit: str = "hour") -> Markup:
    """A small bar chart of ``counts`` (oldest first) as inline SVG, drawn on the server.

    No JavaScript and no inline style (the Content-Security-Policy allows
    neither): geometry is in attributes, colours come from the stylesheet
    (``svg.sparkline .bar``, ``.zero``, ``.peak``). Bars are scaled to the
    largest count; an empty bucket gets a 1-unit mark. The bars are three
    ``<path>`` elements (plain, empty and peak bars), each a run of
    rectangles ``M x base v -h h w v h z`` in whole numbers on a viewBox
    ten times the drawn size: cheap to make, and memoised on the counts, so
    the many identical lines of quiet groups are made once.

    The text equivalent is the ``<title>`` (the accessible name of an
    ``<svg role="img">``, and a tooltip): ``"Occurrences per hour, last 24
    hours: 31 in total, at most 9 in one hour, 2 in the last hour"``.

    Args:
        counts: one non-negative integer per bucket, oldest first (may be empty).
        label: what is counted, capitalised (``"Occurrences"``); worker text
            is never put here, but it is escaped like the rest.
        unit: the bucket size in words (``"hour"``, ``"day"``).

    Returns:
        ``Markup`` (every text part escaped): ``<svg class="sparkline" ...>``.

    Raises:
        ValueError: a count is negative.
    """
    return _sparkline(tuple(int(c) for c in counts), label, unit)


@lru_cache(maxsize=2048)
def _sparkline(values: tuple[int, ...], label: str, unit: str) -> Markup:
    if any(v < 0 for v in values):
        raise ValueError("sparkline counts must not be negative")
    total, peak, n = sum(values), max(values, default=0), len(values)
    if n:
        title = (
            f"{label} per {unit}, last {n:,} {plural(unit, n)}: {total:,} in total, "
            f"at most {peak:,} in one {unit}, {values[-1]:,} in the last {unit}"
        )
    else:
        title = f"{label} per {unit}: no data"
    paths = {"bar": [], "bar zero": [], "bar peak": []}
    if n:
        starts, across = _slots(n)
        zero = str(round(SPARKLINE_ZERO_HEIGHT * _SCALE))
        for start, value in zip(starts, values):
            if value:
                height = str(max(round(_BASELINE * value / peak), 1))
                paths["bar peak" if value == peak else "bar"].append(start + height + across + height + "z")
            else:
                paths["bar zero"].append(start + zero + across + zero + "z")
    drawn = "".join(f'<path class="{css}" d="{"".join(d)}"/>' for css, d in paths.items() if d)
    return Markup(
        f'<svg class="sparkline" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {SPARKLINE_WIDTH * _SCALE} {_BASELINE}" width="{SPARKLINE_WIDTH}" '
        f'height="{SPARKLINE_HEIGHT}" preserveAspectRatio="none" focusable="false">'
        f"<title>{escape(title)}</title>{drawn}</svg>"
    )
