"""Sparklines: a small bar chart of counts as inline SVG, drawn on the server.

The one dashboard filter that returns markup (registered in
:mod:`app.dashboard.jinja_filters`): SVG built from numbers, its one text
part escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from app.dashboard.formatting import plural

#: Size of a sparkline in SVG user units (CSS may scale it; the viewBox keeps the shape).
SPARKLINE_WIDTH = 120
SPARKLINE_HEIGHT = 24
#: Height of the mark drawn for an empty bucket, so a gap reads as "none", not "missing".
SPARKLINE_ZERO_HEIGHT = 1.0


def sparkline(counts: Sequence[int], label: str = "Occurrences", unit: str = "hour") -> Markup:
    """A small bar chart of ``counts`` (oldest first) as inline SVG, drawn on the server.

    No JavaScript and no inline style (the Content-Security-Policy allows
    neither): geometry is in attributes, colours come from the stylesheet
    (``svg.sparkline rect.bar``, ``rect.zero``, ``rect.peak``). Bars are
    scaled to the largest count; an empty bucket gets a 1-unit mark.

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
    values = [int(c) for c in counts]
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
    slot = SPARKLINE_WIDTH / n if n else SPARKLINE_WIDTH
    bar_width = max(slot * 0.8, 0.5)
    rects = []
    for position, value in enumerate(values):
        height = SPARKLINE_HEIGHT * value / peak if value else SPARKLINE_ZERO_HEIGHT
        css = "bar peak" if value and value == peak else ("bar" if value else "bar zero")
        rects.append(
            f'<rect class="{css}" x="{position * slot + (slot - bar_width) / 2:.2f}" '
            f'y="{SPARKLINE_HEIGHT - height:.2f}" width="{bar_width:.2f}" height="{height:.2f}"/>'
        )
    return Markup(
        f'<svg class="sparkline" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {SPARKLINE_WIDTH} {SPARKLINE_HEIGHT}" width="{SPARKLINE_WIDTH}" '
        f'height="{SPARKLINE_HEIGHT}" preserveAspectRatio="none" focusable="false">'
        f"<title>{escape(title)}</title>{''.join(rects)}</svg>"
    )
