"""Worker text in a real browser (Chromium through Playwright), on both databases:
long unbroken values wrap instead of widening the page, and values are
bidi-isolated (``<bdi>``), so a right-to-left override stays inside them.

The browser set-up follows tests/integration/test_browser.py; the jobs are
made by the services directly, not by the reference worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import create_job
from tests.conftest import make_user
from tests.integration.test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD
from tests.live_server import serve

pytestmark = pytest.mark.browser

#: 200 characters without a break opportunity (the longest document id allowed).
LONG_ID = "MRN-" + "7" * 196
LONG_WORD = "NoBreak" * 40


@pytest.fixture
def long_job(app) -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    make_user(app, "browser-admin", "admin", password=PASSWORD)
    with app.app_context():
        job = create_job(LONG_ID, job_type="t" * 64)
        items = [{"code": "vendor." + LONG_WORD, "severity": "error", "message": LONG_WORD,
                  "pointer": "/" + LONG_WORD, "entity": {"type": LONG_WORD, "index": 1}}]
        get_failure_recorder().record_validation_failure(job.id, LONG_WORD, {"errors": items})
        return str(job.id)


@pytest.mark.parametrize("width", [1440, 420])
def test_a_200_character_document_id_does_not_widen_the_pages(app, long_job, width):
    with serve(app) as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(f"{base_url}/login")
            page.fill("#username", "browser-admin")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{base_url}/groups")  # the landing page
            for path in ("/jobs", f"/jobs/{long_job}"):
                page.goto(base_url + path)
                expect(page.locator("main")).to_contain_text(LONG_ID)
                sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
                assert sizes[0] <= sizes[1], (path, sizes)
                # Every place the id is shown isolates it from the text around it.
                isolation = page.evaluate(
                    """id => [...document.querySelectorAll('main *')]
                        .filter(e => [...e.childNodes].some(n => n.nodeType === 3 && n.data.includes(id)))
                        .map(e => getComputedStyle(e).unicodeBidi)""",
                    LONG_ID,
                )
                assert isolation and set(isolation) == {"isolate"}, (path, isolation)
        finally:
            browser.close()
