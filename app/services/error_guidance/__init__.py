"""What to do about each error code: a table shipped with the app.

The table is ``guidance.toml`` beside this module (TOML v1.0, read with the
standard library's ``tomllib``): ``[codes]`` maps an exact error code to one
line for the operator, ``[prefixes]`` answers for the codes no exact line
names (longest prefix first). docs/error-guidance.md describes the format.
Pure functions, no Flask or database: the job page and the group pages call
:func:`guidance_for`.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

GUIDANCE_PATH = Path(__file__).with_name("guidance.toml")


@dataclass(frozen=True)
class GuidanceTable:
    """The parsed table: exact codes and code prefixes, each to one line of text."""

    codes: dict[str, str]
    prefixes: dict[str, str]

    def lookup(self, code: str) -> str | None:
        """The line for ``code``: its own, else the longest matching prefix's, else ``None``."""
        if code in self.codes:
            return self.codes[code]
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            if code.startswith(prefix):
                return self.prefixes[prefix]
        return None


def load_guidance(path: Path = GUIDANCE_PATH) -> GuidanceTable:
    """Read a guidance table.

    Raises:
        OSError: the file cannot be read.
        tomllib.TOMLDecodeError: it is not TOML.
        ValueError: a table other than ``codes``/``prefixes``, or a value that
            is not a non-blank string (names the key).
    """
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    unknown = set(document) - {"codes", "prefixes"}
    if unknown:
        raise ValueError(f"{path.name}: unknown table(s) {sorted(unknown)}; use [codes] and [prefixes]")
    tables: dict[str, dict[str, str]] = {}
    for table in ("codes", "prefixes"):
        entries = document.get(table, {})
        for key, value in entries.items():
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{path.name}: [{table}] {key!r} must be a non-blank string")
        tables[table] = {key: " ".join(value.split()) for key, value in entries.items()}
    return GuidanceTable(tables["codes"], tables["prefixes"])


@functools.cache
def _shipped() -> GuidanceTable:
    return load_guidance()


def guidance_for(code: str | None) -> str | None:
    """What to do about an error ``code``, from the shipped table (read once
    per process); ``None`` for no code or a code the table does not cover.

    Example: ``guidance_for("unit.not_ucum")`` -> ``"The unit is not a UCUM
    code (...). Fix the unit mapping ..., then requeue."``
    """
    if not code:
        return None
    return _shipped().lookup(code)


def guidance_for_codes(codes: list[str]) -> list[tuple[str, str]]:
    """``(code, line)`` for each distinct code in order of first appearance
    that the table covers: the "what to do" list of a failure."""
    seen: dict[str, str] = {}
    for code in codes:
        if code not in seen:
            line = guidance_for(code)
            if line is not None:
                seen[code] = line
    return list(seen.items())
