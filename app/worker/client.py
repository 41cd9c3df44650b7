"""A small HTTP client for the worker API (``/api/v1``, worker contract v1), built on ``requests``.

Every ``POST`` carries an ``Idempotency-Key`` (IETF draft
draft-ietf-httpapi-idempotency-key-header): one fresh UUID4 per logical
request, sent again unchanged by its retries. The server stores the first
successful answer with the change it reports and replays it to a retry, so a
retry after a lost answer (connection dropped, timeout, 5xx from a proxy or a
restarting server) never makes a second change. That is what makes it safe to
retry every ``POST``, including the one that creates a job. A retry that
arrives while the first attempt is still running may be answered ``409
idempotency-key-in-progress`` with ``Retry-After``; that one 4xx is retried
too, after the wait the server asks for.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests

#: Seconds to wait for the server to connect and to answer (``requests`` timeout pair).
DEFAULT_TIMEOUT = (5.0, 30.0)

#: Longest wait, in seconds, that a ``Retry-After`` header can impose: a server
#: asking for an hour should not stall the worker for an hour.
DEFAULT_MAX_RETRY_AFTER = 30.0

# Transport failures after which the request may or may not have been handled.
# ChunkedEncodingError is the answer being cut off mid-body (e.g. the server
# restarting while it answers), which is the same situation as a dropped connection.
_RETRYABLE_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

#: Problem type of the server's "an earlier attempt with this key is still
#: running", as the contract publishes it (the worker talks to the server
#: over HTTP only and imports none of its code).
#: A relative reference (RFC 9457 section 3.1.1), as the server sends it.
KEY_IN_PROGRESS_TYPE = "/problems/idempotency-key-in-progress"


class ApiError(RuntimeError):
    """The API answered with an error.

    Attributes:
        status: HTTP status code (4xx, or 5xx once the retries are used up).
        problem: the RFC 9457 problem body (``{}`` when the body was not a JSON object).
    """

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        title = problem.get("title", "error")
        super().__init__(f"HTTP {status}: {title}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


class WorkerApiClient:
    """Calls the job API for one worker.

    Args:
        base_url: the server root, e.g. ``http://127.0.0.1:5000`` (``/api/v1`` is appended).
        retries: extra attempts (>= 0) after a connection error, a timeout, an
            answer cut off mid-body, a 5xx answer or ``409
            idempotency-key-in-progress``. Other 4xx answers are never
            retried: sending the same request again would get the same refusal.
        backoff: seconds before the first retry; the wait doubles on each
            further retry (``backoff * 2**n`` before retry ``n + 1``).
        max_retry_after: seconds; a retried answer's ``Retry-After`` (RFC 9110
            section 10.2.3, delay-seconds form) lengthens the wait up to this
            cap. The HTTP-date form is ignored (the exponential wait applies).
        timeout: ``requests`` timeout, seconds (connect, read).
        session: an optional ``requests.Session`` (closed by the caller).
        token: the worker bearer token (``flask tokens create``), sent as
            ``Authorization: Bearer <token>`` (RFC 6750) on every request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        token: str | None = None,
    ) -> None:
        if retries < 0 or backoff < 0 or max_retry_after < 0:
            raise ValueError("retries, backoff and max_retry_after must not be negative")
        self.base_url = base_url.rstrip("/") + "/api/v1"
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.session = session or requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _request(self, method: str, path: str, *, json: Any = None) -> dict[str, Any]:
        """Send one logical request, retrying as the class describes; return the JSON answer.

        Raises:
            ApiError: a 4xx answer, or a 5xx answer to the last attempt.
            requests.ConnectionError / requests.Timeout /
            requests.exceptions.ChunkedEncodingError: the last attempt failed so.
        """
        headers = {}
        if method == "POST":
            # One key for the logical request, created before the first attempt
            # so that every retry is recognised as the same request.
            headers["Idempotency-Key"] = str(uuid.uuid4())
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            last_attempt = attempt == self.retries
            try:
                response = self.session.request(method, url, json=json, headers=headers, timeout=self.timeout)
            except _RETRYABLE_ERRORS:
                if last_attempt:
                    raise
                delay = self._backoff_delay(attempt)
            else:
                retryable = response.status_code >= 500 or self._key_in_progress(response)
                if not retryable or last_attempt:
                    return self._decode(response)
                delay = max(self._backoff_delay(attempt), self._retry_after(response))
                response.close()
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backoff_delay(self, attempt: int) -> float:
        return self.backoff * 2**attempt

    @staticmethod
    def _key_in_progress(response: requests.Response) -> bool:
        if response.status_code != 409:
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("type") == KEY_IN_PROGRESS_TYPE

    def _retry_after(self, response: requests.Response) -> float:
        value = response.headers.get("Retry-After", "").strip()
        if not value.isascii() or not value.isdigit():
            return 0.0
        return min(float(value), self.max_retry_after)

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
        """``POST /processing-jobs``: create a ``Pending`` job.

        Args:
            document_id: the source document's id (1 to 200 characters on the server).
            job_type: the kind of processing.

        Returns:
            The new job as the API shows it (``ProcessingJob``: ``id``, ``status``, ...).

        Raises:
            ApiError: e.g. 422 when a field is refused.
            requests.RequestException: see :meth:`_request`.
        """
        return self._request("POST", "/processing-jobs", json={"document_id": document_id, "job_type": job_type})

    def start_job(self, job_id: str) -> dict[str, Any]:
        """``POST /processing-jobs/<id>/start``: ``Pending`` -> ``Processing``.

        Returns:
            The job (``ProcessingJob``).

        Raises:
            ApiError: 404 unknown job, 409 the job is not ``Pending``.
            requests.RequestException: see :meth:`_request`.
        """
        return self._request("POST", f"/processing-jobs/{job_id}/start")

    def record_result(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /processing-jobs/<id>/result``: record the outcome of a job.

        Args:
            job_id: the job.
            body: a ``ProcessingResult``: ``{"status": "completed", "entities":
                [ExtractedEntityInput, ...]}``, ``{"status": "validation_failed",
                "error_message": str, "error_details": any, "error_format"?: str}``
                or ``{"status": "failed", "error_message": str, ...}``.

        Returns:
            The finished job (``ProcessingJob``).

        Raises:
            ApiError: 404 unknown job, 409 the job has finished, 422 the body
                breaks the contract (``problem["errors"]`` names the fields).
            requests.RequestException: see :meth:`_request`.
        """
        return self._request("POST", f"/processing-jobs/{job_id}/result", json=body)

    def get_job(self, job_id: str) -> dict[str, Any]:
        """``GET /processing-jobs/<id>``: the job (``ProcessingJob``); ApiError 404 when unknown."""
        return self._request("GET", f"/processing-jobs/{job_id}")
