"""The rules the contract writes down, each with a test: what a body on
/start or /requeue means, what the "same request" is for an
Idempotency-Key, what a valid X-Request-ID is, and the headers and distinct
422 problem types the OpenAPI document declares."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from app.api.contract import openapi_document
from app.web.problem_types import problem_type
from tests.integration.api.helpers import API, assert_problem, job_url, post_ok, row

# -- a body where none is taken ----------------------------------------------


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"data": "please start", "content_type": "text/plain"},
        {"json": {"status": "completed"}},
        {"json": {}},
    ],
    ids=["text", "a-result-sent-to-the-wrong-path", "empty-object"],
)
def test_a_body_on_start_is_refused_and_changes_nothing(client, app, job, kwargs):
    before = row(app, job["id"])
    problem = assert_problem(client.post(job_url(job["id"], "start"), **kwargs), 415, "unsupported-media-type")
    assert "takes no body" in problem["detail"]
    assert row(app, job["id"]) == before
    # Without one, and with an empty JSON Content-Type, it starts.
    response = client.post(job_url(job["id"], "start"), content_type="application/json")
    assert response.status_code == 200 and response.get_json()["status"] == "Processing"


def test_a_body_on_requeue_is_refused(client, app, failed_job):
    before = row(app, failed_job["id"])
    assert_problem(client.post(job_url(failed_job["id"], "requeue"), json={}), 415, "unsupported-media-type")
    assert row(app, failed_job["id"]) == before
    assert post_ok(client, job_url(failed_job["id"], "requeue"))["status"] == "Pending"


# -- the same request, for an Idempotency-Key --------------------------------


def test_the_same_request_is_the_same_canonical_json(client, app):
    headers = {"Idempotency-Key": "same-request-1", "Content-Type": "application/json"}
    first = client.post(API, data='{"document_id": "d-1", "job_type": "entity_extraction"}', headers=headers)
    assert first.status_code == 201
    # Key order and whitespace do not matter: a replay.
    for text in ('{"job_type":"entity_extraction","document_id":"d-1"}',
                 '{\n  "document_id" : "d-1" ,\t"job_type": "entity_extraction"\n}'):  # fmt: skip
        again = client.post(API, data=text, headers=headers)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.get_json() == first.get_json()
    # Defaults do not count: leaving out job_type (whose default is the value
    # sent first) is another body, so another request.
    assert_problem(client.post(API, data='{"document_id": "d-1"}', headers=headers), 422, "idempotency-key-reused")
    # One job was made.
    assert [item["id"] for item in client.get(API).get_json()["items"]] == [first.get_json()["id"]]


# -- X-Request-ID ------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    ["4bf92f3577b34da6a3ce929d0e0e4736", "01HZX3V6Q7R8S9T0ABCDEFGHJK", "trace:ab.cd_ef-1", "a" * 128],
)
def test_a_valid_request_id_is_echoed(client, sent):
    response = client.get(API, headers={"X-Request-ID": sent})
    assert response.headers["X-Request-ID"] == sent


@pytest.mark.parametrize("sent", ["", "a" * 129, "has space", "semi;colon", "é", "new\\nline"])
def test_an_invalid_request_id_is_replaced_not_refused(client, sent):
    response = client.get(API, headers={"X-Request-ID": sent})
    assert response.status_code == 200
    replaced = response.headers["X-Request-ID"]
    assert replaced != sent and len(replaced) == 32 and int(replaced, 16) >= 0


# -- what the OpenAPI document declares --------------------------------------


def _operations():
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _response(answer):
    if "$ref" in answer:
        return openapi_document()["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    return answer


def test_every_answer_declares_x_request_id_and_every_operation_takes_it():
    for path, method, operation in _operations():
        assert {"$ref": "#/components/parameters/RequestId"} in operation["parameters"], (path, method)
        for code, answer in operation["responses"].items():
            assert "X-Request-ID" in _response(answer).get("headers", {}), (path, method, code)


def test_keyed_operations_declare_idempotent_replayed_and_the_list_declares_link():
    document = openapi_document()
    for path, method, operation in _operations():
        keyed = {"$ref": "#/components/parameters/IdempotencyKey"} in operation["parameters"]
        for code in ("200", "201"):
            if code in operation["responses"]:
                headers = _response(operation["responses"][code]).get("headers", {})
                assert ("Idempotent-Replayed" in headers) == keyed, (path, method)
    listing = document["paths"]["/api/v1/processing-jobs"]["get"]["responses"]["200"]["headers"]
    assert "Link" in listing
    assert "Retry-After" in document["components"]["responses"]["DatabaseUnavailable"]["headers"]


def test_each_422_lists_its_distinct_problem_types_with_an_example():
    seen = set()
    for path, method, operation in _operations():
        if "422" not in operation["responses"]:
            continue
        examples = _response(operation["responses"]["422"])["content"]["application/problem+json"]["examples"]
        for slug, example in examples.items():
            entry = problem_type(slug)
            assert entry is not None and entry.status == 422
            assert example["value"]["type"] == entry.uri and example["value"]["title"] == entry.title
            seen.add(slug)
    assert seen == {"invalid-fields", "invalid-job", "invalid-entities", "invalid-failure", "idempotency-key-reused"}


def test_bodyless_operations_list_the_body_errors_they_give():
    """No body is allowed (415); one over MAX_CONTENT_LENGTH may be refused
    for its size before that (413), as a worker trial met through the
    demo's server: both are listed."""
    for action in ("start", "requeue"):
        responses = openapi_document()["paths"][f"/api/v1/processing-jobs/{{job_id}}/{action}"]["post"]["responses"]
        assert responses["413"] == {"$ref": "#/components/responses/BodyTooLarge"}
        assert responses["415"] == {"$ref": "#/components/responses/NoBodyAllowed"}
        assert responses["422"] == {"$ref": "#/components/responses/KeyReused"}


