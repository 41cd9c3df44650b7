"""Pure pieces of the dashboard: Jinja filters, chart layout and window,
query parsing, cursors and links. No database, no app."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app.dashboard import failure_details, formatting
from app.dashboard.charts import bar_chart
from app.dashboard.links import list_links, with_quick_range
from app.errors import InvalidQueryError
from app.models import JobStatus
from app.services.chart_buckets import Bucket, BucketSize, Timeline, bucket_label, chart_window
from app.services.processing_jobs.filter_sql import escape_like
from app.services.processing_jobs.job_filter import AcknowledgedFilter, TimeField
from app.services.processing_jobs.pagination import Cursor
from tests.helpers import job_filter_from_query
from app.web.list_heading import query_pairs, with_changes
from app.web.query_time import parse_rfc3339

UTC = timezone.utc
NOW = datetime(2026, 11, 29, 21, 16, 35, 123456, tzinfo=UTC)


# -- filters -------------------------------------------------------------------

def test_json_preview_keeps_small_documents_whole():
    preview = failure_details.json_preview({"b": 1, "a": [1, 2]})
    assert preview.text == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}'
    assert not preview.truncated and preview.shown_bytes == preview.total_bytes == len(preview.text)


def test_json_preview_cuts_at_a_line_end_within_the_byte_limit():
    value = {"lines": ["é" * 30 for _ in range(100)]}  # 2-byte characters
    preview = failure_details.json_preview(value, max_bytes=1000)
    assert preview.truncated
    assert preview.text.endswith('",\n…')
    kept = preview.text[: -len("\n…")]
    assert len(kept.encode()) == preview.shown_bytes <= 1000
    assert failure_details.pretty_json(value).startswith(kept)
    assert preview.total_bytes == len(failure_details.pretty_json(value).encode())


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (None, None),
        ("free text", None),
        ({"note": 1}, None),
        ({"schema_version": 1, "errors": [], "error_count": 0, "truncated": False}, (0, 0, 0)),
        ({"errors": [{"code": "a"}, {"code": "b"}]}, (2, 2, 0)),
        ({"schema_version": 1, "errors": [{"code": "a"}] * 3, "error_count": 250, "truncated": True}, (250, 3, 247)),
        ([{"code": "a"}, "not an item"], (1, 1, 0)),
        ([{"code": "a"}] * 450, (450, 200, 250)),  # a free-form list longer than the table
        ({"errors": [{"code": "a"}], "error_count": "many"}, (1, 1, 0)),
    ],
)
def test_error_count(details, expected):
    count = failure_details.error_count(details)
    assert (None if count is None else (count.total, count.shown, count.more)) == expected


def test_error_items_are_strings_with_the_entity_formatted_and_keep_their_position():
    rows = failure_details.error_items({"errors": [
        {"code": "x", "severity": "error", "message": "m", "pointer": "/a", "entity": {"type": "Condition", "index": 1}},
        "not an item",
        {"code": 7, "severity": None},
    ]})
    # position: the index in the list (non-items keep their place), as the failure groups record it.
    assert rows == [
        {"severity": "error", "code": "x", "pointer": "/a", "message": "m", "entity": "Condition #1",
         "unmapped_path": "", "whole_document": "", "position": 0},
        {"severity": "", "code": "7", "pointer": "", "message": "", "entity": "", "unmapped_path": "",
         "whole_document": "", "position": 2},
    ]


def test_an_unmapped_fhirpath_takes_the_place_of_the_empty_pointer():
    rows = failure_details.error_items({"errors": [
        {"code": "fhir.invalid", "severity": "error", "message": "m", "pointer": "",
         "ctx": {"expression": "Bundle.entry.where(resource is Condition).resource"}},
        {"code": "fhir.structure", "severity": "error", "message": "m", "pointer": "", "ctx": {"location": "/f:x"}},
        {"code": "schema.type", "severity": "error", "message": "m", "pointer": ""},
        {"code": "schema.type", "severity": "error", "message": "m", "pointer": "/a", "ctx": {"expression": "A.b"}},
    ]})
    assert [(row["unmapped_path"], row["whole_document"]) for row in rows] == [
        ("Bundle.entry.where(resource is Condition).resource", "yes"), ("/f:x", "yes"), ("", "yes"), ("", ""),
    ]
    assert len(failure_details.error_items([{"code": "a"}] * 450)) == failure_details.ERROR_TABLE_MAX_ROWS


@pytest.mark.parametrize(
    ("entity", "text"),
    [
        ({"type": "Observation", "index": 3, "page": 2, "start": 10, "end": 25}, "Observation #3 · p. 2 · 10–25"),
        ({"type": "Condition"}, "Condition"),
        ({"type": "Condition", "code": "R07.9X"}, "Condition · R07.9X"),
        ({"code": "E11.9", "index": 4}, "#4 · E11.9"),
        ({"index": 0}, "#0"),
        ({"start": 5}, "5–?"),
        ({"page": 1}, "p. 1"),
        ({}, ""),
        (None, ""),
        ("Condition", ""),
    ],
)
def test_format_entity(entity, text):
    assert failure_details.format_entity(entity) == text


def test_break_long_words_keeps_words_whole_and_lets_only_an_over_long_one_break():
    """An entity wraps at its spaces; a word longer than LONGEST_UNBROKEN (a
    64-character code the API accepts) alone may break anywhere, escaped."""
    # No long word: the text as it was, escaped, with no added markup.
    assert failure_details.break_long_words("AllergyIntolerance · R07.9X") == "AllergyIntolerance · R07.9X"
    assert failure_details.break_long_words("Condition · <b>") == "Condition · &lt;b&gt;"
    assert failure_details.break_long_words("x" * failure_details.LONGEST_UNBROKEN) == "x" * 32
    long_word = "Z" * 60 + "<&>"
    assert failure_details.break_long_words(f"Condition · {long_word} · p. 3") == (
        f'Condition · <span class="anywhere">{"Z" * 60}&lt;&amp;&gt;</span> · p. 3')


def test_small_formatters():
    assert formatting.format_utc(NOW) == "2026-11-29 21:16:35 UTC"
    assert formatting.format_utc(None) == "—"
    assert formatting.format_rfc3339(NOW.astimezone(timezone(timedelta(hours=-5)))) == "2026-11-29T21:16:35Z"
    assert formatting.format_rfc3339(None) == ""
    assert formatting.truncate_text("x" * 200) == "x" * 159 + "…"
    assert formatting.truncate_text("short") == "short"
    assert formatting.file_size(512) == "512 B"
    assert formatting.file_size(64 * 1024) == "64 KiB"
    assert formatting.file_size(3 * 1024 * 1024 // 2) == "1.5 MiB"
    assert formatting.percent(0.874) == "87 %"
    assert formatting.format_span(2, 120, 135) == "p. 2 · 120–135"
    assert formatting.format_span(None, 0, 4) == "0–4"
    assert formatting.code_system_name("http://loinc.org") == "LOINC"
    assert formatting.code_system_name("urn:oid:1.2.3") == "urn:oid:1.2.3"
    assert formatting.thousands(1234567) == "1,234,567"


# -- chart ---------------------------------------------------------------------

def _timeline(counts: list[int], size: BucketSize = BucketSize.HOUR) -> Timeline:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    buckets = [Bucket(start + i * size.width, c) for i, c in enumerate(counts)]
    return Timeline(size, start, start + len(counts) * size.width, buckets)


def test_bar_chart_has_one_bar_per_bucket_scaled_to_the_peak():
    chart = bar_chart(_timeline([2, 0, 4, 1]))
    assert [bar.count for bar in chart.bars] == [2, 0, 4, 1]
    heights = [bar.height for bar in chart.bars]
    assert heights[2] == chart.baseline_y - 10  # the peak fills the plot (top margin 10)
    assert heights == pytest.approx([heights[2] / 2, 0, heights[2], heights[2] / 4], abs=0.01)
    for bar in chart.bars:
        assert bar.y + bar.height == pytest.approx(chart.baseline_y)
    xs = [bar.x for bar in chart.bars]
    assert xs == sorted(xs) and chart.plot_left <= xs[0] and xs[-1] + chart.bars[-1].width <= chart.plot_right
    assert chart.title == "Failures per hour, 2025-01-01 00:00 to 2025-01-01 04:00 UTC"
    assert chart.description == "7 failures in 4 hours; most in one hour: 4 (2025-01-01 02:00 UTC)"
    assert chart.bars[1].label == "2025-01-01 01:00 UTC: 0 failures"
    assert chart.bars[3].label == "2025-01-01 03:00 UTC: 1 failure"


def test_a_chart_of_days_is_titled_with_its_last_day_not_the_midnight_after_it():
    # A trial read "2026-11-20 to 2026-12-04" under an axis ending on the 3rd.
    chart = bar_chart(_timeline([1, 0, 2], BucketSize.DAY))
    assert chart.title == "Failures per day, 2025-01-01 to 2025-01-03 UTC"
    assert chart.x_labels == ("2025-01-01", "2025-01-03")
    # A trial: a one-hour chart read "18:00" at both ends.
    assert bar_chart(_timeline([5], BucketSize.HOUR)).x_labels == ("2025-01-01 00:00",)


def test_bar_chart_of_nothing():
    chart = bar_chart(_timeline([0, 0, 0], BucketSize.DAY))
    assert [bar.height for bar in chart.bars] == [0, 0, 0]
    assert chart.description == "0 failures in 3 days"
    assert bar_chart(_timeline([])).bars == []


def _window(now=NOW, **query):
    job_filter = job_filter_from_query([], time_from=query.get("from"), time_to=query.get("to"))
    return chart_window(job_filter, now)


def test_chart_window_defaults_to_the_last_day_per_hour():
    size, start, end, clipped = _window()
    assert size is BucketSize.HOUR and not clipped
    assert (start, end) == (datetime(2026, 11, 28, 21, tzinfo=UTC), datetime(2026, 11, 29, 22, tzinfo=UTC))


def test_chart_window_follows_the_range():
    assert _window(**{"from": "2025-01-01T00:30:00Z", "to": "2025-01-02T06:00:00Z"})[:3] == (
        BucketSize.HOUR, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, 6, tzinfo=UTC)
    )
    assert _window(**{"from": "2025-01-01T00:00:00Z", "to": "2025-01-03T00:00:01Z"})[:3] == (
        BucketSize.DAY, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 4, tzinfo=UTC)
    )
    # "to" in the future ends now; only "to" looks back a day.
    assert _window(**{"from": "2026-11-29T00:00:00Z", "to": "2030-01-01T00:00:00Z"})[2] == datetime(
        2026, 11, 29, 22, tzinfo=UTC
    )
    assert _window(**{"to": "2025-01-02T00:00:00Z"})[1:3] == (
        datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
    )


def test_chart_window_draws_at_most_92_days():
    size, start, end, clipped = _window(**{"from": "2000-01-01T00:00:00Z"})
    assert size is BucketSize.DAY and clipped
    assert end - start == timedelta(days=92)


def test_chart_window_of_a_future_range_is_empty():
    size, start, end, _ = _window(**{"from": "2030-01-01T00:00:00Z"})
    assert start == end


# -- parsing -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T21:16:35Z", datetime(2026, 11, 29, 21, 16, 35, tzinfo=UTC)),
        ("2026-11-29t21:16:35z", datetime(2026, 11, 29, 21, 16, 35, tzinfo=UTC)),
        ("2026-11-29 21:16:35Z", datetime(2026, 11, 29, 21, 16, 35, tzinfo=UTC)),
        ("2026-11-29T23:16:35+02:00", datetime(2026, 11, 29, 21, 16, 35, tzinfo=UTC)),
        ("2026-11-29T21:16:35-00:00", datetime(2026, 11, 29, 21, 16, 35, tzinfo=UTC)),
        ("2026-11-29T21:16:35.1234567891Z", datetime(2026, 11, 29, 21, 16, 35, 123456, tzinfo=UTC)),
        ("2026-11-29T21:16:35.5Z", datetime(2026, 11, 29, 21, 16, 35, 500000, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339(text, expected):
    assert parse_rfc3339(text, "from") == expected


@pytest.mark.parametrize(
    "text",
    ["", "now", "2026-11-29", "2026-11-29T21:16:35", "2026-11-29T21:16Z", "20261129T211635Z",
     "2026-11-29T21:16:35 02:00", "2026-02-30T00:00:00Z", "2026-11-29T24:00:00Z", "2016-12-31T23:59:60Z",
     "２０２６-11-29T21:16:35Z", "2026-11-29T21:16:35+0200", "0000-01-01T00:00:00Z"],
)
def test_parse_rfc3339_refuses(text):
    with pytest.raises(InvalidQueryError) as caught:
        parse_rfc3339(text, "to")
    assert caught.value.errors[0]["field"] == "to"


def test_escape_like():
    assert escape_like(r"50%_a\b") == r"50\%\_a\\b"


def test_filter_defaults_and_normalisation():
    job_filter = job_filter_from_query([], default_statuses=(JobStatus.FAILED,), q="  needle ", error_code="x\x00y")
    assert job_filter.statuses == (JobStatus.FAILED,)
    assert job_filter.time_field is TimeField.CREATED
    assert job_filter.acknowledged is AcknowledgedFilter.INCLUDE
    assert job_filter.text == "needle"
    assert job_filter.error_code == "x\ufffdy"  # the stored-text rule
    assert job_filter_from_query(["all"], q="   ").text is None
    assert job_filter_from_query([], acknowledged="only").acknowledged is AcknowledgedFilter.ONLY


def test_filter_names_every_bad_parameter():
    with pytest.raises(InvalidQueryError) as caught:
        job_filter_from_query(["nope"], time_field="x", time_from="soon", time_to="later", acknowledged="?",
                             q="q" * 201, error_code="e" * 201)
    assert [e["field"] for e in caught.value.errors] == [
        "status", "time_field", "acknowledged", "from", "to", "error_code", "q",
    ]


def test_cursor_round_trip_and_refusals():
    cursor = Cursor(TimeField.COMPLETED, NOW, uuid.uuid4())
    assert Cursor.decode(cursor.encode()) == cursor
    for token in ("", "%%%", "bm9wZQ", Cursor(TimeField.CREATED, NOW, uuid.uuid4()).encode()[:-4]):
        with pytest.raises(InvalidQueryError):
            Cursor.decode(token)


# -- links ---------------------------------------------------------------------

def test_links_keep_the_query_and_change_one_thing():
    args = [("status", "Failed"), ("status", "Validation_Failed"), ("q", ""), ("cursor", "abc"),
            ("error_code", "x"), ("from", "2025-01-01T00:00:00Z"), ("to", "2025-01-02T00:00:00Z")]
    assert query_pairs(args) == [("status", "Failed"), ("status", "Validation_Failed"), ("error_code", "x"),
                                 ("from", "2025-01-01T00:00:00Z"), ("to", "2025-01-02T00:00:00Z")]
    assert with_changes([("a", "1"), ("b", "2")], {"a": ["3", "4"], "b": []}) == [("a", "3"), ("a", "4")]
    links = list_links("/jobs", "/e.csv", "/e.ndjson", "/ent.csv", args, next_cursor="n1", codes=["y"])
    assert links.next_page.endswith("&cursor=n1") and "cursor=abc" not in links.next_page
    assert links.statuses[JobStatus.COMPLETED] == (
        "/jobs?error_code=x&from=2025-01-01T00%3A00%3A00Z&to=2025-01-02T00%3A00%3A00Z&status=Completed"
    )
    assert links.codes["y"].startswith("/jobs?status=Failed&status=Validation_Failed&from=")
    assert links.codes["y"].endswith("&error_code=y")
    assert with_quick_range(args + [("range", "24h")], NOW) == [
        ("status", "Failed"), ("status", "Validation_Failed"), ("q", ""), ("error_code", "x"),
        ("from", "2026-11-28T21:16:35Z")]
    with pytest.raises(InvalidQueryError):
        with_quick_range(args + [("range", "2w")], NOW)
    assert links.csv.startswith("/e.csv?status=Failed") and links.clear == "/jobs"
    assert links.csv_jobs.startswith("/e.csv?status=Failed") and links.csv_jobs.endswith("&rows=jobs")
    assert links.ndjson_jobs == links.csv_jobs.replace("/e.csv", "/e.ndjson", 1)
    # The entities export has completed jobs only: the page's statuses stay out of its link.
    assert links.entities_csv.startswith("/ent.csv?") and "status=" not in links.entities_csv
    assert list_links("/jobs", "/c", "/n", "/ent", [], next_cursor=None, codes=[]).next_page is None


def test_pretty_json_is_stable():
    value = {"b": {"z": 1, "a": [True, None]}, "a": "é"}
    assert failure_details.pretty_json(value) == json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    assert failure_details.pretty_json(value).index('"a"') < failure_details.pretty_json(value).index('"b"')


def test_validator_names_and_text_details():
    assert failure_details.validator_name("pydantic") == "pydantic"
    assert failure_details.validator_name("fhir-operationoutcome") == "FHIR OperationOutcome"
    assert failure_details.validator_name("normalized") == failure_details.validator_name("free-form") == ""
    assert failure_details.validator_name(None) == failure_details.validator_name("a-new-format") == ""
    assert failure_details.text_details("line 1\nline 2") == [("", "line 1\nline 2")]
    assert failure_details.text_details({"trace": "a\nb", "short": "x", "n": 3, "long": "y" * 80}) == [
        ("trace", "a\nb"), ("long", "y" * 80),
    ]
    assert failure_details.text_details({"errors": [{"code": "x", "message": "a\nb"}]}) == []  # an error list
    assert failure_details.text_details(None) == failure_details.text_details([1]) == []
    cut = failure_details.text_details("x" * (failure_details.JSON_PREVIEW_MAX_BYTES + 5))[0][1]
    assert cut.endswith("\n…") and len(cut) == failure_details.JSON_PREVIEW_MAX_BYTES + 2


def test_what_to_do_lists_each_covered_code_once():
    details = {"errors": [{"code": "unit.not_ucum"}, {"code": "unit.not_ucum"}, {"code": "vendor.x"}, "x", {"code": 5}]}
    (pair,) = failure_details.what_to_do(details)
    assert pair[0] == "unit.not_ucum" and pair[1].startswith("The unit is not a UCUM code")
    assert failure_details.what_to_do("text") == []
    assert formatting.history_label("requeued") == "Requeued"


# -- the list: statuses in words, times, counts, heading and chips --------------

def test_statuses_are_words_on_pages():
    assert formatting.status_label(JobStatus.VALIDATION_FAILED) == "Validation failed"
    assert formatting.status_label("Validation_Failed") == "Validation failed"
    assert [formatting.status_label(s) for s in JobStatus if s is not JobStatus.VALIDATION_FAILED] == [
        "Pending", "Processing", "Completed", "Failed"]
    assert formatting.status_label("Unknown_Thing") == "Unknown_Thing"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "just now"), (-5, "just now"), (-3600, "in the future"), (1, "1 s ago"), (59.9, "59 s ago"),
     (60, "1 min ago"), (3599, "59 min ago"), (3600, "1 h ago"), (47.9 * 3600, "47 h ago"),
     (48 * 3600, "2 days ago"), (59.9 * 86400, "59 days ago"), (60 * 86400, "on 2026-09-30")],
)
def test_time_ago(seconds, text):
    assert formatting.time_ago(NOW - timedelta(seconds=seconds), NOW) == text
    assert formatting.time_ago(None, NOW) == "—"


def test_a_job_row_says_what_happened_when():
    class Job:
        def __init__(self, status, created, started=None, completed=None):
            self.status, self.created_at, self.started_at, self.completed_at = status, created, started, completed

    t0, t1, t2 = NOW - timedelta(hours=3), NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    moment = formatting.job_moment
    assert moment(Job("Validation_Failed", t0, t1, t2)) == formatting.JobMoment("failed", t2)
    assert moment(Job("Failed", t0, t1, t2)) == formatting.JobMoment("failed", t2)
    assert moment(Job("Completed", t0, t1, t2)) == formatting.JobMoment("completed", t2)
    assert moment(Job("Processing", t0, t1)) == formatting.JobMoment("started", t1)
    assert moment(Job("Pending", t0)) == formatting.JobMoment("created", t0)
    assert moment(Job("Failed", t0)) == formatting.JobMoment("created", t0)  # no completed_at: said plainly


@pytest.mark.parametrize(
    ("severities", "reported", "counts"),
    [
        (["error", "error", "warning"], None, (2, 1, 0)),  # "2 errors" in the message; the warning apart
        (["fatal", "error", "information", "warning", None], None, (3, 1, 1)),  # no severity counts as an error
        (["error", "warning"], 250, (249, 1, 0)),  # dropped items count as errors
    ],
)
def test_the_error_count_counts_what_a_message_counts(severities, reported, counts):
    items = [{"code": "x", **({"severity": s} if s else {})} for s in severities]
    details = {"errors": items} if reported is None else {
        "schema_version": 1, "errors": items, "error_count": reported, "truncated": True}
    count = failure_details.error_count(details)
    assert (count.errors, count.warnings, count.notes) == counts


def _heading(query: str, **kwargs):
    from urllib.parse import parse_qsl

    from app.dashboard.links import list_heading
    from app.web.query import DEFAULT_DASHBOARD_ACKNOWLEDGED, DEFAULT_DASHBOARD_STATUSES, dashboard_filter
    from werkzeug.datastructures import MultiDict

    pairs = parse_qsl(query)
    return list_heading("/jobs", pairs, dashboard_filter(MultiDict(pairs)),
                        default_statuses=DEFAULT_DASHBOARD_STATUSES, default_acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED,
                        status_words=formatting.STATUS_LABELS, time_text=formatting.format_utc)


def test_the_heading_names_the_statuses_and_chips_the_rest():
    heading = _heading("error_code=code.unknown_icd10cm&limit=25")
    assert heading.title == "Failed jobs"
    assert [(c.label, c.value, c.remove) for c in heading.chips] == [
        ("code", "code.unknown_icd10cm", "/jobs?limit=25"),
        ("acknowledged", "hidden", "/jobs?error_code=code.unknown_icd10cm&limit=25&acknowledged=include")]
    assert heading.text == ("Failed jobs · code = \u2068code.unknown_icd10cm\u2069"
                            " · acknowledged = \u2068hidden\u2069")
    # The default hides acknowledged jobs, and says so (the groups count them).
    assert [(c.label, c.value, c.remove) for c in _heading("").chips] == [
        ("acknowledged", "hidden", "/jobs?acknowledged=include")]
    assert _heading("").title == "Failed jobs"
    # The default statuses named explicitly are the default.
    assert [c.label for c in _heading("status=Failed&status=validation_failed").chips] == ["acknowledged"]
    assert _heading("status=all").title == "All jobs"
    assert [(c.label, c.value, c.remove) for c in _heading("status=all&q=Z99&acknowledged=include").chips] == [
        ("status", "any", "/jobs?q=Z99&acknowledged=include"), ("search", "Z99", "/jobs?status=all&acknowledged=include"),
        ("acknowledged", "included", "/jobs?status=all&q=Z99")]
    assert _heading("status=Validation_Failed").title == "Validation failed jobs"
    heading = _heading("status=completed&status=Pending&cursor=abc")
    assert heading.title == "Jobs"
    assert [(c.label, c.value, c.remove) for c in heading.chips] == [
        ("status", "Completed or Pending", "/jobs"), ("acknowledged", "hidden", "/jobs?status=completed&status=Pending&acknowledged=include")]


def test_every_filter_gets_a_chip_that_removes_it_alone():
    query = ("q=oom&error_code=x.y&document_id=doc-1&job_type=ocr&time_field=completed"
             "&from=2026-11-29T00:00:00Z&to=2026-11-30T00:00:00Z&acknowledged=include")
    chips = _heading(query).chips
    assert [(c.label, c.value) for c in chips] == [
        ("search", "oom"), ("code", "x.y"), ("document", "doc-1"), ("type", "ocr"),
        ("finished from", "2026-11-29 00:00:00 UTC"), ("finished before", "2026-11-30 00:00:00 UTC"),
        ("acknowledged", "included"),
    ]
    names = ["q", "error_code", "document_id", "job_type", "from", "to", "acknowledged"]
    for chip, name in zip(chips, names):
        removed = dict(parse_qsl_keep(chip.remove))
        assert name not in removed and len(removed) == 7, (chip, removed)
    assert [(c.label, c.value) for c in _heading("time_field=completed&acknowledged=include").chips] == [
        ("time", "finished jobs, by finish time"), ("acknowledged", "included")]
    assert [(c.label, c.value) for c in _heading("acknowledged=only").chips] == [("acknowledged", "only")]
    assert [(c.label, c.value) for c in _heading("acknowledged=exclude").chips] == [("acknowledged", "hidden")]


def test_a_group_list_that_hides_acknowledged_jobs_says_so():
    # A group counts its acknowledged jobs; a typed /jobs?group=N hides them
    # by default, so the heading shows that as a chip whose x shows them.
    # (As every list that hides them does.)
    for query in ("group=7", "group=7&acknowledged=exclude"):
        chips = _heading(query).chips
        assert [(c.label, c.value) for c in chips] == [("group", "#7"), ("acknowledged", "hidden")], query
        assert dict(parse_qsl_keep(chips[1].remove)) == {"group": "7", "acknowledged": "include"}
    assert [(c.label, c.value) for c in _heading("group=7&acknowledged=include").chips] == [
        ("group", "#7"), ("acknowledged", "included")]
    assert [(c.label, c.value) for c in _heading("group=7&acknowledged=only").chips] == [
        ("group", "#7"), ("acknowledged", "only")]


def parse_qsl_keep(link: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(link).query)
# -- group sparklines ---------------------------------------------------------

def test_group_sparklines_and_chart_cut_hourly_counts_into_days():
    from app.dashboard.groups_views import _daily, _timeline

    hourly = [0] * (14 * 24 - 1) + [5]  # 14 days of hours ending with this hour
    hourly[0] = 2  # the oldest hour
    assert _daily(hourly, 14) == [2] + [0] * 12 + [5]
    assert _daily([1, 1], 2) == [0, 2]  # a short series is padded at the old end
    now = datetime(2026, 12, 3, 5, 30, tzinfo=UTC)
    timeline = _timeline(hourly, now)
    assert [b.start.day for b in timeline.buckets][-1] == 3 and len(timeline.buckets) == 14
    assert timeline.buckets[-1].count == 5 and timeline.total == 5  # the oldest hour falls before day one
    assert timeline.start == datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "hinted"),
    [
        ("eda1c0a", True),   # 7 hex digits, one a decimal digit
        ("1234", True),
        ("abcdefa", True),   # 7 hex letters: one short of an id prefix
        ("ABCDEFA", True),
        ("abcdefab", False),  # 8: searched as an id prefix, no hint needed
        ("eda1c0ab", False),
        ("decade", False),   # shorter all-letter words are words
        ("face", False),
        ("abcdefg", False),  # not hex
        ("", False),
        (None, False),
    ],
)
def test_a_short_id_prefix_is_told_apart_from_words(text, hinted):
    from app.dashboard.jinja_filters import short_id_prefix

    assert short_id_prefix(text) is hinted


def test_directional_formatting_characters_are_shown_as_marks_and_the_rest_escaped():
    from app.dashboard.formatting import show_bidi_controls
    from app.text_marks import BIDI_CONTROLS

    assert show_bidi_controls(None) == ""
    assert show_bidi_controls("<b>plain</b>") == "&lt;b&gt;plain&lt;/b&gt;"
    shown = show_bidi_controls("a\u202e<x>\u2066b")
    assert shown == ('a<span class="bidi-control" title="U+202E RIGHT-TO-LEFT OVERRIDE">[RLO]</span>&lt;x&gt;'
                     '<span class="bidi-control" title="U+2066 LEFT-TO-RIGHT ISOLATE">[LRI]</span>b')
    assert not any(control in show_bidi_controls("".join(BIDI_CONTROLS)) for control in BIDI_CONTROLS)


def test_invisible_characters_are_shown_as_marks_too():
    # A trial's message held a zero-width space: invisible on the page, and
    # carried along into the search box by a copy.
    from app.dashboard.failure_details import pretty_json
    from app.dashboard.formatting import show_bidi_controls

    assert show_bidi_controls("zw\u200bsp") == (
        'zw<span class="bidi-control" title="U+200B ZERO WIDTH SPACE">[ZWSP]</span>sp')
    assert "[WJ]" in show_bidi_controls("a\u2060b") and "[ZWNBSP]" in show_bidi_controls("\ufeffb")
    # Line and paragraph separators show as nothing in HTML text (a trial).
    assert "[LSEP]" in show_bidi_controls("a\u2028b") and "[PSEP]" in show_bidi_controls("a\u2029b")
    # Emoji sequences and scripts need ZWJ and ZWNJ: left as they are there.
    assert show_bidi_controls("\U0001f468\u200d\U0001f469") == "\U0001f468\u200d\U0001f469"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert show_bidi_controls(persian) == persian
    # Beside ASCII, or at an end, they join nothing: "unit.not<ZWJ>_ucum" read as
    # "unit.not_ucum", a second group that looked like the first (a trial).
    assert show_bidi_controls("unit.not\u200d_ucum") == (
        'unit.not<span class="bidi-control" title="U+200D ZERO WIDTH JOINER">[ZWJ]</span>_ucum')
    assert "[ZWNJ]" in show_bidi_controls("a\u200c\u0645") and "[ZWNJ]" in show_bidi_controls("\u200c\u0645")
    assert "[ZWJ]" in show_bidi_controls("\u0645\u200d")
    assert pretty_json({"m": "a\u200bb"}) == '{\n  "m": "a\\u200bb"\n}'


def test_an_ignores_until_is_written_in_the_timeline_as_the_state_line_writes_it():
    """The sixth trial: "until 2027-01-15 00:00:00 UTC" in the state line,
    "until 2027-01-15T00:00:00+00:00" in the timeline."""
    facts = formatting.event_facts({"mode": "until_date", "until": "2027-01-15T00:00:00+00:00", "via": "dashboard"})
    assert [value for _key, _words, value in facts] == ["until 2027-01-15 00:00:00 UTC", "dashboard"]
    assert formatting.event_facts({"until": "soon"})[0][2] == "soon"  # not a time: as stored


@pytest.mark.parametrize(("details", "said"), [
    ({"mode": "until_occurrences", "occurrences": 3, "via": "api"}, [("", "until 3 more occurrences"), ("via", "api")]),
    ({"mode": "until_occurrences", "occurrences": 1}, [("", "until 1 more occurrence")]),
    ({"mode": "forever"}, [("", "forever")]),
    # Not a pair the service writes: each fact as it is.
    ({"mode": "until_occurrences"}, [("", "until more occurrences")]),
])
def test_an_ignores_condition_is_one_fact_in_the_timeline(details, said):
    """A trial read "ignored until more occurrences; after more occurrences: 3"."""
    assert [(words, value) for _key, words, value in formatting.event_facts(details)] == said


def test_years_before_1000_are_written_in_four_digits_as_sql_and_rfc_3339_write_them():
    """A trial's chip read "created from = 2-01-01 00:00:00 UTC"."""
    moment = datetime(2, 1, 1, 5, tzinfo=timezone.utc)
    assert formatting.format_utc(moment) == "0002-01-01 05:00:00 UTC"
    assert bucket_label(moment, BucketSize.HOUR) == "0002-01-01T05"
    assert bucket_label(moment, BucketSize.DAY) == "0002-01-01"


def test_a_list_heading_writes_each_value_isolated_with_its_hidden_characters_marked():
    # A trial: the <title> of /jobs?error_code=... held a raw U+202E, which the
    # browser tab and history showed reversed.
    from app.text_marks import isolate_text
    from app.web.list_heading import FilterChip, ListHeading

    heading = ListHeading("Failed jobs", [FilterChip("code", "code.\u202eab", "/jobs"),
                                          FilterChip("type", "a\u200db", "/")])
    assert heading.text == "Failed jobs · code = \u2068code.[RLO]ab\u2069 · type = \u2068a[ZWJ]b\u2069"
    assert isolate_text("\U0001f468\u200d\U0001f469") == "\u2068\U0001f468\u200d\U0001f469\u2069"
