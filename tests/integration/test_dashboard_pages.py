"""Understanding one failure: the list row, its expanded details, the job
page (history, entities), hostile text escaped everywhere, large details cut."""

from __future__ import annotations

import html as html_lib
import re
import uuid
from urllib.parse import parse_qsl, quote

import pytest
import sqlalchemy as sa

from app.dashboard.failure_details import pretty_json
from app.dashboard.formatting import file_size
from app.extensions import db
from app.models import ProcessingJob
from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import complete_job, create_job, requeue_job
from tests.integration.test_dashboard_filters import T0, item

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
TEMPLATE = "{{ 7*7 }}"
HOSTILE = f"{SCRIPT} {BREAKOUT} {TEMPLATE}"
#: How Jinja's autoescape writes HOSTILE (quotes as &#34;).
ESCAPED = html_lib.escape(HOSTILE, quote=True).replace("&quot;", "&#34;").replace("&#x27;", "&#39;")


def assert_inert(html: str) -> None:
    """No hostile markup survived, and the template text was shown, not evaluated."""
    assert "<script" not in html
    assert "<img" not in html
    assert "onerror=alert(1)>" not in html
    assert TEMPLATE in html


@pytest.fixture
def hostile_job(app) -> str:
    """A failed job whose every worker-supplied text is hostile, failed twice."""
    with app.app_context():
        job = create_job(f"doc-{HOSTILE}")
        recorder = get_failure_recorder()
        recorder.record_validation_failure(job.id, f"first {HOSTILE}", {"errors": [item("first.code")]})
        requeue_job(job.id)
        details = {
            "errors": [
                item("code.ok", message=f"bad {HOSTILE}", entity={"type": HOSTILE, "index": 0}),
                item(f"code.{HOSTILE}", message="x"),
            ]
        }
        recorder.record_validation_failure(job.id, f"second {HOSTILE}", details)
        db.session.execute(
            sa.update(ProcessingJob).where(ProcessingJob.id == job.id).values(acknowledged_by=HOSTILE)
        )
        db.session.commit()
        return str(job.id)


def test_hostile_text_is_escaped_in_the_list(client, hostile_job):
    html = client.get("/jobs").get_data(as_text=True)
    assert_inert(html)
    assert f'<a href="/jobs/{hostile_job}?back=%2Fjobs"><bdi>doc-{ESCAPED}</bdi></a>' in html  # document
    # cell and title (the title bidi-isolated by U+2068 ... U+2069)
    assert f'<td class="message" title="\u2068second {ESCAPED}\u2069"><bdi>second {ESCAPED}</bdi></td>' in html
    # The summary (framed by the list): the top-codes table and its link (the
    # code URL-encoded in the query).
    summary = client.get("/jobs/summary").get_data(as_text=True)
    assert_inert(summary)
    # The code escaped in the link's title (the full code) and in the cell.
    assert f'target="_top" title="\u2068code.{ESCAPED}\u2069"><code><bdi>code.{ESCAPED}</bdi></code></a>' in summary
    assert "error_code=code.%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in summary


def test_hostile_text_is_escaped_in_the_job_page(client, hostile_job):
    html = client.get(f"/jobs/{hostile_job}").get_data(as_text=True)
    assert_inert(html)
    assert f"<title>Job \u2068doc-{ESCAPED}\u2069 · Clinical Intelligence</title>" in html  # page title
    assert f"<h1>Job for document <code><bdi>doc-{ESCAPED}</bdi></code></h1>" in html
    assert f'<dd class="message"><bdi>second {ESCAPED}</bdi></dd>' in html
    assert f'<p class="message"><bdi>first {ESCAPED}</bdi></p>' in html  # history
    # The errors table: the message column, then the item's failure group
    # (its title holds the code, escaped too).
    assert re.search(rf'<td class="item-message"><bdi>bad {re.escape(ESCAPED)}</bdi><div class="item-group">'
                     rf'Failure group: <a href="/groups/\d+" title="[^"]*{re.escape(ESCAPED)}[^"]*">', html)
    assert f'<td class="code"><code><bdi>code.<wbr><span class="anywhere">{ESCAPED}</span></bdi></code></td>' in html  # code column (a long part may break anywhere)
    assert f'<td class="entity" data-label="Entity"><bdi>{ESCAPED} #0</bdi></td>' in html  # entity column
    assert ESCAPED.replace("&#34;", "\\&#34;") in html  # the pretty JSON (a JSON string inside <pre>)


