"""The sparkline filter (app/dashboard/sparkline.py): inline SVG drawn on the server."""

from __future__ import annotations

import pytest

from app.dashboard import jinja_filters, sparkline


def _parse_svg(markup: str):
    import xml.etree.ElementTree as ET

    return ET.fromstring(str(markup))


SVG = "{http://www.w3.org/2000/svg}"


def test_sparkline_draws_one_bar_per_bucket_scaled_to_the_peak():
    svg = _parse_svg(sparkline.sparkline([0, 2, 4, 1]))
    assert svg.get("role") == "img" and "sparkline" in svg.get("class")
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 4
    heights = [float(b.get("height")) for b in bars]
    assert heights == [sparkline.SPARKLINE_ZERO_HEIGHT, 12.0, 24.0, 6.0]
    # Each bar stands on the baseline, and bars go left to right, oldest first.
    assert all(float(b.get("y")) + float(b.get("height")) == pytest.approx(24.0) for b in bars)
    xs = [float(b.get("x")) for b in bars]
    assert xs == sorted(xs) and all(0 <= x < sparkline.SPARKLINE_WIDTH for x in xs)
    assert [b.get("class") for b in bars] == ["bar zero", "bar", "bar peak", "bar"]


def test_sparkline_title_is_the_text_equivalent():
    svg = _parse_svg(sparkline.sparkline([3, 0, 9, 2], label="Occurrences", unit="day"))
    title = svg.find(f"{SVG}title")
    assert svg[0] is title  # the first child: the accessible name
    assert title.text == "Occurrences per day, last 4 days: 14 in total, at most 9 in one day, 2 in the last day"


def test_sparkline_of_nothing_is_still_a_labelled_drawing():
    for counts in ([], [0, 0, 0]):
        svg = _parse_svg(sparkline.sparkline(counts))
        assert svg.find(f"{SVG}title").text
        assert all(float(b.get("height")) == sparkline.SPARKLINE_ZERO_HEIGHT for b in svg.findall(f"{SVG}rect"))
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
