"""Write-time rollups of ``processing_jobs``: exact counts without a scan.

Five tables, kept by database triggers on ``processing_jobs`` (migration
0015) and ``failure_occurrences`` (migrations 0019 and 0022;
docs/summary-counts.md),
so every write path -- the services, bulk actions, retention deletes, raw
SQL and COPY loads -- keeps them exact in the writer's own transaction,
with no Python code to remember:

* ``job_count_rollups`` -- jobs per (grain, bucket created, bucket
  finished, status, job type, acknowledged, shard);
* ``job_code_rollups`` -- the same, per error code found in the job's
  current error details, with whether the code appears there as an error
  and/or as a warning;
* ``job_group_rollups`` -- the same key per failure group, for the jobs
  currently failing on it (a current ``failure_occurrences`` row): what
  ``/jobs?group=`` counts;
* ``job_code_pair_rollups`` and ``job_group_code_rollups`` -- the codes of
  the jobs having a code, and of the jobs failing on a group: the top-codes
  table under an ``error_code`` or ``group`` filter.

On PostgreSQL each table is partitioned by grain (``<table>_all``,
``_day``, ``_hour``; migrations 0015 and 0024), so the few all-time rows
are not scattered among the many hour rows. Each job is counted three
times in each table, once per :class:`Grain`:
all time (both buckets 0), days and hours (whole days or hours since
1970-01-01T00:00Z: ``floor(epoch / 86400)``, ``floor(epoch / 3600)``), so a
long range sums few rows. ``job_code_rollups`` counts each job a fourth
time, per week (``floor(epoch / 604800)``; migration 0026): a range of
weeks without a code or group filter sums every code of every day, the
most rows any summary reads (49,957 for 27 days at 10,000,000 jobs). ``finished_bucket`` is :data:`NOT_FINISHED` when
``completed_at`` is NULL (a key column cannot be NULL). Counts are the sums over rows: a row is only
ever changed by ``jobs = jobs + delta`` and may reach 0 (rows are not
removed; harmless to the sums).
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.processing_job import JOB_TYPE_MAX_LENGTH

SECONDS_PER_HOUR = 3600
#: ``finished_bucket`` of a job that has no ``completed_at``.
NOT_FINISHED = -1


class Grain(IntEnum):
    """What a rollup row's buckets are."""

    ALL = 0  #: all time: ``created_bucket`` 0, ``finished_bucket`` 0 or NOT_FINISHED
    DAY = 1  #: days since 1970-01-01 (UTC)
    HOUR = 2  #: hours since 1970-01-01T00:00Z
    #: weeks of 7 days since 1970-01-01T00:00Z (a Thursday; so a week runs
    #: Thursday to Wednesday, UTC): :class:`JobCodeRollup` only (migration 0026)
    WEEK = 3

    @property
    def seconds(self) -> int:
        """Length of one bucket (weeks, days and hours)."""
        return {Grain.WEEK: 7 * 86_400, Grain.DAY: 86_400}.get(self, SECONDS_PER_HOUR)


#: The grains of buckets of time, coarsest first (the values' order is not
#: this: WEEK came last).
COARSE_TO_FINE = (Grain.WEEK, Grain.DAY, Grain.HOUR)

#: Shards per key on PostgreSQL: a writer adds to shard
#: ``pg_backend_pid() % ROLLUP_SHARDS`` (one per connection, so a pool of
#: connections rarely meets on a row). SQLite has one writer at a time: shard 0.
ROLLUP_SHARDS = 8


def _bucket_index(table: str) -> sa.Index:
    """The index of the daily fold's reads of one past day or hour, for a
    rollup whose key starts with a group or a code (without it each read
    would scan the whole grain; migration 0024)."""
    return sa.Index(f"ix_{table}_grain_created_bucket", "grain", "created_bucket")


class _JobKey:
    """The key columns both rollups share, first in each primary key
    (``sort_order``: a mixin's columns would otherwise follow the class's
    own, and the key's order is the index the reads use)."""

    #: The grains this table counts each job at (the code rollup adds weeks).
    grains: ClassVar[tuple[Grain, ...]] = (Grain.ALL, Grain.DAY, Grain.HOUR)

    grain: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, sort_order=-1)
    created_bucket: Mapped[int] = mapped_column(sa.Integer, primary_key=True, sort_order=-1)
    finished_bucket: Mapped[int] = mapped_column(sa.Integer, primary_key=True, sort_order=-1)
    status: Mapped[str] = mapped_column(sa.String(32), primary_key=True, sort_order=-1)
    job_type: Mapped[str] = mapped_column(sa.String(JOB_TYPE_MAX_LENGTH), primary_key=True, sort_order=-1)
    acknowledged: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True, sort_order=-1)


class JobCountRollup(_JobKey, db.Model):
    """Jobs per key; the exact count of a key is the sum over its shards."""

    __tablename__ = "job_count_rollups"

    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    jobs: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)


