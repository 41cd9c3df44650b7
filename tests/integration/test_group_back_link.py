"""A group page's back link returns to the filtered list it was opened
from, and keeps doing so after an action on the group (a trial: it went to
the plain /groups, first page, unresolved)."""

from __future__ import annotations

import html as html_module
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.test_group_pages import _csrf, groups  # noqa: F401 (fixture)


def _back_link(page: str) -> tuple[str, str]:
    """The group page's back link: its target (unescaped) and its words."""
    found = re.search(r'<a class="back-to-list" href="([^"]*)">← ([^<]*)</a>', page)
    assert found, page[:500]
    return html_module.unescape(found.group(1)), found.group(2)


def _group_link(page: str, group_id: int) -> str:
    found = re.search(rf'href="(/groups/{group_id}(?:\?[^"#]*)?)"', page)
    assert found, f"no link to group {group_id}"
    return html_module.unescape(found.group(1))


def test_the_back_link_returns_to_the_filtered_list_even_after_an_action(client, groups):  # noqa: F811
    listed = "/groups?sort=job_count&worker_version=1.4.0"
    link = _group_link(client.get(listed).get_data(as_text=True), groups["unit"])
    assert parse_qs(urlsplit(link).query)["back"] == [listed]
    page = client.get(link).get_data(as_text=True)
    assert _back_link(page) == (listed, "Failure groups")
    # Resolve, then ignore (forms carry it, the redirect keeps it), then the sample table's pages.
    path = f"/groups/{groups['unit']}"
    resolved = client.post(path + "/resolve", data={"csrf_token": _csrf(client, path), "back": listed})
    assert resolved.status_code == 303
    assert parse_qs(urlsplit(resolved.headers["Location"]).query)["back"] == [listed]
    page = client.get(resolved.headers["Location"]).get_data(as_text=True)
    assert "Resolved group" in page and _back_link(page) == (listed, "Failure groups")
    assert f'<input type="hidden" name="back" value="{html_module.escape(listed)}">' in page
    reopened = client.post(path + "/reopen", data={"csrf_token": _csrf(client, path), "back": listed})
    assert _back_link(client.get(reopened.headers["Location"]).get_data(as_text=True))[0] == listed


def test_a_search_leads_back_to_its_results(client, groups):  # noqa: F811
    results = client.get("/search?q=not_ucum").headers["Location"]
    link = _group_link(client.get(results).get_data(as_text=True), groups["unit"])
    assert _back_link(client.get(link).get_data(as_text=True)) == (results, "Search results")


@pytest.mark.parametrize("back", [
    "https://evil.example/groups", "//evil.example/groups", "/exports/job-errors.csv", "/admin/audit", "groups",
    "/login?next=/groups",
    # A re-check: the right list with a query it refuses led to a 400 page.
    "/groups?back=/jobs", "/jobs?q=%00", "/groups?x=1", "/groups?state=%ZZ", "/jobs?status=bogus",
    "/groups?limit=1&limit=2", "/jobs?q=%C3",
])
def test_a_back_that_is_not_a_list_of_this_site_gives_the_plain_link(client, groups, back):  # noqa: F811
    page = client.get(f"/groups/{groups['unit']}", query_string={"back": back}).get_data(as_text=True)
    assert _back_link(page) == ("/groups", "Failure groups")
    actions = page.split('<section class="group-actions">')[1].split("</section>")[0]
    assert 'name="back"' not in actions
    path = f"/groups/{groups['unit']}"
    resolved = client.post(path + "/resolve", data={"csrf_token": _csrf(client, path), "back": back})
    assert resolved.headers["Location"] == path


def test_a_back_to_a_jobs_list_of_every_status_is_not_called_failed_jobs(client, groups):  # noqa: F811
    back = "/jobs?status=all&group=1"
    page = client.get(f"/groups/{groups['unit']}", query_string={"back": back}).get_data(as_text=True)
    assert _back_link(page) == (back, "Jobs")


def test_the_plain_groups_list_adds_no_back(client, groups):  # noqa: F811
    assert _group_link(client.get("/groups").get_data(as_text=True), groups["unit"]) == f"/groups/{groups['unit']}"
