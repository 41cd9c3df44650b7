"""Generate the demo's history: 200 entity documents from two worker versions.

Seeded and deterministic: the same ``--seed`` (and the same pinned
``simple_icd_10_cm``) writes byte-identical files. Conditions carry real
ICD-10-CM codes and their descriptions from the code table the reference
worker validates against; lab results real LOINC codes with UCUM units;
medications RxNorm codes with UCUM dose units. No patient text: entity texts
are code descriptions and generic phrases.

The mix of errors tells a story over 13 days, so ``/groups`` shows new,
ongoing and regressed groups on the demo's first start:

* ``clinical-extractor 1.4.0`` (days 13 to 1 ago): writes conventional but
  non-UCUM units (``mEq/L``, ``mcg``, ``units``: ``unit.not_ucum``), misreads
  ICD-10-CM codes from scans (``I1O`` for ``I10``: ``code.unknown_icd10cm``),
  drops ``code_system`` on some medications (``schema.required``), shifts
  some lab dates into the future (a timezone bug: ``date.in_future``) and
  codes some conditions to a non-billable category (a warning).
* The timezone bug is fixed and its group resolved 6 days ago; the unit
  group is resolved "in 1.5.0" 2 days ago, when 1.5.0 rolls out.
* ``clinical-extractor 1.5.0`` (the last 20 hours): units fixed, but the
  timezone bug is back (the resolved group **regresses**) and a new
  calibration bug gives confidences above 1 (``schema.maximum``: a **new**
  group). A few 1.4.0 stragglers still report unit errors, which do not
  reopen the group resolved in 1.5.0. ICD misreads go on (**ongoing**).
  (``make demo`` then runs the hand-written corpus as ``reference-worker``,
  another worker, whose unit errors do reopen it.)

Output: ``OUT/plan.json`` and one folder per batch of documents::

    {"seed": 12, "batches": [{"folder": "b00-d13-1.4.0", "worker": {"name": ..., "version": ...},
                              "hours_ago": 312}, ...],
     "actions": [{"after": "b07-d6-1.4.0", "action": "resolve", "code": "date.in_future"},
                 {"after": ..., "action": "resolve", "code": "unit.not_ucum", "in_version": "1.5.0"}]}

``hours_ago`` is when the batch happened, counted back from the end of the
demo's history (the seeding script, ``demo/seed_history.py``, ages the
records by that much). Usage: ``python demo/generate_corpus.py --out DIR [--seed N]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import shutil
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

WORKER_NAME = "clinical-extractor"
OLD, NEW = "1.4.0", "1.5.0"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
#: The demo's "now" for document fields (extracted_at); the database times
#: come from the server's clock, aged by the seeding script.
EPOCH = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)

#: ICD-10-CM chapters an outpatient note commonly codes from (first letters).
COMMON_CHAPTERS = "EIJKMNFZ"

#: Lab tests: (LOINC code, name, UCUM unit, low, high, 1.4.0's non-UCUM unit or None).
LABS = (
    ("2345-7", "glucose", "mg/dL", 70, 180, None),
    ("2160-0", "creatinine", "mg/dL", 0.6, 2.4, None),
    ("2823-3", "potassium", "mmol/L", 3.2, 5.6, "mEq/L"),
    ("2951-2", "sodium", "mmol/L", 131, 147, "mEq/L"),
    ("1963-8", "bicarbonate", "mmol/L", 19, 30, "mEq/L"),
    ("718-7", "hemoglobin", "g/dL", 9.5, 16.5, None),
    ("6690-2", "white blood cells", "10*3/uL", 3.5, 14.0, "x10E3/uL"),
    ("4548-4", "hemoglobin A1c", "%", 5.0, 10.5, None),
    ("3016-3", "TSH", "m[IU]/L", 0.3, 6.0, "mIU/L"),
    ("1742-6", "ALT", "U/L", 10, 90, None),
)

#: Medications: (RxNorm code, name, dose, UCUM unit, 1.4.0's non-UCUM unit or None).
MEDICATIONS = (
    ("6809", "metformin", 500, "mg", None),
    ("29046", "lisinopril", 10, "mg", None),
    ("83367", "atorvastatin", 40, "mg", None),
    ("10582", "levothyroxine", 75, "ug", "mcg"),
    ("274783", "insulin glargine", 20, "[IU]", "units"),
    ("17767", "amlodipine", 5, "mg", None),
    ("1191", "aspirin", 81, "mg", None),
)

#: Scanner misreads of ICD-10-CM codes: letter O for zero, letter I for one.
MISREADS = (("0", "O"), ("1", "I"))


@dataclass(frozen=True)
class Batch:
    """One run of one worker version: ``count`` documents ``hours_ago`` before the end."""

    folder: str
    version: str
    hours_ago: int
    count: int


def schedule() -> list[Batch]:
    """The demo's batches, oldest first (200 documents: enough to show, few
    enough for ``make demo`` to play them in well under a minute)."""
    batches = [Batch(f"b{n:02d}-d{day}-{OLD}", OLD, day * 24, 12) for n, day in enumerate(range(13, 0, -1))]
    batches.append(Batch(f"b13-h20-{NEW}", NEW, 20, 10))
    batches.append(Batch(f"b14-h12-{OLD}", OLD, 12, 5))  # stragglers still on the old version
    batches.append(Batch(f"b15-h8-{NEW}", NEW, 8, 10))
    batches.append(Batch(f"b16-h3-{NEW}", NEW, 3, 10))
    batches.append(Batch(f"b17-h1-{NEW}", NEW, 1, 9))
    return batches


def actions(batches: list[Batch]) -> list[dict[str, Any]]:
    """What the demo operator did: resolve the date bug 6 days ago, the unit bug in 1.5.0 2 days ago."""
    by_day = {b.hours_ago: b.folder for b in batches}
    return [
        {"after": by_day[6 * 24], "action": "resolve", "code": "date.in_future"},
        {"after": by_day[2 * 24], "action": "resolve", "code": "unit.not_ucum", "in_version": NEW},
    ]


@functools.cache
def _icd10cm() -> ModuleType:
    with warnings.catch_warnings():  # see app/worker/semantic_checks.py
        warnings.filterwarnings("ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning)
        import simple_icd_10_cm

    return simple_icd_10_cm


@functools.cache
def icd_codes() -> tuple[list[str], list[str]]:
    """(billable leaf codes, categories with children) of the common chapters, in table order."""
    icd = _icd10cm()
    codes = [c for c in icd.get_all_codes(with_dots=True) if c[:1] in COMMON_CHAPTERS]
    leaves = [c for c in codes if icd.is_subcategory(c) and icd.is_leaf(c) and len(c) <= 6]
    categories = [c for c in codes if icd.is_category(c) and not icd.is_leaf(c)]
    return leaves, categories


def _misread(rng: random.Random, code: str) -> str | None:
    """``code`` with one digit misread as a letter, if that makes it invalid."""
    icd = _icd10cm()
    for digit, letter in rng.sample(MISREADS, len(MISREADS)):
        position = code.find(digit, 1)
        if position > 0:
            wrong = code[:position] + letter + code[position + 1:]
            if not icd.is_valid_item(wrong):
                return wrong
    return None


class DocumentMaker:
    """Builds documents for one worker version, with that version's error rates."""

    def __init__(self, rng: random.Random, version: str) -> None:
        self.rng = rng
        self.version = version
        self.cursor = 0  # character offset of the next span

    def _span(self, text: str, page: int) -> dict[str, int]:
        self.cursor += self.rng.randint(40, 400)
        start = self.cursor
        self.cursor += len(text)
        return {"page": page, "start": start, "end": self.cursor}

    def _confidence(self) -> float:
        if self.version == NEW and self.rng.random() < 0.05:
            return round(self.rng.uniform(1.01, 1.3), 2)  # 1.5.0's calibration bug
        if self.rng.random() < 0.03:
            return round(self.rng.uniform(0.3, 0.49), 2)  # needs review: a warning
        return round(self.rng.uniform(0.8, 0.99), 2)

    def condition(self, page: int) -> dict[str, Any]:
        icd = _icd10cm()
        leaves, categories = icd_codes()
        code = self.rng.choice(leaves)
        if self.rng.random() < 0.05:
            code = self.rng.choice(categories)  # not billable: a warning
        text = icd.get_description(code)[:200]
        if self.rng.random() < 0.06:
            code = _misread(self.rng, code) or code
        entity = {"entity_type": "Condition", "text": text, "code": code, "code_system": ICD10CM,
                  "confidence": self._confidence(), "span": self._span(text, page)}
        if self.rng.random() < 0.4:
            entity["onset_date"] = (EPOCH - timedelta(days=self.rng.randint(30, 3000))).date().isoformat()
        return entity

    def observation(self, page: int, extracted: datetime) -> dict[str, Any]:
        code, name, unit, low, high, legacy_unit = self.rng.choice(LABS)
        value = round(self.rng.uniform(low, high), 1)
        if legacy_unit and self.version == OLD and self.rng.random() < 0.3:
            unit = legacy_unit
        text = f"{name} {value} {unit}"
        effective = extracted - timedelta(days=self.rng.randint(0, 3))
        if self.rng.random() < 0.04:
            effective = extracted + timedelta(days=1)  # the timezone bug
        return {"entity_type": "Observation", "text": text, "code": code, "code_system": LOINC,
                "confidence": self._confidence(), "span": self._span(text, page),
                "value": {"value": value, "unit": unit}, "effective_date": effective.date().isoformat()}

    def medication(self, page: int) -> dict[str, Any]:
        code, name, dose, unit, legacy_unit = self.rng.choice(MEDICATIONS)
        if legacy_unit and self.version == OLD and self.rng.random() < 0.35:
            unit = legacy_unit
        text = f"{name} {dose} {unit} daily"
        entity = {"entity_type": "MedicationStatement", "text": text, "code": code, "code_system": RXNORM,
                  "confidence": self._confidence(), "span": self._span(text, page),
                  "dosage": {"value": dose, "unit": unit}}
        if self.version == OLD and self.rng.random() < 0.04:
            del entity["code_system"]
        return entity

    def document(self, document_id: str, extracted: datetime, date_bug: bool) -> dict[str, Any]:
        """One entity document; ``date_bug`` turns the future-date bug on for this batch."""
        self.cursor = 0
        pages = self.rng.randint(1, 4)
        entities = []
        for _ in range(self.rng.randint(2, 7)):
            page = self.rng.randint(1, pages)
            kind = self.rng.choices(("condition", "observation", "medication"), weights=(4, 4, 3))[0]
            if kind == "condition":
                entities.append(self.condition(page))
            elif kind == "observation":
                entity = self.observation(page, extracted)
                if not date_bug and entity["effective_date"] > extracted.date().isoformat():
                    entity["effective_date"] = extracted.date().isoformat()
                entities.append(entity)
            else:
                entities.append(self.medication(page))
        return {"document_id": document_id, "schema_version": 1,
                "extracted_at": extracted.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source": {"page_count": pages, "mime_type": "application/pdf"}, "entities": entities}


def generate(out: Path, seed: int = 12) -> dict[str, Any]:
    """Write the corpus and ``plan.json`` into ``out`` (emptied first); return the plan."""
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    batches = schedule()
    fixed_after = 6 * 24  # the date bug is fixed from 6 days ago until 1.5.0 brings it back
    number = 0
    for batch in batches:
        folder = out / batch.folder
        folder.mkdir()
        maker = DocumentMaker(rng, batch.version)
        date_bug = batch.version == NEW or batch.hours_ago > fixed_after
        for _ in range(batch.count):
            number += 1
            extracted = EPOCH - timedelta(hours=batch.hours_ago, minutes=rng.randint(0, 50))
            document = maker.document(f"demo-{number:04d}", extracted, date_bug)
            path = folder / f"demo-{number:04d}.json"
            path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    plan = {
        "seed": seed,
        "batches": [
            {"folder": b.folder, "worker": {"name": WORKER_NAME, "version": b.version}, "hours_ago": b.hours_ago}
            for b in batches
        ],
        "actions": actions(batches),
    }
    (out / "plan.json").write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (emptied first)")
    parser.add_argument("--seed", type=int, default=12, help="random seed (default 12)")
    args = parser.parse_args()
    plan = generate(args.out, args.seed)
    total = sum(len(list((args.out / b["folder"]).glob("*.json"))) for b in plan["batches"])
    print(f"generated {total} documents in {len(plan['batches'])} batches under {args.out}")


if __name__ == "__main__":
    main()
