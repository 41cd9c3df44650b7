"""Counts per status, top error codes and the failures chart for a known data
set, on SQLite and PostgreSQL; the error-code index of migration 0004; the
summary page ``/jobs/summary`` that ``/jobs`` frames (its links, access,
errors and framing headers)."""

from __future__ import annotations

import html as html_lib
import json
import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import JobStatus, ProcessingJob
from app.services import dashboard_stats, top_codes
from app.services.chart_buckets import BucketSize
from app.services.processing_jobs.job_filter import AcknowledgedFilter, JobFilter
from tests.helpers import job_filter_from_query
from tests.integration.test_dashboard_filters import at, item, make_job, stamp

WINDOW = f"from={stamp(0)}&to={stamp(6)}"


@pytest.fixture
def known_jobs(app) -> None:
    """Jobs of 2025-01-01 00:00-06:00 UTC (created times), plus a few outside the view.

    In the window, unacknowledged: failures at 00:10, 00:20 | 02:30, 02:40,
    02:50 (Failed) | 05:59; one Completed, one Pending.
    """
    with app.app_context():
        make_job("doc-1", codes=("x.a", "x.b"), created=at(10 / 60))
        make_job("doc-2", codes=("x.b", "x.b"), created=at(20 / 60))  # x.b twice: one job
        make_job("doc-3", codes=("x.c", "x.a"), created=at(2.5))
        make_job("doc-4", codes=("x.b",), created=at(2 + 40 / 60))
        make_job("doc-5", "Failed", created=at(2 + 50 / 60))
        make_job("doc-6", codes=("x.b", "x.c", "x.d"), created=at(5 + 59 / 60))
        make_job("doc-7", "Completed", created=at(1))
        make_job("doc-8", "Pending", created=at(3))
        make_job("doc-9", codes=("x.z",), created=at(4), acknowledged=True)  # hidden by default
        make_job("doc-0", codes=("x.a",), created=at(-1))  # before the window
        make_job("doc-10", codes=("x.a",), created=at(6))  # at "to": outside (exclusive)


def _filter(**kwargs) -> JobFilter:
    return job_filter_from_query(
        kwargs.pop("statuses", []),
        default_statuses=(JobStatus.VALIDATION_FAILED, JobStatus.FAILED),
        time_from=stamp(0),
        time_to=stamp(6),
        default_acknowledged=AcknowledgedFilter.EXCLUDE,
        **kwargs,
    )


def test_status_counts_ignore_the_status_filter_only(app_ctx, known_jobs):
    counts = dashboard_stats.status_counts(_filter())
    assert {s.value: n for s, n in counts.counts.items()} == {
        "Pending": 1, "Processing": 0, "Completed": 1, "Failed": 1, "Validation_Failed": 5,
    }
    assert (counts.scanned, counts.capped) == (8, False)
    # The other filters still apply.
    counts = dashboard_stats.status_counts(_filter(error_code="x.b"))
    assert counts.counts[JobStatus.VALIDATION_FAILED] == 4 and counts.counts[JobStatus.FAILED] == 0
    counts = dashboard_stats.status_counts(_filter(acknowledged="include"))
    assert counts.counts[JobStatus.VALIDATION_FAILED] == 6


def test_top_codes_count_jobs_not_items(app_ctx, known_jobs):
    top = top_codes.top_error_codes(_filter())
    assert [(row.code, row.jobs) for row in top.codes] == [("x.b", 4), ("x.a", 2), ("x.c", 2), ("x.d", 1)]
    assert (top.scanned, top.capped) == (0, False)  # from the rollups: no job read
    top = top_codes.top_error_codes(_filter(statuses=["Failed"]))
    assert top.codes == []


def test_top_codes_are_the_ten_most_frequent(app_ctx):
    for n in range(12):
        # code c00 in 12 jobs, c01 in 11, ... c11 in 1.
        make_job(f"doc-{n}", codes=tuple(f"c{k:02d}" for k in range(n + 1)), created=at(1))
    top = top_codes.top_error_codes(_filter())
    assert [(row.code, row.jobs) for row in top.codes] == [(f"c{k:02d}", 12 - k) for k in range(10)]
    assert (top.distinct, top.more) == (12, 2)