def test_hostile_query_values_are_escaped(client, hostile_job):
    # Values that find the hostile job: an empty list has no summary frame to check.
    query = f"q={quote(HOSTILE)}&error_code={quote('code.' + HOSTILE)}"
    html = client.get(f"/jobs?{query}").get_data(as_text=True)
    assert_inert(html)
    assert (f"<title>Failed jobs · search = \u2068{ESCAPED}\u2069 · code = \u2068code.{ESCAPED}\u2069"
            " · acknowledged = \u2068hidden\u2069 · Clinical Intelligence</title>") in html
    assert f'name="q" value="{ESCAPED}"' in html  # the header's search box and the filter form
    assert (f'<li class="chip"><span class="chip-text" title="search = \u2068{ESCAPED}\u2069">'
            f'search = <bdi>{ESCAPED}</bdi></span>') in html
    assert f'name="error_code" value="code.{ESCAPED}"' in html
    frame = re.search(r'<iframe class="summary-frame" src="([^"]*)"', html).group(1)
    path, _, frame_query = html_lib.unescape(frame).partition("?")
    assert path == "/jobs/summary"
    assert parse_qsl(frame_query) == [("q", HOSTILE), ("error_code", "code." + HOSTILE)]
    summary = client.get(html_lib.unescape(frame))
    assert summary.status_code == 200
    assert "<script" not in summary.get_data(as_text=True) and "<img" not in summary.get_data(as_text=True)


def test_hostile_entities_and_acknowledgement_are_escaped(client, app, hostile_job):
    with app.app_context():
        job = create_job("doc-entities")
        complete_job(job.id, [{
            "entity_type": "Condition", "text": HOSTILE, "code": f"E{HOSTILE}"[:64],
            "code_system": f"urn:{HOSTILE}", "confidence": 0.5, "span": {"start": 0, "end": 3},
        }])
        db.session.execute(
            sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(hostile_job)).values(acknowledged_at=T0)
        )
        db.session.commit()
        entities_job = str(job.id)
    html = client.get(f"/jobs/{entities_job}").get_data(as_text=True)
    assert_inert(html)
    assert f'<td class="entity-text" title="\u2068{ESCAPED}\u2069"><bdi>{ESCAPED}</bdi></td>' in html
    assert f'title="\u2068urn:{ESCAPED}\u2069"><bdi>urn:{ESCAPED}</bdi></span>' in html
    html = client.get(f"/jobs/{hostile_job}").get_data(as_text=True)
    assert_inert(html)
    assert f"by <bdi>{ESCAPED}</bdi></dd>" in html
    html = client.get("/jobs?acknowledged=only").get_data(as_text=True)
    assert_inert(html)
    assert f"by {ESCAPED}" in html  # the badge's title attribute


#: A right-to-left override: shown raw it makes "MRN-1234" + "8765" and
#: reorders whatever follows it in the same run of text.
RLO_TEXT = "MRN-1234\u202e5678"


def assert_isolated(html: str, value: str) -> None:
    """Every occurrence of ``value`` is inside ``<bdi>``, between U+2068 and
    U+2069 (title, aria-label, flash text), or in a form field's value; the
    value is on the page, as sent or with its U+202E shown as a mark
    (``[RLO]``: messages, document ids, titles, codes)."""
    start = html.find(value)
    marked = r"(?:<span class=\"bidi-control\"[^>]*>)?\[RLO\](?:</span>)?".join(
        re.escape(part) for part in value.split("\u202e"))
    assert start != -1 or re.search(marked, html), value
    while start != -1:
        before = html[:start]
        in_bdi = before.rfind("<bdi>") > before.rfind("</bdi>")
        in_isolate = before.rfind("\u2068") > before.rfind("\u2069")
        in_field = before[before.rfind("<"):].startswith("<input")
        assert in_bdi or in_isolate or in_field, html[max(0, start - 120):start + 40]
        start = html.find(value, start + 1)


