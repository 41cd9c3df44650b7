"""Concurrent workers on one job, over real HTTP and separate connections.

Each request runs in its own server thread with its own database connection,
as with several worker processes. PostgreSQL serialises them with row locks
(``SELECT ... FOR UPDATE``); SQLite with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.web.errors import PROBLEM_TYPE_BASE
from app.services.processing_jobs.lifecycle import create_job, list_entities, list_failures, start_job
from tests.helpers import stored_job_row
from tests.live_server import serve

WORKERS = 24


def _failure(i: int) -> dict:
    return {
        "status": "validation_failed",
        "error_message": f"failure {i}",
        "error_format": "normalized",
        "error_details": {"errors": [{"code": f"rule.{i}", "severity": "error", "message": f"rule {i} broken", "pointer": f"/entities/{i}"}]},
    }


def _completed(i: int) -> dict:
    entity = {
        "entity_type": "Condition", "text": f"finding {i}", "code": "E11.9",
        "code_system": "http://hl7.org/fhir/sid/icd-10-cm", "confidence": 0.9, "span": {"start": i, "end": i + 5},
    }
    return {"status": "completed", "entities": [entity, {**entity, "text": f"second {i}"}]}


def _fire(base_url: str, requests_to_send: list[tuple[str, dict, dict]]) -> list[tuple[int, dict, dict]]:
    """Send all requests at once (a barrier releases them together); each
    answer is ``(status, body sent, JSON answer)``."""
    answers = _fire_with_headers(base_url, requests_to_send)
    return [(status, body, answer) for status, body, answer, _ in answers]


def _fire_with_headers(
    base_url: str, requests_to_send: list[tuple[str, dict, dict]]
) -> list[tuple[int, dict, dict, dict]]:
    """As :func:`_fire`, with the response headers as a fourth item."""
    barrier = threading.Barrier(len(requests_to_send))

    def send(item):
        path, body, headers = item
        with requests.Session() as session:  # one connection per worker
            barrier.wait(timeout=120)  # every thread started, however busy the machine
            response = session.post(base_url + path, json=body, headers=headers, timeout=60)
        return response.status_code, body, response.json(), response.headers

    with ThreadPoolExecutor(max_workers=len(requests_to_send)) as pool:
        return list(pool.map(send, requests_to_send))


def test_concurrent_failures_and_results_never_interleave(app, auth_headers):
    with app.app_context():
        job_id = str(create_job("doc-race").id)
        start_job(job_id)
    path = f"/api/v1/processing-jobs/{job_id}/result"
    bodies = [_failure(i) if i % 3 else _completed(i) for i in range(WORKERS)]
    with serve(app) as base_url:
        answers = _fire(base_url, [(path, body, auth_headers) for body in bodies])

    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 409}, statuses
    accepted = [(body, answer) for status, body, answer in answers if status == 200]
    completions = [body for body, _ in accepted if body["status"] == "completed"]
    failures = [body for body, _ in accepted if body["status"] == "validation_failed"]
    assert len(completions) <= 1  # Completed is final: one completion at most

    with app.app_context():
        row = stored_job_row(job_id)
        history = list_failures(job_id)
        entities = list_entities(job_id)
        # The history holds each accepted failure exactly once, in no other number.
        assert sorted(f.error_message for f in history) == sorted(b["error_message"] for b in failures)
        for failure in history:
            index = failure.error_message.split()[-1]
            assert failure.error_details["errors"][0]["code"] == f"rule.{index}"
        if completions:
            assert row["status"] == "Completed"
            assert row["error_message"] is None and row["error_details"] is None
            i = completions[0]["entities"][0]["span"]["start"]
            assert [e.text for e in entities] == [f"finding {i}", f"second {i}"]
            # Once completed, nothing later was accepted: all accepted failures
            # were recorded before the completion.
            completed_at = row["completed_at"]
            assert all(f.recorded_at.replace(tzinfo=None) <= completed_at.replace(tzinfo=None) for f in history)
        else:
            assert row["status"] == "Validation_Failed"
            assert entities == []
            # The stored message and details come from the same request.
            index = row["error_message"].split()[-1]
            assert row["error_details"]["errors"][0]["code"] == f"rule.{index}"
            assert row["error_message"] == history[-1].error_message


def test_concurrent_retries_with_one_idempotency_key_store_one_failure(app, auth_headers):
    with app.app_context():
        job_id = str(create_job("doc-retry").id)
    path = f"/api/v1/processing-jobs/{job_id}/validation-failure"
    body = {"error_message": "invalid entities", "error_details": {"free": "form"}}
    key = str(uuid.uuid4())
    with serve(app) as base_url:
        answers = _fire(base_url, [(path, body, {**auth_headers, "Idempotency-Key": key})] * 20)
    assert [status for status, _, _ in answers] == [200] * 20
    first = answers[0][2]
    assert all(answer == first for _, _, answer in answers)  # the same answer, byte for byte
    with app.app_context():
        assert len(list_failures(job_id)) == 1


def test_concurrent_starts_let_exactly_one_worker_claim_the_job(app, auth_headers):
    with app.app_context():
        job_id = str(create_job("doc-claim").id)
    path = f"/api/v1/processing-jobs/{job_id}/start"
    with serve(app) as base_url:
        answers = _fire(base_url, [(path, None, auth_headers)] * 20)
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] + [409] * 19


@pytest.mark.parametrize("action", ["start", "result"])
def test_concurrent_retries_with_one_key_get_the_first_answer_or_in_progress(app, auth_headers, action):
    """draft-ietf-httpapi-idempotency-key-header: a duplicate that arrives while
    the first request runs gets that request's answer or 409
    idempotency-key-in-progress with Retry-After, never a conflict of its own."""
    with app.app_context():
        job_id = str(create_job("doc-keyed").id)
        if action == "result":
            start_job(job_id)
    path = f"/api/v1/processing-jobs/{job_id}/{action}"
    body = {"status": "completed", "entities": [_completed(0)["entities"][0]]} if action == "result" else None
    headers = {**auth_headers, "Idempotency-Key": str(uuid.uuid4())}
    with serve(app) as base_url:
        answers = _fire_with_headers(base_url, [(path, body, headers)] * 20)
        stored = requests.get(f"{base_url}/api/v1/processing-jobs/{job_id}", headers=auth_headers, timeout=60)

    accepted = [answer for status, _, answer, _ in answers if status == 200]
    assert accepted, [status for status, _, _, _ in answers]
    assert all(answer == accepted[0] for answer in accepted)  # one answer, the first one
    for status, _, answer, response_headers in answers:
        if status != 200:
            assert (status, answer["type"]) == (409, PROBLEM_TYPE_BASE + "idempotency-key-in-progress")
            assert int(response_headers["Retry-After"]) > 0
    # The job changed once, by the request whose answer everyone got.
    assert stored.json() == accepted[0]
    assert accepted[0]["status"] == ("Processing" if action == "start" else "Completed")
    with app.app_context():
        assert len(list_entities(job_id)) == (1 if action == "result" else 0)
