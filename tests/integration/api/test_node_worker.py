"""examples/node-worker/worker.mjs, a worker written from the docs alone (Node
built-in fetch, ajv, zod), runs the whole lifecycle against a live server on
SQLite and PostgreSQL: create, start, completed with entities, validation
failures with ajv's and zod's native output, and retries with the same
Idempotency-Key after a simulated timeout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.helpers import API, job_url
from tests.node_tools import run_node
from tests.unit.error_details.payloads import CORPUS

VALID = "doc-0001-discharge-summary.json"  # every entity valid
FAULTY = "doc-0011-scanned-intake-form-multiple-errors.json"  # schema errors
MISSING = "doc-0007-progress-note-missing-fields.json"  # missing required fields


def run_worker(folder: Path, live_server: str, token: str, validator: str, *documents: str,
               timeout: bool = False) -> list[dict]:
    args = ["--validator", validator, *(["--simulate-timeout"] if timeout else [])]
    args += [str(CORPUS / document) for document in documents]
    result = run_node(folder, "worker.mjs", *args, env={"API_URL": live_server, "API_TOKEN": token})
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def job(client: Any, job_id: str) -> dict[str, Any]:
    return client.get(job_url(job_id)).get_json()


def test_ajv_worker_completes_a_valid_document_and_reports_ajv_errors_with_retries(
    client, live_server, worker_token, node_worker
):
    events = run_worker(node_worker, live_server, worker_token, "ajv", VALID, FAULTY, timeout=True)
    # Every POST lost its first answer and got the stored one on the retry.
    assert [e["event"] for e in events if e["event"] == "simulated-timeout"] == ["simulated-timeout"] * 6
    steps = [e for e in events if e["event"] in ("created", "started", "reported")]
    assert [e["replayed"] for e in steps] == [True] * 6
    # One job per document: the retries made nothing twice.
    assert len(client.get(API).get_json()["items"]) == 2

    reported = {e["document"]: e for e in events if e["event"] == "reported"}
    completed = job(client, reported[VALID]["job_id"])
    assert completed["status"] == "Completed"
    entities = client.get(job_url(completed["id"], "entities")).get_json()["items"]
    document = json.loads((CORPUS / VALID).read_text(encoding="utf-8"))
    assert [e["text"] for e in entities] == [e["text"] for e in document["entities"]]
    dosed = [e for e in entities if e["entity_type"] == "MedicationStatement"]
    assert dosed and all(e["value"]["unit"] for e in dosed)  # the dosage became the Quantity value

    failed = job(client, reported[FAULTY]["job_id"])
    assert (failed["status"], failed["error_format"]) == ("Validation_Failed", "ajv")
    items = failed["error_details"]["errors"]
    assert {(i["code"], i["pointer"]) for i in items} >= {
        ("schema.additionalProperties", "/ocr_engine"),
        ("schema.maximum", "/entities/2/confidence"),
    }
    assert all(i["code"] and i["pointer"] is not None and i["message"] for i in items)
    history = client.get(job_url(failed["id"], "failures")).get_json()["items"]
    assert len(history) == 1  # the retried report was stored once
    assert history[0]["worker"] == {"name": "node-example-worker", "version": "1.0.0"}
    # Each ajv error joined a failure group by code and pointer pattern, counted once despite the retries.
    groups = client.get("/api/v1/failure-groups?limit=200").get_json()["items"]
    by_place = {(g["code"], g["pointer_pattern"]): g for g in groups}
    assert by_place[("schema.additionalProperties", "/ocr_engine")]["job_count"] == 1
    assert by_place[("schema.maximum", "/entities/*/confidence")]["occurrence_count"] == 1
    assert len(groups) == len({(i["code"], i["pointer"]) for i in items})

    # The worker read a problem and printed where its error is.
    problem = next(e for e in events if e["event"] == "problem")
    assert problem["type"] == "/problems/invalid-query"
    assert problem["places"] == [{"parameter": "limit", "detail": problem["places"][0]["detail"]}]


@pytest.mark.parametrize("validator", ["zod3", "zod4"])
def test_zod_worker_reports_native_issues(client, live_server, worker_token, validator, node_worker):
    events = run_worker(node_worker, live_server, worker_token, validator, FAULTY, MISSING)
    reported = {e["document"]: e for e in events if e["event"] == "reported"}
    for name in (FAULTY, MISSING):
        failed = job(client, reported[name]["job_id"])
        assert (failed["status"], failed["error_format"]) == ("Validation_Failed", "zod")
        assert all(i["code"].startswith("zod.") and i["message"] for i in failed["error_details"]["errors"])
    missing = job(client, reported[MISSING]["job_id"])["error_details"]["errors"]
    assert any(i["message"] == "is required" and i["pointer"].startswith("/entities/") for i in missing)
    faulty = job(client, reported[FAULTY]["job_id"])["error_details"]["errors"]
    assert ("zod.unrecognized_keys", "/ocr_engine") in {(i["code"], i["pointer"]) for i in faulty}
