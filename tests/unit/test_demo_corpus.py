"""demo/generate_corpus.py: seeded, and the error mix tells the demo's story."""

from __future__ import annotations

import collections
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from app.config import ROOT
from app.worker.validation import is_valid, validate_entity_document

_spec = importlib.util.spec_from_file_location("generate_corpus", ROOT / "demo" / "generate_corpus.py")
generate_corpus = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("generate_corpus", generate_corpus)  # dataclasses look their module up
_spec.loader.exec_module(generate_corpus)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    generate_corpus.generate(out, seed=12)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.json"))}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(corpus, tmp_path):
    again = tmp_path / "again"
    generate_corpus.generate(again, seed=12)
    assert _files(again) == _files(corpus)
    other = tmp_path / "other"
    generate_corpus.generate(other, seed=13)
    assert _files(other) != _files(corpus)


def _codes_by_batch(corpus: Path) -> tuple[dict, dict]:
    plan = json.loads((corpus / "plan.json").read_text())
    blocking: dict[str, collections.Counter] = {}
    failed: dict[str, int] = {}
    for batch in plan["batches"]:
        counter: collections.Counter = collections.Counter()
        failed[batch["folder"]] = 0
        for path in sorted((corpus / batch["folder"]).glob("*.json")):
            errors = validate_entity_document(json.loads(path.read_text()))
            failed[batch["folder"]] += not is_valid(errors)
            counter.update(e["code"] for e in errors if e["severity"] in ("error", "fatal"))
        blocking[batch["folder"]] = counter
    return plan, blocking, failed


def test_a_few_hundred_documents_with_a_realistic_share_of_failures(corpus):
    plan, _, failed = _codes_by_batch(corpus)
    documents = len(list(corpus.rglob("demo-*.json")))
    assert 150 <= documents <= 400
    assert 0.2 <= sum(failed.values()) / documents <= 0.6
    assert {b["worker"]["version"] for b in plan["batches"]} == {"1.4.0", "1.5.0"}
    hours = [b["hours_ago"] for b in plan["batches"]]
    assert hours == sorted(hours, reverse=True) and hours[0] == 13 * 24 and hours[-1] >= 1


def test_the_story_new_ongoing_regressed_and_resolved_in_version(corpus):
    plan, blocking, _ = _codes_by_batch(corpus)
    batches = plan["batches"]
    version = {b["folder"]: b["worker"]["version"] for b in batches}
    hours = {b["folder"]: b["hours_ago"] for b in batches}
    resolve = {a["code"]: a for a in plan["actions"]}

    def seen(code: str, *, versions=("1.4.0", "1.5.0"), between=(0, 10_000)) -> int:
        return sum(c[code] for f, c in blocking.items() if version[f] in versions and between[0] <= hours[f] <= between[1])

    # New: only 1.5.0 has the calibration bug, and only in the last 24 hours.
    assert seen("schema.maximum", versions=("1.5.0",)) > 0
    assert seen("schema.maximum", versions=("1.4.0",)) == 0
    # Ongoing: ICD-10-CM misreads from two weeks ago until the last hours.
    assert seen("code.unknown_icd10cm", between=(24 * 7, 10_000)) > 0
    assert seen("code.unknown_icd10cm", between=(0, 23)) > 0
    # Regressed: the date bug stops before it is resolved, and 1.5.0 brings it back.
    fixed_at = hours[resolve["date.in_future"]["after"]]
    assert "in_version" not in resolve["date.in_future"]
    assert seen("date.in_future", between=(fixed_at + 1, 10_000)) > 0
    assert seen("date.in_future", between=(24, fixed_at)) == 0
    assert seen("date.in_future", versions=("1.5.0",)) > 0
    # Resolved in 1.5.0: 1.5.0 never sends the unit error, 1.4.0 stragglers still do.
    assert resolve["unit.not_ucum"]["in_version"] == "1.5.0"
    assert seen("unit.not_ucum", versions=("1.5.0",)) == 0
    assert seen("unit.not_ucum", versions=("1.4.0",), between=(0, hours[resolve["unit.not_ucum"]["after"]] - 1)) > 0


def test_codes_come_from_the_real_code_sets(corpus):
    from app.worker.semantic_checks import is_ucum_unit

    leaves, _ = generate_corpus.icd_codes()
    assert len(leaves) > 5_000  # from the ICD-10-CM table, not a hand-made list
    documents = [json.loads(p.read_text()) for p in sorted(corpus.rglob("demo-*.json"))]
    conditions = [e for d in documents for e in d["entities"] if e["entity_type"] == "Condition"]
    assert len({e["code"] for e in conditions}) > 100
    units = {e["value"]["unit"] for d in documents for e in d["entities"] if e["entity_type"] == "Observation"}
    assert {"mmol/L", "10*3/uL", "m[IU]/L"} <= units
    assert {u for u in units if not is_ucum_unit(u)} == {"mEq/L", "x10E3/uL", "mIU/L"}


#: Where the demo's history is said to last so many days, and how each says it.
HISTORY_LENGTH_TOLD = {
    "README.md": r"plays (\d+) days of generated history",
    "scripts/demo": r"(\d+) days of (?:generated )?history",  # its comment, and what it prints
    "demo/generate_corpus.py": r"story over (\d+) days",
    "demo/seed_history.py": r"the demo's (\d+) days of history",
    "docs/failure-groups-dashboard.md": r"batches over (\d+) days",
}


def test_the_readme_and_the_demo_give_the_history_the_length_the_plan_plays(corpus):
    """The seed prints "over N days" from the plan's oldest batch; every
    text that says how long the history is says the same N."""
    plan = json.loads((corpus / "plan.json").read_text())
    oldest = plan["batches"][0]["hours_ago"]
    assert oldest % 24 == 0 and oldest == max(b["hours_ago"] for b in plan["batches"])
    told = {
        name: set(re.findall(pattern, (ROOT / name).read_text(encoding="utf-8")))
        for name, pattern in HISTORY_LENGTH_TOLD.items()
    }
    assert told == {name: {str(oldest // 24)} for name in HISTORY_LENGTH_TOLD}
