"""The job list at a glance: the heading's filter chips, statuses in words,
"no status ticked" shown as every status, one line per job (short id with
the full one at hand, one error count, "failed 3 min ago" with the exact
UTC time). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.models.types import utcnow
from tests.integration.test_dashboard_filters import item, make_job


def _chips(html: str) -> list[tuple[str, str]]:
    """(text, removal link) of each chip of the heading."""
    found = re.findall(
        r'<li class="chip"><span class="chip-text" title="[^"]*">(.*?)</span><a class="chip-remove" href="([^"]*)"', html)
    return [(html_lib.unescape(re.sub(r"</?bdi>", "", text)), html_lib.unescape(link)) for text, link in found]


def test_the_heading_shows_each_filter_as_a_removable_chip(client, app):
    with app.app_context():
        make_job("doc-1", codes=("code.unknown_icd10cm",))
    html = client.get("/jobs?error_code=code.unknown_icd10cm&document_id=doc-1").get_data(as_text=True)
    assert "<h1>Failed jobs</h1>" in html
    assert _chips(html) == [
        ("code = code.unknown_icd10cm", "/jobs?document_id=doc-1"),
        ("document = doc-1", "/jobs?error_code=code.unknown_icd10cm"),
        # The default hides acknowledged jobs, and says so: its x shows them.
        ("acknowledged = hidden", "/jobs?error_code=code.unknown_icd10cm&document_id=doc-1&acknowledged=include"),
    ]
    assert ("<title>Failed jobs · code = \u2068code.unknown_icd10cm\u2069 · document = \u2068doc-1\u2069"
            " · acknowledged = \u2068hidden\u2069") in html
    assert 'aria-label="Remove the filter code = \u2068code.unknown_icd10cm\u2069"' in html
    # Each link removes its filter and keeps the other.
    for _text, link in _chips(html):
        assert client.get(link).status_code == 200
    html = client.get("/jobs").get_data(as_text=True)
    assert "<h1>Failed jobs</h1>" in html and _chips(html) == [("acknowledged = hidden", "/jobs?acknowledged=include")]
    html = client.get("/jobs?acknowledged=include").get_data(as_text=True)
    assert _chips(html) == [("acknowledged = included", "/jobs")]


def test_statuses_are_words_on_the_pages_and_canonical_in_the_api(client, app):
    with app.app_context():
        job_id = make_job("doc-1", codes=("a.b",))
    html = client.get("/jobs").get_data(as_text=True)
    assert '<span class="badge status-validation_failed">Validation failed</span>' in html
    assert '<input type="checkbox" name="status" value="Validation_Failed" checked> Validation failed</label>' in html
    assert "Validation_Failed</span>" not in html
    summary = client.get("/jobs/summary").get_data(as_text=True)
    assert '<span class="badge status-validation_failed">Validation failed</span>' in summary
    assert client.get(f"/api/v1/processing-jobs/{job_id}").get_json()["status"] == "Validation_Failed"
    html = client.get("/jobs?status=Validation_Failed").get_data(as_text=True)
    assert "<h1>Validation failed jobs</h1>" in html
    assert _chips(html) == [("status = Validation failed", "/jobs"),
                            ("acknowledged = hidden", "/jobs?status=Validation_Failed&acknowledged=include")]


def test_no_status_ticked_means_every_status_and_says_so(client, app):
    with app.app_context():
        make_job("doc-failed", codes=("a.b",))
        make_job("doc-done", "Completed")
    # What the filter form sends with no box ticked: its empty marker only.
    response = client.get("/jobs?status=&error_code=&limit=50")
    assert response.status_code == 302
    assert response.headers["Location"] == "/jobs?status=all&limit=50"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<h1>All jobs</h1>" in html
    assert ("status = any", "/jobs?limit=50") in _chips(html)
    assert "doc-done" in html and "doc-failed" in html
    assert "(none ticked: every status)" in html
    assert not re.search(r'name="status" value="\w+" checked', html)
    # With a box ticked, the marker is dropped.
    response = client.get("/jobs?status=&status=Completed")
    assert response.headers["Location"] == "/jobs?status=Completed"
    # Without the form (a bare link), the default stays the failures.
    html = client.get("/jobs").get_data(as_text=True)
    assert "<h1>Failed jobs</h1>" in html and "doc-done" not in html
    assert '<input type="hidden" name="status" value="">' in html


def test_one_line_per_job(client, app):
    with app.app_context():
        job_id = make_job("doc-1", details={"errors": [item("a"), item("b"), item("c", severity="warning")]},
                          message="Entity validation failed: 2 errors (a, b)")
        failed_at = utcnow() - timedelta(minutes=3, seconds=10)
        db.session.execute(sa.update(ProcessingJob).values(completed_at=failed_at))
        db.session.commit()
    html = client.get("/jobs").get_data(as_text=True)
    rows = re.findall(r'<tr class="job .*?</tr>', html, re.S)
    assert len(rows) == 1
    row = rows[0]
    assert "<details" not in row and "<form" not in row and "<button" not in row
    # The full id in one element that shows its first 8 characters (CSS) and
    # is selected whole by a click; its title says it too.
    assert f'<code class="job-id" title="Job id {job_id} (click to select it whole)">{job_id}</code>' in row
    assert '<td class="num errors" data-label="Errors">2 <span class="note">+1 warning</span></td>' in row
    stamp = re.search(r'<time datetime="([^"]+)" title="([^"]+)">failed 3 min ago'
                      r'<span class="exact-utc"> \(([^)]+)\)</span></time>', row)
    assert stamp, row
    assert stamp.group(1) == failed_at.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    # The UTC time as the title (hover) and, for touch screens, as text (CSS shows it there).
    assert stamp.group(2) == stamp.group(3) == failed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    # One link to the job, carrying the list to come back to (?back=).
    assert len(re.findall(rf'href="/jobs/{job_id}(?:\?back=[^"]*)?"', row)) == 1


def test_a_long_code_is_kept_whole_in_the_form(client, app):
    code = "vendor." + "VeryLongRuleIdentifierWithoutBreaks" * 3
    html = client.get(f"/jobs?error_code={code}").get_data(as_text=True)
    assert f'<input type="text" name="error_code" value="{code}"' in html
    with client.get("/static/css/app.css") as css:
        assert b"field-sizing: content" in css.get_data()


def test_the_summary_gives_the_chart_as_text_and_marks_choices_beyond_colour(client, app):
    with app.app_context():
        make_job("doc-1", codes=("code.unknown_icd10cm",), completed=utcnow())
    summary = client.get("/jobs/summary?error_code=code.unknown_icd10cm").get_data(as_text=True)
    table = re.search(r'<div class="visually-hidden"><table class="chart-data">.*?</table></div>', summary, re.S)
    assert table, summary
    assert re.search(r"<tr><td>\d{4}-\d{2}-\d{2} \d{2}:00 UTC</td><td>1</td></tr>", table.group(0))
    # The chosen status and code are marked for assistive technology and in
    # bold with a bar (app.css), not by a tint alone.
    assert summary.count('aria-current="true"') == 3  # the two failure statuses and the code


def test_the_filter_form_keeps_the_search(client):
    html = client.get("/jobs?q=Z99&status=all").get_data(as_text=True)
    form = re.search(r'<form class="filters".*?</form>', html, re.S).group(0)
    assert '<input type="hidden" name="q" value="Z99">' in form
