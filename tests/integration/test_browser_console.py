"""Every page in Chromium at a phone, a tablet and a laptop width, with
JavaScript on and off: nothing scrolls sideways, axe-core finds no serious
or critical accessibility violation, the keyboard reaches everything with a
visible focus, and the search box finds jobs.

axe-core is an npm package pinned in tests/browser/package.json and its
package-lock.json; a session fixture runs ``npm ci`` into a temporary
folder (nothing is written into the work tree) and fails the run, never
skips it, when Node or npm are missing (scripts/ensure-test-tools installs
Debian's ``nodejs`` and ``npm``). The script is injected with Playwright's
``evaluate``, which the page's Content-Security-Policy does not govern; the
app itself serves no JavaScript, so its markup is the same with scripts off.
axe runs with JavaScript on only: it waits on timers, which never fire in a
page whose scripts are disabled.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.config import ROOT
from tests.integration.test_browser import PASSWORD, _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

WIDTHS = (390, 768, 1400)
#: axe impacts that fail the test.
BLOCKING_IMPACTS = {"serious", "critical"}
#: axe rules that fail the test at any impact: the landmarks a screen reader
#: lists to move around the page (a trial found two unnamed navs, "moderate").
BLOCKING_RULE_PREFIXES = ("landmark-",)


@pytest.fixture(scope="session")
def axe_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """axe-core's ``axe.min.js``, installed by ``npm ci`` from the committed lock file."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("node and npm are not installed: run scripts/ensure-test-tools (apt-get install nodejs npm)")
    folder = tmp_path_factory.mktemp("browser-js")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / "tests" / "browser" / name, folder / name)
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=folder,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"npm ci failed: {result.stderr[-2000:]}")
    return (folder / "node_modules" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")


def _pages(page, base_url: str) -> dict[str, str]:
    """Name -> path of every signed-in page, found from the list itself."""
    page.goto(f"{base_url}/jobs?status=all&acknowledged=include")
    failed = page.locator("tr.job.status-validation_failed td.document a").first.get_attribute("href")
    completed = page.locator("tr.job.status-completed td.document a").first.get_attribute("href")
    page.goto(f"{base_url}/groups")
    group = page.locator("table.groups td.title a").first.get_attribute("href")
    group_jobs = page.locator("table.groups td.current a").first.get_attribute("href")
    return {
        "failure groups": "/groups",
        "failure group": group,
        "jobs of a group": group_jobs,
        "groups and jobs found": "/jobs?q=unit&status=all&acknowledged=include",
        "failed jobs": "/jobs",
        "all jobs": "/jobs?status=all&acknowledged=include",
        "filtered, with chips": "/jobs?error_code=code.unknown_icd10cm&document_id=doc-0006&status=Validation_Failed",
        "search results": "/jobs?q=ICD-10-CM&status=all&acknowledged=include",
        "nothing found": "/jobs?q=no+such+thing",
        "summary": "/jobs/summary",
        "failed job": failed,
        "completed job": completed,
        "audit log": "/admin/audit",
        "unknown job": "/jobs/00000000-0000-0000-0000-000000000000",
        "bad query": "/jobs?status=bogus",
        "problem types": "/problems/",
        "problem type": "/problems/idempotency-key-in-progress",
    }


def _visit(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    for frame in page.frames[1:]:  # the summary's frame, with its stylesheet
        frame.wait_for_load_state("load")


def _widths(page) -> list[tuple[str, int, int]]:
    """(frame url, scrollWidth, innerWidth) of the page and each of its
    frames, then (url + " " + selector, scrollWidth, clientWidth) of each
    table box (``.table-scroll``): a page may fit while its table hides
    columns sideways inside its box (/groups at 390px was a 1,310px table in
    a 368px box). A box that says it scrolls sideways (a focusable region
    whose label says so: the job page's extracted entities) is left out."""
    found = []
    for frame in page.frames:
        found.append((frame.url, *frame.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")))
        found += [(f"{frame.url} .table-scroll#{n}", scroll, client) for n, (scroll, client) in enumerate(
            frame.evaluate("""() => [...document.querySelectorAll('.table-scroll')]
                .filter(e => !(e.getAttribute('aria-label') || '').includes('scrolls sideways'))
                .map(e => [e.scrollWidth, e.clientWidth])"""))]
    return found


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_no_page_scrolls_sideways_at_phone_tablet_and_laptop_widths(site, browser, javascript):
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    _sign_in(page, site)
    pages = _pages(page, site)
    too_wide = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages.items():
            _visit(page, site + path)
            too_wide += [(width, name, url, scroll, inner) for url, scroll, inner in _widths(page) if scroll > inner]
        # The bulk confirmation, reached by its button.
        _visit(page, f"{site}/jobs")
        page.click("button[value='requeue:filter']")
        expect(page.locator("h1")).to_contain_text("Requeue")
        too_wide += [(width, "bulk confirm", url, s, i) for url, s, i in _widths(page) if s > i]
    # Signed out: the sign-in page.
    context.clear_cookies()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        _visit(page, f"{site}/login")
        too_wide += [(width, "sign in", url, s, i) for url, s, i in _widths(page) if s > i]
    assert too_wide == []
    context.close()


def test_phones_get_cards_and_folded_filters_wider_screens_a_table(site, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    # Filters folded behind a "Filters" button that works without script.
    expect(page.locator("details.filter-panel > summary")).to_be_visible()
    expect(page.locator("input[name=error_code]")).not_to_be_visible()
    page.locator("details.filter-panel > summary").click()
    expect(page.locator("input[name=error_code]")).to_be_visible()
    # Each job a card (a block as wide as the list); the summary above the
    # list, where it stands in the page (the keyboard reaches it there:
    # test_browser_second_trial.py).
    row = page.locator("tr.job").first
    assert row.evaluate("e => getComputedStyle(e).display") == "flex"
    frame_top = page.locator("iframe.summary-frame").bounding_box()["y"]
    assert frame_top < page.locator("table.jobs").bounding_box()["y"]
    page.set_viewport_size({"width": 1400, "height": 900})
    expect(page.locator("details.filter-panel > summary")).not_to_be_visible()
    expect(page.locator("input[name=error_code]")).to_be_visible()
    assert row.evaluate("e => getComputedStyle(e).display") == "table-row"
    context.close()


def _axe(frame, axe_source: str) -> list[dict]:
    """Serious and critical violations axe finds in ``frame``, and any of the
    landmark rules (frames inside are checked on their own)."""
    if not frame.evaluate("() => typeof window.axe !== 'undefined'"):
        frame.evaluate(axe_source)
    result = frame.evaluate("async () => await axe.run(document, {iframes: false, resultTypes: ['violations']})")
    return [
        {"rule": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in BLOCKING_IMPACTS or v["id"].startswith(BLOCKING_RULE_PREFIXES)
    ]


@pytest.mark.parametrize("width, scheme", [(390, "light"), (1400, "light"), (390, "dark"), (1400, "dark")])
def test_axe_finds_no_serious_or_critical_violation_on_any_page(site, browser, axe_source, width, scheme):
    # Dark: the system's dark theme (the stylesheet's prefers-color-scheme),
    # for the operator at night; its contrast is checked as the light one's.
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    _sign_in(page, site)
    dark = page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(21, 25, 31)"
    assert dark is (scheme == "dark")
    found = {}
    for name, path in _pages(page, site).items():
        _visit(page, site + path)
        for frame in page.frames:
            violations = _axe(frame, axe_source)
            if violations:
                found[f"{name} ({frame.url})"] = violations
    _visit(page, f"{site}/jobs")
    page.click("button[value='acknowledge:filter']")
    found.update({"bulk confirm": v for v in [_axe(page.main_frame, axe_source)] if v})
    context.clear_cookies()
    _visit(page, f"{site}/login")
    found.update({"sign in": v for v in [_axe(page.main_frame, axe_source)] if v})
    assert found == {}
    context.close()


def test_the_keyboard_reaches_everything_with_a_visible_focus(site, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    seen = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focus = page.evaluate(
            """() => { const e = document.activeElement; const s = getComputedStyle(e);
                       return [e.tagName, e.getAttribute('name') || e.textContent.trim().slice(0, 30),
                               s.outlineStyle, parseFloat(s.outlineWidth)]; }""")
        if focus[0] == "BODY":
            break
        seen.append(focus)
        if focus[0] != "IFRAME":  # the frame's own document draws its focus
            assert focus[2] != "none" and focus[3] >= 2, focus
    names = [name for _tag, name, *_ in seen]
    assert "q" in names  # the search box
    assert "error_code" in names and "Filter" in names  # the filters
    assert "job_id" in names  # a row's box, for the selection bar
    # The search by keyboard alone: to the box, type, Enter.
    page.goto(f"{site}/jobs")
    while page.evaluate("() => document.activeElement.name") != "q":
        page.keyboard.press("Tab")
    page.keyboard.type("unit.not_ucum")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/jobs\?q=unit\.not_ucum&status=all&acknowledged=include$"))
    expect(page.locator("tr.job")).to_have_count(1)
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_search_finds_by_id_prefix_item_text_and_part_of_a_document(site, browser, javascript):
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 390, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    search = page.locator("header input[type=search]")
    # Text inside error items: a code, a pointer.
    for text, documents in (("date.in_future", ["doc-0010"]), ("/value/unit", ["doc-0009"])):
        search.fill(text)
        search.press("Enter")
        expect(page.locator("tr.job td.document")).to_have_text(documents)
        expect(page.locator("ul.chips")).to_contain_text(f"search = {text}")
    # Part of a document id, over every status (completed documents too).
    search.fill("doc-000")
    search.press("Enter")
    expect(page.locator("tr.job")).to_have_count(9)
    expect(page.locator("h1")).to_have_text("All jobs")
    # A job id prefix goes straight to the job; the full id is in the row.
    page.goto(f"{site}/jobs")
    full_id = page.locator("tr.job code.job-id").first.inner_text()
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", full_id)
    # One click selects the id whole (user-select: all), ready to copy.
    page.locator("tr.job code.job-id").first.click()
    assert page.evaluate("() => window.getSelection().toString()") == full_id
    search.fill(full_id[:8])
    search.press("Enter")
    # ... carrying the page the search was typed on, where its back link returns.
    expect(page).to_have_url(f"{site}/jobs/{full_id}?back=%2Fjobs")
    expect(page.locator("dl.job-fields")).to_contain_text(full_id)
    expect(page.locator("a.back")).to_have_attribute("href", "/jobs")
    # Removing the chip leaves the rest of the filter.
    page.goto(f"{site}/jobs?q=schema&error_code=schema.required")
    page.locator("li.chip:has-text('search') a.chip-remove").click()
    expect(page).to_have_url(f"{site}/jobs?error_code=schema.required")
    expect(page.locator("ul.chips li")).to_have_count(2)  # the code, and acknowledged jobs hidden
    expect(page.locator("ul.chips li").first).to_contain_text("code = schema.required")
    context.close()


def test_problem_type_uris_wrap_after_a_slash_or_a_hyphen_on_a_phone(site, browser):
    # They wrapped anywhere, cutting slugs such as "idempotency-key-in-progress" mid-word.
    context = browser.new_context(viewport={"width": 390, "height": 900})
    page = context.new_page()
    wrapped = 0
    for path in ("/problems/", "/problems/idempotency-key-in-progress"):
        _visit(page, site + path)
        # The character before each line break of each URI: found from the
        # line box of each character (a Range per character).
        before_breaks = page.evaluate("""() => [...document.querySelectorAll(
                'section.problem-types td code, section.problem-type p:first-of-type code:last-of-type')]
            .flatMap(code => {
                const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
                const chars = [];
                for (let node = walker.nextNode(); node; node = walker.nextNode())
                    for (let i = 0; i < node.length; i++) {
                        const range = document.createRange();
                        range.setStart(node, i); range.setEnd(node, i + 1);
                        chars.push([node.data[i], range.getClientRects()[0].top]);
                    }
                return chars.slice(1).flatMap(([, top], i) => top > chars[i][1] + 1 ? [chars[i][0]] : []);
            })""")
        assert set(before_breaks) <= {"/", "-"}, (path, before_breaks)
        wrapped += len(before_breaks)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    assert wrapped > 0  # at 390 px the URIs do wrap, so the check above saw breaks
    context.close()


def test_the_summary_opened_on_its_own_is_not_stretched_to_the_window(site, browser):
    # It filled its frame with min-height: 100vh, so opened on its own at
    # 1,400 x 900 its cards stretched to 900 px with wide gaps in the counts.
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    _sign_in(page, site)
    _visit(page, f"{site}/jobs/summary")
    alone = page.evaluate("document.querySelector('section.summary').getBoundingClientRect().height")
    _visit(page, f"{site}/jobs")
    frame = page.frame_locator("iframe.summary-frame")
    framed = frame.locator("section.summary").evaluate("e => e.getBoundingClientRect().height")
    frame_height = page.evaluate("document.querySelector('iframe.summary-frame').getBoundingClientRect().height")
    assert abs(framed - frame_height) <= 1  # still fills its frame
    assert alone <= frame_height + 1, (alone, frame_height)
    context.close()
