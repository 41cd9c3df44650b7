"""The support side in Chromium with JavaScript off: the job page reached
from a filtered list (back link, what to do, the entity, the history, the
requeue question), the exports (columns, only the matching items, file
names) and the audit log's filter and paging. Same fixtures as
test_browser.py: a live server filled by the reference worker on the demo
corpus; Chromium must be installed (the test fails, never skips)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def _no_script_context(browser):  # noqa: F811
    return browser.new_context(java_script_enabled=False, accept_downloads=True, viewport={"width": 1400, "height": 900})


def test_job_page_from_a_filtered_list_with_javascript_off(site, browser):  # noqa: F811
    context = _no_script_context(browser)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?error_code=code.unknown_icd10cm")
    expect(page.locator("table.jobs tr.job")).to_have_count(2)
    page.click("table.jobs tr.job a:has-text('doc-0006')")
    expect(page.locator("h1")).to_contain_text("doc-0006")
    # What to do, the entity, the history.
    expect(page.locator("section.what-to-do")).to_contain_text("The code is not in ICD-10-CM")
    expect(page.locator("table.errors").first).to_contain_text("Condition · E11.99X")
    expect(page.locator("section.history li.event-created")).to_contain_text("Created")
    expect(page.locator("section.history li.event-failed")).to_have_count(1)
    # Requeue asks first; cancelling changes nothing.
    page.click("a.inline-action:has-text('Requeue')")
    expect(page.locator("h1")).to_contain_text("Requeue the job for document doc-0006?")
    page.click("form.confirm a:has-text('Cancel')")
    expect(page.locator("dl.job-fields")).to_contain_text("Validation failed")  # statuses in words on pages
    page.click("a.inline-action:has-text('Requeue')")
    page.click("form.confirm button:has-text('Requeue the job')")
    expect(page.locator(".flash-success")).to_contain_text("Requeued the job for document doc-0006.")
    expect(page.locator("section.history li.event-requeued")).to_contain_text("by browser-admin")
    # The back link still returns to the filtered list.
    page.click("a.back")
    expect(page).to_have_url(re.compile(r"/jobs\?error_code=code\.unknown_icd10cm$"))
    expect(page.locator("table.jobs tr.job")).to_have_count(1)
    context.close()


def test_exports_name_their_files_apart_and_keep_the_matching_items(site, browser):  # noqa: F811
    context = _no_script_context(browser)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?error_code=code.unknown_icd10cm")
    files = {}
    # The list's export links carry its filter.
    for name, url in (("items", "/exports/job-errors.csv?error_code=code.unknown_icd10cm"),
                      ("jobs", "/exports/job-errors.csv?error_code=code.unknown_icd10cm&rows=jobs")):
        with page.expect_download() as info:
            page.click(f'a[href="{url}"]')
        files[name] = (info.value.suggested_filename, info.value.path().read_bytes().decode("utf-8"))
    # Named apart, and after what narrowed them (the code filter).
    assert re.fullmatch(r"job-errors-per-item-code-code.unknown_icd10cm-\d{8}T\d{6}Z\.csv", files["items"][0])
    assert re.fullmatch(r"job-errors-per-job-code-code.unknown_icd10cm-\d{8}T\d{6}Z\.csv", files["jobs"][0])
    rows = list(csv.DictReader(io.StringIO(files["items"][1].removeprefix("\ufeff"), newline="")))
    assert {r["code"] for r in rows} == {"code.unknown_icd10cm"}  # not every error of those jobs
    assert sorted(r["document_id"] for r in rows) == ["doc-0006", "doc-0011"]
    for row in rows:
        assert row["job_url"] == f"{site}/jobs/{row['job_id']}"
        assert row["job_type"] == "entity_extraction" and row["error_message"].startswith("Entity validation failed")
        assert row["entity_type"] == "Condition" and row["entity_code"]
    context.close()


def test_audit_log_filters_and_pages_with_javascript_off(app, site, browser):  # noqa: F811
    from app.services.access import record_audit_event

    with app.app_context():
        for n in range(120):
            record_audit_event("load-tester", "export.job_errors.csv", {"status": ["Failed"], "n": [str(n)]}, n)
    context = _no_script_context(browser)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/admin/audit")
    rows = page.locator("table.audit tr.audit-event")
    expect(rows).to_have_count(100)
    page.fill("input[name=actor]", "load-tester")
    page.click("form.audit-filters button:has-text('Filter')")
    expect(page).to_have_url(re.compile(r"/admin/audit\?actor=load-tester"))
    expect(rows).to_have_count(100)
    expect(rows.first).to_contain_text("n = 119")
    page.click("a[rel=next]")
    expect(rows).to_have_count(20)
    expect(rows.last).to_contain_text("n = 0")
    expect(page.locator("nav.pager")).to_contain_text("No older events.")
    context.close()


@pytest.mark.parametrize("width", [390, 768])
def test_support_pages_do_not_scroll_sideways(app, site, browser, width):  # noqa: F811
    from app.services.access import record_audit_event

    with app.app_context():
        record_audit_event("someone-with-a-rather-long-name", "export.job_errors.csv",
                           {"error_code": ["vendor." + "VeryLongRuleIdentifierWithoutBreaks" * 3]}, 3)
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?error_code=code.unknown_icd10cm")
    page.click("table.jobs tr.job a:has-text('doc-0011')")
    job_page = page.url
    confirm = page.locator("a.inline-action:has-text('Requeue')").get_attribute("href")
    for url in (job_page, f"{site}{confirm}", f"{site}/admin/audit"):
        page.goto(url)
        page.wait_for_load_state("load")
        sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], (url, sizes)
    context.close()
