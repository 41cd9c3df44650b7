"""Errors raised by the processing-job services (each carries its HTTP status)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.errors import FieldError, InvalidFieldsError, ServiceError


class JobNotFoundError(ServiceError):
    """No processing job has the given id (HTTP 404)."""

    status = 404
    title = "Job not found"
    slug = "job-not-found"

    def __init__(self, job_id: uuid.UUID | None) -> None:
        """``job_id``: the id no job has, or ``None`` when the caller's id was
        not a UUID at all (see :meth:`not_a_uuid`)."""
        if job_id is None:
            # Not echoed: it came from the URL and may hold control
            # characters or text the caller never meant to send.
            detail = "No job has this id: job ids are UUIDs (RFC 9562), e.g. 0b9d7a3e-0c4e-4f39-9a5e-2f1d3c4b5a69."
        else:
            # A well-formed id is named: it is the caller's own key, not patient data.
            detail = f"No job has id {job_id}."
        super().__init__(detail)
        self.job_id = job_id

    @classmethod
    def not_a_uuid(cls) -> JobNotFoundError:
        """The error for an id that is not a UUID, so names no job."""
        return cls(None)


class InvalidTransitionError(ServiceError):
    """The job's current status does not allow the requested change (HTTP 409)."""

    status = 409
    title = "Status transition not allowed"
    slug = "invalid-transition"

    def __init__(self, job_id: uuid.UUID, current: str, target: str) -> None:
        if current == target == "Completed":
            # The same completion again is a 200 (lifecycle.complete_job): this one had
            # other entities (a re-check read "cannot become Completed" as a contradiction).
            detail = (f"Processing job {job_id} is already Completed, with other entities: a result is final, "
                      "and only the same completion again is accepted.")
        else:
            detail = f"Processing job {job_id} is {current}; it cannot become {target}."
        super().__init__(detail)
        self.job_id = job_id
        self.current = current
        self.target = target

    @property
    def members(self) -> dict[str, str]:
        """``current_status`` and ``target_status`` (canonical status names)."""
        return {"current_status": self.current, "target_status": self.target}


class FailureChangedError(InvalidTransitionError):
    """An operator acted on the failure they were shown, but the job has
    changed since: it failed again, or was requeued (HTTP 409). Nothing
    is done; the operator looks again. Compared by the job's
    ``completed_at``, which every failure and requeue changes."""

    def __init__(self, job_id: uuid.UUID, current: str) -> None:
        super().__init__(job_id, current, "changed by an action on the failure shown before")
        self.detail = (
            f"Processing job {job_id} changed after it was shown (it failed again, or was requeued); "
            "nothing was done. Look at it again."
        )

    @property
    def members(self) -> dict[str, str]:
        """``current_status`` only: no status was asked for."""
        return {"current_status": self.current}


class InvalidFailurePayloadError(InvalidFieldsError):
    """The message or details of a failure are unusable (HTTP 422)."""

    slug = "invalid-failure"
    title = "Invalid failure report"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("The failure report has invalid fields; nothing was changed.", errors)


class InvalidJobError(InvalidFieldsError):
    """The fields of a new job are unusable (HTTP 422)."""

    slug = "invalid-job"
    title = "Invalid processing job"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("The processing job has invalid fields; nothing was stored.", errors)


class InvalidEntitiesError(InvalidFieldsError):
    """Extracted entities that cannot be stored (HTTP 422)."""

    slug = "invalid-entities"
    title = "Invalid extracted entities"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("Some extracted entities are invalid; nothing was stored.", errors)
