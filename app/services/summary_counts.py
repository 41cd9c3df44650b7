"""Exact counts for the /jobs summary from the write-time rollups.

The rollups (:mod:`app.models.job_rollup`, kept by triggers) hold jobs per
whole hour of creation and of completion, status, job type, acknowledged
and error code. A filter made of those (``status``, ``time_field`` with
``from``/``to``, ``job_type``, ``acknowledged``, ``error_code``) is counted
here exactly at any scale: the whole hours of its range from the rollups,
the partial hours at either edge (at most one hour each) from
``processing_jobs`` through its time indexes, added together.
docs/summary-counts.md explains the design and what it costs.

:func:`rollup_covers` says whether a filter can be counted so. Times are
aware UTC; read-only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import JobStatus, ProcessingJob
from app.models.job_rollup import JobCodeRollup, JobCountRollup, NOT_FINISHED, SECONDS_PER_HOUR
from app.services.processing_jobs.job_filter import AcknowledgedFilter, JobFilter, TimeField

HOUR = timedelta(hours=1)

#: A span of time: ``[start, end)``, either side ``None`` for unbounded.
Span = tuple[datetime | None, datetime | None]


def rollup_covers(job_filter: JobFilter) -> bool:
    """Whether :func:`status_rows` and :func:`hour_rows` can count ``job_filter``
    exactly: it has no search, document or group condition."""
    return job_filter.text is None and job_filter.document_id is None and job_filter.group_id is None


def hour_number(moment: datetime) -> int:
    """Whole hours from 1970-01-01T00:00Z to the hour holding ``moment``
    (the rollups' ``created_hour``/``finished_hour``)."""
    return int(moment.astimezone(timezone.utc).timestamp()) // SECONDS_PER_HOUR


def hour_start(number: int) -> datetime:
    """The start (aware UTC) of the hour :func:`hour_number` numbers ``number``."""
    return datetime.fromtimestamp(number * SECONDS_PER_HOUR, timezone.utc)


def split_range(time_from: datetime | None, time_to: datetime | None) -> tuple[tuple[int | None, int | None] | None, list[Span]]:
    """Split ``[time_from, time_to)`` into whole hours and partial-hour edges.

    Returns:
        ``(hours, edges)``: ``hours`` is ``(first, end)`` hour numbers,
        ``[first, end)``, either ``None`` for unbounded, or ``None`` when no
        whole hour is inside; ``edges`` the spans (each within one hour)
        that the whole hours leave out.
    """
    first = None if time_from is None else hour_number(time_from) + (0 if _on_hour(time_from) else 1)
    end = None if time_to is None else hour_number(time_to)
    if first is not None and end is not None and first >= end:
        return None, [(time_from, time_to)]
    edges: list[Span] = []
    if time_from is not None and not _on_hour(time_from):
        edges.append((time_from, hour_start(first)))  # type: ignore[arg-type]
    if time_to is not None and not _on_hour(time_to):
        edges.append((hour_start(end), time_to))  # type: ignore[arg-type]
    return (first, end), edges


def _on_hour(moment: datetime) -> bool:
    return moment.minute == 0 and moment.second == 0 and moment.microsecond == 0


def _rollup_where(table: Any, job_filter: JobFilter, hours: tuple[int | None, int | None]) -> list[Any]:
    """Conditions on a rollup table for the filter's non-time fields and ``hours``."""
    conditions: list[Any] = []
    hour = table.finished_hour if job_filter.time_field is TimeField.COMPLETED else table.created_hour
    if job_filter.time_field is TimeField.COMPLETED:
        conditions.append(table.finished_hour != NOT_FINISHED)
    first, end = hours
    if first is not None:
        conditions.append(hour >= first)
    if end is not None:
        conditions.append(hour < end)
    if job_filter.statuses:
        conditions.append(table.status.in_([s.value for s in job_filter.statuses]))
    if job_filter.job_type is not None:
        conditions.append(table.job_type == job_filter.job_type)
    if job_filter.acknowledged is AcknowledgedFilter.EXCLUDE:
        conditions.append(table.acknowledged.is_(False))
    elif job_filter.acknowledged is AcknowledgedFilter.ONLY:
        conditions.append(table.acknowledged.is_(True))
    if job_filter.error_code is not None:
        conditions.append(table.code == job_filter.error_code)
    return conditions


def _table(job_filter: JobFilter) -> Any:
    # A job appears once per code in the code rollup: only with a code condition is it one row per job.
    return JobCodeRollup if job_filter.error_code is not None else JobCountRollup


def _edge_filters(job_filter: JobFilter, edges: list[Span]) -> list[JobFilter]:
    return [replace(job_filter, time_from=start, time_to=end) for start, end in edges]


def status_rows(job_filter: JobFilter) -> dict[str, int]:
    """Exact jobs per status (stored status text -> count) for a filter
    :func:`rollup_covers`; its statuses apply (pass ``without_statuses()``
    for the summary's counts)."""
    hours, edges = split_range(job_filter.time_from, job_filter.time_to)
    found: dict[str, int] = {}
    if hours is not None:
        table = _table(job_filter)
        rows = db.session.execute(
            sa.select(table.status, sa.func.sum(table.jobs))
            .where(*_rollup_where(table, job_filter, hours))
            .group_by(table.status)
        ).all()
        for status, count in rows:
            found[status] = found.get(status, 0) + int(count)
    for edge in _edge_filters(job_filter, edges):
        rows = db.session.execute(
            sa.select(ProcessingJob.status, sa.func.count())
            .where(*edge.where(code_index=False))  # an hour at most: the time index is the narrow part
            .group_by(ProcessingJob.status)
        ).all()
        for status, count in rows:
            found[status] = found.get(status, 0) + int(count)
    return found


def hour_rows(job_filter: JobFilter, statuses: tuple[JobStatus, ...], start: datetime, end: datetime) -> dict[datetime, int]:
    """Exact jobs of ``statuses`` per hour of the filter's time field, in
    ``[start, end)`` (hour boundaries) and the filter's own range: hour
    start (aware UTC) -> count, hours with none left out. For a filter
    :func:`rollup_covers`."""
    time_from = max(start, job_filter.time_from) if job_filter.time_from is not None else start
    time_to = min(end, job_filter.time_to) if job_filter.time_to is not None else end
    narrowed = replace(job_filter, statuses=statuses, time_from=time_from, time_to=time_to)
    found: dict[datetime, int] = {}
    if time_from >= time_to:
        return found
    hours, edges = split_range(time_from, time_to)
    if hours is not None:
        table = _table(narrowed)
        hour = table.finished_hour if narrowed.time_field is TimeField.COMPLETED else table.created_hour
        rows = db.session.execute(
            sa.select(hour, sa.func.sum(table.jobs)).where(*_rollup_where(table, narrowed, hours)).group_by(hour)
        ).all()
        for number, count in rows:
            found[hour_start(number)] = int(count)
    for edge in _edge_filters(narrowed, edges):
        assert edge.time_from is not None
        count = db.session.execute(
            sa.select(sa.func.count()).select_from(ProcessingJob).where(*edge.where(code_index=False))
        ).scalar_one()
        if count:
            key = edge.time_from.replace(minute=0, second=0, microsecond=0)
            found[key] = found.get(key, 0) + count
    return found


def code_rows(job_filter: JobFilter) -> tuple[list[tuple[str, int, int, int]], list[JobFilter]]:
    """Exact ``(code, jobs, errors, warnings)`` of every code from the
    rollup's whole hours, for a filter :func:`rollup_covers` without an
    ``error_code``; and the edge filters whose jobs the caller must add
    (their codes are read from the jobs' details)."""
    assert job_filter.error_code is None
    hours, edges = split_range(job_filter.time_from, job_filter.time_to)
    rows: list[tuple[str, int, int, int]] = []
    if hours is not None:
        table = JobCodeRollup
        jobs = sa.func.sum(table.jobs)
        errors = sa.func.sum(sa.case((table.has_error.is_(True), table.jobs), else_=0))
        warnings = sa.func.sum(sa.case((table.has_warning.is_(True), table.jobs), else_=0))
        result = db.session.execute(
            sa.select(table.code, jobs, errors, warnings)
            .where(*_rollup_where(table, job_filter, hours))
            .group_by(table.code)
            .having(jobs > 0)
        ).all()
        rows = [(code, int(j), int(e), int(w)) for code, j, e, w in result]
    return rows, _edge_filters(job_filter, edges)
