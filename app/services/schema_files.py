"""Reading the JSON Schema files the app publishes and validates against.

The error-details envelope schema and the entity-document schema are files
in the source tree, read the same way: once per process (they do not change
while it runs), and handed out as deep copies so that a caller that edits
one (to serve it, or to build a validator around it) cannot change what the
next caller sees.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any


@functools.cache
def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as schema_file:
        return json.load(schema_file)


def load_schema_file(path: Path) -> dict:
    """Return the JSON document in ``path`` (UTF-8), read once; each call
    returns a fresh deep copy the caller may change.

    Raises:
        OSError / json.JSONDecodeError: the file is missing or broken.
    """
    return copy.deepcopy(_read(path))
