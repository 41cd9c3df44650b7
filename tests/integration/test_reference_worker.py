"""The reference worker, run over HTTP against a live server on its corpus."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.wrappers import Response

from app.config import ROOT
from app.worker.client import WorkerApiClient
from app.worker.runner import DocumentOutcome, run_worker, with_entities
from app.worker.validation import validate_entity_document
from tests.live_server import serve as serve_wsgi

CORPUS = ROOT / "demo" / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
ENTITY_INPUT_FIELDS = ("entity_type", "text", "code", "code_system", "confidence", "span")


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """Serve a WSGI app (e.g. the app behind a fault-injecting wrapper) over
    real HTTP on a free loopback port; returns its root URL."""
    with ExitStack() as servers:
        yield lambda wsgi_app: servers.enter_context(serve_wsgi(wsgi_app))


@pytest.fixture(autouse=True)
def _worker_token_in_environment(monkeypatch: pytest.MonkeyPatch, worker_token: str) -> None:
    # The CLI reads WORKER_TOKEN; run_corpus passes the same token.
    monkeypatch.setenv("WORKER_TOKEN", worker_token)


def run_corpus(url: str, corpus: Path = CORPUS, **options: Any) -> list[DocumentOutcome]:
    options.setdefault("retries", 0)
    options.setdefault("token", os.environ["WORKER_TOKEN"])
    client = WorkerApiClient(url, **options)
    try:
        return run_worker(client, corpus)
    finally:
        client.session.close()


def corpus_document(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / name).read_text())


def expected_entity(entity: dict[str, Any]) -> dict[str, Any]:
    """The contract's view of a document entity, as the worker should have sent it."""
    typed = {k: v for k, v in entity.items() if k not in (*ENTITY_INPUT_FIELDS, "attributes", "value", "dosage")}
    return {
        **{name: entity[name] for name in ENTITY_INPUT_FIELDS},
        # The measured value (an observation's value, a medication's dosage) is the Quantity value.
        "value": entity.get("value", entity.get("dosage")),
        "attributes": {**entity.get("attributes", {}), **typed},
    }


def get_items(client: Any, url: str) -> list[dict[str, Any]]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"]


def test_worker_leaves_expected_jobs_failed_with_expected_codes(client, live_server):
    outcomes = run_corpus(live_server)
    assert sorted(o.file for o in outcomes) == sorted(EXPECTED)
    for outcome in outcomes:
        want = EXPECTED[outcome.file]
        job = client.get(f"/api/v1/processing-jobs/{outcome.job_id}").get_json()
        assert job["status"] == outcome.status, outcome.file
        assert job["started_at"] is not None and job["completed_at"] is not None
        if want["valid"]:
            assert job["status"] == "Completed", outcome.file
            assert job["error_message"] is job["error_details"] is job["error_format"] is None
            assert outcome.error_codes == []
            continue
        assert job["status"] == "Validation_Failed", outcome.file
        assert job["error_message"].startswith("Entity validation failed")
        assert job["error_format"] == "normalized"
        details = job["error_details"]
        items = details["errors"]
        # The normalized envelope, holding every item the validator gave, warnings included.
        assert details == {"schema_version": 1, "errors": items, "error_count": len(items), "truncated": False}
        document = corpus_document(outcome.file)
        assert items == with_entities(validate_entity_document(document), document), outcome.file
        blocking = sorted({i["code"] for i in items if i["severity"] in ("fatal", "error")})
        assert blocking == want["codes"] == outcome.error_codes, outcome.file
        warnings = sorted({i["code"] for i in items if i["severity"] == "warning"})
        assert warnings == want["warnings"], outcome.file
        for item in items:
            assert set(item) - {"entity"} == {"code", "severity", "message", "pointer"}
            assert item["pointer"] == "" or item["pointer"].startswith("/")
            # An item about one entity names its type and code (no patient text).
            if item["pointer"].startswith("/entities/") and "entity" in item:
                index = int(item["pointer"].split("/")[2])
                entity = document["entities"][index]
                assert item["entity"]["type"] == entity["entity_type"]
                assert item["entity"].get("code") in (None, entity.get("code"))
                assert entity["text"] not in json.dumps(item)
    assert sum(1 for w in EXPECTED.values() if not w["valid"]) >= 5


