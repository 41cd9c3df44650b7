"""Job status semantics, in one place.

The canonical statuses are the strings stored in ``processing_jobs.status``.
Workers speak lower-case words (``validation_failed``, ``completed``, ...);
:func:`status_from_worker_word` maps them and refuses anything else.
Allowed transitions are the explicit table :data:`ALLOWED_TRANSITIONS`.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Lifecycle status of a :class:`~app.models.ProcessingJob`."""

    PENDING = "Pending"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    VALIDATION_FAILED = "Validation_Failed"


#: Statuses that mean "the job ended in a failure".
FAILURE_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.FAILED, JobStatus.VALIDATION_FAILED})

#: Statuses in which a job has finished (``completed_at`` is set).
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED}) | FAILURE_STATUSES

#: source status -> statuses it may move to. A failure may replace an earlier
#: failure (the newest is kept on the row, all of them in ``job_failures``);
#: a failed job may be requeued to ``Pending``; ``Completed`` is final.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(
        {JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.VALIDATION_FAILED}
    ),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.VALIDATION_FAILED}
    ),
    # -> PENDING is a requeue (requeue_job only); the failure stays in history.
    JobStatus.FAILED: frozenset({JobStatus.FAILED, JobStatus.VALIDATION_FAILED, JobStatus.PENDING}),
    JobStatus.VALIDATION_FAILED: frozenset(
        {JobStatus.FAILED, JobStatus.VALIDATION_FAILED, JobStatus.PENDING}
    ),
    JobStatus.COMPLETED: frozenset(),
}

#: The worker contract's words (lower case) -> canonical status.
WORKER_STATUS_WORDS: dict[str, JobStatus] = {
    "pending": JobStatus.PENDING,
    "processing": JobStatus.PROCESSING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "validation_failed": JobStatus.VALIDATION_FAILED,
}


class UnknownStatusError(ValueError):
    """A status word or name that is not part of the contract."""

    def __init__(self, word: object) -> None:
        self.word = word
        super().__init__(f"unknown job status {word!r}")


def status_from_worker_word(word: object) -> JobStatus:
    """Map a worker's status word to the canonical :class:`JobStatus`.

    Args:
        word: the worker contract's word, e.g. ``"validation_failed"``. The
            canonical spelling (``"Validation_Failed"``) is accepted too, so a
            value read back from the API can be sent again. Matching is exact
            apart from that: no trimming, no other case variants.

    Returns:
        The canonical status.

    Raises:
        UnknownStatusError: ``word`` is not a string or names no status.
    """
    if isinstance(word, str):
        if word in WORKER_STATUS_WORDS:
            return WORKER_STATUS_WORDS[word]
        try:
            return JobStatus(word)
        except ValueError:
            pass
    raise UnknownStatusError(word)


def parse_status(name: object) -> JobStatus:
    """Parse a canonical status name or worker word (used by query filters).

    Raises:
        UnknownStatusError: as :func:`status_from_worker_word`.
    """
    return status_from_worker_word(name)


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    """Return whether :data:`ALLOWED_TRANSITIONS` lets ``source`` become ``target``."""
    return target in ALLOWED_TRANSITIONS[source]
