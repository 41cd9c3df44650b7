"""The failures chart's macro (templates/jobs/_chart.html) rendered alone:
its text table, the chart's numbers for screen readers."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from app import create_app
from app.dashboard.charts import bar_chart
from app.services.chart_buckets import Bucket, BucketSize, Timeline


def _caption(counts: list[int]) -> str:
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    size = BucketSize.DAY
    buckets = [Bucket(start + i * size.width, count) for i, count in enumerate(counts)]
    chart = bar_chart(Timeline(size, start, start + len(counts) * size.width, buckets))
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "TESTING": True})
    with app.test_request_context():
        html = str(app.jinja_env.get_template("jobs/_chart.html").module.failure_chart(chart))
    return re.search(r'<table class="chart-data">\s*<caption>(.*?)</caption>', html, re.S).group(1)


@pytest.mark.parametrize(("counts", "others"), [([3] * 14, False), ([3] * 13 + [0], True), ([0] * 14, True)])
def test_the_chart_tables_caption_mentions_empty_days_only_when_there_are_some(counts, others):
    # A group failing on each of its 14 days read "(the others have none)";
    # "Occurrences per day ...: occurrences per bucket" said it twice, in jargon (a re-check).
    caption = _caption(counts)
    assert caption.startswith("Failures per day, 2025-01-01 to 2025-01-14 UTC"), caption
    assert "bucket" not in caption
    assert ("; the days not listed have none" in caption) == others, caption
