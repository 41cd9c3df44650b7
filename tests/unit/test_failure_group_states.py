"""Version order (SemVer 2.0.0), the regression rule and substates on read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from app.services.failure_groups.states import by_precedence, compare_versions, effective_substate, is_regression, is_semver

# semver.org section 11.4's example, in increasing precedence.
ORDERED = [
    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
    "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0",
]


def test_semver_precedence_follows_the_specification():
    for lower, higher in zip(ORDERED, ORDERED[1:]):
        assert compare_versions(lower, higher) == -1, (lower, higher)
        assert compare_versions(higher, lower) == 1, (higher, lower)


def test_build_metadata_is_ignored():
    assert compare_versions("1.0.0+build.1", "1.0.0+build.2") == 0
    assert compare_versions("1.0.0-rc.1+x", "1.0.0") == -1


@pytest.mark.parametrize("text", ["v1.0.0", "1.0", "01.0.0", "1.0.0-", "1.0.0-01", "", "latest", None])
def test_non_semver_strings_are_unordered(text):
    assert not is_semver(text)
    assert compare_versions(text, "1.0.0") is None
    assert compare_versions("1.0.0", text) is None


@pytest.mark.parametrize(
    ("resolved_in", "worker", "regression"),
    [
        (None, "0.1.0", True),  # resolved without a version: any comeback
        (None, None, True),
        ("2.0.0", "1.9.9", False),  # an old worker still running: not a regression
        ("2.0.0", "2.0.0-rc.1", False),
        ("2.0.0", "2.0.0", True),  # the fixed version fails again
        ("2.0.0", "2.1.0", True),
        ("2.0.0", None, True),  # unknown version: unordered, reopen
        ("2.0.0", "v1.0.0", True),
        ("release-7", "1.0.0", True),
    ],
)
def test_the_regression_rule(resolved_in, worker, regression):
    assert is_regression(resolved_in, worker) is regression


@pytest.mark.parametrize(
    ("of_worker", "name", "version", "regression"),
    [
        ("extractor", "extractor", "1.9.9", False),  # the fixed worker's older version
        ("extractor", "extractor", "2.0.0", True),
        ("extractor", "other", "1.0.0", True),  # another worker's versions do not order against it
        ("extractor", None, "1.0.0", True),  # a nameless worker: unknown, reopen
        (None, "other", "1.0.0", False),  # resolved before names counted: any worker's older version
        (None, None, "1.0.0", False),
        ("", None, "1.0.0", False),  # "": the workers that send no name
        ("", "other", "1.0.0", True),
    ],
)
def test_the_regression_rule_takes_the_workers_name(of_worker, name, version, regression):
    """A trial: a group resolved in 1.6.0 stayed resolved on a failure from
    another worker at 1.0.0."""
    assert is_regression("2.0.0", version, resolved_in_worker=of_worker, worker_name=name) is regression
    assert is_regression(None, version, resolved_in_worker=of_worker, worker_name=name) is True


def test_new_reads_ongoing_after_24_hours():
    first = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert effective_substate("unresolved", "new", first, first + timedelta(hours=23, minutes=59)) == "new"
    assert effective_substate("unresolved", "new", first, first + timedelta(hours=24)) == "ongoing"
    assert effective_substate("unresolved", "regressed", first, first + timedelta(days=9)) == "regressed"
    assert effective_substate("resolved", None, first, first) is None


def test_versions_are_listed_by_semver_precedence_then_the_unordered_ones():
    assert by_precedence(["1.4.0", "1.0.0", "1.5.0", "1.10.0", "1.5.0-rc.1", "v2", "1.2"]) == [
        "1.0.0", "1.4.0", "1.5.0-rc.1", "1.5.0", "1.10.0", "1.2", "v2"]
    assert by_precedence([]) == []
