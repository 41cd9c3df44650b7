"""Layout of the failures-over-time bar chart, drawn as inline SVG by a template.

The geometry is computed here so the template only loops over bars (STYLE:
no logic in templates). Units are SVG user units of a fixed ``viewBox``;
CSS scales the drawing to the page. No JavaScript: each bar carries a
``<title>`` (a tooltip, and text for assistive technology) and the ``<svg>``
has ``role="img"`` with a title and a description naming the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from app.dashboard.formatting import plural
from app.services.chart_buckets import BucketSize, Timeline

WIDTH = 640
HEIGHT = 170
MARGIN_LEFT = 36
MARGIN_RIGHT = 8
MARGIN_TOP = 10
MARGIN_BOTTOM = 24
#: Share of a bucket's slot its bar fills.
BAR_FILL = 0.8


@dataclass(frozen=True)
class Bar:
    """One bucket's bar: ``x``, ``y`` (top), ``width``, ``height`` in user units."""

    x: float
    y: float
    width: float
    height: float
    count: int
    label: str


@dataclass(frozen=True)
class AxisLabel:
    """A text label at ``(x, y)`` anchored ``start``/``middle``/``end``."""

    x: float
    y: float
    text: str
    anchor: str


@dataclass(frozen=True)
class BarChart:
    """Everything the template draws. ``bars`` has one entry per bucket, oldest first."""

    width: int
    height: int
    title: str
    description: str
    bars: list[Bar]
    labels: list[AxisLabel]
    baseline_y: float
    plot_left: float
    plot_right: float
    peak: int


def _bucket_label(moment: datetime, size: BucketSize) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:00") if size is BucketSize.HOUR else moment.strftime("%Y-%m-%d")


def _plural(count: int, word: str) -> str:
    return f"{count:,} {plural(word, count)}"


def bar_chart(timeline: Timeline) -> BarChart:
    """Lay out ``timeline`` as bars scaled to its largest bucket.

    A bucket with no failures gets a bar of height 0, so there is always one
    bar per bucket. Heights are proportional to counts (the peak fills the
    plot); coordinates are rounded to 0.01 unit.
    """
    size = timeline.size
    unit = "hour" if size is BucketSize.HOUR else "day"
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    baseline = MARGIN_TOP + plot_height
    count = len(timeline.buckets)
    peak = max((b.count for b in timeline.buckets), default=0)
    slot = plot_width / count if count else plot_width
    bars = []
    for position, bucket in enumerate(timeline.buckets):
        height = plot_height * bucket.count / peak if peak else 0.0
        bars.append(Bar(
            x=round(MARGIN_LEFT + position * slot + slot * (1 - BAR_FILL) / 2, 2),
            y=round(baseline - height, 2),
            width=round(max(slot * BAR_FILL, 1.0), 2),
            height=round(height, 2),
            count=bucket.count,
            label=f"{_bucket_label(bucket.start, size)} UTC: {_plural(bucket.count, 'failure')}",
        ))
    start, end = _bucket_label(timeline.start, size), _bucket_label(timeline.end, size)
    title = f"Failures per {unit}, {start} to {end} UTC"
    if count:
        busiest = max(timeline.buckets, key=lambda b: b.count)
        description = f"{_plural(timeline.total, 'failure')} in {_plural(count, unit)}"
        if peak:
            description += f"; most in one {unit}: {peak:,} ({_bucket_label(busiest.start, size)} UTC)"
    else:
        description = "No time range to draw."
    label_y = baseline + 16
    labels = [
        AxisLabel(MARGIN_LEFT - 6, MARGIN_TOP + 4, f"{peak:,}", "end"),
        AxisLabel(MARGIN_LEFT - 6, baseline, "0", "end"),
    ]
    if count:
        labels += [
            AxisLabel(MARGIN_LEFT, label_y, start, "start"),
            AxisLabel(WIDTH - MARGIN_RIGHT, label_y, _bucket_label(timeline.buckets[-1].start, size), "end"),
        ]
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        title=title,
        description=description,
        bars=bars,
        labels=labels,
        baseline_y=baseline,
        plot_left=MARGIN_LEFT,
        plot_right=WIDTH - MARGIN_RIGHT,
        peak=peak,
    )