class JobCodeRollup(_JobKey, db.Model):
    """Jobs per key and error code (a job counts once per code).

    A code is the string ``code`` of an object item of the ``errors`` array
    of the job's ``error_details`` (what the ``error_code`` filter matches).
    ``has_error``: one of the job's items with this code has a severity
    other than ``warning`` and ``information`` (none counts as an error);
    ``has_warning``: one has ``warning``. A job with only ``information``
    items of a code has both false.
    """

    __tablename__ = "job_code_rollups"
    __table_args__ = (
        # The error_code filter's counts: one code at one grain.
        sa.Index("ix_job_code_rollups_grain_code_created_bucket", "grain", "code", "created_bucket"),
    )

    #: The column the ``error_code`` filter applies to.
    error_code_column: ClassVar[str] = "code"
    #: Weeks too (migration 0026): a range without a code or group filter
    #: sums every code of every day otherwise.
    grains: ClassVar[tuple[Grain, ...]] = (Grain.ALL, Grain.WEEK, Grain.DAY, Grain.HOUR)

    code: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    has_error: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    has_warning: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    jobs: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)


class JobGroupRollup(_JobKey, db.Model):
    """Jobs currently failing on a failure group, per key: the ``group``
    filter's counts.

    A row counts the pairs (job, group) with a current occurrence
    (``failure_occurrences.is_current``) at the job's key. Kept by
    triggers on both tables (migration 0019): an occurrence becoming current
    or not adds or removes one at its job's key as it is then; a job whose
    key changes moves its current occurrences from the old key to the new;
    a job about to be deleted ends its current occurrences first. Either
    order of those writes in a transaction leaves the same sums. No foreign
    key to ``failure_groups``: a deleted group's rows are left at 0 by its
    occurrences' delete, as other rollup rows are.
    """

    __tablename__ = "job_group_rollups"
    __table_args__ = (_bucket_index("job_group_rollups"),)

    #: First in the key (``sort_order``): a filter reads one group's rows.
    group_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, sort_order=-2)
    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    jobs: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)


class _CodeCount:
    """The columns after the key of the two pair rollups: the code listed
    with its kinds (as in :class:`JobCodeRollup`), the shard and the count
    (``sort_order``: last in the table and the primary key)."""

    #: The column the ``error_code`` filter applies to (the pair rollup's
    #: is ``filter_code``: ``code`` is the code it lists).
    error_code_column: ClassVar[str] = "code"

    code: Mapped[str] = mapped_column(sa.Text, primary_key=True, sort_order=1)
    has_error: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True, sort_order=1)
    has_warning: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True, sort_order=1)
    shard: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, sort_order=1)
    jobs: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, sort_order=1)


class JobCodePairRollup(_JobKey, _CodeCount, db.Model):
    """Jobs per key, error code filtered by and error code listed: which
    other codes the jobs of an ``error_code`` filter carry (the top-codes
    table under that filter).

    A job with the codes {a, b} counts once at (a, b) and once at (b, a):
    the rows of one ``filter_code`` with that code's own rows of
    :class:`JobCodeRollup` are the code rollup of the jobs having it. A pair
    of a code with itself would repeat those, so a job with one code, the
    common case, writes no row here. ``has_error`` and
    ``has_warning`` are those of ``code`` (the listed one), as in
    :class:`JobCodeRollup`. Kept by triggers on ``processing_jobs``
    (migration 0022).
    """

    __tablename__ = "job_code_pair_rollups"
    __table_args__ = (_bucket_index("job_code_pair_rollups"),)

    error_code_column: ClassVar[str] = "filter_code"

    #: First in the key (``sort_order``): a filter reads one code's rows.
    filter_code: Mapped[str] = mapped_column(sa.Text, primary_key=True, sort_order=-2)


class JobGroupCodeRollup(_JobKey, _CodeCount, db.Model):
    """Jobs currently failing on a failure group, per key and error code of
    the job: the top-codes table under a ``group`` filter.

    A row counts the pairs (job, group) with a current occurrence, once per
    code of the job's current ``error_details`` (the rule of
    :class:`JobCodeRollup`), at the job's key. Kept by triggers on both
    tables as :class:`JobGroupRollup` is, and also when a job's
    ``error_details`` change while it fails on a group (migration 0022).
    """

    __tablename__ = "job_group_code_rollups"
    __table_args__ = (_bucket_index("job_group_code_rollups"),)

    group_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, sort_order=-2)


#: Every summary rollup model.
ROLLUP_MODELS = (JobCountRollup, JobCodeRollup, JobGroupRollup, JobCodePairRollup, JobGroupCodeRollup)

#: PostgreSQL's partitions of the summary rollups, one per model and grain
#: (``job_code_rollups_week``...; migrations 0015, 0024 and 0026): storage
#: of the model tables, not tables of their own, so Alembic's comparison
#: leaves them out.
ROLLUP_PARTITIONS = frozenset(
    f"{model.__tablename__}_{grain.name.lower()}" for model in ROLLUP_MODELS for grain in model.grains
)
