"""examples/node-worker/worker.mjs, a worker written from the docs alone (Node
built-in fetch, ajv, zod), runs the whole lifecycle against a live server on
SQLite and PostgreSQL: create, start, completed with entities, validation
failures with ajv's and zod's native output, and retries with the same
Idempotency-Key after a simulated timeout."""

from __future__ import annotations

import http.server
import json
import threading
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
    result = run_node(folder, "worker.mjs", *args, env={"API_URL": live_server, "WORKER_TOKEN": token})
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


class _ScriptedApi(http.server.BaseHTTPRequestHandler):
    """A stand-in API answering each (method, path) from a script, in order,
    and noting every request: what a worker meets behind a proxy or while
    the database is away, which the real server cannot be made to answer."""

    script: dict[tuple[str, str], list[tuple[int, dict[str, str], str]]]
    seen: list[tuple[str, str, str | None]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append((self.command, self.path, self.headers.get("Idempotency-Key")))
        status, headers, body = self.script[(self.command, self.path)].pop(0)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        # No access log on stderr: the test reads ``seen``.
        return None


def _problem(status: int, slug: str, **headers: str) -> tuple[int, dict[str, str], str]:
    body = json.dumps({"type": f"/problems/{slug}", "title": slug, "status": status, "detail": slug})
    return status, {"Content-Type": "application/problem+json", **headers}, body


def _job(job_id: str, status: int = 200) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json"}, json.dumps({"id": job_id, "status": "Pending"})


def test_the_example_retries_exactly_what_the_contract_says(node_worker):
    # A trial: the example retried every 5xx and 409 alike, not 429, capped
    # Retry-After at 5 s, and crashed on a proxy's HTML error page.
    jobs = "/api/v1/processing-jobs"
    html = "<html><body>Bad gateway</body></html>"
    _ScriptedApi.script = {
        ("POST", jobs): [
            (429, {"Retry-After": "0", "Content-Type": "text/html"}, html),  # a gateway's rate limit
            (503, {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT", "Content-Type": "text/html"}, html),  # a date
            (502, {}, ""),  # a gateway with no answer from the API, and no body
            (504, {"Content-Type": "text/html"}, html),
            _job("j1", 201),
            _job("j2", 201),
        ],
        ("POST", f"{jobs}/j1/start"): [_problem(500, "internal-error"), _job("j1")],
        ("POST", f"{jobs}/j1/result"): [_problem(409, "invalid-transition")],  # the job moved on: not retried
        ("POST", f"{jobs}/j2/start"): [_problem(409, "idempotency-key-in-progress", **{"Retry-After": "0"}), _job("j2")],
        # Longer than the example waits: it gives up rather than hang.
        ("POST", f"{jobs}/j2/result"): [_problem(503, "service-unavailable", **{"Retry-After": "3600"})],
        ("GET", f"{jobs}?limit=0"): [(401, {}, "")],  # an error with no body at all: reported, not a crash
    }
    _ScriptedApi.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_node(node_worker, "worker.mjs", "--validator", "ajv", str(CORPUS / VALID), str(CORPUS / FAULTY),
                          env={"API_URL": f"http://127.0.0.1:{server.server_port}", "WORKER_TOKEN": "cit_x"})
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.returncode == 1, result.stderr[-2000:]  # two documents not done
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["event"], e.get("status"), e.get("type")) for e in events if e["event"] == "problem"] == [
        ("problem", 409, "/problems/invalid-transition"),
        ("problem", 503, "/problems/service-unavailable"),
        ("problem", 401, "about:blank"),
    ]
    calls = [(method, path) for method, path, _ in _ScriptedApi.seen]
    assert calls == [
        *[("POST", jobs)] * 5,  # 429 and 503 after Retry-After, 502 and 504 as no answer
        ("POST", f"{jobs}/j1/start"), ("POST", f"{jobs}/j1/start"),  # a 500 retried
        ("POST", f"{jobs}/j1/result"),  # 409 invalid-transition: once
        ("POST", jobs), ("POST", f"{jobs}/j2/start"), ("POST", f"{jobs}/j2/start"),  # a key in progress
        ("POST", f"{jobs}/j2/result"),  # Retry-After beyond the example's limit: once
        ("GET", f"{jobs}?limit=0"),
    ]
    # Each retry sent the same Idempotency-Key as its first try; requests differ.
    keys = [key for _, _, key in _ScriptedApi.seen]
    assert len(set(keys[0:5])) == 1 and keys[5] == keys[6] and keys[9] == keys[10]
    assert len({keys[0], keys[5], keys[7], keys[8], keys[9], keys[11]}) == 6
