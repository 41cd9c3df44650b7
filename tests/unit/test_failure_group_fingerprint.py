"""Fingerprinting rules of failure groups (app/services/failure_groups/fingerprint.py)."""

from __future__ import annotations

import pytest

from app.services.failure_groups import fingerprint as fp
from app.services.failure_groups.fingerprint import (
    GROUPING_VERSION,
    UnknownGroupingVersionError,
    failure_keys,
    item_key,
    message_key,
    parameterize,
    path_pattern,
    pointer_pattern,
)


def _item(code="unit.not_ucum", pointer="/entities/1/value/unit", message="unit is not UCUM", **extra):
    return {"code": code, "severity": "error", "message": message, "pointer": pointer, **extra}


def _envelope(*items):
    return {"schema_version": 1, "errors": list(items), "error_count": len(items), "truncated": False}


# --- pointer patterns ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pointer", "pattern"),
    [
        ("/entities/12/codes/0", "/entities/*/codes/*"),
        ("/entities/3/span/page", "/entities/*/span/page"),
        ("/entities/0", "/entities/*"),
        ("", ""),
        ("/document_id", "/document_id"),
        # attributes is an object in the schema: 12 is a key there, not an index.
        ("/entities/0/attributes/12", "/entities/*/attributes/12"),
        # source is a closed object: a numeric token under it is a key.
        ("/source/3", "/source/3"),
        # 007 is not a canonical array index (RFC 6901 section 4).
        ("/entities/007", "/entities/007"),
        # escaped tokens are decoded and re-encoded, not matched as text.
        ("/entities/2/attributes/a~1b", "/entities/*/attributes/a~1b"),
    ],
)
def test_pointer_pattern_replaces_array_indices_by_the_schema(pointer, pattern):
    assert pointer_pattern(pointer) == pattern


def test_fhir_pointers_treat_every_decimal_token_as_an_index():
    assert pointer_pattern("/entry/2/resource/code/coding/0", fhir=True) == "/entry/*/resource/code/coding/*"
    assert pointer_pattern("/source/3", fhir=True) == "/source/*"


def test_a_structured_path_decides_indices_by_type_not_by_look():
    assert path_pattern(["entities", 3, "attributes", "12"]) == "/entities/*/attributes/12"
    assert path_pattern(["a/b", 0]) == "/a~1b/*"
    key = item_key(_item(pointer="/entities/3/attributes/12"), path=["entities", 3, "attributes", 12])
    assert key.pointer_pattern == "/entities/*/attributes/*"


# --- items with a code -------------------------------------------------------------------


def test_items_differing_only_in_indices_share_a_group():
    a = item_key(_item(pointer="/entities/1/value/unit", message="unit 'mg/dl' is not UCUM"))
    b = item_key(_item(pointer="/entities/7/value/unit", message="another wording"))
    assert a.fingerprint == b.fingerprint
    assert (a.code, a.pointer_pattern, a.entity_type) == ("unit.not_ucum", "/entities/*/value/unit", None)
    assert a.title == "unit.not_ucum at /entities/*/value/unit"
    assert len(a.fingerprint) == 64


def test_code_pointer_and_entity_type_each_split_groups():
    base = item_key(_item())
    assert item_key(_item(code="unit.other")).fingerprint != base.fingerprint
    assert item_key(_item(pointer="/entities/1/dosage/unit")).fingerprint != base.fingerprint
    typed = item_key(_item(entity={"type": "Observation", "index": 1}))
    assert typed.fingerprint != base.fingerprint
    assert typed.entity_type == "Observation"
    assert typed.title == "unit.not_ucum (Observation) at /entities/*/value/unit"
    # The index inside entity is not part of the key.
    assert item_key(_item(entity={"type": "Observation", "index": 9})).fingerprint == typed.fingerprint


def test_a_numeric_object_key_is_not_merged_with_another():
    a = item_key(_item(pointer="/entities/0/attributes/12"))
    b = item_key(_item(pointer="/entities/0/attributes/13"))
    assert a.fingerprint != b.fingerprint


def test_whole_document_pointer_titles_with_the_code_alone():
    key = item_key(_item(code="schema.required", pointer=""))
    assert key.title == "schema.required" and key.pointer_pattern == ""


# --- explicit fingerprints -----------------------------------------------------------------


def test_an_explicit_fingerprint_overrides_every_other_part():
    a = item_key(_item(fingerprint="ucum-service-down", pointer="/entities/1/value/unit"))
    b = item_key(_item(fingerprint="ucum-service-down", code="other.code", pointer="/document_id", message="x"))
    assert a.fingerprint == b.fingerprint
    assert a.title == "ucum-service-down"
    assert a.fingerprint != item_key(_item()).fingerprint
    assert item_key(_item(fingerprint="other")).fingerprint != a.fingerprint


def test_a_blank_explicit_fingerprint_is_ignored():
    assert item_key(_item(fingerprint="  ")).fingerprint == item_key(_item()).fingerprint


