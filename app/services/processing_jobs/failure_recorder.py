"""The failure recorder: the one place a job is marked as failed.

:class:`FailureRecorder` is the abstraction endpoints, CLI commands and
pipelines depend on; :class:`SQLAlchemyFailureRecorder` stores failures in the
``processing_jobs`` table. Get the app's instance with
:func:`app.registry.get_failure_recorder`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from app.errors import FieldError, field_error
from app.extensions import db
from app.models import JobStatus
from app.models.job_status import can_transition
from app.models.types import utcnow
from app.services.failure_groups.recorded import RecordedFailure
from app.services.failure_groups.recording import group_recorded_failure
from app.services.failure_groups.worker import check_worker
from app.services.error_details import (
    AmbiguousErrorFormatError,
    DetailsLimits,
    InvalidErrorDetailsError,
    UnknownErrorFormatError,
    normalize_error_details,
)
from app.services.json_values import (
    InvalidJSONValueError,
    clean_json_value,
    clean_text,
    json_equal,
    refuse_json_constant,
)
from app.services.processing_jobs.errors import InvalidFailurePayloadError, InvalidTransitionError, JobNotFoundError
from app.services.processing_jobs.failure_rows import append_history, current_failure_worker, lock_job, set_failure
from app.services.processing_jobs.locking import parse_job_id
from app.services.processing_jobs.snapshot import JobSnapshot
from app.unit_of_work import write_transaction


class JSONText(str):
    """Marks a ``str`` as a JSON *text* to be parsed, not a JSON string value.

    ``record_validation_failure(id, msg, JSONText('{"errors": []}'))`` stores
    an object; ``record_validation_failure(id, msg, '{"errors": []}')`` stores
    that string. ``bytes`` are always treated as UTF-8 JSON text.
    """


@runtime_checkable
class FailureRecorder(Protocol):
    """Records why a processing job failed.

    Implementations set status, message, details and ``completed_at`` in one
    transaction (the caller's, when called inside ``with
    write_transaction():``), append the failure to the job's history, and
    return the job as stored.
    """

    # The signatures in short; the implementation below documents them.

    def record_validation_failure(self, job_id: uuid.UUID | str, error_message: str, error_details: Any,
                                  *, error_format: str | None = None, worker: Any = None) -> JobSnapshot:
        """Mark the job ``Validation_Failed`` (see the implementation)."""
        ...

    def record_failure(self, job_id: uuid.UUID | str, error_message: str, error_details: Any = None,
                       *, error_format: str | None = None, worker: Any = None) -> JobSnapshot:
        """Mark the job ``Failed`` (a non-validation failure)."""
        ...


@dataclass(frozen=True)
class FailureLimits:
    """Limits the recorder enforces before anything is stored.

    Attributes:
        max_message_length: most characters in ``error_message`` (after trimming).
        max_details_depth: deepest nesting of arrays/objects in ``error_details``.
        max_string_length: most characters in any string or key of
            ``error_details`` (free-form details included).
        details: caps of the normalized envelope (items kept, message
            length, ...); items over ``details.max_items`` are dropped and the
            envelope says ``truncated: true``.
    """

    max_message_length: int = 1_000
    max_details_depth: int = 32
    max_string_length: int = 10_000
    details: DetailsLimits = field(default_factory=DetailsLimits)


@dataclass(frozen=True)
class CheckedReport:
    """A failure report :meth:`SQLAlchemyFailureRecorder.check_report` has
    checked, as it will be stored.

    Attributes:
        message: the trimmed ``error_message``.
        details: the details: the normalized envelope (error-details v1)
            for a recognised format, else the JSON value as sent (cleaned).
        error_format: the format they were read in, or ``None`` without details.
        worker_name: the reporting worker's name, or ``None``.
        worker_version: its version, or ``None``.
    """

    message: str
    details: Any
    error_format: str | None
    worker_name: str | None
    worker_version: str | None


class SQLAlchemyFailureRecorder:
    """:class:`FailureRecorder` backed by the app's SQLAlchemy session.

    Each public method is one ``with write_transaction():`` block: it commits
    on success (or joins the caller's transaction) and rolls back on any
    error, so a refused call changes nothing. The job row is
    locked (``SELECT ... FOR UPDATE`` on PostgreSQL) for the whole
    read-check-write, so concurrent reports on one job are serialised.
    """

    def __init__(self, limits: FailureLimits | None = None) -> None:
        self.limits = limits or FailureLimits()

    def record_validation_failure(
        self,
        job_id: uuid.UUID | str,
        error_message: str,
        error_details: Any,
        *,
        error_format: str | None = None,
        worker: Any = None,
    ) -> JobSnapshot:
        """Mark a job ``Validation_Failed`` with a message and structured details.

        Allowed from ``Pending``, ``Processing``, ``Failed`` and
        ``Validation_Failed`` (see ``ALLOWED_TRANSITIONS``). Recording the same
        message, format, details (equal as JSON) and worker (name and
        version) on a job already ``Validation_Failed`` with them is a
        no-op that returns the job unchanged and adds no history; a different failure replaces the
        stored one, moves ``completed_at`` and is appended to
        ``job_failures``.

        Args:
            job_id: the job's UUID (or its string form).
            error_message: short summary, stored trimmed; 1 to
                ``limits.max_message_length`` characters. NUL and lone
                surrogates become U+FFFD (see :mod:`app.services.json_values`).
            error_details: any JSON value, or a JSON text given as
                :class:`JSONText` or ``bytes``. In a recognised validator
                format it is stored as the normalized envelope
                (error-details v1, :mod:`app.services.error_details`);
                otherwise as sent. ``jsonb`` on PostgreSQL.
            error_format: the format of ``error_details`` (one of
                ``ERROR_FORMATS``); ``None`` lets the recorder recognise it,
                ``"free-form"`` stores it as sent.
            worker: who reported it, ``{"name"?: str, "version"?: str}`` (each
                1 to 100 characters, no control characters), or ``None``;
                stored on the failure. Every error item of the failure joins
                its failure group in the same transaction
                (:mod:`app.services.failure_groups`, docs/failure-groups.md).

        Returns:
            The job as stored: status ``Validation_Failed``, ``completed_at``
            set (UTC).

        Raises:
            JobNotFoundError: no job has this id.
            InvalidFailurePayloadError: empty/whitespace or over-long message;
                details that are not JSON, nest too deeply, hold an over-long
                string, or do not fit the declared format; an unknown format;
                a ``worker`` that is not such an object.
            InvalidTransitionError: the job is ``Completed``.
        """
        return self._record(
            job_id, JobStatus.VALIDATION_FAILED, error_message, error_details, error_format, worker
        )

    def record_failure(
        self,
        job_id: uuid.UUID | str,
        error_message: str,
        error_details: Any = None,
        *,
        error_format: str | None = None,
        worker: Any = None,
    ) -> JobSnapshot:
        """Mark a job ``Failed`` (the worker crashed, timed out, ...).

        Same arguments, rules and errors as :meth:`record_validation_failure`,
        with target status ``Failed``.
        """
        return self._record(job_id, JobStatus.FAILED, error_message, error_details, error_format, worker)

    # -- internals ---------------------------------------------------------

    def check_report(
        self, error_message: Any, error_details: Any, error_format: Any = None, worker: Any = None
    ) -> CheckedReport:
        """Check a failure report without touching the database, and return
        it as :meth:`record_checked` stores it.

        The checks of :meth:`record_validation_failure` (its arguments);
        the API runs them with the schema check, before its transaction, so
        one 422 names every fault and a large report is normalized once,
        outside any lock.

        Raises:
            InvalidFailurePayloadError: every fault, the worker's first,
                then the message's and the details'.
        """
        # One refusal names every fault: the worker's and the payload's.
        worker_name, worker_version, worker_errors = check_worker(worker)
        try:
            message, details, used_format = self._check_payload(error_message, error_details, error_format)
        except InvalidFailurePayloadError as exc:
            raise InvalidFailurePayloadError(worker_errors + list(exc.errors)) from None
        if worker_errors:
            raise InvalidFailurePayloadError(worker_errors)
        return CheckedReport(message, details, used_format, worker_name, worker_version)

    def record_checked(
        self, job_id: uuid.UUID | str, target: JobStatus, report: CheckedReport
    ) -> JobSnapshot:
        """Record a report :meth:`check_report` returned, as
        :meth:`record_validation_failure` (``target`` ``Validation_Failed``)
        or :meth:`record_failure` (``Failed``) would.

        Raises:
            ValueError: ``target`` is neither.
            JobNotFoundError, InvalidTransitionError: as those methods.
        """
        if target not in (JobStatus.VALIDATION_FAILED, JobStatus.FAILED):
            raise ValueError(f"a failure is recorded as Validation_Failed or Failed, not {target.value}")
        return self._store(job_id, target, report)

    def _record(
        self,
        job_id: uuid.UUID | str,
        target: JobStatus,
        error_message: Any,
        error_details: Any,
        error_format: str | None,
        worker: Any,
    ) -> JobSnapshot:
        # Check the payload before touching the database: a refusal must not
        # depend on, or change, the stored job.
        report = self.check_report(error_message, error_details, error_format, worker)
        return self._store(job_id, target, report)

    def _store(self, job_id: uuid.UUID | str, target: JobStatus, report: CheckedReport) -> JobSnapshot:
        message, details, used_format = report.message, report.details, report.error_format
        worker_name, worker_version = report.worker_name, report.worker_version
        key = parse_job_id(job_id)
        with write_transaction():
            # One connection for the job's three statements: each
            # ``db.session.connection()`` resolves the scoped session again.
            connection = db.session.connection()
            job = lock_job(connection, key)
            if job is None:
                raise JobNotFoundError(key)
            current = job.job_status
            if not can_transition(current, target):
                raise InvalidTransitionError(job.id, current.value, target.value)
            if _holds_failure(job, target, message, details, used_format) and (
                current_failure_worker(connection, job.id) == (worker_name, worker_version)
            ):
                # The same report again (a retry that lost its answer):
                # nothing changes, no history. From another worker or
                # version it is a new occurrence, which may reopen a group
                # resolved in a version.
                return job
            now = utcnow()
            # The attempt's start: a requeue clears the job's, the history keeps it.
            started_at = job.started_at
            job = set_failure(connection, job, target, message, details, used_format, now)
            failure = RecordedFailure(
                id=uuid.uuid4(), job_id=job.id, job_type=job.job_type, status=target.value,
                error_message=message, error_details=details, error_format=used_format, recorded_at=now,
                worker_name=worker_name, worker_version=worker_version, started_at=started_at,
            )
            append_history(connection, failure)
            # In this transaction, under the job's row lock: a failure is
            # never stored without its groups, and their counts never drift.
            group_recorded_failure(failure, previous_status=current)
        return job

    def _check_payload(
        self, error_message: Any, error_details: Any, error_format: str | None
    ) -> tuple[str, Any, str | None]:
        errors: list[FieldError] = []
        message = ""
        if not isinstance(error_message, str):
            errors.append(field_error("/error_message", "must be a string"))
        else:
            message = clean_text(error_message).strip()
            if not message:
                errors.append(field_error("/error_message", "must not be empty or only whitespace"))
            elif len(message) > self.limits.max_message_length:
                errors.append(
                    field_error(
                        "/error_message",
                        f"must be at most {self.limits.max_message_length} characters "
                        f"(got {len(message)})",
                    )
                )
        details: Any = None
        used_format: str | None = "free-form"
        try:
            details = clean_json_value(
                _parse_json_text(error_details),
                max_depth=self.limits.max_details_depth,
                max_string_length=self.limits.max_string_length,
            )
            details, used_format = normalize_error_details(details, error_format, self.limits.details)
            if details is None:
                # No details: no format to name, declared or not (a trial:
                # "free-form" with null details was stored as free-form,
                # though the contract's job says null when there are none).
                used_format = None
        except InvalidJSONValueError as exc:
            errors.append(field_error("/error_details" + exc.pointer, exc.reason))
        except UnknownErrorFormatError as exc:
            errors.append(
                field_error("/error_format", "must be one of: " + ", ".join(exc.allowed))
            )
        except InvalidErrorDetailsError as exc:
            errors.extend(field_error("/error_details" + pointer, reason) for pointer, reason in exc.faults)
        except AmbiguousErrorFormatError as exc:
            errors.append(
                field_error(
                    "/error_format",
                    "is required: error_details fit several formats (" + ", ".join(exc.candidates)
                    + "); name the one they are in",
                )
            )
        if errors:
            raise InvalidFailurePayloadError(errors)
        return message, details, used_format


def _holds_failure(
    job: JobSnapshot, target: JobStatus, message: str, details: Any, used_format: str | None
) -> bool:
    """Whether the job is already in ``target`` with this very failure (equal as JSON)."""
    return (
        job.job_status is target
        and job.error_message == message
        and job.error_format == used_format
        and json_equal(job.error_details, details)
    )


def _parse_json_text(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        try:
            value = JSONText(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidJSONValueError("", "JSON text must be UTF-8") from None
    if isinstance(value, JSONText):
        try:
            return json.loads(str(value), parse_constant=refuse_json_constant)
        except (ValueError, RecursionError):
            raise InvalidJSONValueError("", "is not a valid JSON text") from None
    return value
