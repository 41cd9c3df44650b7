"""Layout at a zoomed desktop and on small phones, in Chromium with
JavaScript off (same fixtures as test_browser.py: a live server filled by
the reference worker on the demo corpus; Chromium must be installed, the
test fails, never skips). Sizes are CSS px: 1366x768 at 200 % zoom is a
683x384 viewport."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.integration.test_browser import _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

#: Codes the demo's history adds to the corpus's: 18 in all, as `make demo` shows.
MORE_CODES = ("code.unknown_loinc", "code.unknown_rxnorm", "code.unknown_snomed", "schema.minLength",
              "schema.enum", "date.before_birth", "value.out_of_range")


def _page(browser, site, width, height):  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": height})
    page = context.new_page()
    _sign_in(page, site)
    return context, page


@pytest.mark.parametrize("path", ["/jobs", "/groups"])
def test_at_200_percent_zoom_the_lists_fold_their_filters_and_summary(site, browser, path):  # noqa: F811
    """At 683x384 the filters were always open (folded only under 601 px
    wide), and on /jobs the summary's 620 px frame came next: the first row
    was two or three screens down."""
    context, page = _page(browser, site, 683, 384)
    page.goto(site + path)
    page.wait_for_load_state("load")
    folds = {"details.filter-panel": "form.filters"}
    if path == "/jobs":
        folds["details.summary-panel"] = "iframe.summary-frame"
    for panel, content in folds.items():
        expect(page.locator(f"{panel} > summary")).to_be_visible()
        expect(page.locator(content)).not_to_be_visible()
    # The page's own content down to the first row fits a screen: on /groups the
    # row is on the first one; /jobs has its export links and bulk actions too.
    row = page.locator("table.jobs tr.job, table.groups tr.group").first.bounding_box()
    header = page.locator("header.site-header").bounding_box()
    assert row["y"] - (0 if path == "/groups" else header["y"] + header["height"]) < 384, (row, header)
    for panel, content in folds.items():
        page.locator(f"{panel} > summary").click()
        expect(page.locator(content)).to_be_visible()
    # A desktop at 100 % (1366x768, a 657 px high window) keeps them open, with no buttons.
    page.goto(site + path)
    page.set_viewport_size({"width": 1366, "height": 657})
    for panel, content in folds.items():
        expect(page.locator(f"{panel} > summary")).not_to_be_visible()
        expect(page.locator(content)).to_be_visible()
    context.close()
