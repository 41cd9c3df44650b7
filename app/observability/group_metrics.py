"""``failure_group_hot_occurrences``: the busiest unresolved failure groups, read at scrape time.

A per-group rate cannot come from a counter labelled by group (one series
per group ever seen: unbounded). This gauge is computed from the hourly
rollups (``failure_group_hourly``) when ``/metrics`` is scraped, for the
:data:`HOT_GROUPS` busiest unresolved groups only, so its label set stays
small: ``group_id`` and ``code`` (``other`` when the group's code is not
shaped like one: error details may hold patient text, and a worker may send
it as a code). Its value is occurrences per hour over
the current hour and the one before it (a window of one to two hours, as
the rollups are hourly). ``deploy/prometheus/failure-groups.rules.yml``
alerts on it (``FailureGroupHot``).

Not a process-local metric: every process answers the same (the database
is shared), so under gunicorn it is added to the scrape as it is, outside
the multiprocess files.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.extensions import db
from app.models import FailureGroup, FailureGroupHourly, GroupState
from app.models.types import utcnow
from app.observability.metrics import code_shaped

#: How many groups the gauge names at most (the label set's bound).
HOT_GROUPS = 20

NAME = "failure_group_hot_occurrences"
HELP = (
    "Occurrences per hour over the current and the previous hour, for the busiest unresolved "
    f"failure groups (at most {HOT_GROUPS}), by group id and code."
)


def hot_groups(now: datetime, limit: int = HOT_GROUPS) -> list[tuple[int, str, float]]:
    """``(group_id, code, occurrences per hour)`` of the busiest unresolved groups, busiest first.

    The window runs from the start of the previous hour to ``now``; the
    rate is the count divided by the window's length in hours.
    """
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    hours = max((now - since).total_seconds() / 3600, 1.0)
    total = sa.func.sum(FailureGroupHourly.occurrences)
    rows = db.session.execute(
        sa.select(FailureGroupHourly.group_id, FailureGroup.code, total)
        .join(FailureGroup, FailureGroup.id == FailureGroupHourly.group_id)
        .where(FailureGroupHourly.hour >= since, FailureGroup.state == GroupState.UNRESOLVED.value)
        .group_by(FailureGroupHourly.group_id, FailureGroup.code)
        .order_by(total.desc(), FailureGroupHourly.group_id)
        .limit(limit)
    ).all()
    # A group without a code (grouped by its message) is "": no text of it.
    return [(group_id, code_shaped(code) if code else "", int(count) / hours) for group_id, code, count in rows]


class HotGroupsCollector(Collector):
    """Yields :data:`NAME` from :func:`hot_groups` (needs an app context)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(NAME, HELP, labels=["group_id", "code"])
        for group_id, code, rate in hot_groups(self.now or utcnow()):
            family.add_metric([str(group_id), code], rate)
        yield family


def render_hot_groups(now: datetime | None = None) -> bytes:
    """The gauge in the text exposition format; empty when the database does
    not answer (a scrape must not fail with it: ``/readyz`` reports that)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HotGroupsCollector(now))
    try:
        return generate_latest(registry)
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return b""
    finally:
        db.session.rollback()  # end the read transaction
