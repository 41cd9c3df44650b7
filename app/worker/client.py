"""A small HTTP client for the worker API (``/api/v1``), built on ``requests``."""

from __future__ import annotations

import time
from typing import Any

import requests

#: Seconds to wait for the server to connect and to answer.
DEFAULT_TIMEOUT = (5.0, 30.0)


class ApiError(RuntimeError):
    """The API answered with an error.

    Attributes:
        status: HTTP status code.
        problem: the RFC 9457 problem body (``{}`` when the body was not JSON).
    """

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        title = problem.get("title", "error")
        super().__init__(f"HTTP {status}: {title}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


class WorkerApiClient:
    """Calls the job API for one worker.

    Args:
        base_url: the server root, e.g. ``http://127.0.0.1:5000``.
        retries: extra attempts after a connection error or a 5xx answer, with
            exponential backoff starting at ``backoff`` seconds. Only requests
            that are safe to repeat are retried (reading, recording a failure
            or a result); creating a job is not.
        session: an optional ``requests.Session`` (tests inject one).
    """

    def __init__(
        self,
        base_url: str,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/api/v1"
        self.retries = retries
        self.backoff = backoff
        self.session = session or requests.Session()

    def _request(self, method: str, path: str, *, json: Any = None, retry: bool) -> dict[str, Any]:
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                response = self.session.request(
                    method, self.base_url + path, json=json, timeout=DEFAULT_TIMEOUT
                )
            except requests.ConnectionError:
                if attempt + 1 == attempts:
                    raise
            else:
                if response.status_code < 500 or attempt + 1 == attempts:
                    return self._decode(response)
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _decode(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            raise ApiError(response.status_code, body if isinstance(body, dict) else {})
        return body

    def create_job(self, document_id: str, job_type: str = "entity_extraction") -> dict[str, Any]:
        """``POST /processing-jobs``; returns the new job (a dict as the API shows it)."""
        return self._request(
            "POST", "/processing-jobs", json={"document_id": document_id, "job_type": job_type}, retry=False
        )

    def start_job(self, job_id: str) -> dict[str, Any]:
        """``POST /processing-jobs/<id>/start``; returns the job."""
        return self._request("POST", f"/processing-jobs/{job_id}/start", retry=False)

    def complete_job(self, job_id: str) -> dict[str, Any]:
        """``POST /processing-jobs/<id>/result`` with status ``completed``."""
        return self._request(
            "POST", f"/processing-jobs/{job_id}/result", json={"status": "completed"}, retry=True
        )

    def record_validation_failure(
        self, job_id: str, error_message: str, error_details: Any
    ) -> dict[str, Any]:
        """``POST /processing-jobs/<id>/validation-failure``; returns the job."""
        return self._request(
            "POST",
            f"/processing-jobs/{job_id}/validation-failure",
            json={"error_message": error_message, "error_details": error_details},
            retry=True,
        )

    def get_job(self, job_id: str) -> dict[str, Any]:
        """``GET /processing-jobs/<id>``."""
        return self._request("GET", f"/processing-jobs/{job_id}", retry=True)
