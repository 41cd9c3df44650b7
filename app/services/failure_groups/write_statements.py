"""The statements of the failure-group write path, per backend.

What :mod:`app.services.failure_groups.recording` runs to write a
failure's occurrences: on PostgreSQL one statement for all the groups it
hits (:mod:`app.services.failure_groups.hits_statement`: the occurrences,
the counters and the hourly rollups as data-modifying CTEs); on SQLite a
few plain statements per group (:func:`add_occurrence`, and
:func:`app.services.failure_groups.group_rows.group_for`, which finds or
creates the group row on both). Here: what both share (shards, hits, the
group columns the state rules read) and SQLite's statements. Everything
runs in the caller's transaction and never commits.
"""

from __future__ import annotations

import collections
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import JobFailure, ProcessingJob
from app.models.failure_group import COUNTER_SHARDS, SEVERITY_ORDER
from app.models.failure_group import FailureGroupCount, FailureGroupHourly
from app.models.failure_group import FailureOccurrence
from app.services.failure_groups.fingerprint import GroupKey

#: Longest ``sample_message`` kept on a group, in characters.
SAMPLE_MESSAGE_MAX_LENGTH = 1000

_random = random.SystemRandom()


def random_shard() -> int:
    """A counter shard for one write, at random: concurrent writers of one
    group add to different rows (``COUNTER_SHARDS`` of them) rather than
    queue on one."""
    return _random.randrange(COUNTER_SHARDS)


def job_shard(job_id: object) -> int:
    """The counter shard of a job's writes: fixed per job (its UUID modulo
    ``COUNTER_SHARDS``), so a failure that ends the job's current occurrence
    in a group and adds a new one there lowers and raises the same counter
    row. With two random shards, two such failures of different jobs could
    each hold one shard row and wait for the other's (a deadlock on a hot
    group); different jobs still spread over the shards."""
    value = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    return value.int % COUNTER_SHARDS


@dataclass
class Hit:
    """The items of one failure that fell in one group."""

    key: GroupKey
    item_count: int
    severity: str
    #: The items' 0-based indexes in ``errors`` (none: the failure's message).
    positions: list[int]


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in ``SEVERITY_ORDER`` (higher: more severe);
    an unknown severity ranks as ``error``."""
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else SEVERITY_ORDER.index("error")


def dialect_insert(table: sa.Table) -> Any:
    """An ``INSERT`` into ``table`` of the session's backend (PostgreSQL's or
    SQLite's), so ``ON CONFLICT`` clauses can be added."""
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def add_to_counter(table: sa.Table, keys: dict[str, Any], increments: dict[str, int]) -> None:
    """Upsert adding ``increments`` to the row at ``keys`` (created at those values)."""
    statement = dialect_insert(table).values(**keys, **increments)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + statement.excluded[name] for name in increments},
    )
    db.session.execute(statement)


def hour_of(at: datetime) -> datetime:
    """The start of the hour of ``at``: the hourly rollup's bucket."""
    return at.replace(minute=0, second=0, microsecond=0)


def occurrence_values(job: ProcessingJob, failure: JobFailure, current: bool) -> dict[str, Any]:
    """The columns of an occurrence of ``failure`` but its group's: ``group_id``,
    ``severity``, ``item_count``, ``item_positions``."""
    return {
        "failure_id": failure.id,
        "job_id": job.id,
        "occurred_at": failure.recorded_at,
        "job_type": job.job_type,
        "worker_name": failure.worker_name,
        "worker_version": failure.worker_version,
        "is_current": current,
    }


#: The group columns the write path reads (:func:`record_hits`,
#: :func:`group_for`): what the state rules and ``last_seen`` need, as a
#: plain row -- loading an ORM object per occurrence cost more than the
#: statement. A state change locks and loads the ORM object itself.
GROUP_STATE_COLUMNS = (
    "id", "state", "state_changed_at", "ignore_mode", "ignore_until", "last_seen", "first_seen", "severity",
)

#: A group's :data:`GROUP_STATE_COLUMNS` as :func:`record_hits` returns
#: them (read by attribute, like a SQLAlchemy row).
GroupStateRow = collections.namedtuple("GroupStateRow", GROUP_STATE_COLUMNS)


def on_postgresql() -> bool:
    """Whether the session's backend is PostgreSQL (else SQLite)."""
    return db.session.get_bind().dialect.name == "postgresql"


def add_occurrence(
    group_id: int, created: bool, job: ProcessingJob, failure: JobFailure, hit: Hit, current: bool
) -> None:
    """SQLite: insert the occurrence and add to the group's counter and
    hourly rollup (PostgreSQL does it in one statement: :func:`record_hits`).

    "Jobs ever" grows when the job had no earlier occurrence in the group
    (no race: the caller holds the job's row lock).
    """
    occurrences = FailureOccurrence.__table__
    counts = FailureGroupCount.__table__
    hourly = FailureGroupHourly.__table__
    occurrence = {
        "group_id": group_id, **occurrence_values(job, failure, current),
        "severity": hit.severity, "item_count": hit.item_count, "item_positions": hit.positions,
    }
    count_key = {
        "group_id": group_id,
        "job_type": job.job_type,
        "worker_version": failure.worker_version or "",
        "shard": job_shard(job.id),
    }
    hour_key = {"group_id": group_id, "hour": hour_of(failure.recorded_at), "shard": random_shard()}
    seen = (
        sa.select(occurrences.c.id)
        .where(occurrences.c.group_id == group_id, occurrences.c.job_id == job.id)
        .exists()
    )
    new_job = created or not db.session.scalar(sa.select(seen))
    db.session.execute(sa.insert(occurrences).values(**occurrence))
    add_to_counter(counts, count_key, {"occurrences": 1, "jobs": int(new_job), "current_jobs": int(current)})
    add_to_counter(hourly, hour_key, {"occurrences": 1})
