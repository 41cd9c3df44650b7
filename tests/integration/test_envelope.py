"""The envelope rule in Python and in SQL agree, on both backends.

The exports decide "is this ``error_details`` a normalized envelope?" twice:
in Python for the per-job rows (:func:`envelope_errors`) and in SQL to
expand the items (:func:`is_envelope_sql`). A difference would give a job
an ``error_count`` in one export and no items in the other.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.services.error_details import envelope_errors, is_envelope_sql

ITEM = {"code": "a.b", "severity": "error", "message": "m", "pointer": ""}
V1 = {"schema_version": 1, "errors": [ITEM], "error_count": 1, "truncated": False}

#: (error_details, error_format): envelopes, near misses and other JSON values.
CASES = [
    (V1, "normalized"),
    (V1, None),  # from before error_format was recorded
    (V1, "free-form"),
    (V1, "pydantic"),
    ({**V1, "errors": []}, "normalized"),
    ({**V1, "schema_version": 2}, "normalized"),
    ({**V1, "schema_version": "1"}, "normalized"),
    ({**V1, "schema_version": True}, "normalized"),
    ({**V1, "schema_version": 1.5}, "normalized"),
    ({**V1, "schema_version": None}, "normalized"),
    ({**V1, "errors": {"0": ITEM}}, "normalized"),
    ({**V1, "errors": "x"}, "normalized"),
    ({"errors": [ITEM]}, "normalized"),
    ({"schema_version": 1}, "normalized"),
    ({}, "normalized"),
    ([ITEM], "normalized"),
    ([], None),
    ("text", "free-form"),
    ("1", None),
    (1, None),
    (True, None),
    (None, None),
]


def test_python_and_sql_agree_on_what_an_envelope_is(app, backend):
    with app.app_context():
        ids = []
        for index, (details, error_format) in enumerate(CASES):
            job = ProcessingJob(
                id=uuid.uuid4(), document_id=f"doc-{index}", job_type="entity_extraction",
                status="Validation_Failed", error_message="failed", error_details=details,
                error_format=error_format, created_at=datetime(2025, 3, 1, tzinfo=timezone.utc),
            )
            db.session.add(job)
            ids.append(job.id)
        db.session.commit()
        jobs = ProcessingJob.__table__
        condition = is_envelope_sql(jobs.c.error_details, jobs.c.error_format, backend)
        rows = db.session.execute(
            sa.select(jobs.c.id, sa.case((condition, True), else_=False))
        ).all()
        in_sql = {job_id: bool(flag) for job_id, flag in rows}
        in_python = {
            job_id: envelope_errors(details, error_format) is not None
            for job_id, (details, error_format) in zip(ids, CASES)
        }
        assert in_sql == in_python
        assert sum(in_python.values()) == 4  # V1 under normalized, NULL, pydantic; the empty one