def test_worker_text_is_bidi_isolated_on_every_page(client, app):
    with app.app_context():
        job = create_job("doc-rlo")
        # An id stored before format characters were refused in one (the
        # pages must still isolate it).
        db.session.execute(sa.update(ProcessingJob).where(ProcessingJob.id == job.id).values(document_id=RLO_TEXT))
        db.session.commit()
        details = {"errors": [item(f"code.{RLO_TEXT}", message=RLO_TEXT, pointer=f"/{RLO_TEXT}",
                                   entity={"type": RLO_TEXT, "index": 0})]}
        get_failure_recorder().record_validation_failure(job.id, RLO_TEXT, details)
        done = create_job("doc-entities")
        complete_job(done.id, [{
            "entity_type": "Condition", "text": RLO_TEXT, "code": "E11\u202e9",
            "code_system": f"urn:{RLO_TEXT}", "confidence": 0.5, "span": {"start": 0, "end": 3},
        }])
        job_id, done_id = str(job.id), str(done.id)
    pages = ["/jobs", f"/jobs?q={quote(RLO_TEXT)}", f"/jobs/{job_id}", "/jobs/summary"]
    for path in pages:
        html = client.get(path).get_data(as_text=True)
        assert_isolated(html, RLO_TEXT)
    html = client.get(f"/jobs/{done_id}").get_data(as_text=True)
    assert_isolated(html, RLO_TEXT)
    assert_isolated(html, "E11\u202e9")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/jobs").get_data(as_text=True)).group(1)
    response = client.post(f"/jobs/{job_id}/acknowledge", data={"csrf_token": token})
    assert_isolated(client.get(response.headers["Location"]).get_data(as_text=True), RLO_TEXT)  # the flash
    form = {"csrf_token": token, "op": "requeue:filter", "q": RLO_TEXT, "acknowledged": "include"}
    question = client.post("/jobs/bulk", data=form)
    client.post(question.headers["Location"] + "/run", data={"csrf_token": token})
    html = client.get("/admin/audit").get_data(as_text=True)
    assert_isolated(html, RLO_TEXT)  # the filter's chips


def test_error_pages_escape_what_they_quote(client):
    response = client.get(f"/jobs?status={SCRIPT}")
    assert response.status_code == 400
    assert "<script" not in response.get_data(as_text=True)
    response = client.get(f"/jobs/{SCRIPT}")
    assert response.status_code == 404
    assert "<script" not in response.get_data(as_text=True)


def test_long_messages_are_cut_with_a_marker_and_kept_whole_in_the_title(client, app):
    message = "word " * 80  # 400 characters
    with app.app_context():
        job = create_job("doc-long")
        get_failure_recorder().record_failure(job.id, message)
    html = client.get("/jobs").get_data(as_text=True)
    cell = re.search(r'<td class="message" title="\u2068([^"]*)\u2069"><bdi>([^<]*)</bdi></td>', html)
    assert cell.group(1) == message.strip()
    assert len(cell.group(2)) == 160 and cell.group(2).endswith("…")


def test_error_count_says_how_many_were_dropped(client, app):
    with app.app_context():
        job = create_job("doc-many")
        envelope = {"schema_version": 1, "errors": [item(f"x.{n}") for n in range(3)], "error_count": 250,
                    "truncated": True}
        get_failure_recorder().record_validation_failure(job.id, "250 errors", envelope)
        job_id = str(job.id)
        plain = create_job("doc-two")
        get_failure_recorder().record_validation_failure(plain.id, "2 errors", {"errors": [item("a"), item("b")]})
    html = client.get("/jobs").get_data(as_text=True)
    # One count a row: the 247 items the envelope did not keep count as errors.
    assert '<td class="num errors" data-label="Errors">250</td>' in html
    assert '<td class="num errors" data-label="Errors">2</td>' in html
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Error details (250 errors; 247 not kept)" in html
    assert "+247 more: the worker reported 250 errors; the first 3 were kept." in html


