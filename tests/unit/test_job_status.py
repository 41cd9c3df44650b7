import pytest

from app.models.job_status import (
    ALLOWED_TRANSITIONS,
    JobStatus,
    UnknownStatusError,
    can_transition,
    status_from_worker_word,
)


def test_validation_failed_has_exactly_the_canonical_spelling():
    assert JobStatus.VALIDATION_FAILED.value == "Validation_Failed"
    assert [s.value for s in JobStatus] == [
        "Pending", "Processing", "Completed", "Failed", "Validation_Failed",
    ]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("validation_failed", JobStatus.VALIDATION_FAILED),
        ("completed", JobStatus.COMPLETED),
        ("failed", JobStatus.FAILED),
        ("processing", JobStatus.PROCESSING),
        ("pending", JobStatus.PENDING),
        ("Validation_Failed", JobStatus.VALIDATION_FAILED),
    ],
)
def test_worker_words_map_to_canonical_statuses(word, expected):
    assert status_from_worker_word(word) is expected


@pytest.mark.parametrize(
    "word", ["VALIDATION_FAILED", "validation-failed", " completed", "done", "", None, 3, ["failed"]]
)
def test_unknown_worker_words_are_rejected(word):
    with pytest.raises(UnknownStatusError):
        status_from_worker_word(word)


# The whole table, written out so a change to it is a visible test change.
EXPECTED_TRANSITIONS = {
    ("Pending", "Processing"), ("Pending", "Completed"), ("Pending", "Failed"),
    ("Pending", "Validation_Failed"),
    ("Processing", "Completed"), ("Processing", "Failed"), ("Processing", "Validation_Failed"),
    ("Failed", "Failed"), ("Failed", "Validation_Failed"), ("Failed", "Pending"),
    ("Validation_Failed", "Failed"), ("Validation_Failed", "Validation_Failed"),
    ("Validation_Failed", "Pending"),
}


@pytest.mark.parametrize("source", list(JobStatus))
@pytest.mark.parametrize("target", list(JobStatus))
def test_transition_table_is_exactly_the_documented_one(source, target):
    assert can_transition(source, target) == ((source.value, target.value) in EXPECTED_TRANSITIONS)


def test_completed_is_final():
    assert ALLOWED_TRANSITIONS[JobStatus.COMPLETED] == frozenset()
