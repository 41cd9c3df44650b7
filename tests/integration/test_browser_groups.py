"""The failure-group pages in Debian's Chromium with JavaScript off: sign in
lands on /groups; a group's page, its resolve form and its "requeue all"
with confirmation and progress work with plain HTML forms."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import PASSWORD, _shot, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def _sign_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("#username", "browser-admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base_url}/groups")  # the landing page


def test_groups_pages_and_actions_work_without_javascript(site, browser):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    _sign_in(page, site)
    rows = page.locator("table.groups tr.group")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 6  # the corpus's six invalid documents make at least six distinct problems
    spark = rows.first.locator("svg.sparkline").first
    expect(spark).to_be_visible()
    assert "Occurrences per hour, last 24 hours" in spark.locator("title").text_content()
    _shot(page, "groups.png")

    # Filter by code with the form, then open the group.
    page.fill("form.group-filters input[name=code]", "unit.not_ucum")
    page.click("form.group-filters button:has-text('Filter')")
    expect(page).to_have_url(re.compile(r"/groups\?.*code=unit\.not_ucum"))
    expect(rows).to_have_count(2)  # doc-0009: a lab value's unit and a dose's unit
    rows.filter(has_text="/value/unit").locator("td.title a").click()
    expect(page.locator("h1")).to_contain_text("unit.not_ucum")
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("table.errors")).to_contain_text("unit.not_ucum")
    _shot(page, "group-detail.png")
    group_url = page.url

    # Resolve in a version of the worker failing now (prefilled): the state and the timeline say so.
    expect(page.locator("input[name=in_worker]")).to_have_value("reference-worker")
    page.fill("input[name=in_version]", "2.0.0")
    page.click("button:has-text('Resolve')")
    expect(page.locator(".flash-success")).to_contain_text(
        re.compile(r"Resolved group \d+ in version 2\.0\.0 of reference-worker\."))
    expect(page.locator("dl.group-summary .badge.state-resolved")).to_be_visible()
    expect(page.locator("ol.group-events")).to_contain_text("resolved")

    # Requeue every job failing on it: confirmation with the exact count, then progress.
    page.click("button:has-text('Requeue all')")
    expect(page.locator("h1")).to_have_text("Requeue 1 job?")
    page.click("button:has-text('Yes, requeue 1 job')")
    expect(page.locator(".flash-success")).to_contain_text("Requeued 1 job.")
    expect(page.locator("dd.changed")).to_have_text("1")
    page.goto(group_url)
    expect(page.locator("dd.jobs")).to_contain_text("0 failing now")
    context.close()
