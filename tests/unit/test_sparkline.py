"""The sparkline filter (app/dashboard/sparkline.py): inline SVG drawn on the server."""

from __future__ import annotations

import re

import pytest

from app.dashboard import jinja_filters, sparkline


def _parse_svg(markup: str):
    import xml.etree.ElementTree as ET

    return ET.fromstring(str(markup))


SVG = "{http://www.w3.org/2000/svg}"


def _bars(svg) -> list[dict]:
    """Each bar of the drawing, left to right, in user units (the viewBox
    scaled to width x height): its class, x, y, width and height. Bars are
    runs of ``M x base v -h h w v h z`` in the paths."""
    _, _, box_width, box_height = (float(v) for v in svg.get("viewBox").split())
    scale = box_width / float(svg.get("width"))
    assert box_height / float(svg.get("height")) == scale
    bars = []
    for path in svg.findall(f"{SVG}path"):
        for x, base, up, across, down in re.findall(
                r"M(-?[\d.]+) (-?[\d.]+)v-([\d.]+)h([\d.]+)v([\d.]+)z", path.get("d")):
            assert up == down and float(base) == box_height
            bars.append({"class": path.get("class"), "x": float(x) / scale, "width": float(across) / scale,
                         "height": float(up) / scale, "y": (float(base) - float(up)) / scale})
    return sorted(bars, key=lambda bar: bar["x"])


def test_sparkline_draws_one_bar_per_bucket_scaled_to_the_peak():
    svg = _parse_svg(sparkline.sparkline([0, 2, 4, 1]))
    assert svg.get("role") == "img" and "sparkline" in svg.get("class")
    bars = _bars(svg)
    assert len(bars) == 4
    heights = [b["height"] for b in bars]
    assert heights == [sparkline.SPARKLINE_ZERO_HEIGHT, 12.0, 24.0, 6.0]
    # Each bar stands on the baseline, and bars go left to right, oldest first,
    # one per equal slot of the width.
    assert all(b["y"] + b["height"] == pytest.approx(24.0) for b in bars)
    assert [b["x"] for b in bars] == [3.0, 33.0, 63.0, 93.0] and {b["width"] for b in bars} == {24.0}
    assert [b["class"] for b in bars] == ["bar zero", "bar", "bar peak", "bar"]


def test_sparkline_of_many_buckets_keeps_every_bar_inside_the_drawing():
    bars = _bars(_parse_svg(sparkline.sparkline(list(range(1, 15)))))
    assert len(bars) == 14
    assert all(0 <= b["x"] and b["x"] + b["width"] <= sparkline.SPARKLINE_WIDTH for b in bars)
    assert all(a["x"] + a["width"] <= b["x"] for a, b in zip(bars, bars[1:]))  # no overlap
    assert bars[-1]["height"] == 24.0 and bars[0]["height"] == pytest.approx(24 / 14, abs=0.1)


def test_the_same_counts_give_the_same_drawing_once_made():
    first = sparkline.sparkline([0, 0, 3])
    assert sparkline.sparkline((0, 0, 3)) is first  # memoised on the counts
    assert sparkline.sparkline([0, 0, 4]) != first


def test_sparkline_title_is_the_text_equivalent():
    svg = _parse_svg(sparkline.sparkline([3, 0, 9, 2], label="Occurrences", unit="day"))
    title = svg.find(f"{SVG}title")
    assert svg[0] is title  # the first child: the accessible name
    assert title.text == "Occurrences per day, last 4 days: 14 in total, at most 9 in one day, 2 in the last day"


def test_sparkline_of_nothing_is_still_a_labelled_drawing():
    for counts in ([], [0, 0, 0]):
        svg = _parse_svg(sparkline.sparkline(counts))
        assert svg.find(f"{SVG}title").text
        assert all(b["height"] == sparkline.SPARKLINE_ZERO_HEIGHT for b in _bars(svg))
        assert len(_bars(svg)) == len(counts)
    assert _parse_svg(sparkline.sparkline([])).find(f"{SVG}title").text == "Occurrences per hour: no data"


def test_sparkline_escapes_its_words_and_has_no_script_or_style():
    markup = sparkline.sparkline([1, 5000], label='<script>alert(1)</script> "x"', unit="hour")
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert "style=" not in markup and "on" + "load" not in markup
    assert "5,000" in _parse_svg(markup).find(f"{SVG}title").text


def test_sparkline_refuses_negative_counts():
    with pytest.raises(ValueError):
        sparkline.sparkline([1, -1])


def test_sparkline_is_registered_and_renders_unescaped_in_templates():
    from flask import Flask, render_template_string

    app = Flask(__name__)
    jinja_filters.register_filters(app)
    with app.app_context():
        html = render_template_string("<p>{{ counts | sparkline('Jobs', 'hour') }}</p>", counts=[1, 2])
    assert html.startswith('<p><svg class="sparkline"') and "<title>Jobs per hour, last 2 hours" in html
