"""The per-item export names each item's failure group (``group_id``), and
with a ``group`` filter writes only that group's items (issue #14, "Exports").

Groups are made by the recorder, in its transaction; an item's group is the
one whose current occurrence of the job lists the item's position. On
PostgreSQL the ``COPY`` path writes the same bytes as the Python path.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import FailureGroup
from app.registry import get_failure_recorder
from app.services import exports
from app.services.exports import ItemRows
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.lifecycle import create_job
from tests.integration.test_exports import envelope, insert_job

UNIT = {"code": "unit.not_ucum", "severity": "error", "message": "unit is not UCUM", "pointer": "/entities/2/value/unit"}
ICD = {"code": "code.unknown_icd10cm", "severity": "error", "message": "unknown code", "pointer": "/entities/0/code"}


@pytest.fixture
def grouped(app) -> dict[str, str]:
    """Three failures grouped by the recorder, and one job stored before the groups."""
    with app.app_context():
        recorder = get_failure_recorder()
        ids = {}
        for name, message, items in (
            # Two items in one group (the pointer's index is a pattern), one in another.
            ("mixed", "3 errors", [UNIT, ICD, {**UNIT, "pointer": "/entities/7/value/unit"}]),
            ("unit", "1 error", [UNIT]),
        ):
            job = create_job(f"doc-{name}").id
            recorder.record_validation_failure(job, message, {"errors": items})
            ids[name] = str(job)
        crashed = create_job("doc-crashed").id
        recorder.record_failure(crashed, "worker crashed after 12 s")
        ids["crashed"] = str(crashed)
        ids["old"] = insert_job("doc-old", details=envelope(UNIT), created_hours=-1)
        groups = {code or "message": str(group_id) for code, group_id in
                  db.session.execute(sa.select(FailureGroup.code, FailureGroup.id))}
        return {**ids, **{f"group:{name}": group_id for name, group_id in groups.items()}}


def _rows(client, query: str = "") -> list[dict[str, str]]:  # noqa: ANN001
    response = client.get(f"/exports/job-errors.csv?status=all&acknowledged=include{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"), newline="")))


def test_each_item_row_names_its_group(client, grouped):
    rows = _rows(client)
    by_job = {}
    for row in rows:
        by_job.setdefault(row["job_id"], []).append((row["code"], row["group_id"]))
    unit, icd, message = grouped["group:unit.not_ucum"], grouped["group:code.unknown_icd10cm"], grouped["group:message"]
    assert by_job[grouped["mixed"]] == [
        ("unit.not_ucum", unit), ("code.unknown_icd10cm", icd), ("unit.not_ucum", unit),
    ]
    assert by_job[grouped["unit"]] == [("unit.not_ucum", unit)]
    # A failure without items: its one row is in the group its message made.
    assert by_job[grouped["crashed"]] == [("", message)]
    # Stored before the groups (not backfilled): no group.
    assert by_job[grouped["old"]] == [("unit.not_ucum", "")]


def test_each_item_row_gives_its_groups_title(client, app, grouped):
    with app.app_context():
        titles = {group_id: title for group_id, title in db.session.execute(sa.select(FailureGroup.id, FailureGroup.title))}
    rows = _rows(client)
    assert {row["group_title"] for row in rows if row["group_id"]} <= set(titles.values())
    for row in rows:
        assert row["group_title"] == (titles[int(row["group_id"])] if row["group_id"] else "")


def test_each_item_row_links_its_groups_page_like_its_jobs(client, grouped):
    rows = _rows(client)
    assert any(row["group_id"] for row in rows) and any(not row["group_id"] for row in rows)
    for row in rows:
        # Absolute, as job_url: the host the export was asked from.
        assert row["group_url"] == (f"http://localhost/groups/{row['group_id']}" if row["group_id"] else "")
        assert row["job_url"] == f"http://localhost/jobs/{row['job_id']}"
    unit = grouped["group:unit.not_ucum"]
    page = client.get(next(r["group_url"] for r in rows if r["group_id"] == unit).removeprefix("http://localhost"))
    assert page.status_code == 200
    records = [json.loads(line) for line in client.get(
        "/exports/job-errors.ndjson?status=all&acknowledged=include").get_data(as_text=True).splitlines()]
    assert {(r["group_id"] is None, r["group_url"] is None) for r in records} == {(True, True), (False, False)}
    assert all(r["group_url"] == f"http://localhost/groups/{r['group_id']}" for r in records if r["group_id"])
    # The per-job export has no item, so no group.
    response = client.get("/exports/job-errors.csv?status=all&acknowledged=include&rows=jobs")
    assert "group_url" not in response.get_data(as_text=True).splitlines()[0]


def test_ndjson_gives_the_group_as_a_number_or_null(client, grouped):
    response = client.get("/exports/job-errors.ndjson?status=all&acknowledged=include")
    records = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    groups = {(r["job_id"], r["code"]): r["group_id"] for r in records}
    assert groups[(grouped["unit"], "unit.not_ucum")] == int(grouped["group:unit.not_ucum"])
    assert groups[(grouped["old"], "unit.not_ucum")] is None


def test_a_group_filter_exports_only_that_groups_items_unless_items_all(client, grouped):
    unit = grouped["group:unit.not_ucum"]
    rows = _rows(client, f"&group={unit}")
    # The jobs failing now on the group; of them, only its items.
    assert sorted((r["job_id"], r["pointer"]) for r in rows) == sorted([
        (grouped["mixed"], "/entities/2/value/unit"), (grouped["mixed"], "/entities/7/value/unit"),
        (grouped["unit"], "/entities/2/value/unit"),
    ])
    assert {r["group_id"] for r in rows} == {unit}
    every = _rows(client, f"&group={unit}&items=all")
    assert len([r for r in every if r["job_id"] == grouped["mixed"]]) == 3


def test_copy_and_python_paths_agree_with_groups(app, backend, grouped):
    if backend != "postgresql":
        return  # COPY is PostgreSQL's; the Python path is the one SQLite uses (above)
    with app.app_context():
        for job_filter, items in (
            (JobFilter(), ItemRows()),
            (JobFilter(group_id=int(grouped["group:unit.not_ucum"])), ItemRows()),
            (JobFilter(group_id=int(grouped["group:unit.not_ucum"])), ItemRows(matching_only=False)),
            # group_url from a Host with a comma and a quote: quoted the same by both.
            (JobFilter(), ItemRows(group_url_prefix='https://a,b"c/groups/', job_url_prefix="http://x\r\ny/jobs/")),
        ):
            python = "".join(exports.iter_job_errors_csv(job_filter, use_copy=False, items=items))
            copied = "".join(exports.iter_job_errors_csv(job_filter, use_copy=True, items=items))
            assert python == copied
            assert python.count("\r\n") > 1