def test_top_codes_count_errors_and_warnings_apart(app_ctx):
    warning = {"severity": "warning"}
    make_job("doc-1", details={"errors": [item("x.a"), item("x.a", **warning)]}, created=at(1))  # both
    make_job("doc-2", details={"errors": [item("x.a", **warning), item("x.a", **warning)]}, created=at(1))
    make_job("doc-3", details={"errors": [item("x.a", severity="fatal")]}, created=at(1))
    make_job("doc-4", details={"errors": [item("x.b", severity="information")]}, created=at(1))
    top = top_codes.top_error_codes(_filter())
    assert [(row.code, row.jobs, row.errors, row.warnings) for row in top.codes] == [
        ("x.a", 3, 2, 2), ("x.b", 1, 0, 0),
    ]
    assert (top.distinct, top.more) == (2, 0)
    assert top_codes.top_error_codes(_filter(), limit=1).more == 1


def test_summary_links_more_codes_than_it_shows_to_the_groups_page(client, app):
    with app.app_context():
        for n in range(12):
            make_job(f"doc-{n}", codes=tuple(f"c{k:02d}" for k in range(n + 1)), created=at(1))
    html = client.get(f"/jobs/summary?{WINDOW}&job_type=entity_extraction").get_data(as_text=True)
    assert len(re.findall(r'<td class="num errors">', html)) == 10
    more = re.search(r'<h2>Top error codes <a class="more-codes" href="([^"]+)" target="_top">12 codes in all</a></h2>',
                     html)
    # The groups of the same job type and time, in any state (a trial found every group linked).
    target = urlsplit(html_lib.unescape(more.group(1)))
    assert target.path == "/groups"
    assert parse_qs(target.query) == {"state": ["all"], "job_type": ["entity_extraction"],
                                      "from": [stamp(0)], "to": [stamp(6)]}
    assert client.get(html_lib.unescape(more.group(1))).status_code == 200