# --- messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("job 48213 failed", "job <num> failed"),
        ("took 1.5 s, -3 retries", "took <num> s, <num> retries"),
        ("doc 550e8400-e29b-41d4-a716-446655440000 missing", "doc <uuid> missing"),
        ("at 2026-12-03T04:00:00Z and 2026-12-03", "at <date> and <date>"),
        ("at 12:30:01", "at <time>"),
        ("address 0xdeadbeef digest 9f86d081884c7d65", "address <hex> digest <hex>"),
        ("code 'X99.9' unknown", "code <quoted> unknown"),
        ('unit "mg/dl" unknown', "unit <quoted> unknown"),
        ("document doc-48213 rejected", "document <id> rejected"),
        ("write to user@example.org", "write to <email>"),
        ("GET https://example.org/a?b=1 failed", "GET <url> failed"),
        ("retry=17 host=db1", "retry=<num> host=<value>"),
        # Words with a few digits are words, not identifiers or numbers.
        ("ICD-10-CM code not UTF-8", "ICD-10-CM code not UTF-8"),
        ("  many   spaces  ", "many spaces"),
    ],
)
def test_parameterize_replaces_variable_parts(message, expected):
    assert parameterize(message) == expected


def test_items_without_a_code_group_by_their_parameterised_message():
    a = item_key({"message": "timeout after 30 s on doc-11111", "severity": "warning"})
    b = item_key({"message": "timeout after 45 s on doc-22222"})
    assert a.fingerprint == b.fingerprint
    assert a.code is None and a.pointer_pattern is None
    assert a.title == "timeout after <num> s on <id>"
    assert a.severity == "warning" and b.severity == "error"


def test_a_failure_without_items_forms_one_item_from_its_message():
    free_form = failure_keys("worker crashed after 12 s", {"trace": "..."}, "free-form")
    none = failure_keys("worker crashed after 99 s", None, None)
    empty = failure_keys("worker crashed after 1 s", _envelope(), "normalized")
    assert len(free_form) == len(none) == len(empty) == 1
    assert free_form[0].fingerprint == none[0].fingerprint == empty[0].fingerprint
    assert free_form[0].title == "worker crashed after <num> s"
    assert free_form[0].message == "worker crashed after 12 s"


def test_free_form_details_that_look_like_items_are_not_read_as_items():
    details = {"schema_version": 1, "errors": [_item()]}
    assert failure_keys("boom", details, "free-form")[0].code is None
    assert failure_keys("boom", details, "normalized")[0].code == "unit.not_ucum"


def test_every_item_of_a_failure_gets_a_key_in_order():
    keys = failure_keys(
        "2 errors", _envelope(_item(), _item(code="code.unknown_icd10cm", pointer="/entities/0/code")), "normalized"
    )
    assert [k.code for k in keys] == ["unit.not_ucum", "code.unknown_icd10cm"]


def test_fhir_items_use_the_fhir_rule_for_pointers():
    envelope = _envelope(_item(code="fhir.code-invalid", pointer="/entry/2/resource/code/coding/0"))
    (key,) = failure_keys("invalid", envelope, "fhir-operationoutcome")
    assert key.pointer_pattern == "/entry/*/resource/code/coding/*"


# --- versioning ----------------------------------------------------------------------------


def test_the_fingerprint_depends_on_the_grouping_version(monkeypatch):
    assert GROUPING_VERSION == 1
    v1 = item_key(_item(), version=1)
    monkeypatch.setattr(fp, "KNOWN_VERSIONS", (1, 2))
    v2 = item_key(_item(), version=2)
    assert v1.fingerprint != v2.fingerprint
    assert (v1.title, v1.pointer_pattern) == (v2.title, v2.pointer_pattern)
    assert message_key("x 1", version=1).fingerprint != message_key("x 1", version=2).fingerprint


def test_fingerprints_are_stable_across_releases():
    # A changed digest here would silently move every stored group: raise
    # GROUPING_VERSION instead of editing this value.
    assert item_key(_item()).fingerprint == item_key(_item(pointer="/entities/0/value/unit")).fingerprint
    assert item_key(_item()).fingerprint == STABLE_V1_FINGERPRINT


STABLE_V1_FINGERPRINT = "2b5b663c1deb3d0f30f8ed6a71daa4912ffd1d1938669ab15e2f1968f1c79a38"


def test_unknown_versions_are_refused():
    with pytest.raises(UnknownGroupingVersionError):
        item_key(_item(), version=99)
    with pytest.raises(UnknownGroupingVersionError):
        failure_keys("x", None, None, version=0)


def test_remembered_keys_equal_fresh_ones_and_keep_each_items_message():
    # Coded keys come from a bounded cache (the record path's hot spot): a
    # hit must give what a fresh computation gives, and the message and
    # severity stay the item's own, since they are not part of the key.
    fp._coded_parts.cache_clear()
    fp._pointer_pattern_cached.cache_clear()
    fresh = item_key(_item(message="first", entity={"type": "Observation"}))
    again = item_key(_item(pointer="/entities/7/value/unit", message="second", severity="warning",
                           entity={"type": "Observation"}))
    assert fp._coded_parts.cache_info().hits == 1
    assert (again.fingerprint, again.title, again.pointer_pattern, again.entity_type) == (
        fresh.fingerprint, fresh.title, fresh.pointer_pattern, fresh.entity_type)
    assert (fresh.message, fresh.severity, again.message, again.severity) == ("first", "error", "second", "warning")
    assert fresh.fingerprint == fp._digest(1, ["code", "unit.not_ucum", "Observation", "/entities/*/value/unit"])
    assert fp._coded_parts.cache_info().maxsize == fp.KEY_CACHE_SIZE
