"""What a second new operator and support person met trying the demo in
Chromium on a laptop (1,400 px), an upright tablet (768 px) and a phone
(390 px), each fixed and kept fixed here. Same fixtures as
test_browser.py: a live server filled by the reference worker on the demo
corpus; Chromium must be installed (the test fails, never skips)."""

from __future__ import annotations

import re

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


LIST_PATHS = ("/jobs", "/groups", "/search", "/admin/audit")


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_no_link_or_form_of_the_app_leads_to_an_unknown_parameter(site, browser, javascript):  # noqa: F811
    """The list pages now refuse a parameter they do not read (400): every
    link and GET form the pages build must use only parameters they take."""
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    job = page.locator("table.jobs tr.job td.document a").first.get_attribute("href")
    group = _first_group(page, site)
    starts = ["/jobs", "/jobs?status=all&limit=25", "/jobs?error_code=unit.not_ucum", f"{job}", "/groups",
              "/groups?state=all&sort=job_count", f"{group}", "/admin/audit", "/search?q=doc-0006"]
    page.goto(f"{site}/jobs")
    starts.append(page.locator("iframe.summary-frame").get_attribute("src"))
    urls = set()
    for start in starts:
        page.goto(f"{site}{start}")
        urls.update(page.locator("a[href]").evaluate_all(
            "as => as.map(a => new URL(a.href)).filter(u => u.origin === location.origin).map(u => u.pathname + u.search)"))
        # Each GET form as its submit button would send it.
        urls.update(page.locator("form[method=get]").evaluate_all("""fs => fs.map(f => {
            const u = new URL(f.getAttribute("action"), location.href);  // f.action is the audit form's "action" field
            u.search = new URLSearchParams(new FormData(f)).toString();
            return u.pathname + u.search;
        })"""))
    checked = [u for u in sorted(urls) if u.split("?")[0] in LIST_PATHS]
    assert len(checked) > 20, checked
    for url in checked:
        response = page.request.get(f"{site}{url}", max_redirects=0)
        assert response.status in (200, 302, 303), (url, response.status)
    # And a real submit of each list's filter form (defaults kept).
    for path, button in (("/jobs", "form.filters button[type=submit]"), ("/groups", "form.group-filters button[type=submit]"),
                         ("/admin/audit", "form.audit-filters button[type=submit]")):
        page.goto(f"{site}{path}")
        if page.locator("details.filter-panel").count():
            page.locator("details.filter-panel").evaluate("d => d.open = true")
        page.click(button)
        expect(page.locator("h1")).not_to_contain_text("400")
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_requeue_with_nothing_ticked_stays_on_the_list_and_says_what_to_do(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?error_code=unit.not_ucum")
    page.click("form.bulk-actions button[value='requeue:selected']")
    expect(page).to_have_url(f"{site}/jobs?error_code=unit.not_ucum")
    expect(page.locator("p.flash-error")).to_have_text("Tick at least one job, or use 'All jobs matching the filter'.")
    expect(page.locator("body")).not_to_contain_text("0 jobs")
    context.close()


@pytest.mark.parametrize("width", [390, 768, 1400])
def test_the_keyboard_meets_the_summary_where_it_is_shown(site, browser, width):  # noqa: F811
    """At 390 px the summary was drawn below the 50 cards but came first in
    the page: ~10 Tabs after "Filters" went into it, and the page jumped."""
    context = browser.new_context(viewport={"width": width, "height": 844})
    page = context.new_page()
    _sign_in(page, site)
    frame, table = page.locator("iframe.summary-frame"), page.locator("table.jobs")
    # The page's order is the order on screen.
    frame_first = frame.evaluate("(f) => !!(f.compareDocumentPosition(document.querySelector('table.jobs')) & Node.DOCUMENT_POSITION_FOLLOWING)")
    assert frame_first == (frame.bounding_box()["y"] < table.bounding_box()["y"])
    # From the last control before the list and summary, Tab goes down the page, never back up.
    start = page.locator("details.filter-panel > summary") if width < 600 else page.locator("form.filters .form-actions a").last
    start.focus()
    tops = []
    for _ in range(12):
        page.keyboard.press("Tab")
        tops.append(page.evaluate("() => document.activeElement.getBoundingClientRect().top + scrollY"))
    assert tops == sorted(tops), tops
    assert not page.evaluate("() => document.documentElement.scrollWidth > innerWidth")
    context.close()


@pytest.mark.parametrize("width", [390, 1400])
def test_a_list_filtered_by_a_warning_code_shows_that_warning_on_each_row(site, browser, width):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 844})
    page = context.new_page()
    _sign_in(page, site)
    # The demo's one failed job with a warning (doc-0011); the row's message counts errors only.
    page.goto(f"{site}/jobs?error_code=confidence.low")
    rows = page.locator("table.jobs tr.job")
    expect(rows).to_have_count(1)
    _shot(page, f"second-trial-code-match-{width}.png")
    for n in range(rows.count()):
        match = rows.nth(n).locator("td.message mark.match")
        expect(match).to_be_visible()
        expect(match).to_contain_text("matches: warning confidence.low")
        box = match.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
    context.close()


