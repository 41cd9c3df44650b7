"""The layout findings of a new-operator trial of ``make demo`` (#14), in
Chromium, JavaScript on and off where it matters (same fixtures as
test_browser.py: a live server filled by the reference worker on the demo
corpus; Chromium must be installed, never skipped)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def _page(browser, site, width, height=800, javascript=True):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": height})
    page = context.new_page()
    _sign_in(page, site)
    return context, page


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_a_search_on_a_phone_shows_its_result_on_the_first_screen(site, browser, javascript):  # noqa: F811
    """The one matching row started at y~1050 on an 800 px screen, under the
    chips, "Filters" and the summary's three cards."""
    context, page = _page(browser, site, 390, javascript=javascript)
    page.locator("header input[type=search]").fill("doc-0011")
    page.locator("header input[type=search]").press("Enter")
    rows = page.locator("table.jobs tr.job")
    expect(rows).to_have_count(1)
    assert rows.first.bounding_box()["y"] < 800
    # The summary is still there, above the list, one tap away; opened, it is shown there.
    summary = page.locator("details.summary-panel > summary")
    expect(summary).to_be_visible()
    expect(page.locator("iframe.summary-frame")).not_to_be_visible()
    summary.click()
    expect(page.locator("iframe.summary-frame")).to_be_visible()
    assert page.locator("iframe.summary-frame").bounding_box()["y"] < rows.first.bounding_box()["y"]
    # Wider, the summary is shown as on every list.
    page.set_viewport_size({"width": 1400, "height": 900})
    page.locator("details.summary-panel").evaluate("d => d.open = false") if javascript else None
    expect(summary).not_to_be_visible()
    expect(page.locator("iframe.summary-frame")).to_be_visible()
    context.close()


_FIELD_ROWS = """(form) => {
  const fields = [...form.querySelectorAll('fieldset.fields > label')].filter(l => l.offsetParent);
  const rows = new Map();
  for (const l of fields) { const top = Math.round(l.getBoundingClientRect().top); rows.set(top, (rows.get(top) || 0) + 1); }
  return [...rows.values()];
}"""


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_the_exact_match_hint_spans_the_filters_under_their_fields(site, browser, javascript):  # noqa: F811
    """Inline in the filter grid, the hint sentence pushed "Job type" to the
    far right of the form at 1,400 px."""
    context, page = _page(browser, site, 1400, height=900, javascript=javascript)
    form, hint = page.locator("form.filters"), page.locator("#exact-match-hint")
    expect(hint).to_be_visible()
    fieldset = page.locator("form.filters fieldset.fields").bounding_box()
    box = hint.bounding_box()
    # As wide as the fields' box, and below every field.
    assert box["width"] >= fieldset["width"] - 2, (box, fieldset)
    bottoms = page.locator("form.filters fieldset.fields > label").evaluate_all(
        "ls => ls.map(l => l.getBoundingClientRect().bottom)")
    assert box["y"] >= max(bottoms) - 1
    # No field alone on a row.
    assert all(count > 1 for count in form.evaluate(_FIELD_ROWS)), form.evaluate(_FIELD_ROWS)
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
@pytest.mark.parametrize("width", [390, 768, 1400])
def test_the_summary_chart_fills_its_card(site, browser, width, javascript):  # noqa: F811
    """At 1,400 px the chart's height followed its width and left a ~129 px
    blank band under its caption, the card being as tall as the top codes'."""
    from tests.integration.test_browser_trial import _summary_measures

    context, page = _page(browser, site, width, height=900, javascript=javascript)
    page.goto(f"{site}/jobs?status=all")
    measures = _summary_measures(page)
    chart = measures["cards"]["chart-card"]
    assert chart["blank"] <= 24 and not chart["cut"], measures
    context.close()