def test_valid_documents_entities_are_stored_in_order_with_the_mapped_fields(client, live_server):
    outcomes = run_corpus(live_server)
    stored_total = 0
    for outcome in outcomes:
        stored = get_items(client, f"/api/v1/processing-jobs/{outcome.job_id}/entities")
        if not EXPECTED[outcome.file]["valid"]:
            assert stored == [] and outcome.entity_count == 0, outcome.file
            continue
        entities = corpus_document(outcome.file)["entities"]
        assert len(stored) == len(entities) == outcome.entity_count > 0, outcome.file
        assert [e["position"] for e in stored] == list(range(len(entities)))
        assert [{k: v for k, v in e.items() if k not in ("id", "position")} for e in stored] == [
            expected_entity(entity) for entity in entities
        ], outcome.file
        stored_total += len(stored)
    # Type-specific fields did reach the server, under attributes.
    assert stored_total == sum(
        len(corpus_document(name)["entities"]) for name, want in EXPECTED.items() if want["valid"]
    )


def test_each_failed_document_has_exactly_one_failure_in_its_history(client, live_server):
    outcomes = run_corpus(live_server)
    for outcome in outcomes:
        history = get_items(client, f"/api/v1/processing-jobs/{outcome.job_id}/failures")
        if EXPECTED[outcome.file]["valid"]:
            assert history == [], outcome.file
            continue
        job = client.get(f"/api/v1/processing-jobs/{outcome.job_id}").get_json()
        assert len(history) == 1, outcome.file
        (failure,) = history
        assert failure["status"] == "Validation_Failed"
        assert failure["error_format"] == "normalized"
        assert failure["error_message"] == job["error_message"]
        assert failure["error_details"] == job["error_details"]


def test_running_the_worker_twice_creates_new_jobs(client, live_server):
    first = run_corpus(live_server)
    second = run_corpus(live_server)
    assert [(o.file, o.status, o.error_codes, o.entity_count) for o in first] == [
        (o.file, o.status, o.error_codes, o.entity_count) for o in second
    ]
    assert not {o.job_id for o in first} & {o.job_id for o in second}
    jobs = get_items(client, "/api/v1/processing-jobs?limit=100")
    assert len(jobs) == 2 * len(EXPECTED)
    for outcome in first:
        # The earlier jobs are left as they were: still one failure each, entities not doubled.
        assert len(get_items(client, f"/api/v1/processing-jobs/{outcome.job_id}/entities")) == outcome.entity_count
        assert len(get_items(client, f"/api/v1/processing-jobs/{outcome.job_id}/failures")) == (
            0 if outcome.status == "Completed" else 1
        )


class FailFirstAttempt:
    """WSGI middleware: the first attempt of each ``POST`` whose path ends with
    ``suffix`` is answered 503, as by a server restarting.

    A request is told apart from its retries by its path and body, not by its
    ``Idempotency-Key``, so that a client sending no key (or a new one per
    attempt) would still be caught. With ``handled`` the app does the work
    first and only the answer is lost (the server died after committing);
    otherwise the request never reaches the app. ``lost`` lists the app's
    statuses for the answers thrown away; ``keys`` the keys seen per request.
    """

    def __init__(self, app: Flask, suffix: str, *, handled: bool) -> None:
        self.app = app
        self.suffix = suffix
        self.handled = handled
        self.keys: dict[tuple[str, bytes], list[str | None]] = {}
        self.lost: list[int] = []

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] != "POST" or not environ["PATH_INFO"].endswith(self.suffix):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        attempts = self.keys.setdefault((environ["PATH_INFO"], body), [])
        attempts.append(environ.get("HTTP_IDEMPOTENCY_KEY"))
        if len(attempts) > 1:
            return self.app(environ, start_response)
        if self.handled:
            answer = Response.from_app(self.app, environ, buffered=True)
            answer.close()
            self.lost.append(answer.status_code)
        return Response("restarting", status=503, headers={"Retry-After": "0"})(environ, start_response)


