"""Caps and the text rule (``app.services.error_details.limits``): items, strings, pointers, ctx."""

from __future__ import annotations

import json

import pytest

from app.services.error_details import (
    DetailsLimits,
    build_envelope,
    normalize_error_details,
)
from tests.unit.error_details.payloads import (
    GOOD,
    assert_valid_envelope,
    pydantic_error,
)


def test_over_max_items_keeps_the_first_and_counts_all():
    items = [{"code": "c", "severity": "error", "message": f"m{i}", "pointer": f"/e/{i}"} for i in range(201)]
    envelope, _ = normalize_error_details({"errors": items}, None)
    assert len(envelope["errors"]) == 200
    assert envelope["errors"] == items[:200]
    assert envelope["error_count"] == 201 and envelope["truncated"] is True
    assert_valid_envelope(envelope)
    exactly, _ = normalize_error_details({"errors": items[:200]}, None)
    assert exactly["truncated"] is False and exactly["error_count"] == 200


def test_long_strings_are_cut_to_exactly_the_cap_with_an_ellipsis():
    limits = DetailsLimits()
    item = {
        "code": "c" * 150,
        "severity": "error",
        "message": "é" * 2000,
        "pointer": "/a",
        "rule": "r" * 101,
        "ctx": {"k" * 120: "v" * 500, "short": "ok", "n": 10**30},
        "entity": {"type": "t" * 300, "index": 0},
    }
    [capped] = normalize_error_details({"errors": [item]}, None)[0]["errors"]
    assert len(capped["message"]) == limits.max_message_length and capped["message"] == "é" * 499 + "…"
    assert len(capped["code"]) == limits.max_code_length and capped["code"].endswith("…")
    assert len(capped["rule"]) == limits.max_code_length and capped["rule"].endswith("…")
    assert capped["ctx"] == {"k" * 99 + "…": "v" * 199 + "…", "short": "ok", "n": 10**30}
    assert capped["entity"] == {"type": "t" * 99 + "…", "index": 0}
    # A string exactly at the cap is not cut.
    [exact] = normalize_error_details({"errors": [{**item, "message": "x" * 500}]}, None)[0]["errors"]
    assert exact["message"] == "x" * 500
    assert_valid_envelope({"schema_version": 1, "errors": [capped], "error_count": 1, "truncated": False})


def test_long_fingerprints_keep_a_digest_of_the_whole_so_they_stay_apart():
    # A trial: two 101-character fingerprints sharing their first 99 were
    # cut alike and made one group. Now the cut one ends in the SHA-256 of it.
    import hashlib

    limits = DetailsLimits()
    first, second = "f" * 100 + "1", "f" * 100 + "2"
    capped = [
        normalize_error_details({"errors": [{"code": "c", "severity": "error", "message": "m", "pointer": "",
                                             "fingerprint": text}]}, None)[0]["errors"][0]["fingerprint"]
        for text in (first, second, "f" * 100)
    ]
    assert capped[0] != capped[1]
    assert len(capped[0]) == limits.max_code_length
    assert capped[0] == "f" * 35 + "…" + hashlib.sha256(first.encode()).hexdigest()
    assert capped[2] == "f" * 100  # at the cap: as sent
    assert_valid_envelope({"schema_version": 1, "errors": [{"code": "c", "severity": "error", "message": "m",
                                                            "pointer": "", "fingerprint": capped[0]}],
                           "error_count": 1, "truncated": False})


def test_long_pointers_become_their_longest_fitting_ancestor():
    pointer = "".join(f"/segment{i:03d}" for i in range(200))  # 2,400 characters
    [item] = normalize_error_details({"errors": [{**GOOD, "pointer": pointer}]}, None)[0]["errors"]
    assert len(item["pointer"]) <= 1000 and pointer.startswith(item["pointer"] + "/")
    assert len(item["pointer"]) > 1000 - len("/segment000")
    [root] = normalize_error_details({"errors": [{**GOOD, "pointer": "/" + "x" * 1200}]}, None)[0]["errors"]
    assert root["pointer"] == ""


def test_ctx_keeps_its_first_entries_up_to_the_cap():
    ctx = {f"k{i:02d}": i for i in range(30)}
    [item] = normalize_error_details({"errors": [{**GOOD, "ctx": ctx}]}, None)[0]["errors"]
    assert list(item["ctx"]) == [f"k{i:02d}" for i in range(20)]


def test_smaller_limits_apply_everywhere():
    limits = DetailsLimits(max_items=2, max_message_length=10, max_ctx_string_length=5, max_ctx_keys=1)
    envelope, _ = normalize_error_details(json.loads(pydantic_error().json()), "pydantic", limits)
    assert len(envelope["errors"]) == 2 and envelope["truncated"] is True
    assert all(len(item["message"]) <= 10 for item in envelope["errors"])
    assert_valid_envelope(envelope)


@pytest.mark.parametrize("field", ["max_items", "max_message_length", "max_pointer_length", "max_ctx_keys"])
@pytest.mark.parametrize("value", [0, -1, True, 2.5])
def test_limits_must_be_positive_integers(field, value):
    with pytest.raises(ValueError):
        DetailsLimits(**{field: value})


def test_unstorable_characters_become_replacement_characters():
    item = {
        "code": "c\x00",
        "severity": "error",
        "message": "bad \ud800 text",
        "pointer": "/a\x00b",
        "ctx": {"k\x00": "v\udfff"},
    }
    [clean] = normalize_error_details({"errors": [item]}, None)[0]["errors"]
    assert clean == {
        "code": "c\ufffd",
        "severity": "error",
        "message": "bad \ufffd text",
        "pointer": "/a\ufffdb",
        "ctx": {"k\ufffd": "v\ufffd"},
    }


def test_build_envelope_refuses_a_count_below_the_items():
    with pytest.raises(ValueError):
        build_envelope([GOOD, GOOD], error_count=1)
