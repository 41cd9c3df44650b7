"""The one search box: ``/search?q=`` and the ``q`` filter it leads to.

A job by its id or an id prefix of 8+ hex digits (straight to the job when
exactly one has it), documents by part of their id, and text inside the
failure: the message and each error item's message, code, pointer, entity
type and code. Runs on SQLite (a scan) and PostgreSQL (a trigram index);
both must find exactly the same jobs.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import JobStatus, ProcessingJob
from app.services.processing_jobs.filter_sql import id_prefix_range
from app.services.processing_jobs.job_filter import JobFilter
from tests.helpers import crashed_job
from tests.integration.test_dashboard_filters import item, make_job, shown_ids

API = "/api/v1/processing-jobs"


def _store_details(job_id: str, details: object) -> str:
    """Store ``details`` as they are (test setup: shapes the recorder would
    refuse or rewrite, such as an entity ``code`` or items of other types)."""
    db.session.execute(sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(job_id))
                       .values(error_details=details))
    db.session.commit()
    return job_id


def _set_id(job_id: str, new_id: str) -> str:
    """Give a job (without failure history rows) a chosen id (test setup)."""
    db.session.execute(sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(job_id))
                       .values(id=uuid.UUID(new_id)))
    db.session.commit()
    return new_id


@pytest.fixture
def jobs(app) -> dict[str, str]:
    """Name -> job id."""
    with app.app_context():
        made = {
            "icd": _store_details(make_job("referral-0006", message="Entity validation failed: 1 error"), {
                "schema_version": 1, "error_count": 1, "truncated": False, "errors": [
                    item("code.unknown_icd10cm", message="code Z99.89X is not in ICD-10-CM FY2025",
                         pointer="/entities/2/code", entity={"type": "Condition", "index": 2, "code": "Z99.89X"}),
                ]}),
            "unit": make_job("lab-0009", details={"errors": [
                item("unit.not_ucum", message="unit is not a valid UCUM code", pointer="/entities/1/value/unit",
                     entity={"type": "Observation", "index": 1}),
                item("schema.required", message="missing required property 'code'", pointer="/entities/4",
                     severity="warning"),
            ]}, message="Entity validation failed: 1 error (unit.not_ucum)"),
            "crash": make_job("scan-0011", "Failed", message="Worker crashed: OOM", details=None),
            "done": make_job("referral-0012", "Completed"),
            # A bare array is read like an envelope's items (the listing rule) ...
            "bare": _store_details(make_job("bare-0013", "Failed", message="listed"), [
                {"code": "vendor.bare_list", "message": "from a bare list", "pointer": "/x"},
            ]),
            # ... but nothing else of free-form details, and only string fields.
            "free": _store_details(make_job("free-0014", "Failed", message="free"), {
                "errors": {"code": "vendor.not_a_list"}, "hint": "vendor.hint",
                "items": [{"code": "vendor.nested"}],
            }),
            "numbers": _store_details(make_job("numbers-0015", message="numbers"), {"errors": [
                {"code": 777001, "message": ["vendor.in_a_list"], "pointer": {"p": "vendor.in_object"}},
                "vendor.a_bare_string",
            ]}),
            "acked": make_job("acked-0016", codes=("vendor.acknowledged_code",), acknowledged=True),
        }
        # Two ids sharing their first 8 digits, one alone.
        made["twin1"] = _set_id(make_job("twin-a", "Pending"), "abcdef01-0000-4000-8000-000000000001")
        made["twin2"] = _set_id(make_job("twin-b", "Pending"), "abcdef01-9999-4000-8000-000000000002")
        made["single"] = _set_id(make_job("single", "Pending"), "12345678-aaaa-4bbb-8ccc-0123456789ab")
        return made


def _names(jobs: dict[str, str], ids: list[str]) -> set[str]:
    by_id = {v: k for k, v in jobs.items()}
    return {by_id[i] for i in ids}


SEARCHES = [
    # text in items: message, code, pointer, entity type, entity code
    ("Z99", {"icd"}),  # item message and entity code
    ("z99.89x", {"icd"}),  # case-insensitive
    ("ICD-10-CM", {"icd"}),
    ("unknown_icd10cm", {"icd"}),
    ("not_ucum", {"unit"}),  # code, and the job's message
    ("valid UCUM", {"unit"}),
    ("/entities/4", {"unit"}),  # pointer
    ("/value/unit", {"unit"}),
    ("Observation", {"unit"}),  # entity type
    ("required property", {"unit"}),  # a warning's message too
    ("OOM", {"crash"}),  # the error message
    ("vendor.bare_list", {"bare"}),
    ("from a bare", {"bare"}),
    # documents by partial id (any status)
    ("referral-00", {"icd", "done"}),
    ("0009", {"unit"}),
    ("SCAN-001", {"crash"}),
    # acknowledged jobs are searched too
    ("acknowledged_code", {"acked"}),
    # nothing outside the fields, and never across two fields
    ("vendor.not_a_list", set()),
    ("vendor.hint", set()),
    ("vendor.nested", set()),
    ("777001", set()),
    ("vendor.in_a_list", set()),
    ("vendor.in_object", set()),
    ("vendor.a_bare_string", set()),
    ("icd10cm/entities", set()),  # code + pointer
    ("ucum code/entities", set()),
    ("ConditionZ99", set()),  # entity type + entity code
    # wildcards are literal
    ("%", set()),
    ("unknown%icd", set()),
    ("unit_not", set()),
    # an id prefix (8+ hex digits, hyphens ignored, any case) lists every job with it
    ("abcdef01", {"twin1", "twin2"}),
    ("ABCDEF01-", {"twin1", "twin2"}),
    ("abcdef01-9", {"twin2"}),
    ("abcdef0", set()),  # 7 digits: only text, and no text holds it
]


@pytest.mark.parametrize(("text", "expected"), SEARCHES)
def test_search_lists_exactly_these_jobs(client, jobs, text, expected):
    response = client.get("/search?" + f"q={quote(text)}")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    if location.path.startswith("/jobs/"):  # exactly one job with the id prefix
        assert {location.path.removeprefix("/jobs/")} == {jobs[name] for name in expected}
        return
    assert location.path == "/jobs"
    assert parse_qsl(location.query) == [("q", text), ("status", "all"), ("acknowledged", "include")]
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert _names(jobs, shown_ids(html)) == expected


@pytest.mark.parametrize(("text", "expected"), SEARCHES)
def test_the_api_and_the_filter_find_the_same(client, jobs, text, expected):
    response = client.get(f"{API}?" + f"q={quote(text)}")
    assert response.status_code == 200
    assert _names(jobs, [job["id"] for job in response.get_json()["items"]]) == expected


def test_an_id_or_a_unique_prefix_opens_the_job(client, jobs):
    single = jobs["single"]
    for text in (single, single.upper(), single.replace("-", ""), "12345678", "12345678-aa", f"  {single[:10]} "):
        response = client.get(f"/search?q={quote(text)}")
        assert response.status_code == 302, text
        assert response.headers["Location"] == f"/jobs/{single}", text
    # Any job's full id, whatever its status.
    response = client.get(f"/search?q={jobs['done']}")
    assert response.headers["Location"] == f"/jobs/{jobs['done']}"
    # A prefix two jobs share lists both.
    response = client.get("/search?q=abcdef01")
    assert urlsplit(response.headers["Location"]).path == "/jobs"


def test_a_job_opened_by_the_search_box_links_back_to_the_page_the_box_was_on(client, jobs):
    """A trial: after a header search jumped to a job, "Back to the list"
    went to /jobs, not to the group page the search was typed on (the site
    sends no Referer). The box sends its page as ``back``; only a path of
    this site is kept."""
    single = jobs["single"]
    response = client.get(f"/search?q={single}&back={quote('/groups/3?state=all')}")
    assert response.headers["Location"] == f"/jobs/{single}?back=%2Fgroups%2F3%3Fstate%3Dall"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<a class="back" href="/groups/3?state=all">← Back to the group</a>' in html
    for foreign in ("https://elsewhere.example/", "//elsewhere.example/x", "javascript:alert(1)"):
        response = client.get(f"/search?q={single}&back={quote(foreign)}")
        assert response.headers["Location"] == f"/jobs/{single}", foreign
    # The box itself carries the page it is on, a GET page only.
    page = client.get("/groups?state=all").get_data(as_text=True)
    assert '<input type="hidden" name="back" value="/groups?state=all">' in page
    refused = client.post(f"/jobs/{single}/requeue", data={}).get_data(as_text=True)
    assert 'name="q"' in refused and 'name="back"' not in refused


def test_an_id_that_no_job_has_finds_nothing(client, jobs):
    response = client.get(f"/search?q={uuid.uuid4()}", follow_redirects=True)
    assert response.status_code == 200
    assert shown_ids(response.get_data(as_text=True)) == []
    assert "No jobs match this filter." in response.get_data(as_text=True)


@pytest.mark.parametrize("prefix", ["eda1c0a", "abcdefa", "ABCDEFA"])
def test_a_seven_character_id_prefix_says_eight_are_needed(client, jobs, prefix):
    html = client.get(f"/search?q={prefix}", follow_redirects=True).get_data(as_text=True)
    assert shown_ids(html) == []
    assert "A job is found by its id from its first 8 characters on" in html
    assert f"<bdi>{prefix}</bdi> was searched as text" in html


def test_a_short_word_of_hex_letters_gets_no_id_hint(client, jobs):
    html = client.get("/search?q=decade", follow_redirects=True).get_data(as_text=True)
    assert "No jobs match this filter." in html and "first 8 characters" not in html


def test_an_empty_search_opens_the_list(client):
    for query in ("", "?q=", "?q=+++"):
        response = client.get(f"/search{query}")
        assert response.status_code == 302
        assert response.headers["Location"] == "/jobs"


@pytest.mark.parametrize("query", ["q=a%00b", "q=%1b%5B31m", "q=" + "x" * 201])
def test_bad_input_is_a_clear_400(client, query):
    response = client.get(f"/search?{query}")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "<code>q</code>" in html
    assert "\x00" not in html and "\x1b" not in html


def test_the_search_box_is_on_every_signed_in_page(client, jobs, anonymous_client):
    for path in ("/jobs", f"/jobs/{jobs['icd']}", "/admin/audit", "/jobs?status=all", "/nope"):
        html = client.get(path).get_data(as_text=True)
        form = re.search(r'<form class="site-search" role="search" method="get" action="/search">.*?</form>', html, re.S)
        assert form, path
        assert '<input type="search" id="site-search-q" name="q"' in form.group(0)
        assert '<label for="site-search-q"' in form.group(0)
    # The results keep the term in the box.
    html = client.get("/jobs?q=Z99&status=all").get_data(as_text=True)
    assert re.search(r'id="site-search-q" name="q"[^>]*value="Z99"', html)
    # Signed out: no box (the sign-in page), and the search itself needs a sign-in.
    assert "site-search" not in anonymous_client.get("/login").get_data(as_text=True)
    response = anonymous_client.get("/search?q=Z99")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_an_id_prefix_is_a_range_of_the_primary_key():
    assert id_prefix_range("abcdef01") == (uuid.UUID("abcdef01-0000-0000-0000-000000000000"),
                                           uuid.UUID("abcdef01-ffff-ffff-ffff-ffffffffffff"))
    assert id_prefix_range("ABCDEF01-23") == (uuid.UUID("abcdef01-2300-0000-0000-000000000000"),
                                              uuid.UUID("abcdef01-23ff-ffff-ffff-ffffffffffff"))
    full = "12345678-aaaa-4bbb-8ccc-0123456789ab"
    assert id_prefix_range(full) == (uuid.UUID(full), uuid.UUID(full))
    for text in ("abcdef0", "abcdef0g", "doc-12345678", full + "0", "", "--------"):
        assert id_prefix_range(text) is None, text


def search_plan(text: str) -> str:
    """PostgreSQL's ``EXPLAIN`` of the search for ``text``, sequential scans off
    (on a small table the planner would rather read it all)."""
    statement = sa.select(ProcessingJob.id).where(*JobFilter(text=text).where())
    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        return "\n".join(row[0] for row in connection.execute(sa.text(f"EXPLAIN {compiled}")))


def test_postgresql_serves_the_search_from_the_trigram_index(app_ctx, backend):
    if backend != "postgresql":
        assert not sa.inspect(db.engine).get_indexes("processing_jobs") or all(
            i["name"] != "ix_processing_jobs_search_text" for i in sa.inspect(db.engine).get_indexes("processing_jobs")
        )
        return
    plan = search_plan("ICD-10-CM")
    assert "ix_processing_jobs_search_text" in plan, plan




# -- the search's page: a bounded walk of the newest jobs, then the search's index ----------


@pytest.fixture
def spread(app) -> dict[str, str]:
    """20 jobs an hour apart, newest first by name; "needle" in 7 of them,
    new, in the middle and old, and in one that is not a failure."""
    from datetime import datetime, timedelta, timezone
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    holding = {0, 1, 6, 13, 17, 18, 19}
    made = {}
    with app.app_context():
        for n in range(20):
            at = start - timedelta(hours=n)
            status = "Completed" if n == 6 else ("Failed" if n % 3 else "Validation_Failed")
            message = f"job {n} " + ("found the needle" if n in holding else "nothing here")
            job_id = make_job(f"spread-{n:02d}", status, message=message, created=at,
                              completed=at + timedelta(minutes=n))
            if status == "Completed" and n in holding:  # a completed job holds no message: its document does
                db.session.execute(sa.update(ProcessingJob).where(ProcessingJob.id == uuid.UUID(job_id))
                                   .values(document_id="needle-in-a-document"))
                db.session.commit()
            made[f"{n:02d}"] = job_id
    return made


def _every_page(job_filter: JobFilter, limit: int) -> list[list[str]]:
    from app.services.processing_jobs import pagination
    pages, cursor = [], None
    while True:
        page = pagination.list_jobs(job_filter, limit=limit, cursor=cursor)
        pages.append([str(job.id) for job in page.jobs])
        cursor = page.next_cursor
        if cursor is None:
            return pages


@pytest.mark.parametrize("window", [1, 2, 3, 5, 7, 19, 20, 21, 1000])
@pytest.mark.parametrize("time_field", ["created", "completed"])
@pytest.mark.parametrize("statuses", [(), (JobStatus.FAILED,)])
def test_a_search_page_is_one_query_s_page_whatever_the_window(
    app_ctx, spread, monkeypatch, window, time_field, statuses
):
    # The window only decides how the jobs are found: every page, its
    # order and its cursor are those of one WHERE ... ORDER BY ... LIMIT,
    # on both backends, whether the window held enough matches, none, or
    # ended on a match.
    from app.services.processing_jobs import pagination
    from app.services.processing_jobs.job_filter import AcknowledgedFilter, TimeField
    job_filter = JobFilter(text="NEEDLE", statuses=statuses, time_field=TimeField(time_field),
                           acknowledged=AcknowledgedFilter.INCLUDE)
    expected = [str(i) for i in db.session.scalars(
        sa.select(ProcessingJob.id).where(*job_filter.where()).order_by(*pagination.newest_first(job_filter)))]
    assert len(expected) == (4 if statuses else 7)
    monkeypatch.setattr(pagination, "SEARCH_WINDOW", window)
    for limit in (1, 2, 3, 50):
        pages = _every_page(job_filter, limit)
        assert [job for page in pages for job in page] == expected, (window, limit)
        assert all(len(page) == limit for page in pages[:-1])


def test_a_search_with_no_match_reads_the_window_then_the_index(app_ctx, spread, monkeypatch):
    from app.services.processing_jobs import pagination
    monkeypatch.setattr(pagination, "SEARCH_WINDOW", 5)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        page = pagination.list_jobs(JobFilter(text="no such words", statuses=()), limit=10)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert page.jobs == [] and page.next_cursor is None
    reads = [statement for statement in statements if statement.startswith(("SELECT", "WITH"))]
    assert len(reads) == 2, statements
    assert "search_window" in reads[0] and "older_matches" in reads[1]


# -- the document prefix filter (document_id_prefix) ------------------------------------


@pytest.fixture
def documents(app) -> dict[str, str]:
    with app.app_context():
        return {name: make_job(name) for name in (
            "ref-2026-001", "ref-2026-002", "REF-2026-003", "ref-2027-001", "ref_2026%x", "ref-2026",
            "préfixe-1", "xref-2026-001")}


@pytest.mark.parametrize(("prefix", "expected"), [
    ("ref-2026", {"ref-2026-001", "ref-2026-002", "ref-2026"}),  # case-sensitive: not REF-2026-003
    ("REF-", {"REF-2026-003"}),
    ("ref-2026-001", {"ref-2026-001"}),
    ("ref_", {"ref_2026%x"}),                  # "_" is not a wildcard
    ("ref_2026%", {"ref_2026%x"}),             # nor "%"
    ("ref%", set()),
    ("pré", {"préfixe-1"}),
    ("nothing", set()),
])
def test_the_document_prefix_keeps_ids_starting_with_it_on_both_databases(client, documents, prefix, expected):
    names = {job_id: name for name, job_id in documents.items()}
    api = client.get(f"{API}?document_id_prefix={quote(prefix)}&status=all")
    assert api.status_code == 200
    assert {names[job["id"]] for job in api.get_json()["items"]} == expected
    html = client.get(f"/jobs?document_id_prefix={quote(prefix)}&status=all").get_data(as_text=True)
    assert {names[i] for i in shown_ids(html)} == expected
    # The exact filter is unchanged beside it.
    exact = client.get(f"{API}?document_id=ref-2026&status=all").get_json()["items"]
    assert [names[job["id"]] for job in exact] == ["ref-2026"]


def test_the_document_prefix_is_a_chip_and_a_field_of_the_form(client, documents):
    html = client.get("/jobs?document_id_prefix=ref-2026&status=all").get_data(as_text=True)
    assert re.search(r'name="document_id_prefix" value="ref-2026"', html)
    assert "document starts with" in html


def test_postgresql_serves_the_document_prefix_from_a_btree_range(app_ctx, backend):
    if backend != "postgresql":
        return  # SQLite scans (the same results, above)
    statement = sa.select(ProcessingJob.id).where(*JobFilter(document_prefix="ref-2026").where())
    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in connection.execute(sa.text(f"EXPLAIN {compiled}")))
    assert "ix_processing_jobs_document_id_pattern" in plan and "~>=~" in plan, plan


def test_the_escape_a_page_shows_finds_the_control_character_it_stands_for(app, client):
    # A trial copied "\u001b[31m" from a job page into the search and found
    # nothing: the page shows ESC as that escape, and a raw ESC is a 400.
    job = {"id": crashed_job(client, "doc-esc", "worker said \x1b[31mred\x1b[0m")}
    html = client.get("/jobs", query_string={"q": "\\u001b[31mred", "status": "all"}).get_data(as_text=True)
    assert f'/jobs/{job["id"]}' in html
    assert "\x1b" not in html  # the chip shows the escape again
    # Only escapes of acting controls are read: "\u0041" is text, not "A".
    html = client.get("/jobs", query_string={"q": "worker \\u0041", "status": "all"}).get_data(as_text=True)
    assert f'/jobs/{job["id"]}' not in html
