"""JSON Schema's ``pattern`` as the standard reads it: an ECMA-262 regular
expression (JSON Schema 2020-12 Validation, section 6.3.3; Core, section
6.4), matched by ``regress``, an ECMA-262 engine, not by Python's ``re``.

The two differ where the contract's patterns lean on them: Python's ``$``
also matches before a final line break, so ``"entity_extraction\\n"`` passed
``^[A-Za-z0-9_.-]+$`` and was refused later with another problem type (a
trial); Python's ``\\s`` also takes U+001C-U+001F and U+0085, ECMA's takes
U+FEFF instead. A worker validating with the published schema in any
language (ajv, networknt, jsonschema-rs) now gets the answer this API gives.

:data:`ContractValidator` is draft 2020-12 with that ``pattern``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import regress
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from app.services.json_values import without_surrogates


@functools.cache
def _compiled(pattern: str) -> regress.Regex:
    # The "u" flag: code points, not UTF-16 units, as Core section 6.4 asks.
    return regress.Regex(pattern, "u")


def matches(pattern: str, text: str) -> bool:
    """Whether ECMA-262 ``pattern`` finds a match in ``text`` (a search,
    unanchored unless the pattern anchors itself, as JSON Schema says). A
    lone surrogate, which the engine's UTF-8 cannot hold, is matched as
    U+FFFD: no pattern of the contract names either, and the body's text
    rule replaces it when stored.

    Raises:
        ValueError: ``pattern`` is not an ECMA-262 regular expression.
    """
    return _compiled(pattern).find(without_surrogates(text)) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: Draft 2020-12's validator with ECMA-262 ``pattern`` (same format checks,
#: same error shapes: jsonschema sets each error's keyword and paths).
ContractValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})
