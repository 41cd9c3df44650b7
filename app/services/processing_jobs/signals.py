"""Recorded failures, handed to the metrics layer after commit.

The recorder writes the history row with Core (no ORM object the metrics'
``after_flush`` listener could see), so it notes each failure in
``Session.info``; :mod:`app.observability.metrics` counts the notes when the
transaction commits and drops them on rollback, as for failure groups
(:mod:`app.services.failure_groups.signals`). Services import no metrics library.
"""

from __future__ import annotations

from typing import Any

from app.extensions import db

#: ``Session.info`` key of the pending notes: ``(status, error_format, error_details)`` tuples.
PENDING_FAILURES_KEY = "recorded_failures"


def note_recorded_failure(status: str, error_format: str | None, error_details: Any) -> None:
    """Note one failure stored in the open transaction (counted if it commits)."""
    db.session().info.setdefault(PENDING_FAILURES_KEY, []).append((status, error_format, error_details))