@pytest.mark.parametrize("width", [390, 1400])
def test_an_empty_search_shows_a_short_no_jobs_match(site, browser, width):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 844})
    page = context.new_page()
    _sign_in(page, site)
    search = page.locator("header input[type=search]")
    search.fill("no such thing")
    search.press("Enter")
    expect(page.locator("p.empty")).to_have_text("No jobs match this filter.")
    expect(page.locator("iframe.summary-frame")).to_have_count(0)
    _shot(page, f"second-trial-empty-{width}.png")
    # The answer is near the top, not under a frame of zeros.
    assert page.locator("p.empty").bounding_box()["y"] < 0.6 * 844
    context.close()


_LINES = """e => {
    // The element's text as rendered, one string per line.
    const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT), range = document.createRange(), lines = [];
    let top = null, line = "";
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let i = 0; i < node.length; i++) {
            range.setStart(node, i); range.setEnd(node, i + 1);
            const y = Math.round(range.getBoundingClientRect().top);
            if (top !== null && y > top + 2) { lines.push(line); line = ""; }
            top = y; line += node.data[i];
        }
    }
    lines.push(line);
    return lines;
}"""


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_error_items_at_768_break_pointers_at_slashes_and_codes_at_dots(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 768, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?document_id=doc-0011")
    page.click("table.jobs tr.job td.document a")
    expect(page.locator("table.errors tr").nth(1)).to_be_visible()
    _shot(page, f"second-trial-job-768-{javascript}.png")
    cells = page.locator("table.errors td.code code:visible, table.errors td.pointer code:visible")
    assert cells.count() >= 6
    for n in range(cells.count()):
        cell = cells.nth(n)
        text = cell.inner_text()
        lines = cell.evaluate(_LINES)
        assert "".join(lines) == text
        separator = "/" if text.startswith("/") else "."
        assert all(line.endswith(separator) for line in lines[:-1]), lines
    # Copied, the pointer is the pointer (no added character).
    assert page.locator("table.errors td.pointer code").first.inner_text().startswith("/entities/")
    assert not page.evaluate("() => document.documentElement.scrollWidth > innerWidth")
    context.close()


@pytest.mark.parametrize("width", [390, 1400])
def test_the_group_page_names_every_field_and_shows_each_sample_jobs_document(site, browser, width):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 844})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}{_first_group(page, site)}")
    _shot(page, f"second-trial-group-{width}.png")
    # Each name ends before its value begins ("Occurrences 11", not "Occurrences11").
    summary = page.locator("dl.group-summary")
    for name in summary.locator("dt").all():
        value = name.locator("xpath=following-sibling::dd[1]")
        assert name.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), name.inner_text()
        assert name.bounding_box()["x"] + name.bounding_box()["width"] <= value.bounding_box()["x"] + 1, name.inner_text()
    row = page.locator("table.sample-jobs tr.job").first
    expect(row.locator("td.document a")).to_have_text(re.compile(r"^doc-\d{4}"))
    expect(row.locator("td.current")).to_have_text(re.compile("^(yes|no)$"))
    if width < 600:
        label = row.locator("td.current").evaluate("e => getComputedStyle(e, '::before').content")
        assert label == '"Failing now "'
    else:
        expect(page.locator("table.sample-jobs thead")).to_contain_text("Document")
    context.close()


def test_audit_user_names_at_1400_stay_on_one_line(app, site, browser):  # noqa: F811
    from app.services.access import record_audit_event

    with app.app_context():
        # Long facts press on the other columns, as a filter-scope action's query does.
        record_audit_event("demo-admin", "jobs.requeue",
                           {"scope": "filter", "query": {"error_code": ["code.unknown_icd10cm"] * 12}}, 3)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/admin/audit?actor=demo-admin")
    actor = page.locator("table.audit td.actor bdi").first
    expect(actor).to_have_text("demo-admin")
    line_height = actor.evaluate("e => parseFloat(getComputedStyle(e.parentElement).lineHeight)")
    assert actor.bounding_box()["height"] < 1.5 * line_height
    assert not page.evaluate("() => document.documentElement.scrollWidth > innerWidth")
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_the_bulk_question_takes_the_focus_and_keeps_yes_apart_from_cancel(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    for document in ("doc-0007", "doc-0006"):
        page.locator("tr.job").filter(has=page.locator("td.document", has_text=document)).locator(
            "input[name=job_id]").check()
    page.click("button[value='requeue:selected']")
    question = page.locator("section.confirm h1")
    expect(question).to_have_text("Requeue 2 jobs?")
    expect(question).to_be_focused()
    # The next Tab is the answer.
    page.keyboard.press("Tab")
    expect(page.locator("section.confirm button[type=submit]")).to_be_focused()
    yes = page.locator("section.confirm button[type=submit]").bounding_box()
    cancel = page.locator("section.confirm a:has-text('Cancel')").bounding_box()
    assert cancel["x"] - (yes["x"] + yes["width"]) >= 12, (yes, cancel)
    context.close()
