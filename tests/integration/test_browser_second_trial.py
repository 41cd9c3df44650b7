"""What a second new operator and support person met trying the demo in
Chromium on a laptop (1,400 px), an upright tablet (768 px) and a phone
(390 px), each fixed and kept fixed here. Same fixtures as
test_browser.py: a live server filled by the reference worker on the demo
corpus; Chromium must be installed (the test fails, never skips)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import _shot, _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _first_group(page, site: str) -> str:
    page.goto(f"{site}/groups")
    return page.locator("table.groups td.title > a").first.get_attribute("href")


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_a_date_typed_with_forever_still_ticked_ignores_until_that_date(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}{_first_group(page, site)}")
    form = page.locator("form[action$='/ignore']")
    expect(form.locator("input[name=mode][value=forever]")).to_be_checked()
    # The date field takes and shows the app's YYYY-MM-DD, not the locale's mm/dd/yyyy.
    until = form.locator("input[name=until]")
    expect(until).to_have_attribute("placeholder", "YYYY-MM-DD")
    until.fill("2999-12-31")
    expect(until).to_have_value("2999-12-31")
    form.locator("button[type=submit]").click()
    expect(page.locator("dl.group-summary")).to_contain_text("until 2999-12-31")
    expect(page.locator("dl.group-summary")).not_to_contain_text("forever")
    context.close()
