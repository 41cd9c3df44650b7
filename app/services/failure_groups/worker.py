"""The optional ``worker`` of a failure report: who sent it, in which version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import FieldError, field_error
from app.models.job_failure import WORKER_NAME_MAX_LENGTH, WORKER_VERSION_MAX_LENGTH
from app.services.json_values import has_unseen_character

_LIMITS = {"name": WORKER_NAME_MAX_LENGTH, "version": WORKER_VERSION_MAX_LENGTH}


def check_worker(worker: Any) -> tuple[str | None, str | None, list[FieldError]]:
    """Check a report's ``worker`` object and return ``(name, version, errors)``.

    ``worker`` is ``None`` or ``{"name"?: str, "version"?: str}``: each 1 to
    100 characters, without surrounding spaces, control (NUL included),
    format (bidi overrides would make one name look like another) or line
    and paragraph separator characters (U+2028, U+2029); no other keys. ``errors`` point at ``/worker/...`` and never
    quote the value; when it is not empty, name and version are ``None``.
    """
    if worker is None:
        return None, None, []
    if not isinstance(worker, Mapping):
        return None, None, [field_error("/worker", "must be an object with name and version strings")]
    errors = [field_error("/worker", "has unknown fields; only name and version are allowed")] if set(worker) - set(_LIMITS) else []
    values: dict[str, str | None] = {}
    for key, limit in _LIMITS.items():
        value = worker.get(key)
        values[key] = value
        if value is None and key not in worker:
            continue
        # The unseen characters first: str.strip() takes U+001C-U+001F,
        # U+0085 and U+2028 off the ends too, and "1.0.0\u001f" was told
        # "without surrounding spaces" (a trial).
        if isinstance(value, str) and has_unseen_character(value):
            errors.append(field_error(
                f"/worker/{key}",
                "must not hold control, format or line-separator characters, or unpaired UTF-16 surrogates"))
        elif not isinstance(value, str) or not value or value != value.strip() or len(value) > limit:
            errors.append(field_error(
                f"/worker/{key}", f"must be a string of 1 to {limit} characters without surrounding spaces"))
    if errors:
        return None, None, errors
    return values["name"], values["version"], []
