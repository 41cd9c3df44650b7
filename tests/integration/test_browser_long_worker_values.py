"""Long unbroken values the API accepts, in Chromium (same fixtures as
test_browser.py: a live server filled by the reference worker on the demo
corpus; Chromium must be installed, never skipped).

A trial at 768 px: an error item whose ``entity.code`` is 64 characters
without a space made the job page 937 px wide (the error table's Entity
cell did not wrap; the group page's sample error has the same table), and
a 100-character ``worker.version`` reached x=1096 on the group page (its
"By worker version" table cut it with an ellipsis, hidden past the edge).
The README promises no sideways scroll.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.worker.client import WorkerApiClient
from tests.integration.test_browser import _sign_in, browser, site  # noqa: F401 (fixtures)
from tests.integration.test_browser_second_trial import _LINES

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

#: The longest entity code of the trial and the longest worker name and
#: version the contract allows (100 characters), none with a space or separator.
LONG_CODE = "Z" * 64
LONG_NAME = "W" * 100
LONG_VERSION = "V" * 100

_WIDTHS = """() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"""
#: Elements in <main> whose right edge passes the viewport's (what the trial measured).
_PAST_EDGE = """() => [...document.querySelectorAll('main *')].filter(e => e.offsetParent)
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
    .map(e => `${e.closest('td, p, dd')?.className || ''} ${e.tagName.toLowerCase()}.${e.className}: ${Math.round(e.getBoundingClientRect().right)}`)"""


def _long_values_job(site, worker_token) -> str:  # noqa: F811
    """A job failed through the worker API with the long entity code and worker."""
    client = WorkerApiClient(site, retries=0, token=worker_token)
    try:
        job = client.create_job("doc-long-values")
        client.start_job(job["id"])
        client.record_result(job["id"], {
            "status": "validation_failed",
            "error_message": "1 error",
            "error_details": {"errors": [{
                "code": "trial.long-values", "severity": "error", "message": "The code is not in the value set.",
                "pointer": "/entities/0/code", "entity": {"type": "Condition", "code": LONG_CODE},
            }]},
            "error_format": "normalized",
            "worker": {"name": LONG_NAME, "version": LONG_VERSION},
        })
    finally:
        client.session.close()
    return job["id"]


def _overflow(page, path: str, width: int) -> list:
    """``[]`` when the page does not scroll sideways, else what passes the edge."""
    page.wait_for_load_state("load")  # the stylesheet applied
    widths = page.evaluate(_WIDTHS)
    return [] if widths[0] <= widths[1] else [(path, width, widths, page.evaluate(_PAST_EDGE)[:12])]


def test_a_long_entity_code_and_worker_version_do_not_widen_the_pages(site, browser, worker_token):  # noqa: F811
    """At 768, 390 and 1,400 px neither the job page nor its group's page
    scrolls sideways; "Condition" stays whole, only the long code breaks;
    the version is shown whole, inside the screen, wherever it is named."""
    job_id = _long_values_job(site, worker_token)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    overflows = []  # every page and width, so a failure names them all
    for width in (768, 390, 1400):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{site}/jobs/{job_id}")
        entity = page.locator("table.errors td.entity bdi:visible").first
        expect(entity).to_have_text(f"Condition · {LONG_CODE}")
        overflows += _overflow(page, "job page", width)
        # Only the long code breaks: "Condition" stays a whole word on its line.
        lines = entity.evaluate(_LINES)
        assert "".join(lines) == f"Condition · {LONG_CODE}", lines
        assert lines[0].split()[0] == "Condition", lines

        # The item's failure group, from its link under the message.
        page.locator("table.errors .item-group a").first.click()
        expect(page.locator("h1")).to_contain_text("trial.long-values")
        overflows += _overflow(page, "group page", width)
        # Each place the worker is named shows it whole (no added character
        # when copied), inside the screen: the trial measured the version's
        # right edge at x=1096 (cut by the distribution table's ellipsis).
        for selector in ("table.by-worker-version td code", "table.sample-jobs td.worker code",
                         "p.muted:has-text('The newest failure') code:has-text('VVVV')"):
            version = page.locator(selector).first
            assert version.text_content() == LONG_VERSION, selector
            box, client_width = version.bounding_box(), page.evaluate("() => document.documentElement.clientWidth")
            if box["x"] + box["width"] > client_width + 0.5:
                overflows.append(("group page", width, selector, round(box["x"] + box["width"])))
        assert LONG_NAME in page.locator("table.sample-jobs td.worker").first.text_content()
    assert overflows == [], "\n".join(map(repr, overflows))
    context.close()


def test_a_messages_line_breaks_show_on_the_job_page(site, browser, worker_token):  # noqa: F811
    client = WorkerApiClient(site, retries=0, token=worker_token)
    try:
        job = client.create_job("doc-multi-line")
        client.start_job(job["id"])
        client.record_result(job["id"], {
            "status": "validation_failed", "error_message": "first line\nsecond line",
            "error_details": {"errors": [{"code": "trial.lines", "severity": "error",
                                          "message": "item first\nitem second", "pointer": "/entities/0"}]},
            "error_format": "normalized",
        })
    finally:
        client.session.close()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    page.goto(f"{site}/jobs/{job['id']}")
    page.wait_for_load_state("load")
    # Each text on two lines: its boxes stand at two heights.
    for selector in ("dd.message > bdi", "td.item-message > bdi"):
        tops = page.locator(selector).first.evaluate("e => [...e.getClientRects()].map(r => Math.round(r.top))")
        assert len(set(tops)) == 2, (selector, tops)
    context.close()
