"""The JSON shape of a failure group (API and exports)."""

from __future__ import annotations

from typing import Any

from app.services.failure_groups.queries import GroupView
from app.timestamps import rfc3339 as _time


def group_to_json(view: GroupView) -> dict[str, Any]:
    """A group as the API shows it (``docs/failure-groups.md``, "JSON shape")."""
    group = view.group
    ignore = None
    if group.ignore_mode is not None:
        ignore = {
            "mode": group.ignore_mode,
            "until": _time(group.ignore_until),
            "occurrences": group.ignore_until_occurrences,
        }
    return {
        "id": group.id,
        "fingerprint": group.fingerprint,
        "grouping_version": group.grouping_version,
        "title": group.title,
        "code": group.code,
        "pointer_pattern": group.pointer_pattern,
        "entity_type": group.entity_type,
        "sample_message": group.sample_message,
        "severity": group.severity,
        "state": group.state,
        "substate": view.substate,
        "job_count": view.job_count,
        "current_job_count": view.current_job_count,
        "occurrence_count": view.occurrence_count,
        "first_seen": _time(group.first_seen),
        "last_seen": _time(group.last_seen),
        "resolved_by": group.resolved_by,
        "resolved_at": _time(group.resolved_at),
        "resolved_in_version": group.resolved_in_version,
        "resolved_in_worker": group.resolved_in_worker,
        "ignore": ignore,
        "worker_versions": view.worker_versions,
    }
