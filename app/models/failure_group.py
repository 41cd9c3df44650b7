"""Failure groups: the distinct problems behind many failed jobs.

Five tables (``docs/failure-groups.md`` explains the design):

* ``failure_groups`` -- one row per (grouping version, fingerprint), with its
  lifecycle state. Written rarely: on creation, on a state change, and at
  most once per ``LAST_SEEN_RESOLUTION`` for ``last_seen``/``severity``.
* ``failure_occurrences`` -- one row per (recorded failure, group): the
  history. ``is_current`` marks the occurrences of each job's current
  failure; a requeue, a completion or a newer failure clears it.
* ``failure_group_counts`` -- cumulative counters per (group, job type,
  worker version, shard). The exact totals of a group are the sums over its
  rows; writers add to one shard each, so a hot group is not one hot row.
* ``failure_group_hourly`` -- occurrences per (group, hour, shard), for
  charts and time filters.
* ``failure_group_daily`` -- occurrences per (group, UTC day), one row each,
  for the closed days only (summed from the hourly rows after the day ends),
  with ``failure_group_daily_state`` saying up to which day
  (:mod:`app.services.failure_groups.daily`).
* ``failure_group_events`` -- the timeline of state changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.job_failure import WORKER_NAME_MAX_LENGTH, WORKER_VERSION_MAX_LENGTH
from app.models.processing_job import JOB_TYPE_MAX_LENGTH
from app.models.types import IndexedFlag, JSONDocument, UTCDateTime, utcnow

#: An auto-incrementing 64-bit key: BIGINT on PostgreSQL; on SQLite only an
#: ``INTEGER PRIMARY KEY`` is the auto-numbered rowid (and is 64-bit anyway).
BigIntKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

FINGERPRINT_MAX_LENGTH = 64  # SHA-256, hex
TITLE_MAX_LENGTH = 300
#: A group's sample message once the retention purge took its last
#: occurrence, and how a group made from a message is then titled
#: (app/services/retention.py); its next occurrence brings both back.
PURGED_SAMPLE = "(removed by the retention purge: no failure of this group is kept)"
PURGED_TITLE = "Message removed by the retention purge"
CODE_MAX_LENGTH = 100
POINTER_PATTERN_MAX_LENGTH = 1000
ENTITY_TYPE_MAX_LENGTH = 100
ACTOR_MAX_LENGTH = 200
VERSION_MAX_LENGTH = WORKER_VERSION_MAX_LENGTH

#: Severities from lowest to highest (FHIR OperationOutcome issue severities).
SEVERITY_ORDER: tuple[str, ...] = ("information", "warning", "error", "fatal")


class GroupState(StrEnum):
    """A group's state (Sentry's issue states, simplified)."""

    UNRESOLVED = "unresolved"
    RESOLVED = "resolved"
    IGNORED = "ignored"


class GroupSubstate(StrEnum):
    """Substates of ``unresolved``; ``None`` for the other states."""

    NEW = "new"
    ONGOING = "ongoing"
    REGRESSED = "regressed"


class IgnoreMode(StrEnum):
    """How an ignored group wakes up."""

    FOREVER = "forever"
    UNTIL_DATE = "until_date"
    UNTIL_OCCURRENCES = "until_occurrences"


def _in(column: str, values: Any) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class FailureGroup(db.Model):
    """One distinct problem: every error item with the same fingerprint.

    ``fingerprint`` is unique within a ``grouping_version`` (the rules that
    computed it, :mod:`app.services.failure_groups.fingerprint`). ``code``,
    ``pointer_pattern`` and ``entity_type`` are the parts it was made of
    (``None`` when not used); ``title`` reads ``code at pointer_pattern`` or
    the parameterised message. Counts are not here: see
    :class:`FailureGroupCount`.
    """

    __tablename__ = "failure_groups"
    __table_args__ = (
        sa.UniqueConstraint("grouping_version", "fingerprint", name="uq_failure_groups_version_fingerprint"),
        sa.CheckConstraint(_in("state", GroupState), name="state"),
        sa.CheckConstraint("substate IS NULL OR " + _in("substate", GroupSubstate), name="substate"),
        sa.CheckConstraint(_in("severity", SEVERITY_ORDER), name="severity"),
        sa.CheckConstraint("ignore_mode IS NULL OR " + _in("ignore_mode", IgnoreMode), name="ignore_mode"),
        sa.Index("ix_failure_groups_version_last_seen", "grouping_version", "last_seen", "id"),
        sa.Index("ix_failure_groups_version_first_seen", "grouping_version", "first_seen", "id"),
        sa.Index("ix_failure_groups_version_state_last_seen", "grouping_version", "state", "last_seen", "id"),
        sa.Index("ix_failure_groups_version_code", "grouping_version", "code"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    grouping_version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    fingerprint: Mapped[str] = mapped_column(sa.String(FINGERPRINT_MAX_LENGTH), nullable=False)
    title: Mapped[str] = mapped_column(sa.String(TITLE_MAX_LENGTH), nullable=False)
    code: Mapped[str | None] = mapped_column(sa.String(CODE_MAX_LENGTH), nullable=True)
    pointer_pattern: Mapped[str | None] = mapped_column(sa.String(POINTER_PATTERN_MAX_LENGTH), nullable=True)
    entity_type: Mapped[str | None] = mapped_column(sa.String(ENTITY_TYPE_MAX_LENGTH), nullable=True)
    #: The message of a recent item (the first one, then refreshed with ``last_seen``).
    sample_message: Mapped[str] = mapped_column(sa.Text, nullable=False)
    #: The highest severity seen (:data:`SEVERITY_ORDER`).
    severity: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    state: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=GroupState.UNRESOLVED.value)
    #: Stored ``new`` turns ``ongoing`` 24 h after ``first_seen`` on read
    #: (:func:`app.services.failure_groups.states.effective_substate`).
    substate: Mapped[str | None] = mapped_column(sa.String(16), nullable=True, default=GroupSubstate.NEW.value)
    resolved_by: Mapped[str | None] = mapped_column(sa.String(ACTOR_MAX_LENGTH), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_in_version: Mapped[str | None] = mapped_column(sa.String(VERSION_MAX_LENGTH), nullable=True)
    #: The ``worker.name`` whose versions ``resolved_in_version`` orders;
    #: ``None``: any worker's (resolved before migration 0025, or no name known).
    resolved_in_worker: Mapped[str | None] = mapped_column(sa.String(WORKER_NAME_MAX_LENGTH), nullable=True)
    ignore_mode: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    ignored_by: Mapped[str | None] = mapped_column(sa.String(ACTOR_MAX_LENGTH), nullable=True)
    ignored_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ignore_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ignore_until_occurrences: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    #: The group's occurrence count when it was ignored; it wakes at
    #: ``ignore_base_occurrences + ignore_until_occurrences``.
    ignore_base_occurrences: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    #: When the state or substate last changed (creation included).
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:  # never the message: it may name patient data
        return f"<FailureGroup {self.id} v{self.grouping_version} {self.state}>"


class FailureOccurrence(db.Model):
    """One recorded failure (``job_failures`` row) hitting one group.

    ``item_count`` is how many of the failure's error items fell in the
    group, ``severity`` the highest of them, ``item_positions`` their
    0-based indexes in the failure's ``errors`` (a JSON array; ``[]`` when
    the failure had no items and its message made the group): what tells
    the per-item export which group each item is in. ``is_current`` is true while
    this failure is its job's current failure: the recorder clears the job's
    current occurrences when a newer failure replaces it, and a requeue or a
    completion clears them too. Job type and worker are copied so counts and
    filters never join ``processing_jobs``.
    """

    __tablename__ = "failure_occurrences"
    __table_args__ = (
        sa.UniqueConstraint("failure_id", "group_id", name="uq_failure_occurrences_failure_id_group_id"),
        sa.CheckConstraint(_in("severity", SEVERITY_ORDER), name="severity"),
        sa.Index("ix_failure_occurrences_group_id_occurred_at", "group_id", "occurred_at", "id"),
        sa.Index("ix_failure_occurrences_group_id_job_id", "group_id", "job_id"),
        # The jobs currently failing on a group (/jobs?group=, group actions).
        sa.Index(
            "ix_failure_occurrences_current_group_id_job_id",
            "group_id",
            "job_id",
            postgresql_where=sa.text("is_current"),
            sqlite_where=sa.text("is_current"),
        ),
        # The current occurrences of a job (ended on requeue/completion).
        sa.Index(
            "ix_failure_occurrences_current_job_id",
            "job_id",
            postgresql_where=sa.text("is_current"),
            sqlite_where=sa.text("is_current"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    group_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("failure_groups.id", ondelete="CASCADE"), nullable=False
    )
    failure_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("job_failures.id", ondelete="CASCADE"), nullable=False
    )
    job_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("processing_jobs.id", ondelete="CASCADE"), nullable=False
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    job_type: Mapped[str] = mapped_column(sa.String(JOB_TYPE_MAX_LENGTH), nullable=False)
    worker_name: Mapped[str | None] = mapped_column(sa.String(WORKER_NAME_MAX_LENGTH), nullable=True)
    worker_version: Mapped[str | None] = mapped_column(sa.String(WORKER_VERSION_MAX_LENGTH), nullable=True)
    severity: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    item_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    item_positions: Mapped[Any] = mapped_column(JSONDocument, nullable=False, default=list)
    #: The partial indexes' predicate: ``.where(FailureOccurrence.is_current)``
    #: renders ``WHERE <table or alias>.is_current`` on both databases
    #: (:class:`~app.models.types.IndexedFlag`), which the planners match to it.
    is_current: Mapped[bool] = mapped_column(IndexedFlag, nullable=False, default=True)

    def __repr__(self) -> str:
        return f"<FailureOccurrence group={self.group_id} job={self.job_id}>"


#: Counter shards per group (and job type, worker version): concurrent
#: writers pick one at random, so at most 1/SHARDS of them meet on a row.
COUNTER_SHARDS = 16


class FailureGroupCount(db.Model):
    """Cumulative counters, sharded: the exact totals are sums over rows.

    Per (group, job type, worker version -- ``""`` when none was sent,
    shard): ``occurrences`` (failures that hit the group), ``jobs`` (jobs
    that hit it for the first time: each job is counted once, ever) and
    ``current_jobs`` (+1 when a job's current failure hits the group, -1
    when that ends). Writers only ever upsert increments; the daily
    maintenance folds a key's shard rows into its shard 0
    (:func:`app.services.rollup_compaction.compact_counters`), so the sums
    never change.
    """

    __tablename__ = "failure_group_counts"

    group_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("failure_groups.id", ondelete="CASCADE"), primary_key=True
    )
    job_type: Mapped[str] = mapped_column(sa.String(JOB_TYPE_MAX_LENGTH), primary_key=True)
    worker_version: Mapped[str] = mapped_column(sa.String(WORKER_VERSION_MAX_LENGTH), primary_key=True)
    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    occurrences: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    jobs: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    current_jobs: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)


class FailureGroupHourly(db.Model):
    """Occurrences per (group, hour starting at ``hour``, UTC, shard)."""

    __tablename__ = "failure_group_hourly"
    __table_args__ = (
        sa.Index("ix_failure_group_hourly_hour", "hour"),
        # The sparklines read 14 days of many groups: on PostgreSQL an
        # index-only scan with the count in the index (migration 0012).
        sa.Index("ix_failure_group_hourly_group_id_hour", "group_id", "hour", postgresql_include=["occurrences"]),
    )

    group_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("failure_groups.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    occurrences: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)


class FailureGroupDaily(db.Model):
    """Occurrences per (group, UTC day starting at ``day``), for closed days.

    The sum of the group's hourly rows of that day, written after the day
    ended by :func:`app.services.failure_groups.daily.roll_up_closed_days`
    (the recorder's hot path never writes here), and kept equal to them by
    the backfill when it adds to an hour of a day already rolled up. One row
    per day, whatever the hourly shards: 14 days of 50 groups is at most
    700 rows.
    """

    __tablename__ = "failure_group_daily"

    group_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("failure_groups.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    occurrences: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)


class FailureGroupDailyState(db.Model):
    """One row (``id`` 1): every UTC day before ``rolled_through`` (a UTC
    midnight) is in ``failure_group_daily``; later days are read from the
    hourly rows."""

    __tablename__ = "failure_group_daily_state"
    __table_args__ = (sa.CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    rolled_through: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class FailureGroupEvent(db.Model):
    """One entry of a group's timeline: a state change and why.

    ``actor`` is a user name, a worker token name, ``cli`` or ``system``
    (regressions and wake-ups); ``reason`` is a word (``created``,
    ``resolved``, ``ignored``, ``reopened``, ``regressed``, ``woken``);
    ``details`` a JSON object of facts (``in_version``, ``worker_version``,
    ``until``, ``occurrences``...).
    """

    __tablename__ = "failure_group_events"
    __table_args__ = (sa.Index("ix_failure_group_events_group_id_at", "group_id", "at", "id"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True)
    group_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("failure_groups.id", ondelete="CASCADE"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(ACTOR_MAX_LENGTH), nullable=False)
    reason: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    from_state: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    from_substate: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    to_substate: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    details: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
