"""Dashboard pages, server-rendered, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import complete_job, create_job

HOSTILE = '<script>alert("x")</script>'
DETAILS = {
    "errors": [
        {"code": "code.unknown_icd10cm", "severity": "error", "message": f"bad {HOSTILE}", "pointer": "/entities/0/code"},
        {"code": "confidence.low", "severity": "warning", "message": "needs review", "pointer": "/entities/1/confidence"},
    ],
    "note": "<img src=x onerror=alert(1)>",
}


@pytest.fixture
def failed_job_id(app):
    with app.app_context():
        job = create_job(f"doc-{HOSTILE}")
        get_failure_recorder().record_validation_failure(job.id, f"2 errors {HOSTILE}", DETAILS)
        return str(job.id)


def test_list_shows_failures_by_default_with_escaped_worker_text(client, app, failed_job_id):
    with app.app_context():
        complete_job(create_job("doc-completed").id)
    response = client.get("/jobs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert failed_job_id in html
    assert "doc-completed" not in html  # Completed jobs are not failures
    # Worker text appears as text, never as markup.
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    # One line per job (the error details are on the job page): one error
    # count, as the message counts errors; the warning apart.
    assert '<td class="num errors" data-label="Errors">1 <span class="note">+1 warning</span></td>' in html
    assert "error-details" not in html


def test_status_filter_chooses_the_jobs(client, app, failed_job_id):
    with app.app_context():
        complete_job(create_job("doc-completed").id)
    html = client.get("/jobs?status=Completed").get_data(as_text=True)
    assert "doc-completed" in html and failed_job_id not in html
    html = client.get("/jobs?status=all").get_data(as_text=True)
    assert "doc-completed" in html and failed_job_id in html


def test_list_is_newest_first_and_paginates(client, app):
    with app.app_context():
        ids = [str(create_job(f"doc-{i:02d}").id) for i in range(5)]
    html = client.get("/jobs?status=Pending&limit=2").get_data(as_text=True)
    shown = re.findall(r'href="/jobs/([0-9a-f-]{36})[?"]', html)
    assert shown == [ids[4], ids[3]]
    next_link = re.search(r'<a rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    html = client.get(next_link).get_data(as_text=True)
    assert re.findall(r'href="/jobs/([0-9a-f-]{36})[?"]', html) == [ids[2], ids[1]]


def test_detail_page_shows_the_job_whole(client, failed_job_id):
    response = client.get(f"/jobs/{failed_job_id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert failed_job_id in html
    assert '<span class="badge status-validation_failed">Validation failed</span>' in html  # in words
    assert "<details class=\"error-details\" open>" in html
    # The error details: a table of the errors and the pretty-printed JSON.
    assert '<td class="code"><code><bdi>code.<wbr>unknown_icd10cm</bdi></code></td>' in html
    assert '<td class="pointer" data-label="Pointer"><code><bdi>/<wbr>entities/<wbr>1/<wbr>confidence</bdi></code></td>' in html
    assert "Error details (1 error, 1 warning)" in html  # confidence.low is a warning, as in the list
    assert '&#34;code&#34;: &#34;confidence.low&#34;' in html  # indented JSON, keys quoted
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>" not in html
    assert "<title>Job \u2068doc-&lt;script&gt;" in html  # the title is escaped too


@pytest.mark.parametrize("job_id", ["00000000-0000-0000-0000-000000000000", "nope", "<script>"])
def test_unknown_job_is_a_404_page(client, job_id):
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Job not found" in response.get_data(as_text=True)
    assert "<script>" not in response.get_data(as_text=True).split('<main id="content">')[1]


def test_the_short_id_the_list_shows_opens_its_job(app, client):
    import uuid

    import sqlalchemy as sa

    from app.extensions import db
    from app.models import ProcessingJob

    with app.app_context():
        ids = [create_job(f"doc-short-{n}").id for n in range(2)]
        twins = [uuid.UUID(f"abcdef12-0000-4000-8000-00000000000{n}") for n in range(2)]
        for n, twin in enumerate(twins):  # two ids sharing their first 8 digits
            job_id = create_job(f"doc-twin-{n}").id
            db.session.execute(sa.update(ProcessingJob).where(ProcessingJob.id == job_id).values(id=twin))
            db.session.commit()
    job = str(ids[0])
    # The short id (8 hex digits), upper case or with its hyphen: to the job, the back link kept.
    for short in (job[:8], job[:8].upper(), job[:13]):
        response = client.get(f"/jobs/{short}?back=/jobs%3Fstatus%3Dall")
        assert response.status_code == 302, short
        assert response.headers["Location"] == f"/jobs/{job}?back=%2Fjobs%3Fstatus%3Dall"
    # Two jobs with that prefix: the search lists both; none, or too short: the 404.
    assert client.get("/jobs/abcdef12").headers["Location"] == "/search?q=abcdef12"
    for missing in ("0badcafe", job[:7]):
        assert client.get(f"/jobs/{missing}").status_code == 404, missing


@pytest.mark.parametrize("query", ["status=bogus", "limit=0", "limit=abc", "cursor=%%%"])
def test_bad_query_is_a_400_page_that_says_what_was_wrong(client, query):
    response = client.get(f"/jobs?{query}")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    field = query.split("=")[0]
    assert f"<code>{field}</code>" in response.get_data(as_text=True)


def test_pages_need_no_javascript_and_no_cdn(client, failed_job_id):
    for path in ("/jobs", f"/jobs/{failed_job_id}"):
        html = client.get(path).get_data(as_text=True)
        assert "<script" not in html
        assert not re.search(r'(src|href)="(https?:)?//', html)
    with client.get("/static/css/app.css") as css:  # closes the served file
        assert css.status_code == 200
        assert b".error-details" in css.get_data()


def test_root_redirects_to_the_failure_groups(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/groups"
