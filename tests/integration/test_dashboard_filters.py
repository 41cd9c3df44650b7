"""Finding failures: every filter of /jobs and of GET /api/v1/processing-jobs,
their combinations, keyset pagination by either time, and the 400 answers.

Runs on SQLite and PostgreSQL (the ``app`` fixture); both must return
exactly the same jobs.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import complete_job, create_job, start_job

API = "/api/v1/processing-jobs"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def at(hours: float) -> datetime:
    """``T0`` plus ``hours``."""
    return T0 + timedelta(hours=hours)


def stamp(hours: float) -> str:
    """RFC 3339 of :func:`at`, URL-ready."""
    return at(hours).isoformat().replace("+00:00", "Z")


def item(code: str, **extra: Any) -> dict[str, Any]:
    """An error item of the normalized shape."""
    return {"code": code, "severity": "error", "message": f"{code} failed", "pointer": "/entities/0", **extra}


def make_job(
    document_id: str,
    status: str = "Validation_Failed",
    *,
    codes: tuple[str, ...] = (),
    details: Any = None,
    message: str | None = None,
    job_type: str = "entity_extraction",
    created: datetime | None = None,
    completed: datetime | None = None,
    acknowledged: bool = False,
) -> str:
    """Create a job through the services, then place it in time (test setup).

    Failures get ``{"errors": [item(code)...]}`` (stored as the v1 envelope)
    unless ``details`` is given.
    """
    job = create_job(document_id, job_type)
    if status in ("Validation_Failed", "Failed"):
        recorder = get_failure_recorder()
        record = recorder.record_validation_failure if status == "Validation_Failed" else recorder.record_failure
        record(job.id, message or f"{document_id} failed", details if details is not None else {
            "errors": [item(code) for code in codes]
        })
    elif status == "Completed":
        complete_job(job.id)
    elif status == "Processing":
        start_job(job.id)
    values: dict[str, Any] = {}
    if created is not None:
        values["created_at"] = created
    if completed is not None:
        values["completed_at"] = completed
    if acknowledged:
        values.update(acknowledged_at=completed or created or T0, acknowledged_by="alice")
    if values:
        db.session.execute(sa.update(ProcessingJob).where(ProcessingJob.id == job.id).values(**values))
        db.session.commit()
    return str(job.id)


def shown_ids(html: str) -> list[str]:
    """Job ids linked from a list page, in page order."""
    return re.findall(r'href="/jobs/([0-9a-f-]{36})[?"]', html)


def next_href(html: str) -> str | None:
    match = re.search(r'<a rel="next" href="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.fixture
def catalogue(app) -> dict[str, str]:
    """Document name -> job id, for a small set of jobs covering every filter."""
    with app.app_context():
        return {
            "a": make_job("doc-a", codes=("schema.required", "code.unknown_icd10cm"),
                          message="Entity validation failed: missing code", created=at(1), completed=at(5)),
            "b": make_job("doc-b", codes=("unit.not_ucum",), message="Bad unit: 100% wrong_thing",
                          created=at(2), completed=at(3)),
            "c": make_job("doc-c", "Failed", message="Worker crashed: OOM", job_type="ocr",
                          details=None, created=at(3), completed=at(4)),
            "d": make_job("doc-d", codes=("code.unknown_icd10cm",), created=at(4), completed=at(4.5),
                          acknowledged=True),
            "e": make_job("doc-e", "Completed", created=at(5), completed=at(5.5)),
            "f": make_job("doc-f", "Pending", created=at(6)),
            # Free-form details shaped almost like the envelope: never an error_code match.
            "g": make_job("doc-g", details={"errors": {"first": {"code": "unit.not_ucum"}}, "hint": "code.unknown_icd10cm"},
                          message=r"Could not read C:\tmp\x.json", created=at(7), completed=at(7.5)),
        }


def _names(catalogue: dict[str, str], ids: list[str]) -> list[str]:
    by_id = {v: k for k, v in catalogue.items()}
    return [by_id[i] for i in ids]


FILTER_CASES = [
    ("status=Validation_Failed", "abdg"),
    ("status=Validation_Failed&status=Failed", "abcdg"),
    ("status=failed,completed", "ce"),
    ("document_id=doc-b", "b"),
    ("job_type=ocr", "c"),
    # error_code: exactly the envelopes holding the code, in any position.
    ("error_code=code.unknown_icd10cm", "ad"),  # 2nd item of a, 1st of d; not g's free-form text
    ("error_code=schema.required", "a"),
    ("error_code=unit.not_ucum", "b"),  # not g, whose "errors" is an object of objects
    ("error_code=code", ""),  # whole codes only
    ("error_code=nope", ""),
    # q: the search (tests/integration/test_search.py): case-insensitive
    # substring of the document id, message or error items, wildcards literal.
    ("q=bad+unit", "b"),
    ("q=BAD+UNIT", "b"),
    ("q=100%25", "b"),
    ("q=%25", "b"),
    ("q=_", "abd"),  # b's message; the codes of a and d (code.unknown_icd10cm)
    ("q=a_i", ""),  # as a LIKE wildcard "_" would match "ali" in "validation"
    ("q=wrong_t", "b"),
    ("q=%5C", "g"),  # a backslash
    ("q=oom", "c"),
    # time range on created_at (default time_field), half-open.
    (f"from={stamp(3)}", "cdefg"),
    (f"to={stamp(3)}", "ab"),
    (f"from={stamp(2)}&to={stamp(4)}", "bc"),
    (f"from={stamp(2)}&to={stamp(2)}", ""),
    # A date alone is its whole UTC day: "from" at its start, "to" at the
    # next day's start (every job here was created on 2025-01-01).
    ("from=2025-01-01", "abcdefg"),
    ("from=2025-01-02", ""),
    ("to=2025-01-01", "abcdefg"),
    ("to=2024-12-31", ""),
    ("from=2025-01-01&to=2025-01-01", "abcdefg"),
    (f"from=2025-01-01&to={stamp(3)}", "ab"),
    ("time_field=completed&from=2025-01-01&to=2025-01-01", "abcdeg"),
    # ... and on completed_at: unfinished jobs are left out.
    ("time_field=completed", "abcdeg"),
    (f"time_field=completed&from={stamp(4)}", "acdeg"),
    (f"time_field=completed&to={stamp(4)}", "b"),
    (f"time_field=created&from={stamp(4)}&to={stamp(5)}", "d"),
    # an offset other than Z (%2B is "+")
    (f"from={urlencode({'x': at(3).astimezone(timezone(timedelta(hours=2))).isoformat()})[2:]}", "cdefg"),
    # acknowledged
    ("acknowledged=exclude", "abcefg"),
    ("acknowledged=only", "d"),
    # combinations
    ("status=validation_failed&error_code=code.unknown_icd10cm&acknowledged=exclude", "a"),
    (f"status=validation_failed&error_code=code.unknown_icd10cm&from={stamp(2)}", "d"),
    ("q=oom&job_type=ocr&status=failed", "c"),
    ("q=oom&job_type=entity_extraction", ""),
    (f"document_id=doc-a&error_code=schema.required&time_field=completed&from={stamp(5)}&to={stamp(6)}", "a"),
    (f"document_id=doc-a&error_code=schema.required&time_field=created&from={stamp(5)}", ""),
]


@pytest.mark.parametrize(("query", "expected"), FILTER_CASES)
def test_dashboard_filters_choose_exactly_these_jobs(client, catalogue, query, expected):
    # The API's defaults (every status, acknowledged included), so both lists
    # see the same jobs; the dashboard's own defaults are tested below.
    names = parse_qs(query)
    defaults = [p for p in ("status=all", "acknowledged=include") if p.split("=")[0] not in names]
    response = client.get("/jobs?" + "&".join([*defaults, query]))
    assert response.status_code == 200
    assert sorted(_names(catalogue, shown_ids(response.get_data(as_text=True)))) == sorted(expected)


@pytest.mark.parametrize(("query", "expected"), FILTER_CASES)
def test_api_list_takes_the_same_filters(client, catalogue, query, expected):
    response = client.get(f"{API}?{query}")
    assert response.status_code == 200
    ids = [job["id"] for job in response.get_json()["items"]]
    assert sorted(_names(catalogue, ids)) == sorted(expected)


def test_dashboard_defaults_are_unacknowledged_failures(client, catalogue):
    html = client.get("/jobs").get_data(as_text=True)
    assert sorted(_names(catalogue, shown_ids(html))) == ["a", "b", "c", "g"]  # d is acknowledged


def test_acknowledged_failures_come_back_on_request(client, catalogue):
    html = client.get("/jobs?acknowledged=include").get_data(as_text=True)
    assert sorted(_names(catalogue, shown_ids(html))) == ["a", "b", "c", "d", "g"]
    assert 'class="badge acknowledged"' in html
    html = client.get("/jobs?acknowledged=only").get_data(as_text=True)
    assert _names(catalogue, shown_ids(html)) == ["d"]


def test_api_keeps_acknowledged_jobs_by_default(client, catalogue):
    ids = [job["id"] for job in client.get(API).get_json()["items"]]
    assert catalogue["d"] in ids
    ids = [job["id"] for job in client.get(f"{API}?acknowledged=exclude").get_json()["items"]]
    assert catalogue["d"] not in ids


def test_exports_follow_the_dashboard_filter(client, catalogue):
    body = client.get("/exports/job-errors.ndjson?error_code=code.unknown_icd10cm&acknowledged=include&rows=jobs").get_data(
        as_text=True
    )
    assert sorted(json.loads(line)["job_id"] for line in body.splitlines()) == sorted(
        [catalogue["a"], catalogue["d"]]
    )
    body = client.get("/exports/job-errors.ndjson?error_code=code.unknown_icd10cm&rows=jobs").get_data(as_text=True)
    assert [json.loads(line)["job_id"] for line in body.splitlines()] == [catalogue["a"]]


def test_list_is_ordered_by_the_chosen_time(client, catalogue):
    html = client.get("/jobs?status=all&acknowledged=include").get_data(as_text=True)
    assert _names(catalogue, shown_ids(html)) == list("gfedcba")  # created, newest first
    html = client.get("/jobs?status=all&acknowledged=include&time_field=completed").get_data(as_text=True)
    assert _names(catalogue, shown_ids(html)) == list("geadcb")  # completed, newest first


def test_keyset_pagination_by_completed_time(client, catalogue):
    url: str | None = "/jobs?status=all&acknowledged=include&time_field=completed&limit=2"
    pages = []
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        pages.append("".join(_names(catalogue, shown_ids(html))))
        url = next_href(html)
        if url is not None:
            query = parse_qs(urlsplit(url).query)
            assert query["time_field"] == ["completed"] and query["limit"] == ["2"]
    assert pages == ["ge", "ad", "cb"]


def test_api_keyset_pagination_by_completed_time_with_ties(client, app):
    """Equal completion times are ordered by id, and no job is seen twice or missed."""
    with app.app_context():
        ids = [make_job(f"doc-{n}", codes=("x.y",), completed=at(1)) for n in range(5)]
        ids.append(make_job("doc-later", codes=("x.y",), completed=at(2)))
    url: str | None = f"{API}?time_field=completed&limit=2"
    seen = []
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        seen += [job["id"] for job in response.get_json()["items"]]
        link = response.headers.get("Link")
        url = re.match(r"<([^>]+)>", link).group(1) if link else None
    expected = [ids[5]] + sorted(ids[:5], key=uuid.UUID, reverse=True)
    assert seen == expected


def test_a_cursor_is_bound_to_its_time_field(client, catalogue):
    page = client.get(f"{API}?time_field=completed&limit=1").get_json()
    response = client.get(f"{API}?time_field=created&limit=1&cursor={page['next_cursor']}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"][0]["field"] == "cursor"
    # An older token (created|id, made before time_field existed) still works.
    job = client.get(f"{API}?limit=1").get_json()["items"][0]
    created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))
    legacy = base64.urlsafe_b64encode(f"{created.isoformat()}|{job['id']}".encode()).decode().rstrip("=")
    response = client.get(f"{API}?limit=1&cursor={legacy}")
    assert response.status_code == 200
    assert response.get_json()["items"][0]["id"] != job["id"]


BAD_QUERIES = [
    ("limit=-1", "limit"),
    ("limit=0", "limit"),
    ("limit=abc", "limit"),
    ("limit=99999999999999999999", "limit"),
    ("limit=1e3", "limit"),
    ("status=bogus", "status"),
    ("status=Failed&status=nope", "status"),
    ("from=yesterday", "from"),
    ("from=2025-02-29", "from"),  # a date that does not exist
    ("to=2025-1-1", "to"),  # a date, but not RFC 3339's full-date
    ("from=2025-01-01T00:00:00", "from"),  # no offset
    ("from=2025-01-01T00:00:00+01:00", "from"),  # '+' unencoded arrives as a space
    ("to=2025-13-01T00:00:00Z", "to"),
    ("to=2025-01-01T00:00:00%2B24:00", "to"),
    ("to=0000-01-01T00:00:00Z", "to"),
    ("to=9999-12-31T23:59:59-23:59", "to"),  # beyond year 9999 in UTC
    ("to=2016-12-31T23:59:60Z", "to"),  # a leap second
    (f"from={stamp(5)}&to={stamp(4)}", "from"),
    ("from=2025-01-02&to=2025-01-01", "from"),  # the day after to's whole day (a trial: 200, empty)
    (f"from={stamp(24)}&to=2025-01-01", "from"),
    ("time_field=updated", "time_field"),
    ("acknowledged=maybe", "acknowledged"),
    ("cursor=%25%25%25", "cursor"),
    ("cursor=bm90LWEtY3Vyc29y", "cursor"),
    ("q=" + "x" * 201, "q"),
    ("error_code=" + "x" * 201, "error_code"),
    ("document_id=" + "x" * 201, "document_id"),  # not 10,000: the longest a job can hold
    ("job_type=" + "x" * 65, "job_type"),
]


@pytest.mark.parametrize(("query", "field"), BAD_QUERIES)
def test_bad_dashboard_query_is_a_400_page_naming_the_parameter(client, query, field):
    response = client.get(f"/jobs?{query}")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert f"<code>{field}</code>" in response.get_data(as_text=True)


@pytest.mark.parametrize(("query", "hinted"), [
    ("from=2025-01-01T00:00:00+01:00", True),  # a hand-written URL's "+" arrived as a space
    ("from=2025-01-01+10:00:00.5+01:00", True),
    ("from=2025-01-01T00:00", False),  # a form's typo: %2B would mean nothing there
    ("from=yesterday", False),
])
def test_the_percent_2b_hint_is_given_only_when_a_plus_became_a_space(client, query, hinted):
    # A trial: "write '+' as %2B in a URL" on every bad time meant nothing
    # to a person typing into the From field (the browser encodes "+").
    for path in ("/jobs", API):
        text = client.get(f"{path}?{query}").get_data(as_text=True)
        assert ("%2B" in text) is hinted, (path, text)
        assert "2026-11-29T21:16:35Z" in text, path


@pytest.mark.parametrize(("query", "field"), BAD_QUERIES)
def test_bad_api_query_is_a_400_problem_naming_the_parameter(client, query, field):
    response = client.get(f"{API}?{query}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("/invalid-query")
    assert field in [error["field"] for error in problem["errors"]]


@pytest.mark.parametrize(("parameter", "limit"), [("q", 200), ("error_code", 200), ("document_id", 200),
                                                  ("job_type", 64)])
def test_text_parameters_stop_at_their_limit_with_one_wording(client, parameter, limit):
    assert client.get(f"{API}?{parameter}={'x' * limit}").status_code == 200
    problem = client.get(f"{API}?{parameter}={'x' * (limit + 1)}").get_json()
    assert problem["detail"] == f"{parameter} must be at most {limit} characters."
    assert problem["errors"] == [
        {"field": parameter, "parameter": parameter, "detail": f"must be at most {limit} characters"}
    ]


#: Times at the ends of Python's calendar: arithmetic on them (the chart's
#: window, a day before ``to``) used to raise OverflowError, a 500.
CALENDAR_EDGES = [
    ("to=0001-01-01T00:30:00Z", "to"),
    ("from=0001-01-01T00:00:00Z", "from"),
    ("from=0001-12-31T23:59:59Z", "from"),
    ("to=0001-01-01T00:30:00%2B01:00", "to"),  # in year 0 in UTC
    ("to=9999-12-31T23:59:59Z", "to"),
    ("from=9999-12-31T23:30:00Z", "from"),
    ("from=9999-01-01T00:00:00Z&to=9999-12-31T23:59:59.999999Z", "from"),
    ("from=0001-12-31", "from"),
    ("to=9999-01-01", "to"),
    ("to=0000-01-01", "to"),
]
FILTERED_PAGES = [
    "/jobs", "/jobs/summary", "/exports/job-errors.csv", "/exports/job-errors.ndjson", "/exports/entities.csv", API,
]


@pytest.mark.parametrize("path", FILTERED_PAGES)
@pytest.mark.parametrize(("query", "field"), CALENDAR_EDGES)
def test_times_at_the_calendars_edges_are_a_400_on_every_filtered_page(client, path, query, field):
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    if path == API:
        assert response.mimetype == "application/problem+json"
        assert field in [error["field"] for error in response.get_json()["errors"]]
    else:
        assert response.mimetype == "text/html"
        assert f"<code>{field}</code>" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", FILTERED_PAGES)
def test_the_widest_accepted_range_is_served(client, catalogue, path):
    # No "from": the chart window starts a day before "to".
    for query in ("from=0002-01-01T00:00:00Z&to=9998-12-31T23:59:59Z", "to=0002-01-01T00:30:00Z",
                  "from=0002-01-01&to=9998-12-31"):  # a date alone: the last day ends at the range's end
        assert client.get(f"{path}?{query}").status_code == 200, query


@pytest.mark.parametrize("url", ["/jobs/bulk", "/jobs/bulk/confirm"])
def test_a_bulk_action_on_a_filter_at_the_calendars_edge_is_a_400_and_changes_nothing(app, client, catalogue, url):
    with app.app_context():
        before = db.session.execute(sa.select(ProcessingJob.id, ProcessingJob.status)).all()
    html = client.get("/jobs").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    form = {"csrf_token": token, "op": "requeue:filter", "status": "all", "to": "0001-01-01T00:30:00Z"}
    response = client.post(url, data=form)
    assert response.status_code == 400
    assert "<code>to</code>" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(sa.select(ProcessingJob.id, ProcessingJob.status)).all() == before


@pytest.mark.parametrize("query", ["/jobs", "/exports/job-errors.csv"])
def test_every_bad_parameter_is_named_at_once(client, query):
    response = client.get(f"{query}?status=bogus&from=soon&time_field=x&acknowledged=y")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    for field in ("status", "from", "time_field", "acknowledged"):
        assert f"<code>{field}</code>" in html


def test_names_url_for_would_interpret_are_refused_and_never_reach_a_link(client, catalogue):
    # Not parameters of /jobs: refused (400) like any unknown name, and the
    # way back is a plain relative link without them (not an ftp:// or
    # external URL that url_for would build from such names).
    response = client.get("/jobs?limit=1&endpoint=x&_external=1&_scheme=ftp&_anchor=top&_method=POST")
    assert response.status_code == 400
    retry = re.search(r'<a class="retry" href="([^"]*)"', response.get_data(as_text=True)).group(1)
    assert retry == "/jobs?limit=1"


def test_a_submitted_form_redirects_to_its_query_without_empty_fields(client):
    response = client.get("/jobs?status=Failed&from=&to=&q=&error_code=x.y&limit=")
    assert response.status_code == 302
    assert response.headers["Location"] == "/jobs?status=Failed&error_code=x.y"


def test_the_form_shows_the_current_filter(client, catalogue):
    query = {
        "status": "Failed", "time_field": "completed", "from": stamp(1), "to": stamp(9),
        "q": "oom", "error_code": "x.y", "document_id": "doc-c", "job_type": "ocr", "acknowledged": "include",
        "limit": "25",
    }
    html = client.get(f"/jobs?{urlencode(query)}").get_data(as_text=True)
    assert '<input type="checkbox" name="status" value="Failed" checked>' in html
    assert '<option value="completed" selected>' in html
    assert f'name="from" value="{stamp(1)}"' in html and f'name="to" value="{stamp(9)}"' in html
    for name in ("q", "error_code", "document_id", "job_type"):
        assert f'name="{name}" value="{query[name]}"' in html
    assert '<option value="include" selected>' in html
    assert '<option value="25" selected>' in html
    # Export links carry the same filter.
    csv = re.search(r'href="(/exports/job-errors\.csv[^"]*)"', html).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(csv).query)["error_code"] == ["x.y"]


@pytest.mark.parametrize("path", ["/jobs", "/groups"])
def test_a_cursor_that_is_not_one_offers_the_first_page_of_the_same_filter(client, catalogue, path):
    response = client.get(f"{path}?status=Failed&cursor=zzz" if path == "/jobs" else f"{path}?cursor=zzz")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    retry = re.search(r'<a class="retry" href="([^"]*)">The same page without <code>cursor</code></a>', html)
    assert retry, html
    assert retry.group(1).replace("&amp;", "&") == ("/jobs?status=Failed" if path == "/jobs" else "/groups")


@pytest.mark.parametrize(("path", "query"), [("/jobs", "status=nope&limit=0&cursor=zzz"),
                                             ("/groups", "state=nope&limit=0&cursor=zzz")])
def test_a_bad_cursor_is_named_beside_the_other_bad_parameters_on_a_page(client, catalogue, path, query):
    # Before, the cursor was read only once the rest was good: mending what
    # one 400 named brought another.
    html = client.get(f"{path}?{query}").get_data(as_text=True)
    named = re.findall(r"<li><code>([a-z_]+)</code>: ", html)
    assert sorted(named) == ["cursor", "limit", path == "/jobs" and "status" or "state"], html


def test_a_date_typed_into_from_and_to_is_shown_as_typed(client, catalogue):
    # A trial: "to" 2025-01-01 came back as 2025-01-02T00:00:00Z, a day the operator had not typed.
    html = client.get("/jobs?from=2025-01-01&to=2025-01-01").get_data(as_text=True)
    assert 'name="from" value="2025-01-01"' in html and 'name="to" value="2025-01-01"' in html
    html = client.get(f"/jobs?to={stamp(3)}").get_data(as_text=True)
    assert f'name="to" value="{stamp(3)}"' in html