def test_the_job_page_details_show_every_column_and_sorted_json(client, app, backend):
    entity = {"type": "Observation", "index": 3, "page": 2, "start": 10, "end": 25}
    details = {"errors": [item("unit.not_ucum", pointer="/entities/3/value/unit", severity="warning",
                               entity=entity, rule="ucum", ctx={"zeta": 1, "alpha": True})]}
    with app.app_context():
        job = create_job("doc-one")
        get_failure_recorder().record_validation_failure(job.id, "1 error", details)
        job_id = str(job.id)
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert (
        '<tr class="severity-warning">\n        <td class="severity"><bdi>warning</bdi></td>'
        '<td class="code"><code><bdi>unit.<wbr>not_ucum</bdi></code></td>\n'
        '        <td class="pointer" data-label="Pointer"><code><bdi>/<wbr>entities/<wbr>3/<wbr>value/<wbr>unit</bdi></code></td>'
        '<td class="item-message"><bdi>unit.not_ucum failed</bdi></td>'
        '<td class="entity" data-label="Entity"><bdi>Observation #3 · p. 2 · 10–25</bdi></td>'
    ) in re.sub(r'<div class="item-group">.*?</div>', "", html)  # the item's group link: test_job_page.py
    pretty = re.search(r'<details class="raw-json">.*?<pre><code>(.*?)</code></pre>', html, re.S).group(1)
    # Sorted keys at every level, the same text on both backends.
    assert pretty.index("alpha") < pretty.index("zeta")
    assert html_lib.unescape(pretty).startswith('{\n  "error_count": 1,\n  "errors": [\n    {\n      "code"')


def test_large_details_are_cut_with_a_link_to_the_full_json(client, app):
    with app.app_context():
        job = create_job("doc-big")
        details = {"lines": [f"line {n:06d}" for n in range(20_000)]}
        get_failure_recorder().record_failure(job.id, "huge", details)
        job_id = str(job.id)
    total = file_size(len(pretty_json(details).encode()))
    assert total == "371 KiB"
    for path in (f"/jobs/{job_id}",):
        html = client.get(path).get_data(as_text=True)
        pretty = re.search(r"<pre><code>(.*?)</code></pre>", html, re.S).group(1)
        assert len(html_lib.unescape(pretty).encode()) <= 64 * 1024 + len("\n…".encode())
        assert pretty.endswith("\n…")
        assert f"JSON (first 64 KiB of {total})</summary>" in html
        assert f'<a href="/jobs/{job_id}/job.json">Full JSON</a>' in html
    full = client.get(f"/jobs/{job_id}/job.json").get_json()
    assert len(full["error_details"]["lines"]) == 20_000


def test_job_page_shows_the_failure_history_oldest_first(client, app):
    with app.app_context():
        job = create_job("doc-history")
        recorder = get_failure_recorder()
        recorder.record_validation_failure(job.id, "first failure", {"errors": [item("x.first")]})
        requeue_job(job.id)
        recorder.record_failure(job.id, "second failure")
        requeue_job(job.id)
        recorder.record_validation_failure(job.id, "third failure", {"errors": [item("x.third")]})
        job_id = str(job.id)
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "History <span class=\"muted\">(oldest first; 3 failures)</span>" in html
    timeline = re.search(r'<ol class="timeline">.*?</ol>', html, re.S).group(0)
    messages = re.findall(r'<p class="message"><bdi>([^<]*)</bdi></p>', timeline)
    assert messages == ["first failure", "second failure", "third failure"]
    statuses = re.findall(r'<span class="badge status-\w+">([\w ]+)</span>', timeline)
    assert statuses == ["Validation failed", "Failed", "Validation failed"]  # in words
    times = re.findall(r'<time datetime="([^"]+)">', timeline)
    assert times == sorted(times) and len(times) == 3 + 1  # and "Created"
    assert "<code><bdi>x.<wbr>first</bdi></code>" in timeline and "<code><bdi>x.<wbr>third</bdi></code>" in timeline
    # The current failure is shown open above the history.
    assert '<details class="error-details" open>' in html.split('<ol class="timeline">')[0]


