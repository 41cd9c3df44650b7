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
              "schema.enum", "schema.pattern", "date.before_birth", "value.out_of_range")


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


def _more_codes(app) -> None:
    """A failed job for each of :data:`MORE_CODES`: with the corpus's, 18 codes."""
    from app.registry import get_failure_recorder
    from app.services.processing_jobs.lifecycle import create_job

    with app.app_context():
        for n, code in enumerate(MORE_CODES):
            job = create_job(f"doc-more-codes-{n}")
            items = [{"code": code, "severity": "error", "message": "m", "pointer": "/entities/0"}]
            get_failure_recorder().record_validation_failure(job.id, "Entity validation failed", {"errors": items})


@pytest.mark.parametrize("width", [320, 360, 390])
def test_the_phone_summary_with_many_codes_fits_its_frame(app, site, browser, width):  # noqa: F811
    """/jobs at 360x740 with the demo's 18 codes: 596 px of summary in the
    578 px frame, its last line ("The top five; a wider screen shows the top
    10 of 18.") cut off, the frame scrolling inside."""
    _more_codes(app)
    context, page = _page(browser, site, width, 740)
    page.goto(site + "/jobs")
    frame = page.frame_locator("iframe.summary-frame")
    expect(frame.locator("a.more-codes")).to_have_text("18 codes in all")
    expect(frame.locator(".top-codes p.note.narrow-only")).to_be_visible()
    summary = next(f for f in page.frames if f.url.endswith("/jobs/summary"))
    summary.wait_for_load_state("load")  # its stylesheet applied
    heights = summary.evaluate("() => [document.documentElement.scrollHeight, window.innerHeight]")
    assert heights[0] <= heights[1], heights
    context.close()


def _many_jobs(app) -> None:
    """Three-digit counts: 120 more completed and failed jobs, 19 processing (rows alone: the summary counts
    statuses from the jobs table's rollups, kept by its triggers)."""
    from app.extensions import db
    from app.models import ProcessingJob
    from app.models.types import utcnow

    now = utcnow()
    with app.app_context():
        for status, count in (("Completed", 120), ("Validation_Failed", 120), ("Processing", 19)):
            db.session.add_all(ProcessingJob(document_id=f"doc-many-{status}-{n}", status=status, created_at=now,
                                             completed_at=None if status == "Processing" else now)
                               for n in range(count))
        db.session.commit()


@pytest.mark.parametrize("query", ["", "?status=Validation_Failed&status=Failed&status=Pending&status=Processing"
                                       "&status=Completed"])
def test_the_smallest_phone_summary_fits_its_frame_with_three_digit_counts(app, site, browser, query):  # noqa: F811
    """A re-check at 320 px: with counts of 120 and more the selected "Validation failed" put its count on a
    second line, 12 px past the frame's bottom (33 px with every status selected)."""
    _more_codes(app)
    _many_jobs(app)
    context, page = _page(browser, site, 320, 740)
    page.goto(site + "/jobs" + query)
    summary = next(f for f in page.frames if f.url.split("?")[0].endswith("/jobs/summary"))
    summary.wait_for_load_state("load")
    heights = summary.evaluate("() => [document.documentElement.scrollHeight, window.innerHeight]")
    assert heights[0] <= heights[1], heights
    context.close()


_LINK_BOXES = """section => [...section.querySelectorAll('a')].map(a => {
    const box = a.getBoundingClientRect();
    return {text: a.textContent, top: box.top, bottom: box.bottom, width: box.width, height: box.height,
            lines: Math.round(box.height / parseFloat(getComputedStyle(a).lineHeight))};
})"""


@pytest.mark.parametrize("width", [320, 360])
def test_an_error_pages_links_are_targets_a_thumb_can_hit(site, browser, width):  # noqa: F811
    """At 360 px the 400 page's three links, one sentence, wrapped into
    18 px high links about 3 px apart, "Back to failure groups" broken."""
    context, page = _page(browser, site, width, 740)
    page.goto(site + "/groups?state=bogus")
    links = page.locator("section.error-page")
    expect(links.locator("a")).to_have_count(3)
    boxes = links.evaluate(_LINK_BOXES)
    assert [box["text"] for box in boxes][1:] == ["Back to failure groups", "Back to failed jobs"], boxes
    for box in boxes:
        assert box["height"] >= 24 and box["width"] >= 24, box  # WCAG 2.2, 2.5.8
    for upper, lower in zip(boxes, boxes[1:]):
        assert lower["top"] >= upper["bottom"] + 4 or lower["top"] == upper["top"], (upper, lower)
    assert [box["lines"] for box in boxes if box["text"].startswith("Back to")] == [1, 1], boxes
    context.close()


#: The room a text box leaves its placeholder, and the placeholder's width, in CSS px.
_PLACEHOLDER_ROOM = """e => {
    const style = getComputedStyle(e), context = document.createElement('canvas').getContext('2d');
    context.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    return [context.measureText(e.placeholder).width,
            e.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)];
}"""


@pytest.mark.parametrize(("width", "height"), [(320, 740), (360, 740), (390, 844), (683, 384), (1366, 657)])
def test_the_search_boxs_placeholder_is_whole(site, browser, width, height):  # noqa: F811
    """At 360 px it read "Job id, document or error te"; its label stays said to screen readers."""
    context, page = _page(browser, site, width, height)
    box = page.locator("header input[type=search]")
    text, room = box.evaluate(_PLACEHOLDER_ROOM)
    # With 5 % to spare: a tester's fonts cut text that fitted here by a pixel.
    assert text <= 0.95 * room, (box.get_attribute("placeholder"), text, room)
    expect(box).to_have_accessible_name("Search jobs")
    context.close()


@pytest.mark.parametrize("path", ["/groups", "/jobs"])
def test_on_a_touch_screen_the_lists_write_each_relative_time_in_utc(site, browser, path):  # noqa: F811
    """First and last seen (and a job's "failed 3 min ago") gave their UTC
    time only as a title, shown on hover: a phone cannot hover. There it is
    written under the relative time; a laptop's pointer keeps the title."""
    times = "table.groups tr.group time" if path == "/groups" else "table.jobs tr.job td.time time"
    for touch, width in ((True, 390), (False, 1366)):
        context = browser.new_context(java_script_enabled=False, has_touch=touch, is_mobile=touch,
                                      viewport={"width": width, "height": 844 if touch else 768})
        page = context.new_page()
        _sign_in(page, site)
        page.goto(site + path)
        stamp = page.locator(times).first
        exact = stamp.locator(".exact-utc")
        if touch:
            expect(exact).to_be_visible()
            assert exact.inner_text().strip() == f"({stamp.get_attribute('title')})"
            assert exact.inner_text().strip().endswith(" UTC)")
            # Under the relative time, not beside it: the cell grows down, not wider.
            assert exact.bounding_box()["y"] > stamp.bounding_box()["y"] + 5
        else:
            expect(exact).to_be_hidden()
            assert stamp.get_attribute("title").endswith(" UTC")
        context.close()
