"""The job page shows every format's items fully: code and pointer for ajv,
zod and ASP.NET Core items, and a FHIRPath that cannot become a pointer in
the pointer column instead of hidden in ctx."""

from __future__ import annotations

import re

from app.registry import get_failure_recorder
from app.services.processing_jobs.lifecycle import create_job
from tests.unit.error_details.test_aspnetcore_problem import PROBLEM

AJV = [{"instancePath": "/entities/0/confidence", "schemaPath": "#/$defs/confidence/maximum", "keyword": "maximum",
        "params": {"comparison": "<=", "limit": 1}, "message": "must be <= 1"}]  # fmt: skip
ZOD = [{"code": "invalid_type", "expected": "string", "received": "undefined", "path": ["entities", 1, "code"],
        "message": "Required"}]  # fmt: skip
FHIR = {"resourceType": "OperationOutcome", "issue": [
    {"severity": "error", "code": "invalid", "diagnostics": "bad condition",
     "expression": ["Bundle.entry.where(resource is Condition).resource.onsetDateTime"]}]}  # fmt: skip


def _rows(client, job_id: str) -> list[list[str]]:
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    table = re.search(r'<table class="errors">.*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr class=\"severity-[a-z]+\">(.*?)</tr>", table, re.S)
    # Each cell's text; the message cell's failure-group link is not the item's own text.
    return [[re.sub(r"<[^>]+>", "", re.sub(r'<div class="item-group">.*?</div>', "", cell)).strip()
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in rows]  # fmt: skip


def test_native_format_items_have_code_and_pointer_on_the_job_page(client, app):
    expected = {
        "ajv": ["error", "schema.maximum", "/entities/0/confidence", "must be at most 1"],
        "zod": ["error", "zod.invalid_type", "/entities/1/code", "is required"],
        "aspnetcore-validation-problem": ["error", "aspnetcore.required", "/entities/0/code", "is required"],
    }
    details = {"ajv": AJV, "zod": ZOD, "aspnetcore-validation-problem": PROBLEM}
    for error_format, payload in details.items():
        with app.app_context():
            job_id = str(create_job(f"doc-{error_format}").id)
            get_failure_recorder().record_validation_failure(job_id, "invalid", payload)
        rows = _rows(client, job_id)
        assert rows[0][:4] == expected[error_format]
        assert all(row[1] and row[2] for row in rows), rows  # no blank code or pointer


def test_a_fhirpath_that_is_no_pointer_is_shown_in_the_pointer_column(client, app):
    with app.app_context():
        job_id = str(create_job("doc-fhir").id)
        get_failure_recorder().record_validation_failure(job_id, "invalid", FHIR)
    assert _rows(client, job_id)[0][:3] == [
        "error", "fhir.invalid", "Bundle.entry.where(resource is Condition).resource.onsetDateTime",
    ]