def test_a_code_sent_with_spaces_around_it_is_listed_and_its_link_finds_its_jobs(client, app):
    """A trial: the card listed " spaced " (stored as sent) but its link,
    error_code=+spaced+, was trimmed and found nothing. The code filter is
    exact."""
    with app.app_context():
        make_job("doc-1", details={"errors": [item(" spaced "), item("x.a")]}, created=at(1))
        make_job("doc-2", details={"errors": [item("spaced")]}, created=at(1))
    html = client.get(f"/jobs/summary?{WINDOW}").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" target="_top" title="[^"]*"><code><bdi> spaced </bdi></code>', html).group(1)
    listed = client.get(html_lib.unescape(link)).get_data(as_text=True)
    assert "doc-1" in listed and "doc-2" not in listed
    assert "doc-2" in client.get(f"/jobs?{WINDOW}&error_code=spaced").get_data(as_text=True)
    summary = client.get(f"/jobs/summary?{WINDOW}&error_code=%20spaced%20").get_data(as_text=True)
    assert re.findall(r'<bdi>([^<]+)</bdi></code></a></td><td class="num jobs">(\d+)</td>', summary) == [
        (" spaced ", "1"), ("x.a", "1")]


def test_the_top_codes_show_their_jobs_beside_errors_and_warnings(client, app):
    """A trial: 64 jobs listed for a code, the card said 61 as error and 1
    as warning (the other 2 had it as information only); a later one found
    the rows in no visible order, ranked by jobs the card did not show, and
    its note cut off by the frame. The jobs are a column of their own now."""
    with app.app_context():
        make_job("doc-1", details={"errors": [item("x.a")]}, created=at(1))
        make_job("doc-2", details={"errors": [item("x.a", severity="information")]}, created=at(1))
    html = client.get(f"/jobs/summary?{WINDOW}").get_data(as_text=True)
    assert re.search(r'<bdi>x\.a</bdi></code></a></td><td class="num jobs">2</td><td class="num errors">1</td>'
                     r'<td class="num warnings">0</td>', html)
    assert "information items only is in neither" in html  # the caption and the column's title say why


def test_failures_over_time_per_hour(app_ctx, known_jobs):
    timeline = dashboard_stats.failures_over_time(_filter(), now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert timeline.size is BucketSize.HOUR
    assert (timeline.start, timeline.end) == (at(0), at(6))
    assert [b.start for b in timeline.buckets] == [at(h) for h in range(6)]
    assert [b.count for b in timeline.buckets] == [2, 0, 3, 0, 0, 1]
    assert timeline.total == 6 and not timeline.capped and not timeline.clipped


def test_failures_over_time_per_day(app_ctx):
    for day, count in ((0, 3), (2, 1), (3, 2)):
        for n in range(count):
            make_job(f"doc-{day}-{n}", codes=("x.a",), created=at(24 * day + n))
    job_filter = job_filter_from_query([], time_from=stamp(0), time_to=stamp(24 * 4))
    timeline = dashboard_stats.failures_over_time(job_filter, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert timeline.size is BucketSize.DAY
    assert [b.count for b in timeline.buckets] == [3, 0, 1, 2]


def test_failures_over_time_by_completed_time(app_ctx):
    make_job("doc-1", codes=("x.a",), created=at(0), completed=at(3.5))
    make_job("doc-2", codes=("x.a",), created=at(1), completed=at(3.7))
    make_job("doc-3", "Completed", created=at(1), completed=at(3.8))  # not a failure
    job_filter = job_filter_from_query([], time_field="completed", time_from=stamp(0), time_to=stamp(6))
    timeline = dashboard_stats.failures_over_time(job_filter)
    assert [b.count for b in timeline.buckets] == [0, 0, 0, 2, 0, 0]


def test_aggregates_stop_at_their_scan_limit_only_with_a_search(app_ctx, known_jobs):
    counts = dashboard_stats.status_counts(_filter(), scan_limit=3)
    assert not counts.capped and counts.scanned == 8  # exact without a search
    counts = dashboard_stats.status_counts(_filter(q="doc"), scan_limit=3)
    assert counts.capped and counts.scanned == 3
    # The newest three (05:59, 03:00 Pending, 02:50 Failed).
    assert {s.value: n for s, n in counts.counts.items() if n} == {"Validation_Failed": 1, "Pending": 1, "Failed": 1}
    top = top_codes.top_error_codes(_filter(q="doc"), scan_limit=1)
    assert top.capped and [(r.code, r.jobs) for r in top.codes] == [("x.b", 1), ("x.c", 1), ("x.d", 1)]
    timeline = dashboard_stats.failures_over_time(_filter(q="doc"), scan_limit=2)
    assert timeline.capped and [b.count for b in timeline.buckets] == [0, 0, 1, 0, 0, 1]


def test_a_scan_that_reads_every_matching_job_is_not_capped(app_ctx, known_jobs):
    # "doc" matches 8 jobs of any status, 6 of them failures: a limit of
    # exactly that many reads them all (no "newest N only"); one less does not.
    for limit, capped in ((8, False), (7, True), (9, False)):
        counts = dashboard_stats.status_counts(_filter(q="doc"), scan_limit=limit)
        assert (counts.scanned, counts.capped) == (min(limit, 8), capped), limit
    for limit, capped in ((6, False), (5, True)):
        top = top_codes.top_error_codes(_filter(q="doc"), scan_limit=limit)
        assert (top.scanned, top.capped) == (limit, capped), limit
        timeline = dashboard_stats.failures_over_time(_filter(q="doc"), scan_limit=limit)
        assert (timeline.total, timeline.capped) == (limit, capped), limit


def test_each_bounded_aggregate_reads_the_jobs_in_one_statement(app_ctx):
    # Jobs whose details carry no code: the top codes are empty, yet the
    # jobs read are counted, and more than the limit says "capped".
    for n in range(3):
        make_job(f"crash-only-{n}", "Failed", message="worker crashed", details={"trace": "x"})
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001 (an SQLAlchemy event)
        statements.append(statement)

    search = JobFilter(text="crash-only", acknowledged=AcknowledgedFilter.INCLUDE)
    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        for limit, capped in ((3, False), (2, True), (4, False)):
            statements.clear()
            top = top_codes.top_error_codes(search, scan_limit=limit)
            assert (top.codes, top.scanned, top.capped) == ([], min(limit, 3), capped), limit
            counts = dashboard_stats.status_counts(search, scan_limit=limit)
            assert (counts.scanned, counts.capped) == (min(limit, 3), capped), limit
            assert len(statements) == 2, statements  # one each: the read, the count and the probe together
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def _bars(html: str) -> list[tuple[float, int]]:
    """(height, count) of each bar of the page's chart, left to right."""
    svg = re.search(r'<svg class="chart".*?</svg>', html, re.S).group(0)
    return [
        (float(h), int(c))
        for h, c in re.findall(r'<rect class="bar" [^>]*height="([\d.]+)" data-count="(\d+)"', svg)
    ]


def test_summary_shows_the_numbers(client, known_jobs):
    html = client.get(f"/jobs/summary?{WINDOW}").get_data(as_text=True)
    counts = dict(re.findall(r'status-\w+">([\w ]+)</span></a> <span class="count">(\d+)</span>', html))
    # Statuses in words on the page.
    assert counts == {"Pending": "1", "Processing": "0", "Completed": "1", "Failed": "1", "Validation failed": "5"}
    codes = re.findall(
        r'<td><a href="[^"]*" target="_top" title="[^"]*"><code><bdi>([^<]+)</bdi></code></a></td>'
        r'<td class="num jobs">(\d+)</td><td class="num errors">(\d+)</td><td class="num warnings">(\d+)</td>', html
    )
    assert codes == [("x.b", "4", "4", "0"), ("x.a", "2", "2", "0"), ("x.c", "2", "2", "0"), ("x.d", "1", "1", "0")]
    assert "more-codes" not in html  # every code is shown
    # Each code links to the list filtered by it, the other filters kept.
    link = re.search(r'<a href="([^"]+)" target="_top" title="\u2068x\.a\u2069"><code><bdi>x\.a</bdi></code>', html).group(1)
    link = link.replace("&amp;", "&")
    assert link.startswith("/jobs?")
    assert "error_code=x.a" in link and "from=2025-01-01T00%3A00%3A00Z" in link
    # One bar per hour, heights in proportion to the counts (2, 0, 3, 0, 0, 1).
    bars = _bars(html)
    assert [count for _, count in bars] == [2, 0, 3, 0, 0, 1]
    heights = [height for height, _ in bars]
    tallest = heights[2]
    assert tallest > 0
    assert heights[0] == pytest.approx(tallest * 2 / 3, abs=0.02)
    assert heights[5] == pytest.approx(tallest / 3, abs=0.02)
    assert heights[1] == heights[3] == heights[4] == 0
    # Accessible without JavaScript: role, label, title, one tooltip per bar.
    assert re.search(r'<svg class="chart"[^>]* role="img"[^>]* aria-label="Failures per hour[^"]*"', html)
    assert "<title>Failures per hour, 2025-01-01 00:00 to 2025-01-01 06:00 UTC</title>" in html
    assert "<title>2025-01-01 02:00 UTC: 3 failures</title>" in html
    assert "6 failures in 6 hours; most in one hour: 3 (2025-01-01 02:00 UTC)" in html


def test_summary_is_a_document_of_its_own(client, known_jobs):
    html = client.get(f"/jobs/summary?{WINDOW}").get_data(as_text=True)
    assert html.startswith("<!doctype html>\n")
    assert '<link rel="stylesheet" href="/static/css/app.css">' in html
    assert "site-header" not in html and "<nav" not in html and "<form" not in html
    assert "<script" not in html


def test_summary_links_open_in_the_framing_page(client, known_jobs):
    html = client.get(f"/jobs/summary?{WINDOW}").get_data(as_text=True)
    anchors = re.findall(r"<a [^>]*>", html)
    assert len(anchors) == 5 + 4  # one per status, one per top code
    assert all(' target="_top"' in anchor for anchor in anchors), anchors


def _frame_src(html: str) -> str:
    frames = re.findall(r'<iframe class="summary-frame" src="([^"]*)" title="([^"]+)"></iframe>', html)
    assert len(frames) == 1
    return frames[0][0]


def test_list_page_frames_the_summary_of_its_filter(client, known_jobs):
    # A filter that finds jobs (an empty list has no frame); hostile values
    # in the frame's address: test_dashboard_pages.py.
    query = [("status", "Validation_Failed"), ("status", "Failed"), ("from", stamp(0)),
             ("to", stamp(6)), ("error_code", "x.b"), ("limit", "2")]
    html = client.get(f"/jobs?{urlencode(query)}").get_data(as_text=True)
    src = _frame_src(html)
    # Escaped for the attribute: every & as &amp;, no raw quote or angle bracket.
    assert re.fullmatch(r"(?:[^&\"<>]|&amp;)*", src), src
    path, _, encoded = html_lib.unescape(src).partition("?")
    assert path == "/jobs/summary"
    assert parse_qsl(encoded) == query
    # The frame shows the summary of that filter.
    html = client.get(f"/jobs?{WINDOW}&error_code=x.b&limit=2").get_data(as_text=True)
    summary = client.get(html_lib.unescape(_frame_src(html))).get_data(as_text=True)
    assert re.search(r'>Validation failed</span></a> <span class="count">4</span>', summary)
    assert re.search(r'<tr class="selected"><td><a [^>]*><code><bdi>x\.b</bdi></code></a></td><td class="num jobs">4</td>',
                     summary)


def test_list_page_does_not_compute_the_summary(client, known_jobs, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("/jobs must not compute the summary")

    monkeypatch.setattr(dashboard_stats, "summarize", refuse)
    response = client.get(f"/jobs?{WINDOW}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert _frame_src(html) == f"/jobs/summary?{WINDOW}".replace(":", "%3A").replace("&", "&amp;")
    assert 'class="status-counts"' not in html and "<svg" not in html
    assert len(re.findall(r'<tr class="job ', html)) == 6


def test_stats_describe_the_filter_not_the_page(client, known_jobs):
    first = client.get(f"/jobs?{WINDOW}&limit=2").get_data(as_text=True)
    link = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "cursor=" in link
    second = client.get(link).get_data(as_text=True)
    # The frame's address leaves the cursor out, and the summary ignores one.
    assert _frame_src(first) == _frame_src(second)
    assert "cursor" not in _frame_src(first)
    summary = re.compile(r'<section class="summary".*?</section>', re.S)
    # When each was counted may differ by a second on a busy machine (a
    # parallel run met it): compare all but that clock.
    clock = re.compile(r'<time class="counted-at" [^>]*>[^<]*</time>')
    plain = client.get(f"/jobs/summary?{WINDOW}&limit=2").get_data(as_text=True)
    paged = client.get(link.replace("/jobs?", "/jobs/summary?")).get_data(as_text=True)
    assert clock.search(plain) and clock.search(paged)
    assert clock.sub("", summary.search(plain).group(0)) == clock.sub("", summary.search(paged).group(0))


@pytest.mark.parametrize("query", ["status=Nope", "from=yesterday", "time_field=updated",
                                   "acknowledged=maybe"])
def test_summary_refuses_bad_parameters_as_the_list_does(client, query):
    listed = client.get(f"/jobs?{query}")
    summary = client.get(f"/jobs/summary?{query}")
    assert listed.status_code == summary.status_code == 400
    assert summary.mimetype == "text/html"
    detail = re.compile(r'<section class="error-page">.*?</section>', re.S)
    said = [detail.search(r.get_data(as_text=True)).group(0) for r in (summary, listed)]
    assert said[0] == said[1]


def test_summary_refuses_anonymous_visitors_with_a_sign_in_link_for_the_whole_window(anonymous_client):
    """The list redirects to sign-in; the summary, which lives in the list's
    frame, cannot (the sign-in page refuses framing), so it answers 401 with
    a link that signs in in the whole window and comes back to the list."""
    listed = anonymous_client.get("/jobs?status=Failed&error_code=x.a")
    assert listed.status_code == 302
    location = urlsplit(listed.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/jobs?status=Failed&error_code=x.a"]}

    summary = anonymous_client.get("/jobs/summary?status=Failed&error_code=x.a")
    assert summary.status_code == 401
    assert summary.headers["X-Frame-Options"] == "SAMEORIGIN"
    html = summary.get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" target="_top">Sign in again</a>', html).group(1)
    target = urlsplit(link.replace("&amp;", "&"))
    assert target.path == "/login"
    assert parse_qs(target.query) == {"next": ["/jobs?status=Failed&error_code=x.a"]}
    assert "x.a" not in html.replace(link, "")  # nothing of the filter's results, only the link
    # The link works: it is the sign-in page, with the list as where to go next.
    assert anonymous_client.get(link.replace("&amp;", "&")).status_code == 200


def test_only_the_summary_may_be_framed_and_only_by_this_origin(client, app):
    with app.app_context():
        job_id = str(make_job("doc-frame", codes=("x.a",)))
    # The summary first: the per-view options must not leak into other views.
    summary = client.get("/jobs/summary")
    assert summary.headers["X-Frame-Options"] == "SAMEORIGIN"
    policy = _policy(summary)
    assert policy["frame-ancestors"] == "'self'"
    strict = {}
    for path in ("/jobs", f"/jobs/{job_id}", "/admin/audit", "/jobs/summary?status=Nope"):
        response = client.get(path)
        if path.endswith("Nope"):
            # An error answered by the summary's URL: the same rules as the summary.
            assert response.status_code == 400 and response.headers["X-Frame-Options"] == "SAMEORIGIN"
            continue
        assert response.status_code == 200, path
        assert response.headers["X-Frame-Options"] == "DENY", path
        strict = _policy(response)
        assert strict["frame-ancestors"] == "'none'", path
    # Otherwise the same policy: no inline script, nothing from elsewhere.
    assert {k: v for k, v in policy.items() if k != "frame-ancestors"} == {
        k: v for k, v in strict.items() if k != "frame-ancestors"
    }
    assert policy["script-src"] == "'self'"
    assert "'unsafe-inline'" not in summary.headers["Content-Security-Policy"]
    # /jobs may load a frame of its own origin: neither frame-src nor
    # child-src is set, so default-src 'self' applies (CSP Level 3).
    listed = _policy(client.get("/jobs"))
    assert listed["default-src"] == "'self'"
    assert "frame-src" not in listed and "child-src" not in listed


def _policy(response) -> dict[str, str]:
    """The Content-Security-Policy header as directive -> value."""
    directives = (d.strip().partition(" ") for d in response.headers["Content-Security-Policy"].split(";"))
    return {name: value for name, _, value in directives if name}


def test_error_code_index_matches_the_backend(app_ctx, backend):
    """GIN jsonb_path_ops on PostgreSQL, used by the containment query; an
    empty placeholder on SQLite, where json_each() cannot use an index."""
    with db.engine.connect() as connection:
        if backend == "postgresql":
            definition = connection.execute(sa.text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_processing_jobs_error_details'"
            )).scalar_one()
            assert "USING gin (error_details jsonb_path_ops)" in definition
            connection.execute(sa.text("SET LOCAL enable_seqscan = off"))  # this transaction only
            statement = sa.select(sa.literal(1)).where(*JobFilter(error_code="x.a").where())
            compiled = statement.compile(connection)
            assert "error_details @> " in str(compiled)
            # The JSON parameter as text: PostgreSQL infers jsonb from @>.
            params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in compiled.params.items()}
            plan = "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + str(compiled), params))
            assert "ix_processing_jobs_error_details" in plan
        else:
            definition = connection.execute(sa.text(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_processing_jobs_error_details'"
            )).scalar_one()
            assert definition.endswith("WHERE 0")


def test_summaries_are_reused_for_the_ttl_and_not_after(app_ctx):
    from app.registry import get_failure_recorder
    from app.services.processing_jobs.lifecycle import create_job

    recorder = get_failure_recorder()
    recorder.record_failure(create_job("doc-ttl-1").id, "crashed")
    job_filter = job_filter_from_query(["Failed"])
    counted = datetime(2026, 12, 4, 16, 52, 3, tzinfo=timezone.utc)
    first = dashboard_stats.summarize(job_filter, ttl=60, now=counted)
    recorder.record_failure(create_job("doc-ttl-2").id, "crashed")
    later = counted.replace(second=40)
    cached = dashboard_stats.summarize(job_filter, ttl=60, now=later)
    fresh = dashboard_stats.summarize(job_filter, ttl=0, now=later)
    assert cached is first
    assert first.status_counts.counts[JobStatus.FAILED] == 1
    assert fresh.status_counts.counts[JobStatus.FAILED] == 2
    # Each says when it was counted: the cached one, its own time (the page's "as of").
    assert (cached.counted_at, fresh.counted_at) == (counted, later)


def test_the_summary_page_says_when_it_was_counted(app, client):
    def stamp() -> tuple[datetime, str, str]:
        found = re.search(r'<h2>By status <time class="counted-at" datetime="([^"]+)" title="([^"]+)">'
                          r'as of (\d\d:\d\d) UTC</time></h2>', client.get("/jobs/summary").get_data(as_text=True))
        assert found
        return datetime.fromisoformat(found.group(1).replace("Z", "+00:00")), found.group(2), found.group(3)

    moment, title, shown = stamp()  # tests count afresh each time (a TTL of 0)
    assert shown == moment.strftime("%H:%M") and title == f"Counted at {moment:%Y-%m-%d %H:%M:%S} UTC"
    app.config["DASHBOARD_STATS_TTL"] = 30
    moment, title, _ = stamp()
    assert title == (f"Counted at {moment:%Y-%m-%d %H:%M:%S} UTC; the summary is recounted at most every "
                     "30 seconds, and at once after your own action")
    html = client.get("/jobs/summary").get_data(as_text=True)
    # The chart says what places a failure on its axis (by finish time when the filter is by finish time).
    assert "Each failure is placed at its job's creation time." in html
    finished = client.get("/jobs/summary?time_field=completed").get_data(as_text=True)
    assert "Each failure is placed at its job's finish time." in finished


def test_the_scanned_code_condition_selects_the_same_jobs(app_ctx, backend):
    """``where(code_index=False)`` (the chart's form: no GIN bitmap) means
    exactly what the indexed form means, on every shape of details."""
    make_job("doc-a", codes=("x.a", "x.b"))
    make_job("doc-b", codes=("x.b",))
    make_job("doc-c", "Failed", details={"errors": {"code": "x.a"}})  # free-form: errors not an array
    make_job("doc-d", "Failed", details={"errors": ["x.a", {"code": 1}]})  # no object item with a string code
    make_job("doc-e", "Failed")  # no details at all
    make_job("doc-f", "Completed")
    for code in ("x.a", "x.b", "x", "1", "nope"):
        job_filter = JobFilter(error_code=code)
        indexed = set(db.session.scalars(sa.select(ProcessingJob.document_id).where(*job_filter.where())))
        scanned = set(db.session.scalars(
            sa.select(ProcessingJob.document_id).where(*job_filter.where(code_index=False))))
        assert scanned == indexed, code
    assert indexed == set()
    assert set(db.session.scalars(sa.select(ProcessingJob.document_id).where(
        *JobFilter(error_code="x.a").where(code_index=False)))) == {"doc-a"}
    if backend == "postgresql":
        db.session.execute(sa.text("SET LOCAL enable_seqscan = off"))  # the index would win if usable
        statement = sa.select(sa.literal(1)).where(*JobFilter(error_code="x.a").where(code_index=False))
        compiled = statement.compile(db.session.connection())
        params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in compiled.params.items()}
        plan = "\n".join(row[0] for row in db.session.connection().exec_driver_sql("EXPLAIN " + str(compiled), params))
        db.session.rollback()
        assert "ix_processing_jobs_error_details" not in plan
