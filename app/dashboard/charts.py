"""Layout of the failures-over-time bar chart, drawn as inline SVG by a template.

The geometry is computed here so the template only loops over bars (STYLE:
no logic in templates). Units are SVG user units of a fixed ``viewBox``;
CSS stretches the drawing to the box it is given (``preserveAspectRatio``
"none": bars and the axis line only, no text to distort). The axis labels
are HTML beside the drawing, so they keep their CSS size at every width: as
SVG text they scaled with the chart and were 6px on a phone. No JavaScript: each bar carries a
``<title>`` (a tooltip, and text for assistive technology) and the ``<svg>``
has ``role="img"`` with a title and a description naming the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from app.dashboard.formatting import plural
from app.models.types import iso_date
from app.services.chart_buckets import BucketSize, Timeline

WIDTH = 640
HEIGHT = 170
# The labels are outside the drawing (HTML): margins only keep the peak bar
# off the top edge and the axis line inside the box.
MARGIN_LEFT = 0
MARGIN_RIGHT = 0
MARGIN_TOP = 10
MARGIN_BOTTOM = 1
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
class BarChart:
    """Everything the template draws. ``bars`` has one entry per bucket, oldest first."""

    width: int
    height: int
    title: str
    description: str
    bars: list[Bar]
    #: The value axis, top then bottom: the peak and "0".
    y_labels: tuple[str, str]
    #: The time axis, left then right: the first and last buckets (one for
    #: one bucket, none without buckets).
    x_labels: tuple[str, ...]
    baseline_y: float
    plot_left: float
    plot_right: float
    peak: int
    #: What one unit of a bar counts, singular ("failure", "occurrence").
    noun: str = "failure"
    #: What one bar spans: "hour" or "day".
    unit: str = "day"

    @property
    def has_empty_buckets(self) -> bool:
        """Whether some bucket has no failures: the chart's text table lists
        only the others, and says so only then (with every day failing,
        "the others have none" spoke of buckets that are not there)."""
        return any(bar.count == 0 for bar in self.bars)


def _bucket_label(moment: datetime, size: BucketSize) -> str:
    moment = moment.astimezone(timezone.utc)
    return f"{iso_date(moment)} {moment:%H}:00" if size is BucketSize.HOUR else iso_date(moment)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {plural(word, count)}"


def bar_chart(timeline: Timeline, noun: str = "failure") -> BarChart:
    """Lay out ``timeline`` as bars scaled to its largest bucket; ``noun``
    (singular) names what the buckets count: "failure" for jobs' failures,
    "occurrence" for a group's (a warning's group counted its occurrences as
    "failures").

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
            label=f"{_bucket_label(bucket.start, size)} UTC: {_plural(bucket.count, noun)}",
        ))
    start, end = _bucket_label(timeline.start, size), _bucket_label(timeline.end, size)
    if size is BucketSize.DAY and count:
        # Dates read as inclusive ("20 to 3 December" holds the 3rd): name the
        # last day drawn, not the midnight that ends it. Hours stay a span of
        # time, "00:00 to 04:00", as a clock reads.
        end = _bucket_label(timeline.buckets[-1].start, size)
    title = f"{plural(noun, 2).capitalize()} per {unit}, {start} to {end} UTC"
    if count:
        busiest = max(timeline.buckets, key=lambda b: b.count)
        description = f"{_plural(timeline.total, noun)} in {_plural(count, unit)}"
        if peak:
            description += f"; most in one {unit}: {peak:,} ({_bucket_label(busiest.start, size)} UTC)"
    else:
        description = "No time range to draw."
    # One bucket is one label: both ends would name the same hour or day.
    x_labels = (start, _bucket_label(timeline.buckets[-1].start, size)) if count > 1 else (start,) if count else ()
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        title=title,
        description=description,
        bars=bars,
        y_labels=(f"{peak:,}", "0"),
        x_labels=x_labels,
        baseline_y=baseline,
        plot_left=MARGIN_LEFT,
        plot_right=WIDTH - MARGIN_RIGHT,
        peak=peak,
        noun=noun,
        unit=unit,
    )