@pytest.mark.parametrize("path", ["/jobs", "/jobs?status=all", "/groups"])
@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_the_opened_filters_fit_a_phone(site, browser, path, javascript):  # noqa: F811
    """Opening "Filters" at 390 px made /jobs 431 px wide: the error-code
    label with its example and the input ran past the right edge."""
    context, page = _page(browser, site, 390, javascript=javascript)
    page.goto(site + path)
    page.locator("details.filter-panel > summary").click()
    expect(page.locator("form.filters")).to_be_visible()
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], (path, widths)
    over = page.evaluate("""() => [...document.querySelectorAll('form.filters input, form.filters .hint, form.filters label')]
        .filter(e => e.offsetParent && e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
        .map(e => e.outerHTML.slice(0, 80))""")
    assert over == [], (path, over)
    context.close()


_CUT_PLACEHOLDERS = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  return [...document.querySelectorAll('main input[placeholder]')].filter(i => i.offsetParent).flatMap(i => {
    const s = getComputedStyle(i);
    ctx.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
    const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
    const text = ctx.measureText(i.placeholder).width;
    return text > room + 0.5 ? [`${i.name}: ${Math.round(text)} px of text in ${Math.round(room)} px`] : [];
  });
}"""


@pytest.mark.parametrize("path", ["/jobs", "/groups", "/admin/audit", "group page"])
@pytest.mark.parametrize("width", [390, 768, 1400])
def test_the_fields_show_their_whole_format_hint(site, browser, width, path):  # noqa: F811
    """At 390 px the From/To boxes cut their format hint
    ("YYYY-MM-DDThh:mm:ssZ") short: the operator could not read the format."""
    context, page = _page(browser, site, width)
    if path == "group page":
        page.goto(site + "/groups")
        page.locator("td.title a").first.click()
    else:
        page.goto(site + path)
    page.locator("main details").evaluate_all("ds => ds.forEach(d => d.open = true)")
    expect(page.locator("main input[placeholder]").first).to_be_visible()
    assert page.evaluate(_CUT_PLACEHOLDERS) == []
    context.close()


@pytest.mark.parametrize("width", [1024, 1400])
def test_a_job_type_and_its_error_count_stay_on_one_line_in_the_table(site, browser, width):  # noqa: F811
    """At 1,400 px a row with the "acknowledged" badge broke its type as
    "entity_extractio / n" and put "+1 warning" under its count."""
    context, page = _page(browser, site, width)
    page.goto(site + "/jobs?status=all&acknowledged=include&limit=100")
    expect(page.locator("table.jobs td.type").first).to_be_visible()
    broken = page.evaluate("""() => [...document.querySelectorAll('table.jobs td.type bdi, table.jobs td.errors')]
        .filter(e => e.offsetParent).filter(e => {
          // Two lines make the text's box about twice its font size tall
          // (a smaller "+1 warning" beside the count is not a second line).
          const r = document.createRange(); r.selectNodeContents(e);
          return r.getBoundingClientRect().height > 1.9 * parseFloat(getComputedStyle(e).fontSize); })
        .map(e => e.textContent.trim())""")
    assert broken == []
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    context.close()


@pytest.mark.parametrize("width", [390, 768, 1400])
def test_the_top_codes_headings_stay_inside_their_columns(site, browser, width):  # noqa: F811
    """A trial read "Jobs as errør warning": the heading "Jobs as error" ran
    into "as warning" at every width (one line in a 4.8rem column)."""
    context, page = _page(browser, site, width)
    page.goto(site + "/jobs")
    frame = page.frame_locator("iframe.summary-frame")
    expect(frame.locator("table.codes th").first).to_be_visible()
    spilled = frame.locator("table.codes").evaluate("""t => [...t.querySelectorAll('th')].filter(th => {
        const r = document.createRange(); r.selectNodeContents(th);
        const text = r.getBoundingClientRect(), box = th.getBoundingClientRect();
        return text.left < box.left - 0.5 || text.right > box.right + 0.5; }).map(th => th.textContent)""")
    assert spilled == []
    context.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_the_header_is_tabbed_through_in_the_order_it_is_seen(site, browser, width):  # noqa: F811
    """A trial: on a phone, "Sign out" sat on the line under the brand, above
    the navigation, but Tab reached it after the navigation and the search
    box (WCAG 2.4.3, focus order)."""
    context, page = _page(browser, site, width)
    page.goto(site + "/groups")
    boxes = [page.locator(selector).first.bounding_box() for selector in (
        "header .brand", "header nav a", "header input[type=search]", "header form.signout button")]
    # Seen top to bottom, then left to right on one line, as Tab goes (DOM order).
    seen = [(round(box["y"] + box["height"] / 2), box["x"]) for box in boxes]
    lines = [seen[0]]
    for y, x in seen[1:]:
        previous_y, previous_x = lines[-1]
        assert y > previous_y + 4 or (abs(y - previous_y) <= 4 and x > previous_x), (width, seen)
        lines.append((y, x))
    context.close()


@pytest.mark.parametrize("width", [320, 390])
def test_on_a_phone_the_list_shows_its_exports_and_every_status_count(site, browser, width):  # noqa: F811
    # Two trials: the five export links were inside the folded "Filters" panel, invisible until it
    # was opened; at 320 px "Processing 0" and "Failed 0" ran past the summary frame's right edge
    # (306 px of content in a 298 px column), which the page's own sideways-scroll check cannot see.
    context = browser.new_context(viewport={"width": width, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs?status=all")
    expect(page.locator("details.filter-panel")).not_to_have_attribute("open", "")
    links = page.locator(".list-exports a")
    assert links.count() >= 4
    for index in range(links.count()):
        expect(links.nth(index)).to_be_visible()
    assert not page.evaluate("() => document.documentElement.scrollWidth > innerWidth")
    frame = page.frame_locator("iframe.summary-frame")
    expect(frame.locator(".status-counts li").first).to_be_visible()
    # The trial's counts were thousands; this site's are a few, so each count is
    # made as wide as a large one (the layout must hold any count).
    beyond = frame.locator("body").evaluate("""() => {
        document.querySelectorAll('.status-counts .count').forEach(c => { c.textContent = '1,234,567'; });
        const edge = document.documentElement.clientWidth;
        return [...document.querySelectorAll('.status-counts li')]
          .filter(li => li.querySelector('.count').getBoundingClientRect().right > edge
                        || li.getBoundingClientRect().right > edge || li.scrollWidth > li.clientWidth)
          .map(li => li.textContent.trim().replace(/\\s+/g, ' '));
    }""")
    assert beyond == []
    assert not frame.locator("body").evaluate("() => document.documentElement.scrollWidth > innerWidth")
    assert frame.locator(".status-counts li").count() == 5
    context.close()


def test_on_a_phone_standalone_links_are_24_px_high(site, browser):  # noqa: F811
    # A trial: the export links and the audit rows' links were 16-18 px high on a phone.
    # (WCAG 2.2, 2.5.8: 24 px; links inside a sentence are exempt and not measured.)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs")
    page.click("details.filter-panel > summary")  # folded on a phone
    def heights_of(selector: str) -> list[float]:
        return [a.bounding_box()["height"] for a in page.locator(selector).all() if a.is_visible()]

    heights = {"export": heights_of(".list-exports a"), "reset": heights_of(".form-actions > a")}
    page.click("table.jobs tr.job td.document a >> nth=0")  # a job seen: an audit row linking it
    expect(page.locator("h1")).to_be_visible()
    # A re-check: a group page's export links (18 px) and the pagers, Reset and Clear (21 px) too.
    page.goto(f"{site}/groups?state=all&limit=1")
    heights["pager"] = heights_of("p.pager a, nav.pager a")
    page.locator("table.groups td.title > a").first.click()
    heights["group export"] = heights_of("dd .exports a")
    page.goto(f"{site}/admin/audit?limit=2")
    heights["audit"] = heights_of("td.facts a") + heights_of("nav.pager a") + heights_of("form.filters > a")
    assert all(heights.values()), heights  # each kind was found on screen
    assert {kind: [h for h in found if h < 24] for kind, found in heights.items()} == {kind: [] for kind in heights}
    context.close()
