"""The alerting rules under deploy/prometheus/, checked and unit-tested by
promtool (Debian's ``prometheus`` package, installed by
scripts/ensure-test-tools). A missing promtool fails these tests: an
untested rule file is how example rules end up alerting on nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app.config import ROOT

RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "failure-groups.rules.yml"
RULE_TESTS = RULES_DIR / "failure-groups.rules.test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path:
        pytest.fail("promtool is not installed: apt-get install prometheus (scripts/ensure-test-tools does)")
    return path


def _run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], cwd=RULES_DIR, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_rule_file_is_valid(promtool):
    result = _run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_the_rules_pass_their_unit_tests(promtool):
    result = _run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_can_fail(promtool, tmp_path):
    """A rule with a changed threshold fails its tests: the tests look at the alerts."""
    changed = tmp_path / RULES.name
    changed.write_text(RULES.read_text(encoding="utf-8").replace("> 100\n", "> 200\n"), encoding="utf-8")
    tests = tmp_path / RULE_TESTS.name
    tests.write_text(RULE_TESTS.read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(tests)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "FailureGroupHot" in result.stdout + result.stderr
