"""The second new-operator trial of #14 in Chromium, JavaScript on and off
(same fixtures as test_browser.py: a live server filled by the reference
worker on the demo corpus; Chromium must be installed, never skipped)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import PASSWORD, _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_a_time_preset_keeps_the_error_code_typed_beside_it(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs")
    page.locator("form.filters input[name=error_code]").fill("unit.not_ucum")
    page.locator("form.filters button.quick-range", has_text="7 days").click()
    expect(page.locator("ul.chips")).to_contain_text("code = unit.not_ucum")
    # The failures list: the range is over when the jobs failed.
    expect(page.locator("ul.chips")).to_contain_text("finished from")
    query = dict(parse_qsl(urlsplit(page.url).query))
    assert query["error_code"] == "unit.not_ucum" and "from" in query and "range" not in query
    assert query["time_field"] == "completed"
    chosen = query["from"]
    # Enter in a field is still "Filter", not the first range.
    page.locator("form.filters input[name=error_code]").fill("code.unknown_icd10cm")
    page.locator("form.filters input[name=error_code]").press("Enter")
    expect(page.locator("ul.chips")).to_contain_text("code = code.unknown_icd10cm")
    query = dict(parse_qsl(urlsplit(page.url).query))
    assert query["from"] == chosen and "range" not in query
    context.close()


def test_error_item_entities_at_768_wrap_whole_words(site, browser):  # noqa: F811
    from tests.integration.test_browser_second_trial import _LINES

    context = browser.new_context(viewport={"width": 768, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?document_id=doc-0011")
    page.click("table.jobs tr.job td.document a")
    # The current failure's table (the history's are folded away).
    entities = page.locator("table.errors td.entity bdi:visible")
    expect(entities.first).to_be_visible()
    assert any("AllergyIntolerance" in entities.nth(n).inner_text() for n in range(entities.count()))
    for n in range(entities.count()):
        text = entities.nth(n).inner_text()
        words = set(text.split())
        lines = entities.nth(n).evaluate(_LINES)
        # Every rendered line is made of whole words of the entity.
        assert all(set(line.split()) <= words for line in lines), (lines, text)
    assert not page.evaluate("() => document.documentElement.scrollWidth > innerWidth")
    context.close()


def test_a_form_sent_after_the_session_ended_leads_back_through_the_sign_in(site, browser, app):  # noqa: F811
    # A trial (session 27): the browser sent no Referer (Referrer-Policy
    # no-referrer), so the 401 and "form has expired" pages could not lead
    # back to the page the form was on.
    import sqlalchemy as sa

    from app.extensions import db
    from app.models.access import ServerSession
    from app.models.types import utcnow

    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/groups")
    page.locator("td.title a").first.click()
    group_path = urlsplit(page.url).path
    with app.app_context():
        db.session.execute(sa.update(ServerSession).values(expires_at=utcnow()))
        db.session.commit()
    page.locator("form[action$='/resolve'] button[type=submit]").first.click()
    expect(page.locator("h1")).to_contain_text("401")
    expect(page.locator("section.error-page")).to_contain_text("nothing was changed")
    page.get_by_role("link", name="Sign in").click()
    page.fill("#username", "browser-admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site}{group_path}")
    context.close()
