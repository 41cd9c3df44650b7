"""The group page's timeline and job links, as the fourth new-operator trial
of #14 read them, on both databases: the state a change left is the one the
page showed then (``new`` reads ``ongoing`` after 24 hours, in the timeline
too), an event's facts are in words ("in version 9.9.9", not
``in_version: 9.9.9``), and a job opened from the group page leads back to
the group."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup, FailureGroupEvent
from tests.integration.test_group_pages import _csrf, groups  # noqa: F401 (fixture)


def _timeline(html: str) -> list[str]:
    section = re.search(r'<ol class="timeline group-events">(.*?)</ol>', html, re.S).group(1)
    items = re.findall(r"<li.*?</li>", section, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in items]


def _age_group(app, group_id: int, hours: int) -> None:
    """Move the group's first sighting ``hours`` back, its stored substate
    left at ``new`` (nothing rewrites it at the 24 h mark)."""
    with app.app_context():
        group = db.session.get(FailureGroup, group_id)
        assert group.substate == "new"
        group.first_seen -= timedelta(hours=hours)
        db.session.commit()


def test_a_resolve_after_the_first_day_leaves_ongoing_and_says_its_version_in_words(app, client, groups):  # noqa: F811
    path = f"/groups/{groups['unit']}"
    _age_group(app, groups["unit"], 30)
    assert "ongoing" in re.search(r"<dt>State</dt>\s*<dd>(.*?)</dd>", client.get(path).get_data(as_text=True),
                                  re.S).group(1)
    response = client.post(path + "/resolve", data={"csrf_token": _csrf(client, path), "in_version": "9.9.9"})
    assert response.status_code == 303
    html = client.get(path).get_data(as_text=True)
    resolved = [line for line in _timeline(html) if line.startswith("resolved") or " resolved by " in line]
    assert len(resolved) == 1, _timeline(html)
    assert "unresolved (ongoing) → resolved" in resolved[0]
    assert "in version 9.9.9" in resolved[0] and "via dashboard" in resolved[0]
    assert "in_version" not in html.split('<ol class="timeline group-events">')[1].split("</ol>")[0]
    with app.app_context():
        stored = db.session.scalar(
            sa.select(FailureGroupEvent).where(FailureGroupEvent.group_id == groups["unit"],
                                               FailureGroupEvent.reason == "resolved")
        )
        assert stored.from_substate == "ongoing"  # what the page showed when it was resolved
        # An event stored before this rule, with the raw "new", reads the same.
        stored.from_substate = "new"
        db.session.commit()
    assert "unresolved (ongoing) → resolved" in " ".join(_timeline(client.get(path).get_data(as_text=True)))


def test_a_change_within_the_first_day_leaves_new(app, client, groups):  # noqa: F811
    path = f"/groups/{groups['icd']}"
    response = client.post(path + "/ignore", data={"csrf_token": _csrf(client, path), "mode": "forever"})
    assert response.status_code == 303
    lines = _timeline(client.get(path).get_data(as_text=True))
    ignored = [line for line in lines if "ignored by" in line]
    assert len(ignored) == 1 and "unresolved (new) → ignored" in ignored[0]
    assert "forever" in ignored[0] and "mode" not in ignored[0]


def test_jobs_opened_from_the_group_page_lead_back_to_the_group(client, groups):  # noqa: F811
    path = f"/groups/{groups['unit']}"
    html = client.get(path).get_data(as_text=True)
    links = re.findall(r'href="(/jobs/[0-9a-f-]{36}[^"]*)"', html)
    assert links, "the group page links no job"
    for link in set(links):
        target = link.replace("&amp;", "&")
        assert parse_qs(urlsplit(target).query).get("back") == [path], target
    job_page = client.get(links[0].replace("&amp;", "&")).get_data(as_text=True)
    assert re.search(r'<a class="back" href="([^"]+)">← Back to the group</a>', job_page).group(1) == path


def test_the_groups_intro_links_the_jobs_in_a_sentence(client, groups):  # noqa: F811
    intro = re.search(r"<h1>Failure groups</h1>\s*</div>\s*<p class=\"muted\">(.*?)</p>",
                      client.get("/groups").get_data(as_text=True), re.S).group(1)
    assert intro.endswith('The jobs themselves are on <a href="/jobs">Failed jobs</a>.'), intro


def test_every_event_sets_its_facts_apart_from_the_change_the_same_way(app, client, groups):  # noqa: F811
    # A trial read "→ ignored until 2 more occurrences; via dashboard" beside
    # "→ unresolved (ongoing) via dashboard": a "; " after the first fact only.
    path = f"/groups/{groups['unit']}"
    _age_group(app, groups["unit"], 30)
    client.post(path + "/ignore", data={"csrf_token": _csrf(client, path), "mode": "until_occurrences",
                                        "occurrences": "2"})
    client.post(path + "/reopen", data={"csrf_token": _csrf(client, path)})
    lines = _timeline(client.get(path).get_data(as_text=True))
    ignored = next(line for line in lines if "ignored by" in line)
    reopened = next(line for line in lines if "reopened by" in line)
    assert ignored.endswith("→ ignored ; until 2 more occurrences ; via dashboard"), ignored
    assert reopened.endswith("→ unresolved (ongoing) ; via dashboard"), reopened
