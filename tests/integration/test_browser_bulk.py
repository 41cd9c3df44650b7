"""The job list's bulk actions in Chromium, with JavaScript on and off: the
"all matching the filter" question is a page of its own (post, redirect
303, get), so a reload re-reads it and never freezes a second selection,
and its back link returns to the filtered list. Same fixtures as
test_browser.py: a live server filled by the reference worker on the demo
corpus; Chromium must be installed (the test fails, never skips)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import BulkAction
from tests.integration.test_browser import _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def _frozen(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(BulkAction))


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_a_reload_of_the_filter_wide_question_freezes_nothing_twice(app, site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    listing = f"{site}/jobs?error_code=code.unknown_icd10cm"
    page.goto(listing)
    page.click("form.bulk-actions button:has-text('Acknowledge all…')")
    expect(page.locator("h1")).to_have_text("Acknowledge 2 jobs?")
    expect(page).to_have_url(re.compile(rf"^{re.escape(site)}/bulk-actions/[0-9a-f-]{{36}}$"))
    question = page.url
    assert _frozen(app) == 1
    # A reload is a GET of the same page: no "resend the form?", no second selection.
    page.reload()
    expect(page.locator("h1")).to_have_text("Acknowledge 2 jobs?")
    assert page.url == question and _frozen(app) == 1
    # Cancel returns to the list with its filter.
    page.click("section.confirm a:has-text('Cancel')")
    expect(page.locator("table.jobs tr.job")).to_have_count(2)
    assert parse_qs(urlsplit(page.url).query)["error_code"] == ["code.unknown_icd10cm"]
    # Saying yes runs it once; a reload of the progress page changes nothing more.
    page.goto(question)
    page.click("section.confirm button[type=submit]")
    expect(page.locator(".flash-success")).to_contain_text("Acknowledged 2 jobs")
    page.reload()
    expect(page.locator(".flash-success")).to_have_count(0)
    assert _frozen(app) == 1
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_the_selected_jobs_question_acts_once_and_lands_on_a_get(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?error_code=code.unknown_icd10cm")
    page.locator("tr.job input[name=job_id]").first.check()
    page.click("button[value='acknowledge:selected']")
    expect(page.locator("h1")).to_have_text("Acknowledge 1 job?")
    page.click("section.confirm button[type=submit]")
    expect(page.locator(".flash-success")).to_contain_text("Acknowledged 1 job.")
    # Redirected (303) to the list: a reload is a GET, the flash is gone, nothing is done twice.
    assert urlsplit(page.url).path == "/jobs"
    page.reload()
    expect(page.locator(".flash-success")).to_have_count(0)
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_on_a_phone_the_selected_jobs_buttons_stay_in_sight_down_the_list(site, browser, javascript):  # noqa: F811
    # A trial: the bar sat above the list only, so a job ticked far down a phone's list meant scrolling back up.
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?status=all")
    last = page.locator("tr.job input[name=job_id]").last
    last.scroll_into_view_if_needed()
    last.check()
    button = page.locator("button[value='acknowledge:selected']")
    box, height = button.bounding_box(), page.evaluate("() => window.innerHeight")
    assert page.evaluate("() => window.scrollY") > height  # the list really was scrolled down
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, box
    # The bar covers no row it is scrolled over: the ticked box is not under it.
    ticked = last.bounding_box()
    assert ticked is not None and ticked["y"] >= box["y"] + box["height"], (ticked, box)
    button.click()
    expect(page.locator("h1")).to_have_text("Acknowledge 1 job?")
    context.close()


@pytest.mark.parametrize("width", [320, 1400])
def test_focus_moving_up_the_list_is_never_under_the_sticky_bar(site, browser, width):  # noqa: F811
    # A re-check: Shift+Tab up the list put "Acknowledge all…" (1,400 px) and, at 320 px where the bar takes
    # two lines, the row boxes under the bar (WCAG 2.4.11).
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 640 if width < 400 else 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?status=all")
    boxes = page.locator("tr.job input[name=job_id]")
    boxes.nth(min(15, boxes.count() - 1)).focus()
    bar = page.locator("form.bulk-selected")
    hidden = []
    for _ in range(40):
        page.keyboard.press("Shift+Tab")
        name = page.evaluate("() => document.activeElement.textContent.trim() || document.activeElement.name")
        focused = page.locator(":focus").bounding_box()
        bottom = bar.bounding_box()["y"] + bar.bounding_box()["height"]
        in_bar = page.evaluate("() => !!document.activeElement.closest('.bulk-selected')")
        if focused is not None and not in_bar and focused["y"] < bottom - 0.5 and page.evaluate("() => scrollY") > 0:
            hidden.append((name, focused["y"], bottom))
        if name == "Acknowledge":  # the bar's own button: the top of the list is reached
            break
    assert name == "Acknowledge" and hidden == [], hidden
    context.close()
