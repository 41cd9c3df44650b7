"""What a new operator met on the failure-group pages in Chromium at a
phone (390 px), an upright tablet (768 px) and a laptop (1,400 px), each
fixed and kept fixed here. Same fixtures as test_browser.py: a live server
filled by the reference worker on the demo corpus; Chromium must be
installed (the test fails, never skips)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import _shot, _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def _lines(locator) -> float:
    """How many lines of text the element takes."""
    line_height = locator.evaluate(
        "e => parseFloat(getComputedStyle(e).lineHeight) || 1.4 * parseFloat(getComputedStyle(e).fontSize)")
    return locator.bounding_box()["height"] / line_height


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
@pytest.mark.parametrize("width", [390, 768])
def test_groups_on_a_phone_and_tablet_are_cards_with_every_field_on_screen(site, browser, width, javascript):  # noqa: F811
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/groups")
    card = page.locator("table.groups tr.group").first
    expect(card).to_be_visible()
    _shot(page, f"trial-groups-{width}-{javascript}.png")
    # Nothing hides sideways inside the list's box, and every field of a
    # card (counts, times, sparklines, versions) lies on screen, named.
    assert page.locator("div.table-scroll").evaluate("e => e.scrollWidth <= e.clientWidth")
    inner = page.evaluate("() => window.innerWidth")
    for cell in card.locator("td").all():
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner, cell.inner_text()
    labels = card.evaluate("r => [...r.cells].slice(2).map(c => getComputedStyle(c, '::before').content)")
    assert labels == ['"Jobs affected"', '"Failing now"', '"Occurrences"', '"First seen"', '"Last seen"',
                      '"24 h"', '"14 days"', '"Worker versions"']
    # The filters fold away on a phone (as on /jobs) and open from their button.
    code = page.locator("form.group-filters input[name=code]")
    if width < 600:
        expect(code).not_to_be_visible()
        page.locator("details.filter-panel > summary").click()
    expect(code).to_be_visible()
    context.close()


def test_group_titles_at_1400_wrap_at_spaces_and_versions_follow_semver(site, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/groups?state=all")
    expect(page.locator("table.groups tr.group").first).to_be_visible()
    _shot(page, "trial-groups-1400.png")
    assert page.locator("div.table-scroll").evaluate("e => e.scrollWidth <= e.clientWidth")
    links = page.locator("table.groups td.title > a")
    for n in range(links.count()):
        link = links.nth(n)
        title = link.inner_text()
        # No word of the title is broken inside: each rendered line ends at a space.
        words = set(title.split())
        rendered = link.evaluate("""a => {
            const range = document.createRange(), text = a.textContent, lines = [];
            let top = null, line = "";
            const node = a.querySelector('bdi').firstChild;
            for (let i = 0; i < node.length; i++) {
                range.setStart(node, i); range.setEnd(node, i + 1);
                const y = Math.round(range.getBoundingClientRect().top);
                if (top !== null && y > top + 2) { lines.push(line); line = ""; }
                top = y; line += text[i];
            }
            lines.push(line);
            return lines;
        }""")
        for piece in rendered:
            assert all(w in words for w in piece.split()), (title, rendered)
        assert len(rendered) <= 2, (title, rendered)
    # Worker versions by SemVer precedence (1.4.0 before 1.5.0).
    for cell in page.locator("table.groups td.versions").all():
        versions = [v for v in cell.inner_text().split(", ") if v != "—"]
        key = [tuple(int(p) for p in v.split(".")) for v in versions]
        assert key == sorted(key), versions
    context.close()


@pytest.mark.parametrize("width", [390, 768, 1400])
def test_chart_labels_are_readable_at_every_width(site, browser, width):  # noqa: F811
    """The charts' axis labels were SVG text that scaled with the chart: 6px
    on a phone (so hidden there) and 18px on the group page at 1,400px. They
    are HTML text beside the drawing now: shown, 10-14px, at every width."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs")
    summary = page.locator("iframe.summary-frame").get_attribute("src")
    page.goto(f"{site}/groups")
    group = page.locator("table.groups td.title > a").first.get_attribute("href")
    for path in (summary, group):
        page.goto(f"{site}{path}")
        page.wait_for_load_state("load")
        labels = page.locator(".chart-plot .axis-label:not(.axis-basis)")
        assert labels.count() == 4, path  # the peak and 0, the first and last buckets
        # The summary's chart also says what places a failure on its axis, between the times.
        assert page.locator(".chart-plot .axis-basis").count() == (path == summary), path
        for n in range(labels.count()):
            expect(labels.nth(n)).to_be_visible()
            box = labels.nth(n).bounding_box()
            size = labels.nth(n).evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
            assert 10 <= size <= 14 and box["height"] >= 10, (path, size, box)
            # Within the screen, not cut off at its edge.
            assert 0 <= box["x"] and box["x"] + box["width"] <= width, (path, box)
        # The time labels side by side, not over each other.
        first, last = labels.nth(2).bounding_box(), labels.nth(3).bounding_box()
        assert first["x"] + first["width"] <= last["x"], (path, first, last)
    context.close()


def test_a_groups_action_fields_on_a_phone_are_thumb_sized_and_not_zoomed_into(site, browser):  # noqa: F811
    """At 390 px the group page's typed fields ("In version", "of worker",
    "until", occurrences) have 16 px text (iOS zooms into smaller) and are
    24 px high at least (WCAG 2.2, 2.5.8), as are the radios, the header's
    links and a filter chip's ×; they were 13 px text in 21 px boxes."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/groups")
    page.locator("table.groups tr.group a").first.click()
    expect(page.locator("input[name=in_version]")).to_be_visible()
    for name in ("in_version", "in_worker", "until", "occurrences"):
        field = page.locator(f"input[name={name}]")
        size = field.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        assert size >= 16 and field.bounding_box()["height"] >= 24, (name, size, field.bounding_box())
    for radio in page.locator("input[type=radio]").all():
        box = radio.bounding_box()
        assert box["width"] >= 24 and box["height"] >= 24, box
    for link in page.locator(".site-header nav a").all():
        assert link.bounding_box()["height"] >= 24, link.inner_text()
    # /groups: the filter's check boxes and the "failing now" number links
    # (a trial measured 17 px boxes and a 9 by 16 px "1").
    page.goto(f"{site}/groups")
    page.locator("details.filter-panel summary").click()
    boxes = page.locator("form.group-filters input[type=checkbox]").all()
    links = page.locator("table.groups td.current a").all()
    assert boxes and links
    for target in (*boxes, *links):
        box = target.bounding_box()
        assert box["width"] >= 24 and box["height"] >= 24, (target.evaluate("e => e.outerHTML"), box)
    page.goto(f"{site}/jobs?job_type=entity_extraction")
    remove = page.locator("a.chip-remove").first
    expect(remove).to_be_visible()
    box = remove.bounding_box()
    assert box["width"] >= 24 and box["height"] >= 24, box
    context.close()