def test_job_page_shows_extracted_entities(client, app):
    entities = [
        {"entity_type": "Condition", "text": "Type 2 diabetes mellitus", "code": "E11.9",
         "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.97,
         "span": {"page": 1, "start": 412, "end": 458}},
        {"entity_type": "Observation", "text": "HbA1c 7.8 %", "code": "4548-4",
         "code_system": "http://loinc.org", "confidence": 0.874, "span": {"start": 5, "end": 16}},
        {"entity_type": "Procedure", "text": "unnamed", "confidence": 0.5, "span": {"start": 0, "end": 7}},
    ]
    with app.app_context():
        job = create_job("doc-done")
        complete_job(job.id, entities)
        job_id = str(job.id)
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Extracted entities <span class=\"muted\">(3)</span>" in html
    rows = re.findall(r"<tr>\s*(<td.*?)\s*</tr>", re.search(r'<table class="entities">.*?</table>', html, re.S).group(0),
                      re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    assert cells[0] == [
        "0", "Condition", "<bdi>Type 2 diabetes mellitus</bdi>",
        '<code><bdi>E11.9</bdi></code> <span class="code-system" title="\u2068http://hl7.org/fhir/sid/icd-10-cm\u2069">'
        "<bdi>ICD-10-CM</bdi></span>",
        "97 %", "p. 1 · 412–458",
    ]
    assert cells[1][3:] == [
        '<code><bdi>4548-4</bdi></code> <span class="code-system" title="\u2068http://loinc.org\u2069"><bdi>LOINC</bdi></span>',
        "87 %", "5–16",
    ]
    assert cells[2][3] == "—"
    assert "History <span class=\"muted\">(oldest first; 0 failures)</span>" in html
    assert re.findall(r"<strong class=\"kind\">([^<]+)</strong>", html) == ["Created", "Completed"]


def test_the_job_page_offers_the_actions_and_the_list_its_selection(client, app):
    """Per-row buttons went (one line per job): the list offers a box for
    the selection bar, on failures only; the job page has the buttons."""
    with app.app_context():
        job = create_job("doc-actions")
        get_failure_recorder().record_failure(job.id, "crashed")
        job_id = str(job.id)
        done = create_job("doc-done")
        complete_job(done.id)
        done_id = str(done.id)
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'href="/jobs/{job_id}/requeue?next=' in html  # asks first
    assert f'action="/jobs/{job_id}/acknowledge"' in html
    html = client.get("/jobs?status=all").get_data(as_text=True)
    assert f'action="/jobs/{job_id}/' not in html
    assert 'class="inline-action"' not in html
    assert f'<input type="checkbox" name="job_id" value="{job_id}" form="bulk-form"' in html
    assert f'value="{done_id}"' not in html  # a completed job gets no box
    assert '<button type="submit" name="op" value="requeue:selected">Requeue</button>' in html


def test_pages_need_no_javascript_and_no_cdn(client, hostile_job):
    for path in ("/jobs", f"/jobs/{hostile_job}", "/jobs?status=all&time_field=completed", "/jobs/summary"):
        html = client.get(path).get_data(as_text=True)
        assert "<script" not in html
        assert not re.search(r'(src|href)="(https?:)?//', html)
        assert re.search(r'<link rel="stylesheet" href="/static/css/app\.css">', html)


def test_the_error_count_says_how_many_are_warnings_and_missing_entities_show_a_dash(client, app):
    """A worker's message counts errors only ("2 errors"); so does the
    Errors column, and the warnings are counted apart, in words."""
    with app.app_context():
        job = create_job("doc-warn")
        items = [item("a"), item("b"), item("c", severity="warning")]
        get_failure_recorder().record_validation_failure(job.id, "2 errors", {"errors": items})
        job_id = str(job.id)
    html = client.get("/jobs").get_data(as_text=True)
    # The count agrees with the message ("2 errors"); the warning is apart.
    assert '<td class="num errors" data-label="Errors">2 <span class="note">+1 warning</span></td>' in html
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Error details (2 errors, 1 warning)</summary>" in html
    # No item names an entity: the Entity cells say so instead of staying blank.
    table = re.search(r'<table class="errors">.*?</table>', html, re.S).group(0)
    assert table.count('<td class="entity" data-label="Entity">—</td>') == 3


@pytest.mark.parametrize(
    ("query", "offered"),
    [("", True), ("?status=Failed&document_id=doc-1", True), ("?error_code=code.x", False),
     ("?q=timeout", True), ("?status=all&group=1", False)],
)
def test_the_entities_csv_is_offered_only_when_the_filter_can_match_a_completed_job(client, query, offered):
    # The entities export reads completed jobs whatever the statuses ticked;
    # a filter on current failures (code, group) matches none of them. The
    # search may: it reads the failures a job had before a requeue too.
    html = client.get("/jobs" + query).get_data(as_text=True)
    assert ("/exports/entities.csv" in html) is offered


def test_the_exact_filters_and_the_search_say_how_they_match(client):
    html = client.get("/jobs").get_data(as_text=True)
    assert ('Error code and document match the whole value, "Document starts with" its beginning; '
            "use the search box for part of an id or code.") in html_lib.unescape(html)
    assert html.count('aria-describedby="exact-match-hint"') == 2
    assert "Finds jobs by id, document, or the text of any failure they had, and groups by title." in html