# -- the job's fields, written down -------------------------------------------


def test_readme_and_the_contract_list_every_job_field():
    root = Path(__file__).resolve().parents[3]
    fields = openapi_document()["components"]["schemas"]["ProcessingJob"]["required"]
    readme = (root / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"A job \(every field, always present\): (.*?); timestamps", readme, re.DOTALL).group(1)
    assert re.findall(r"`(\w+)`", listed) == fields
    contract = (root / "docs" / "worker-contract.md").read_text(encoding="utf-8")
    table = contract.split("## The job", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE) == fields


# -- the curl walk-through ------------------------------------------------------


def test_the_curl_walk_through_runs_as_written(client, live_server, worker_token):
    contract = (Path(__file__).resolve().parents[3] / "docs" / "worker-contract.md").read_text(encoding="utf-8")
    section = contract.split("## Walk-through with curl", 1)[1].split("\n## ", 1)[0]
    script = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={"API": live_server, "TOKEN": worker_token, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = result.stdout.splitlines()[0].removeprefix("job ")
    job = client.get(job_url(job_id)).get_json()
    assert (job["status"], job["error_format"]) == ("Validation_Failed", "ajv")
    items = job["error_details"]["errors"]
    assert [(i["code"], i["pointer"]) for i in items] == [("schema.required", "/entities/1/code")]
    assert len(client.get(job_url(job_id, "failures")).get_json()["items"]) == 1


# -- who sent a report, and a worker's own grouping key -------------------------


def _contract_examples(heading: str) -> list[dict]:
    contract = (Path(__file__).resolve().parents[3] / "docs" / "worker-contract.md").read_text(encoding="utf-8")
    section = contract.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


def test_the_worker_and_fingerprint_examples_are_what_the_api_accepts(client, app, job):
    report, normalized = _contract_examples("### Who sent a report, and how failures are grouped")
    assert report["worker"] == {"name": "node-extractor", "version": "1.4.0"}
    stored = post_ok(client, job_url(job["id"], "result"), report)
    assert (stored["status"], stored["error_format"]) == ("Validation_Failed", "ajv")
    assert [(i["code"], i["pointer"]) for i in stored["error_details"]["errors"]] == [("schema.required", "/entities/0/code")]

    requeued = post_ok(client, job_url(job["id"], "requeue"))
    assert requeued["status"] == "Pending"
    body = {"error_message": "unknown code", "error_details": normalized, "error_format": "normalized"}
    stored = post_ok(client, job_url(job["id"], "validation-failure"), body)
    # The fingerprint is kept on the stored item, as sent.
    assert [i.get("fingerprint") for i in stored["error_details"]["errors"]] == ["icd10cm-2026-table"]


@pytest.mark.parametrize(
    ("worker", "field"),
    [
        ({"name": ""}, "worker.name"),
        ({"version": "v" * 101}, "worker.version"),
        ({"name": "x", "build": "7"}, "worker.build"),
        ("node-extractor 1.4.0", "worker"),
    ],
    ids=["empty-name", "long-version", "unknown-key", "not-an-object"],
)
def test_a_bad_worker_object_is_refused_naming_it(client, app, job, worker, field):
    before = row(app, job["id"])
    body = {"status": "failed", "error_message": "crashed", "worker": worker}
    problem = assert_problem(client.post(job_url(job["id"], "result"), json=body), 422, "invalid-fields")
    assert field in [e["field"] for e in problem["errors"]]
    assert row(app, job["id"]) == before


def test_a_completed_result_carries_no_worker_and_an_empty_fingerprint_is_refused(client, app, job):
    before = row(app, job["id"])
    body = {"status": "completed", "entities": [], "worker": {"name": "node-extractor"}}
    problem = assert_problem(client.post(job_url(job["id"], "result"), json=body), 422, "invalid-fields")
    assert [e["pointer"] for e in problem["errors"]] == ["#/worker"]
    item = {"code": "c", "severity": "error", "message": "m", "pointer": "", "fingerprint": " "}
    body = {"error_message": "bad", "error_details": {"errors": [item]}, "error_format": "normalized"}
    answer = client.post(job_url(job["id"], "validation-failure"), json=body)
    problem = assert_problem(answer, 422, "invalid-failure")
    assert [e["pointer"] for e in problem["errors"]] == ["#/error_details/errors/0/fingerprint"]
    assert row(app, job["id"]) == before


def _job_count(app) -> int:  # noqa: ANN001
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import ProcessingJob

    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(ProcessingJob))