@pytest.mark.parametrize(
    ("suffix", "handled"),
    [("/result", True), ("/result", False), ("/start", True), ("/processing-jobs", True)],
    ids=["result-answer-lost", "result-refused", "start-answer-lost", "create-answer-lost"],
)
def test_worker_survives_a_server_restart_between_attempts(app, client, serve, suffix, handled):
    flaky = FailFirstAttempt(app, suffix, handled=handled)
    outcomes = run_corpus(serve(flaky), retries=2, backoff=0.001)

    # One lost attempt and one retry per document, the retry with the same key.
    assert len(flaky.keys) == len(EXPECTED)
    assert all(len(keys) == 2 and keys[0] is not None and keys[0] == keys[1] for keys in flaky.keys.values())
    assert flaky.lost == ([201 if suffix == "/processing-jobs" else 200] * len(EXPECTED) if handled else [])
    assert {o.file: o.status for o in outcomes} == {
        name: "Completed" if want["valid"] else "Validation_Failed" for name, want in EXPECTED.items()
    }
    # The retries were answered from the stored answers: no second job, no
    # second failure, no entity stored twice.
    assert len(get_items(client, "/api/v1/processing-jobs?limit=100")) == len(EXPECTED)
    for outcome in outcomes:
        history = get_items(client, f"/api/v1/processing-jobs/{outcome.job_id}/failures")
        entities = get_items(client, f"/api/v1/processing-jobs/{outcome.job_id}/entities")
        if EXPECTED[outcome.file]["valid"]:
            assert history == [], outcome.file
            assert len(entities) == len(corpus_document(outcome.file)["entities"]), outcome.file
        else:
            assert len(history) == 1, outcome.file
            assert entities == []


def test_worker_command_reports_each_document(runner, live_server):
    result = runner.invoke(
        args=["worker", "run", "--corpus", str(CORPUS), "--api-url", live_server, "--retries", "1", "--backoff", "0.01"]
    )
    assert result.exit_code == 0, result.output
    # Not a terminal: the progress bar shows only its label, on stderr.
    assert result.stderr.strip() == "Processing 11 documents"
    lines = result.stdout.splitlines()
    assert lines[-1] == "11 documents: 5 completed, 6 failed validation."
    assert len(lines) == 12
    by_file = {line.split()[0]: line for line in lines[:-1]}
    assert sorted(by_file) == sorted(EXPECTED)
    # The second column is the stored document id, what the dashboard's
    # search knows the document by (a trial searched for the file's words).
    for name, line in by_file.items():
        assert line.split()[1] == corpus_document(name)["document_id"], line
    assert len({line.index(line.split()[2]) for line in lines[:-1]}) == 1  # job ids in one column
    assert by_file["doc-0006-referral-letter-bad-icd-code.json"].endswith("Validation_Failed  code.unknown_icd10cm")
    entity_count = len(corpus_document("doc-0001-discharge-summary.json")["entities"])
    assert by_file["doc-0001-discharge-summary.json"].endswith(f"Completed          {entity_count} entities")


def test_worker_command_fails_clearly_when_the_server_is_down(runner):
    result = runner.invoke(
        args=[
            "worker", "run", "--corpus", str(CORPUS), "--api-url", "http://127.0.0.1:9",
            "--retries", "1", "--backoff", "0.01",
        ]
    )
    assert result.exit_code == 1
    assert "cannot reach the API at http://127.0.0.1:9" in result.output


def test_worker_command_refuses_negative_retries(runner):
    result = runner.invoke(args=["worker", "run", "--retries", "-1"])
    assert result.exit_code == 2
    assert "--retries" in result.output


def test_worker_command_reports_api_refusals(runner, live_server, tmp_path):
    # The second document's id is too long for the API: its create is refused (422).
    doc = corpus_document("doc-0001-discharge-summary.json")
    (tmp_path / "a-fine.json").write_text(json.dumps(doc))
    (tmp_path / "b-long-id.json").write_text(json.dumps({**doc, "document_id": "x" * 500}))
    result = runner.invoke(args=["worker", "run", "--corpus", str(tmp_path), "--api-url", live_server])
    assert result.exit_code == 1
    assert "HTTP 422" in result.output
    # The document finished before the refusal is still reported.
    assert result.stdout.startswith("a-fine.json")
    assert "Completed" in result.stdout
