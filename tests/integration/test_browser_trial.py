"""What a new operator and support person met trying the demo in Chromium
on a laptop (1,400 px) and a phone (390 px), each fixed and kept fixed
here. Same fixtures as test_browser.py: a live server filled by the
reference worker on the demo corpus; Chromium must be installed (the test
fails, never skips)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import PASSWORD, _shot, _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _inside_the_viewport(locator, page) -> bool:
    """True when the element's box lies within the viewport's width (not cut off or scrolled away sideways)."""
    box = locator.bounding_box()
    width = page.evaluate("() => window.innerWidth")
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_audit_events_on_a_phone_show_every_column_without_sideways_scrolling(app, site, browser, javascript):  # noqa: F811
    from app.services.access import record_audit_event

    with app.app_context():
        record_audit_event("night-operator", "export.job_errors.csv", {"error_code": ["code.unknown_icd10cm"]}, 2)
    context = browser.new_context(java_script_enabled=javascript, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/admin/audit?actor=night-operator")
    event = page.locator("table.audit tr.audit-event").first
    _shot(page, f"trial-audit-390-{javascript}.png")
    # Who, the action, how many rows and what it applied to: all on screen.
    # (Cells by position, as the table has always had them: when, who, action, rows, applied to.)
    for cell in ("td:nth-child(2)", "td:nth-child(3)", "td:nth-child(4)", "td:nth-child(5)"):
        assert _inside_the_viewport(event.locator(cell), page), cell
    expect(event.locator("td:nth-child(4)")).to_contain_text("2")
    expect(event.locator("td:nth-child(5)")).to_contain_text("error_code = code.unknown_icd10cm")
    # The actor's name reads as one word (one line), not "night-op / erator".
    actor = event.locator("td:nth-child(2)")
    line_height = actor.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
    assert actor.bounding_box()["height"] < 1.5 * line_height
    # Nothing hides sideways inside the events' box either.
    region = page.locator("div.table-scroll")
    assert region.evaluate("e => e.scrollWidth <= e.clientWidth")
    context.close()


def _one_line(locator) -> bool:
    """True when the element's text takes a single line (not broken every few letters).

    Measured after the page's load event: a click's navigation commits
    before the stylesheet has loaded, and a layout forced then is the
    unstyled one (a busy machine made the code cell wrap so, once).
    """
    locator.page.wait_for_load_state("load")
    line_height = locator.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 1.4 * parseFloat(getComputedStyle(e).fontSize)")
    return locator.bounding_box()["height"] < 1.5 * line_height


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_error_items_on_a_phone_keep_codes_and_pointers_whole(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?document_id=doc-0006")
    page.click("table.jobs tr.job a:has-text('doc-0006')")
    page.wait_for_load_state("load")  # the stylesheet applied: the checks below read its layout and '::before' text
    item = page.locator("table.errors tr.severity-error").first
    _shot(page, f"trial-job-390-{javascript}.png")
    # (Cells by position: severity, code, pointer, message, entity.)
    for cell in ("td:nth-child(2) code", "td:nth-child(3) code"):
        assert _one_line(item.locator(cell)), cell
        assert _inside_the_viewport(item.locator(cell), page), cell
    # The message reads across the card; the entity is named.
    message = item.locator("td:nth-child(4)")
    assert message.bounding_box()["width"] > 0.7 * page.evaluate("() => window.innerWidth")
    entity = item.locator("td:nth-child(5)")
    expect(entity).to_have_text("Condition · E11.99X")
    assert entity.evaluate("e => getComputedStyle(e, '::before').content") == '"Entity "'
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_a_refused_filter_value_leads_back_to_the_same_page_with_the_rest_of_the_filter(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    # "yesterday" typed into From, on a filtered list.
    page.goto(f"{site}/jobs?error_code=code.unknown_icd10cm&from=yesterday")
    expect(page.locator("h1")).to_have_text("400 · Invalid query parameter")
    page.click("a.retry")
    expect(page).to_have_url(f"{site}/jobs?error_code=code.unknown_icd10cm")
    expect(page.locator("table.jobs tr.job")).to_have_count(2)
    # The audit log's error page leads back to the audit log, not to the jobs.
    page.goto(f"{site}/admin/audit?actor=browser-admin&from=yesterday")
    expect(page.locator("a.retry")).to_have_text("The same page without from")
    expect(page.locator("section.error-page")).to_contain_text("Back to the audit log")
    expect(page.locator("section.error-page")).not_to_contain_text("failed jobs")
    page.click("a.retry")
    expect(page).to_have_url(f"{site}/admin/audit?actor=browser-admin")
    expect(page.locator("table.audit tr.audit-event").first).to_contain_text("browser-admin")
    # A refused search (a control character) keeps nothing bad either.
    page.goto(f"{site}/jobs?q=a%07b&document_id=doc-0006")
    page.click("a.retry")
    expect(page).to_have_url(f"{site}/jobs?document_id=doc-0006")
    context.close()


@pytest.mark.parametrize("width", [390, 1400])
def test_a_very_long_filter_value_keeps_its_chip_small_and_its_remove_button_on_screen(site, browser, width):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 844})
    page = context.new_page()
    _sign_in(page, site)
    # The longest document id the filter takes (200 characters): six lines
    # of unbroken text at 390 px without the three-line clamp.
    page.goto(f"{site}/jobs?error_code=code.unknown_icd10cm&document_id={'x' * 200}")
    chip = page.locator("li.chip:has-text('document')")
    _shot(page, f"trial-chip-{width}.png")
    assert chip.bounding_box()["height"] < 100
    remove = chip.locator("a.chip-remove")
    assert remove.bounding_box()["y"] + remove.bounding_box()["height"] < 844
    assert chip.locator(".chip-text").get_attribute("title").endswith("x" * 200 + "\u2069")
    remove.click()
    expect(page).to_have_url(f"{site}/jobs?error_code=code.unknown_icd10cm")
    context.close()


def test_the_history_marks_failures_red_and_an_operators_actions_apart(site, browser):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?document_id=doc-0006")
    page.click("table.jobs tr.job a:has-text('doc-0006')")
    page.click("a.inline-action:has-text('Requeue')")
    page.click("form.confirm button:has-text('Requeue the job')")
    expect(page.locator(".flash-success")).to_contain_text("Requeued")
    # The colours are the stylesheet's: a click's navigation can show the
    # page before its stylesheet has loaded, and then every colour read is
    # the default black (a busy machine did so once).
    page.wait_for_load_state("load")

    def dot(kind: str) -> str:
        return page.locator(f"ol.timeline li.event-{kind}").first.evaluate(
            "e => getComputedStyle(e, '::before').backgroundColor")

    failure_red = page.locator("ol.timeline li.event-failed .badge").first.evaluate("e => getComputedStyle(e).color")
    assert dot("failed") == failure_red  # the failure's dot is the failure's red
    assert dot("requeued") not in (failure_red, dot("created"))  # an action: neither a failure nor a worker step
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_the_job_page_on_a_phone_keeps_times_on_one_line_and_the_history_wide(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?document_id=doc-0006")
    page.click("table.jobs tr.job a:has-text('doc-0006')")
    _shot(page, f"trial-job-fields-390-{javascript}.png")
    created = page.locator("dl.job-fields dt:has-text('Created') + dd")
    expect(created).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    assert _one_line(created)
    width = page.evaluate("() => window.innerWidth")
    for event in page.locator("ol.timeline li.event").all():
        assert event.locator(".what").bounding_box()["width"] > 0.7 * width
    context.close()


def test_on_a_phone_no_label_of_the_job_page_runs_into_its_value(site, browser):  # noqa: F811
    # A new user's trial: at 390 px "Acknowledged" was wider than the label
    # column and read "Acknowledged2026-12-04 … by demo-admin".
    context = browser.new_context(java_script_enabled=False, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?document_id=doc-0006")
    page.click("table.jobs tr.job a:has-text('doc-0006')")
    page.click("div.job-actions button:has-text('Acknowledge')")
    expect(page.locator(".flash-success")).to_contain_text("Acknowledged")
    page.wait_for_load_state("load")  # the stylesheet applied
    labels = page.locator("dl.job-fields dt")
    assert "Acknowledged" in labels.all_text_contents()
    for label in labels.all():
        text_right = label.evaluate(
            "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getBoundingClientRect().right; }")
        value_left = label.evaluate("e => e.nextElementSibling.getBoundingClientRect().left")
        assert text_right <= value_left, label.text_content()
    context.close()


_TARGETS = """() => [...document.querySelectorAll('main button, main a.button, main td.select input[type=checkbox]')]
    .filter(e => e.getClientRects().length)
    .map(e => { const b = e.getBoundingClientRect();
                return [e.textContent.trim() || e.name, b.width, b.height, getComputedStyle(e).fontSize]; })"""


@pytest.mark.parametrize("width", [390, 1400])
def test_buttons_and_row_boxes_are_big_enough_to_hit_and_read(site, browser, width):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 844},
                                  is_mobile=width < 600, has_touch=width < 600)
    page = context.new_page()
    _sign_in(page, site)
    page.wait_for_load_state("load")  # the stylesheet applied
    body = page.evaluate("() => getComputedStyle(document.body).fontSize")
    assert body == "15px"
    page.goto(f"{site}/jobs?document_id=doc-0006")
    page.click("table.jobs tr.job a:has-text('doc-0006')")
    job_page = page.url
    confirm = page.locator("a.inline-action:has-text('Requeue')").get_attribute("href")
    small = []
    for url in (f"{site}/jobs", job_page, f"{site}{confirm}", f"{site}/admin/audit"):
        page.goto(url)
        page.wait_for_load_state("load")
        _shot(page, f"trial-buttons-{width}-{url.rsplit('/', 1)[-1][:12]}.png")
        for name, w, h, size in page.evaluate(_TARGETS):
            # WCAG 2.2 target size (2.5.8): 24 by 24 CSS pixels. A row's box is
            # spaced apart enough with a mouse, but on a phone it gets the size too.
            if name == "job_id":
                if width < 600 and (w < 24 or h < 24):
                    small.append((url, name, w, h, size))
            elif h < 24 or size != body:
                small.append((url, name, w, h, size))
    page.goto(f"{site}/jobs")
    page.click("button[value='acknowledge:filter']")
    expect(page.locator("h1")).to_contain_text("Acknowledge")
    page.wait_for_load_state("load")
    small += [("bulk", n, w, h, s) for n, w, h, s in page.evaluate(_TARGETS) if h < 24 or s != body]
    assert small == [], body
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_a_job_id_cut_short_finds_nothing_and_says_why(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    short_id = page.locator("tr.job code.job-id").first.inner_text()[:7]
    search = page.locator("header input[type=search]")
    search.fill(short_id)
    search.press("Enter")
    expect(page.locator("p.empty")).to_contain_text("A job is found by its id from its first 8 characters on")
    # Seven hex letters (no decimal digit) are one short of an id prefix too.
    search.fill("abcdefa")
    search.press("Enter")
    expect(page.locator("p.empty")).to_contain_text("A job is found by its id from its first 8 characters on")
    # A word that finds nothing gets no such hint.
    search.fill("no such thing")
    search.press("Enter")
    expect(page.locator("p.empty")).to_have_text("No jobs match this filter.")
    context.close()


def test_empty_filter_fields_do_not_look_filled_in(site, browser):  # noqa: F811
    # A grey "2026-11-29T00:00:00Z" in From (days ago) or "schema.required" in
    # Error code read, at a glance, as a filter in force.
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    for path in ("/jobs", "/admin/audit"):
        page.goto(f"{site}{path}")
        for field in ("from", "to"):
            box = page.locator(f"main input[name={field}]")
            expect(box).to_have_value("")
            expect(box).to_have_attribute("placeholder", "YYYY-MM-DDThh:mm:ssZ")
    page.goto(f"{site}/jobs")
    # The example is a hint beside the label, never a grey value inside the box (second trial of #14).
    expect(page.locator("input[name=error_code]")).not_to_have_attribute("placeholder", re.compile(r"."))
    expect(page.locator("label.wide .hint")).to_have_text("(e.g. schema.required)")
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_the_first_tab_offers_to_skip_to_the_jobs(site, browser, javascript):  # noqa: F811
    # Without it a keyboard user tabs through the header, every filter field
    # and the summary's links (30 and more stops) to reach the first job.
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    expect(focused).to_have_text("Skip to the jobs")
    assert _inside_the_viewport(focused, page) and focused.bounding_box()["y"] >= 0
    assert focused.evaluate("e => getComputedStyle(e).outlineStyle") != "none"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Requeue")  # the selection bar, then the rows
    # Every other page skips its header.
    page.goto(f"{site}/admin/audit")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to the content")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_attribute("name", "actor")
    context.close()


def test_the_phone_summary_says_when_it_shows_only_the_top_five_codes(site, browser):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs")  # the demo's failures carry ten codes
    frame = page.frame_locator("iframe.summary-frame")
    expect(frame.locator("table.codes tbody tr:visible")).to_have_count(5)
    expect(frame.locator(".top-codes p.note")).to_have_text(
        re.compile(r"The top 5 of \d+; a wider screen shows 10\.|The top 5; a wider screen shows all 10\."))
    # The figures agree with the "N codes in all" link beside the title (trials read "of 10" against
    # "+2 more", then "+2 more codes" beside five shown of twelve).
    more = frame.locator("a.more-codes")
    if more.count():
        distinct = int(re.fullmatch(r"(\d+) codes in all", more.inner_text()).group(1))
        expect(frame.locator(".top-codes p.note")).to_contain_text(f"of {distinct};")
    expect(frame.locator(".top-codes p.note")).to_be_visible()
    summary = next(f for f in page.frames if f.url.endswith("/jobs/summary"))
    assert summary.evaluate("() => document.documentElement.scrollHeight <= window.innerHeight")  # still fits its frame
    page.set_viewport_size({"width": 1400, "height": 900})
    expect(frame.locator("table.codes tbody tr:visible")).to_have_count(10)
    expect(frame.locator(".top-codes p.note")).not_to_be_visible()
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_the_bulk_question_names_the_selected_documents(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs")
    for document in ("doc-0007", "doc-0006"):
        row = page.locator("tr.job").filter(has=page.locator("td.document", has_text=document))
        row.locator("input[name=job_id]").check()
    page.click("button[value='acknowledge:selected']")
    expect(page.locator("h1")).to_have_text("Acknowledge 2 jobs?")
    expect(page.locator("section.confirm")).to_contain_text("The 2 selected jobs, for documents doc-0007, doc-0006.")
    page.click("section.confirm button[type=submit]")
    expect(page.locator(".flash-success")).to_contain_text("Acknowledged 2 jobs.")
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_an_upright_tablet_gets_job_cards_with_words_whole(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 768, "height": 1024}, has_touch=True)
    page = context.new_page()
    _sign_in(page, site)
    row = page.locator("tr.job").filter(has=page.locator("td.document", has_text="doc-0011"))
    assert row.evaluate("e => getComputedStyle(e).display") == "flex"
    # (Cells by position: box, id, status, document, type, message, errors, when.)
    assert _one_line(row.locator("td:nth-child(5) bdi"))  # entity_extraction, not "entity_extract / ion"
    message = row.locator("td:nth-child(6)")
    assert message.bounding_box()["width"] > 0.7 * 768
    page.set_viewport_size({"width": 1024, "height": 768})  # the same tablet turned: the table
    assert row.evaluate("e => getComputedStyle(e).display") == "table-row"
    context.close()



def test_a_cards_warning_count_stays_beside_its_error_count(site, browser):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": 768, "height": 1024})
    page = context.new_page()
    _sign_in(page, site)
    errors = page.locator("tr.job").filter(has=page.locator("td.document", has_text="doc-0011")).locator("td.errors")
    expect(errors).to_have_text("6 +1 warning")
    assert _one_line(errors)  # "Errors 6 +1 warning", not the warning alone on a line below
    context.close()


def _summary_measures(page) -> dict[str, Any]:
    """In CSS px: the summary frame's height on the page; the summary's
    bottom inside it (the cards stretch to fill the frame); the lowest
    bottom of the cards' own content (their last child plus the card's
    padding); and per card (by its class: ``status-counts``,
    ``chart-card``, ``top-codes``) its blank band under its content, whether
    anything in it is cut off (``scrollHeight > clientHeight`` or the same
    sideways), and the codes whose cell cuts them (an ellipsis)."""
    frame = page.locator("iframe.summary-frame")
    summary = page.frame_locator("iframe.summary-frame").locator("section.summary")
    expect(summary).to_be_visible()
    # Measured after the frame's load event, which waits for its stylesheet.
    next(f for f in page.frames if "/jobs/summary" in f.url).wait_for_load_state("load")
    inside = summary.evaluate("""e => {
        const top = document.documentElement.getBoundingClientRect().top;
        const cards = {};
        for (const card of e.querySelectorAll(':scope > .card')) {
            const shown = [...card.children].filter(c => c.getClientRects().length);
            const style = getComputedStyle(card);
            const content = shown[shown.length - 1].getBoundingClientRect().bottom
                + parseFloat(style.paddingBottom) + parseFloat(style.borderBottomWidth);
            cards[card.classList[1]] = {
                blank: card.getBoundingClientRect().bottom - content, content: content - top,
                cut: card.scrollHeight > card.clientHeight || card.scrollWidth > card.clientWidth,
                cut_codes: [...card.querySelectorAll('table.codes td:first-child')]
                    .filter(c => c.getClientRects().length && c.scrollWidth > c.clientWidth).map(c => c.textContent),
            };
        }
        const heading = e.querySelector('.status-counts h2'), clock = heading.querySelector('time.counted-at');
        const basis = e.querySelector('.chart-x .axis-basis');
        return {summary: e.getBoundingClientRect().bottom - top,
                content: Math.max(...Object.values(cards).map(c => c.content)),
                scrolls: document.documentElement.scrollHeight > innerHeight, cards,
                // "as of 16:52 UTC" on the heading's one line, not wrapped under it.
                clock_on_heading_line: clock.getBoundingClientRect().top - heading.getBoundingClientRect().top <= 2
                    && heading.getBoundingClientRect().height < 2 * clock.getBoundingClientRect().height,
                clock: clock.textContent, clock_title: clock.title,
                basis: basis ? basis.textContent : null,
                basis_whole: basis ? basis.scrollWidth <= basis.clientWidth : null};
    }""")
    return {"frame": frame.bounding_box()["height"], **inside}


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
@pytest.mark.parametrize("width", [320, 360, 390, 768, 1400, 1920])
def test_the_summary_frame_fits_its_content(site, browser, width, javascript):  # noqa: F811
    """The frame's height is fixed by CSS (an iframe cannot take its
    content's height without a script, and the pages have none; a fixed
    height also means the list does not move when the summary arrives): the
    layouts inside must fit it, whole, without blank boxes."""
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    # The demo's failures fill the summary: ten codes (five on a phone).
    page.goto(f"{site}/jobs?status=all")
    full = _summary_measures(page)
    _shot(page, f"trial-summary-{width}-{javascript}.png")
    assert not full["scrolls"] and abs(full["frame"] - full["summary"]) <= 1, full
    # No blank band under the tallest card: it reaches the frame's bottom within a few px.
    assert abs(full["frame"] - full["content"]) <= 4, full
    cards = full["cards"]
    assert set(cards) == {"status-counts", "chart-card", "top-codes"}, cards
    # Nothing cut off in any card: no hidden overflow; from 768 px on, every
    # code whole (the corpus's longest, schema.additionalProperties, was cut
    # at 1,400 px). On a phone a code longer than about 20 characters still
    # ends in an ellipsis (the whole code is the link's title): the phone's
    # single column has no room for it beside the two counts.
    assert not any(card["cut"] for card in cards.values()), cards
    # When the counts were made, on their heading's line, and what places a
    # failure on the chart's time axis, between its end labels.
    assert full["clock_on_heading_line"], full
    assert re.fullmatch(r"as of \d\d:\d\d UTC", full["clock"]) and full["clock_title"].startswith("Counted at "), full
    assert full["basis"] == "by creation time" and full["basis_whole"], full
    if width >= 768:
        assert cards["top-codes"]["cut_codes"] == [], cards
    # The counts fill their card (stretched to the codes' height beside
    # them) rather than leave an empty box under five lines.
    assert cards["status-counts"]["blank"] <= 4 and cards["top-codes"]["blank"] <= 4, cards
    # With nothing to count, no frame of zeros: a line saying so
    # (test_browser_second_trial.py).
    page.goto(f"{site}/jobs?document_id=nothing-matches")
    expect(page.locator("p.empty")).to_be_visible()
    expect(page.locator("iframe.summary-frame")).to_have_count(0)
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_the_sign_in_form_on_a_phone_reads_16px_forgives_a_trailing_space_and_says_why_it_failed(
        site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, **PHONE)
    page = context.new_page()
    page.goto(f"{site}/login")
    # iOS zooms into a field whose text is under 16px.
    for field in ("#username", "#password"):
        assert page.locator(field).evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 16, field
    # A wrong password: said in the form, next to the fields, not silently.
    page.fill("#username", "browser-admin")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    alert = page.locator("form p.form-error[role=alert]")
    expect(alert).to_contain_text("Sign-in failed: the user name or the password is wrong")
    expect(page.locator("#username")).to_have_attribute("aria-invalid", "true")
    _shot(page, f"trial-sign-in-failed-390-{javascript}.png")
    # The name as a phone's keyboard leaves it, with a trailing space: it signs in.
    page.fill("#username", "browser-admin ")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site}/groups")
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_an_acknowledge_of_every_job_of_a_filter_is_in_each_jobs_history(site, browser, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    # Every failure with the code (two documents in the demo corpus), acknowledged at once.
    page.goto(f"{site}/jobs?error_code=code.unknown_icd10cm")
    expect(page.locator("table.jobs tr.job")).to_have_count(2)
    page.click("form.bulk-actions button:has-text('Acknowledge all…')")
    page.click("section.confirm button[type=submit]")
    expect(page.locator(".flash-success")).to_contain_text("Acknowledged 2 jobs")
    page.goto(f"{site}/jobs?error_code=code.unknown_icd10cm&acknowledged=include")
    page.locator("table.jobs tr.job td a[href*='/jobs/']").first.click()
    event = page.locator("ol.timeline li.event-acknowledged").last
    expect(event).to_contain_text("Acknowledged")
    expect(event.locator(".who")).to_contain_text("by browser-admin, with 1 other job matching a filter")
    event.locator("a:has-text('the bulk action')").click()
    expect(page.locator("h1")).to_contain_text("cknowledge")
    context.close()


def test_no_text_field_on_a_phone_is_under_16px(site, browser):  # noqa: F811
    """iOS zooms into a field under 16px on focus: the header search, the
    filters (folded away, but opened they are the same fields) and the
    audit log's filters."""
    context = browser.new_context(java_script_enabled=False, **PHONE)
    page = context.new_page()
    _sign_in(page, site)
    fields = "input[type=text], input[type=search], input[type=password], select, textarea"
    for path in ("/jobs", "/groups", "/admin/audit"):
        page.goto(f"{site}{path}")
        sizes = page.locator(fields).evaluate_all(
            "es => es.map(e => [e.name, parseFloat(getComputedStyle(e).fontSize)])")
        assert sizes, path
        assert all(size >= 16 for _, size in sizes), (path, sizes)
        assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth"), path
    context.close()
