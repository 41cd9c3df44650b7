"""Small things a new operator met trying the demo in Chromium (the trial
of #14), each fixed and kept fixed here: who is signed in on a phone, a
"Signed out" message, the skip link's words, the "Filters (N active)"
count, placeholders that fit their boxes, and the job page's two action
buttons side by side. Same fixtures as test_browser.py (Chromium must be
installed: the test fails, never skips)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}

#: True when the input's placeholder fits inside its text box (not cut off).
PLACEHOLDER_FITS = """e => {
    const style = getComputedStyle(e), context = document.createElement('canvas').getContext('2d');
    context.font = style.font;
    const room = e.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return context.measureText(e.placeholder).width <= room;
}"""


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_a_phone_says_who_is_signed_in_and_signing_out_says_so(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    who = page.locator("header .who")
    expect(who).to_be_visible()
    expect(who).to_contain_text("browser-admin")
    box = who.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    page.locator("header form.signout button").click()
    expect(page).to_have_url(f"{site}/login")
    expect(page.locator(".flash")).to_have_text("Signed out.")
    page.goto(f"{site}/login")  # said once, not on every later visit
    expect(page.locator(".flash")).to_have_count(0)
    context.close()


def test_skip_link_and_filter_count_say_what_they_mean(site, browser):  # noqa: F811
    context = browser.new_context(**PHONE)
    page = context.new_page()
    _sign_in(page, site)
    expect(page.locator("a.skip-link[href='#content']")).to_have_text("Skip to the content")
    # The count is the chips shown (the second trial: "2 active" beside 3
    # chips), hidden acknowledged jobs included, the default too.
    for query, count in (("status=all", 2), ("status=all&error_code=code.unknown_icd10cm", 3),
                         ("status=Failed&error_code=code.unknown_icd10cm", 3),
                         ("q=doc&status=all&acknowledged=include", 3), ("", 1), ("acknowledged=include", 1)):
        page.goto(f"{site}/jobs?{query}")
        expect(page.locator("ul.chips li.chip")).to_have_count(count)
        expect(page.locator("details.filter-panel > summary")).to_have_text(
            f"Filters ({count} active)" if count else "Filters")
    context.close()


@pytest.mark.parametrize("width", [390, 1400])
def test_placeholders_fit_their_boxes(site, browser, width):  # noqa: F811
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/admin/audit")
    for name in ("actor", "action", "from", "to"):
        field = page.locator(f"form.audit-filters input[name={name}]")
        if field.get_attribute("placeholder"):
            assert field.evaluate(PLACEHOLDER_FITS), name
    page.goto(f"{site}/groups")
    page.locator("table.groups td.title a").first.click()
    assert page.locator("input[name=in_version]").evaluate(PLACEHOLDER_FITS)
    context.close()


def test_the_job_pages_requeue_and_acknowledge_sit_side_by_side_the_same_size(site, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.locator("tr.job td.document a").first.click()
    requeue = page.locator(".job-actions a.requeue").bounding_box()
    acknowledge = page.locator(".job-actions button[type=submit]").bounding_box()
    assert abs(requeue["y"] - acknowledge["y"]) <= 1 and abs(requeue["height"] - acknowledge["height"]) <= 1, (
        requeue, acknowledge)
    context.close()