def test_a_new_job_422_names_the_schema_faults_and_the_services_together(client, app):
    """The sixth trial: a NUL id beside a bad job type and an unknown field was
    named only on the next try, after the other two were mended."""
    before = _job_count(app)
    body = {"document_id": "\u0000", "job_type": "x y", "extra": 1}
    problem = assert_problem(client.post(API, json=body), 422, "invalid-fields")
    assert [e["pointer"] for e in problem["errors"]] == ["#/document_id", "#/extra", "#/job_type"]
    assert _job_count(app) == before


@pytest.mark.parametrize("job_type", ["entity_extraction\n", "entity_extraction\n\n"])
def test_a_pattern_is_matched_as_ecma_262_reads_it(client, app, job_type):
    """A trial: Python's "$" matched before the final line break, so the
    schema passed "entity_extraction\n" and a later check refused it with
    another problem type; ajv, or any ECMA-262 engine, refuses it by the
    published pattern (JSON Schema 2020-12 Validation, section 6.3.3)."""
    before = _job_count(app)
    problem = assert_problem(client.post(API, json={"document_id": "d", "job_type": job_type}), 422,
                             "invalid-fields")
    assert [e["pointer"] for e in problem["errors"]] == ["#/job_type"]
    assert _job_count(app) == before


def test_ecma_262_white_space_is_not_python_s():
    from app.services.ecma_patterns import matches

    # ECMA-262's \s: U+FEFF yes; U+001F and U+0085 no (Python's \s says the opposite of each).
    assert matches(r"^\s$", "\ufeff") and not matches(r"^\s$", "\u001f") and not matches(r"^\s$", "\u0085")
    assert not matches("^a$", "a\n") and matches("a", "\ud800a")  # a lone surrogate does not stop the search


@pytest.mark.parametrize(("document_id", "says"), [
    (" padded ", "must not begin or end with white space"),
    ("doc-\t", "must not begin or end with white space"),
    ("doc-\u202e1", "must not hold a format character"),
    ("doc-\u200b1", "must not hold a format character"),
    ("doc-\u001b1", "must not hold a control character"),
    # A re-check: at an end, str.strip() takes these too; they were told "white space" or "non-empty".
    ("rc\u001f", "must not hold a control character"), ("rc\u0085", "must not hold a control character"),
    ("\u001c\u001d", "must not hold a control character"), ("rc\u2028", "must not hold a line or paragraph"),
    # A trial: a line separator was stored inside an id (a line break in logs and CSV viewers).
    ("doc-\u20281", "must not hold a line or paragraph separator"),
    ("doc-\u20291", "must not hold a line or paragraph separator"),
])
def test_a_document_id_is_stored_as_sent_or_refused(client, app, document_id, says):
    """The sixth trial: " padded " was stored as "padded" (which a filter for
    what the worker sent never finds), and U+202E was accepted though a
    worker's name refuses it."""
    before = _job_count(app)
    problem = assert_problem(client.post(API, json={"document_id": document_id}), 422, "invalid-job")
    assert [(e["pointer"], says in e["detail"]) for e in problem["errors"]] == [("#/document_id", True)]
    assert _job_count(app) == before
    # Inside an id, TAB, LF and CR and any other text stay as sent.
    for kept in ("doc\t1", "dossier-é-🩺", "a b"):
        created = client.post(API, json={"document_id": kept})
        assert created.status_code == 201 and created.get_json()["document_id"] == kept


def test_a_failure_422_names_the_workers_faults_and_the_details_together(client, app, job):
    """The sixth trial: an item code with ESC was named first, the worker's
    NUL name only on the next try."""
    before = row(app, job["id"])
    item = {"code": "a\u001bb", "severity": "error", "message": "m", "pointer": "/entities/0"}
    body = {"error_message": "bad", "error_details": {"errors": [item]}, "error_format": "normalized",
            "worker": {"name": "\u0000", "version": "1.0.0"}}
    problem = assert_problem(client.post(job_url(job["id"], "validation-failure"), json=body), 422, "invalid-failure")
    assert [e["pointer"] for e in problem["errors"]] == ["#/worker/name", "#/error_details/errors/0/code"]
    # And beside a schema fault, in the contract's one answer.
    body["extra"] = True
    problem = assert_problem(client.post(job_url(job["id"], "validation-failure"), json=body), 422, "invalid-fields")
    assert sorted(e["pointer"] for e in problem["errors"]) == [
        "#/error_details/errors/0/code", "#/extra", "#/worker/name"]
    assert row(app, job["id"]) == before
