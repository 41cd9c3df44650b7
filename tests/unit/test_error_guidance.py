"""The "what to do" table (app/services/error_guidance/guidance.toml): every
code the reference worker can emit has its own line, and the table reads as
documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.services.error_guidance import GUIDANCE_PATH, guidance_for, guidance_for_codes, load_guidance
from app.worker import semantic_checks, validation
from app.worker.validation import load_entity_schema, validate_entity_document

ROOT = Path(__file__).resolve().parents[2]

#: JSON Schema keywords that can fail by themselves (draft 2020-12 validation
#: and applicator vocabularies): the worker reports each as schema.<keyword>.
ASSERTION_KEYWORDS = frozenset({
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties",
    "minProperties", "required", "dependentRequired", "format", "additionalProperties", "oneOf", "anyOf",
    "not", "contains", "unevaluatedProperties",
})


def _schema_keywords(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("properties", "patternProperties", "$defs"):
                for sub in value.values():
                    found |= _schema_keywords(sub)
                continue
            if key in ASSERTION_KEYWORDS:
                found.add(key)
            found |= _schema_keywords(value)
    elif isinstance(node, list):
        for element in node:
            found |= _schema_keywords(element)
    elif node is False:
        found.add("false")
    return found


def worker_codes() -> set[str]:
    """Every code the reference worker can emit: its own checks' codes (read
    from the source, so a new check cannot be forgotten) and schema.<keyword>
    for each assertion keyword its entity schema uses."""
    own = set()
    for module in (semantic_checks, validation):
        own |= set(re.findall(r'error_item\(\s*"([a-zA-Z0-9_.]+)"', Path(module.__file__).read_text()))
    return own | {f"schema.{keyword}" for keyword in _schema_keywords(load_entity_schema())}


def test_every_code_the_reference_worker_can_emit_has_its_own_line():
    codes = load_guidance().codes
    emitted = worker_codes()
    assert {"code.unknown_icd10cm", "unit.not_ucum", "schema.required", "schema.type"} <= emitted
    assert sorted(code for code in emitted if code not in codes) == []


def test_the_demo_corpus_codes_have_lines():
    expected = json.loads((ROOT / "demo" / "corpus" / "expected.json").read_text())
    for outcome in expected.values():
        for code in outcome["codes"] + outcome["warnings"]:
            assert guidance_for(code) in load_guidance().codes.values(), code


def test_a_document_that_is_not_an_object_gets_a_line():
    (item,) = validate_entity_document([])
    assert guidance_for(item["code"]).startswith("A field has the wrong kind of value")


def test_lookup_falls_back_to_the_longest_prefix():
    assert guidance_for("code.unknown_icd10cm").startswith("The code is not in ICD-10-CM")
    assert guidance_for("pydantic.string_too_long").startswith("The worker's pydantic model")
    assert guidance_for("vendor.rule-7") is None
    assert guidance_for(None) is None and guidance_for("") is None
    assert guidance_for_codes(["unit.not_ucum", "vendor.x", "unit.not_ucum", "schema.enum"]) == [
        ("unit.not_ucum", guidance_for("unit.not_ucum")), ("schema.enum", guidance_for("schema.enum")),
    ]


def test_the_table_is_checked_when_read(tmp_path):
    bad = tmp_path / "guidance.toml"
    bad.write_text('[codes]\n"a.b" = ""\n')
    with pytest.raises(ValueError, match="'a.b' must be a non-blank string"):
        load_guidance(bad)
    bad.write_text('[code]\n"a.b" = "x"\n')
    with pytest.raises(ValueError, match="unknown table"):
        load_guidance(bad)
    assert GUIDANCE_PATH.is_file()
