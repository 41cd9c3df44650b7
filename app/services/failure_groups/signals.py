"""Metric events of failure groups, handed to the metrics layer after commit.

The services note what happened in ``Session.info``; the Prometheus layer
(:mod:`app.observability.metrics`) counts the notes when the transaction
commits and drops them on rollback, so a failure that is not stored counts
nothing, and services import no metrics library.
"""

from __future__ import annotations

from app.extensions import db

#: ``Session.info`` key of the pending notes: a list of ``(event, state)``.
PENDING_METRICS_KEY = "failure_group_metrics"

#: Events noted: a group was ``created``, ``regressed`` or ``woken``, or an
#: ``occurrence`` was recorded (with the group's state after it).
EVENTS = ("created", "regressed", "woken", "occurrence")


def note_metric(event: str, state: str | None = None) -> None:
    """Note one ``event`` (one of :data:`EVENTS`) in the open transaction."""
    db.session().info.setdefault(PENDING_METRICS_KEY, []).append((event, state))
