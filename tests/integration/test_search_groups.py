"""The header search also finds failure groups by title (issue #14, "Finding
things"): a "Groups" section above the jobs it found, each linking to
/groups/<id>; the same results on both databases, a trigram index on
PostgreSQL."""

from __future__ import annotations

import re
from html import unescape

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup
from app.registry import get_failure_recorder
from app.services.failure_groups.search import find_groups_by_title, title_matches
from app.services.processing_jobs.lifecycle import create_job

ITEMS = {
    "unit": {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM",
             "pointer": "/entities/2/value/unit"},
    "icd": {"code": "code.unknown_icd10cm", "severity": "error", "message": "unknown code",
            "pointer": "/entities/0/code"},
    "percent": {"code": "limit.over_100%", "severity": "warning", "message": "over", "pointer": "/x"},
}


@pytest.fixture
def groups(app) -> dict[str, int]:
    """One failed job per item; name -> the id of the group it made."""
    with app.app_context():
        recorder = get_failure_recorder()
        for name, item in ITEMS.items():
            recorder.record_validation_failure(create_job(f"doc-{name}").id, "failed", {"errors": [item]})
        by_code = dict(db.session.execute(sa.select(FailureGroup.code, FailureGroup.id)).all())
        return {name: by_code[item["code"]] for name, item in ITEMS.items()}


def _found(html: str) -> list[int]:
    """The group ids the "Groups" section links to, in order (none: no section)."""
    section = re.search(r'<section class="found-groups".*?</section>', html, re.S)
    if section is None:
        return []
    assert ">Groups</h2>" in section.group(0)
    return [int(i) for i in re.findall(r'href="/groups/(\d+)(?:\?back=[^"]*)?"', section.group(0))]


def _search(client, text: str) -> str:  # noqa: ANN001
    response = client.get("/search", query_string={"q": text}, follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize(("text", "expected"), [
    ("NOT_UCUM", ["unit"]),          # case-insensitive, and "_" is a letter here, not a wildcard
    ("/entities/*/", ["unit", "icd"]),  # the pointer pattern in the title
    ("100%", ["percent"]),           # "%" is literal
    ("not%ucum", []),
    ("no such title", []),
])
def test_the_search_lists_the_groups_whose_title_holds_the_text(client, groups, text, expected):
    found = _found(_search(client, text))
    assert sorted(found) == sorted(groups[name] for name in expected)


def test_each_found_group_links_to_its_page_with_its_title(client, groups):
    html = _search(client, "unit.not_ucum")
    assert _found(html) == [groups["unit"]]
    link = re.search(rf'<a href="/groups/{groups["unit"]}(?:\?back=[^"]*)?"><code><bdi>(.*?)</bdi></code></a>', html)
    assert link and unescape(link.group(1)).startswith("unit.not_ucum")
    assert client.get(f"/groups/{groups['unit']}").status_code == 200
    # The jobs the search found are listed below it, as before.
    assert "doc-unit" in html


def test_the_list_without_a_search_has_no_groups_section(client, groups):
    assert _found(client.get("/jobs").get_data(as_text=True)) == []


def test_postgresql_serves_the_title_search_from_a_trigram_index(app_ctx, backend, groups):
    indexes = {i["name"] for i in sa.inspect(db.engine).get_indexes("failure_groups")}
    if backend != "postgresql":
        assert "ix_failure_groups_title_trgm" not in indexes
        assert [g.id for g in find_groups_by_title("ucum")] == [groups["unit"]]
        return
    assert "ix_failure_groups_title_trgm" in indexes
    # The condition alone: on a handful of rows the planner would rather walk
    # the last_seen index for the ORDER BY ... LIMIT of the whole query.
    statement = sa.select(FailureGroup.id).where(title_matches("not_ucum"))
    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in connection.execute(sa.text(f"EXPLAIN {compiled}")))
    assert "ix_failure_groups_title_trgm" in plan, plan
    assert [g.id for g in find_groups_by_title("ucum")] == [groups["unit"]]


def test_the_search_says_when_more_groups_match_than_it_lists(app, client, monkeypatch):
    # A trial made 12 groups holding "trial": 10 were listed and nothing said so.
    import app.dashboard.views as views

    monkeypatch.setattr(views, "MAX_GROUPS_FOUND", 3)
    with app.app_context():
        recorder = get_failure_recorder()
        for n in range(4):
            item = {**ITEMS["unit"], "code": f"trial.code{n}"}
            recorder.record_validation_failure(create_job(f"doc-trial-{n}").id, "failed", {"errors": [item]})
    html = _search(client, "trial.code")
    assert len(_found(html)) == 3
    assert "More groups' titles hold this text: these are the 3 seen most recently." in html
    html = _search(client, "trial.code3")
    assert len(_found(html)) == 1 and "More groups' titles" not in html
