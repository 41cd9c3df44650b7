"""The reference worker, run over HTTP against a live server on its corpus."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app.config import ROOT
from app.services.processing_jobs.jobs import get_job
from app.worker.client import WorkerApiClient
from app.worker.runner import run_worker

CORPUS = ROOT / "demo" / "corpus"


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_worker_leaves_expected_jobs_failed_with_expected_codes(app, live_server):
    expected = json.loads((CORPUS / "expected.json").read_text())
    client = WorkerApiClient(live_server, retries=0)
    try:
        outcomes = run_worker(client, CORPUS)
    finally:
        client.session.close()
    assert sorted(o.file for o in outcomes) == sorted(expected)
    with app.app_context():
        for outcome in outcomes:
            want = expected[outcome.file]
            job = get_job(outcome.job_id)
            if want["valid"]:
                assert job.status == "Completed", outcome.file
                assert job.error_message is None and job.error_details is None
            else:
                assert job.status == "Validation_Failed", outcome.file
                assert job.error_message.startswith("Entity validation failed")
                items = job.error_details["errors"]
                blocking = sorted({i["code"] for i in items if i["severity"] in ("fatal", "error")})
                assert blocking == want["codes"], outcome.file
                warnings = sorted({i["code"] for i in items if i["severity"] == "warning"})
                assert warnings == want["warnings"], outcome.file
                for item in items:
                    assert set(item) == {"code", "severity", "message", "pointer"}
                    assert item["pointer"] == "" or item["pointer"].startswith("/")
                assert job.completed_at is not None
    assert sum(1 for w in expected.values() if not w["valid"]) >= 5


def test_worker_command_reports_each_document(runner, live_server):
    result = runner.invoke(args=["worker", "run", "--corpus", str(CORPUS), "--api-url", live_server])
    assert result.exit_code == 0, result.output
    assert "11 documents: 5 completed, 6 failed validation." in result.output
    assert "doc-0006-referral-letter-bad-icd-code.json" in result.output


def test_worker_command_fails_clearly_when_the_server_is_down(runner):
    result = runner.invoke(
        args=["worker", "run", "--corpus", str(CORPUS), "--api-url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "cannot reach the API at http://127.0.0.1:9" in result.output


def test_worker_command_reports_api_refusals(runner, live_server, app):
    # A corpus whose document id is too long for the API: the create is refused (422).
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        doc = json.loads((CORPUS / "doc-0001-discharge-summary.json").read_text())
        doc["document_id"] = "x" * 500
        Path(folder, "long-id.json").write_text(json.dumps(doc))
        result = runner.invoke(args=["worker", "run", "--corpus", folder, "--api-url", live_server])
    assert result.exit_code == 1
    assert "HTTP 422" in result.output
