"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Sign in, filter by error code, expand a row, open a job, requeue it, export
CSV and open the downloaded file; then the same pages with JavaScript off
(the summary in its frame, a top code's link opening in the whole page).
Runs against a live server filled by the reference worker on the demo corpus.
Chromium must be installed (`.ci/run` installs it); a missing browser fails
the test rather than skipping it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from app.config import ROOT
from app.worker.client import WorkerApiClient
from app.worker.runner import run_worker
from tests.conftest import make_user
from tests.live_server import serve

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PASSWORD = "browser test password"
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


@pytest.fixture
def site(app, worker_token):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    make_user(app, "browser-admin", "admin", password=PASSWORD)
    with serve(app) as base_url:
        client = WorkerApiClient(base_url, retries=0, token=worker_token)
        try:
            run_worker(client, ROOT / "demo" / "corpus")
        finally:
            client.session.close()
        yield base_url


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _sign_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/jobs")
    expect(page).to_have_url(f"{base_url}/login?next=/jobs")
    page.fill("#username", "browser-admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base_url}/jobs")
    # The URL changes when the navigation commits, before the stylesheet
    # has loaded: a computed style read at once could be the unstyled one.
    page.wait_for_load_state("load")


def _shot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def test_operator_finds_understands_requeues_and_exports(site, browser, tmp_path):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    _sign_in(page, site)
    rows = page.locator("table.jobs tr.job")
    expect(rows).to_have_count(6)  # the six invalid documents of the corpus
    _shot(page, "jobs.png")

    # Filter by error code.
    page.fill("input[name=error_code]", "unit.not_ucum")
    page.click("button:has-text('Filter')")
    expect(page).to_have_url(re.compile(r"/jobs\?.*error_code=unit\.not_ucum"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("doc-0009")

    # One line per job; the errors are on the job page. Open the job and requeue it.
    expect(page.locator("details.error-details")).to_have_count(0)
    page.click("table.jobs tr.job a:has-text('doc-0009')")
    expect(page.locator("h1")).to_contain_text("doc-0009")
    expect(page.locator("details.error-details table.errors").first).to_contain_text("unit.not_ucum")
    _shot(page, "job-detail.png")
    page.click("a.inline-action:has-text('Requeue')")  # asks first
    page.click("form.confirm button:has-text('Requeue the job')")
    expect(page.locator(".flash-success")).to_contain_text("Requeued the job for document doc-0009.")
    expect(page.locator("dl.job-fields")).to_contain_text("Pending")

    # Export CSV of the remaining failures and read the downloaded file.
    page.goto(f"{site}/jobs")
    expect(rows).to_have_count(5)
    with page.expect_download() as download_info:
        page.click("span.exports a:has-text('CSV per job')")
    path = tmp_path / "export.csv"
    download_info.value.save_as(path)
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")
    records = list(csv.DictReader(io.StringIO(text[1:], newline="")))
    assert sorted(r["document_id"] for r in records) == ["doc-0006", "doc-0007", "doc-0008", "doc-0010", "doc-0011"]
    assert all(r["status"] == "Validation_Failed" for r in records)
    # The same jobs as NDJSON, one line per job, from the list's own link.
    with page.expect_download() as download_info:
        page.click("span.exports a:has-text('NDJSON per job')")
    path = tmp_path / "export.ndjson"
    download_info.value.save_as(path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["document_id"] for line in lines) == sorted(r["document_id"] for r in records)
    assert [line["job_id"] for line in lines] == [r["job_id"] for r in records]
    context.close()


def test_pages_work_with_javascript_off(site, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    _sign_in(page, site)
    expect(page.locator("table.jobs tr.job")).to_have_count(6)

    # The summary comes in a frame (its own request): counts, chart, top codes.
    summary = page.frame_locator("iframe.summary-frame")
    validation_failed = summary.locator(".status-counts li:has(.badge:text-is('Validation failed')) .count")
    expect(validation_failed).to_have_text("6")
    expect(summary.locator("svg.chart")).to_be_visible()
    code_links = summary.locator("table.codes a")
    expect(code_links.first).to_be_visible()
    code = code_links.first.inner_text()
    # A top code's link opens the filtered list in the whole page, not in the frame.
    code_links.first.click()
    expect(page).to_have_url(re.compile(rf"/jobs\?.*error_code={re.escape(code)}"))
    expect(page.locator("form.filters input[name=error_code]")).to_have_value(code)
    expect(page.locator("iframe.summary-frame")).to_have_count(1)
    expect(summary.locator("table.codes tr.selected code")).to_have_text(code)
    page.click("table.jobs tr.job a >> nth=0")
    expect(page.locator("h1")).to_contain_text("Job for document")
    details = page.locator("details.error-details").first
    expect(details.locator("table.errors")).to_be_visible()  # open on the job page
    expect(page.locator("section.history, .timeline, dl.job-fields").first).to_be_visible()
    context.close()


def test_no_script_runs_and_the_policy_holds(site, browser):
    """Hostile worker text stays text in a real browser, under the CSP."""
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _sign_in(page, site)
    page.goto(f"{site}/jobs?q=%3Cscript%3E")
    page.goto(f"{site}/jobs")
    assert dialogs == []
    context.close()


@pytest.mark.parametrize("width", [1440, 1040, 1010, 900, 420])
def test_the_summary_fits_its_frame_even_with_long_codes(app, site, browser, width):
    """No sideways scrolling in the frame, and nothing cut off below it, at
    any width (the frame's height follows the page's breakpoint, the cards
    theirs), with the longest code the contract allows."""
    from app.registry import get_failure_recorder
    from app.services.processing_jobs.lifecycle import create_job

    with app.app_context():
        items = [{"code": "vendor." + "VeryLongRuleIdentifierWithoutBreaks" * 3, "severity": "error",
                  "message": "m", "pointer": "/a"}]
        for n in range(5):  # the commonest code, so it heads the table
            job = create_job(f"doc-long-code-{n}")
            get_failure_recorder().record_validation_failure(job.id, "long code", {"errors": items})
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    frame = page.frame_locator("iframe.summary-frame")
    expect(frame.locator("table.codes")).to_contain_text("VeryLongRuleIdentifier")
    # The demo corpus's eleven codes and this one: the ten commonest show, the rest are a link.
    expect(frame.locator("h2 a.more-codes")).to_have_text("12 codes in all")
    expect(frame.locator("h2 a.more-codes")).to_have_attribute("href", "/groups?state=all")
    # The text can be there before the stylesheet applies (a busy machine):
    # measure after the frame's load event, which waits for the stylesheet.
    page.frames[1].wait_for_load_state("load")
    sizes = page.frames[1].evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " document.documentElement.scrollHeight, document.documentElement.clientHeight]"
    )
    scroll_width, client_width, scroll_height, client_height = sizes
    assert scroll_width <= client_width, sizes
    assert scroll_height <= client_height, sizes
    context.close()
