"""job_group_rollups, job_code_pair_rollups, job_group_code_rollups: one partition per grain

Revision ID: 0024_partition_group_rollups
Revises: 0023_rollup_trigger_guards
Create Date: 2026-12-05

The summary's rollups (0015) are partitioned by grain on PostgreSQL, so
the all-time rows, which every summary without a time range sums, sit on
pages of their own. The three rollups added since (0019, 0022) were not:
their all-time rows are scattered among the day and hour rows, about one
row per heap page. At 10,000,000 jobs the top codes of the largest group
read its 39,626 all-time rows of ``job_group_code_rollups`` from 18,240 of
the table's pages, 150 ms a read once they fall out of ``shared_buffers``
(docs/benchmarks.md).

The upgrade makes each of the three ``PARTITION BY LIST (grain)`` with the
partitions ``<table>_all``, ``_day`` and ``_hour``, as 0015's: the table is
renamed, a partitioned table of the same columns and primary key is
created under the old name, the rows that count (``jobs <> 0``; a row at 0
adds nothing to a sum) are copied over in key order, and the old table is
dropped (at 1,000,000 jobs: 19-38 s for the three tables). The
triggers that keep the rollups name them in their bodies, so they write to
the new table with no change. The table is locked against writers first,
so no delta is lost between the copy and the drop; run it as every
migration, with the workers stopped. SQLite has no partitions.

On both databases each of the three gets an index on ``(grain,
created_bucket)``. The daily fold of past days' and hours' shards
(app/services/rollup_compaction.py) reads one bucket at a time, and these
keys start with the group or the code: without it each bucket's fold read
the whole grain (0.3-0.5 s an hour at 1,000,000 jobs, for each of the
hours since the last fold).
"""

from alembic import op

revision = "0024_partition_group_rollups"
down_revision = "0023_rollup_trigger_guards"
branch_labels = None
depends_on = None

_JOB_KEY = "grain, created_bucket, finished_bucket, status, job_type, acknowledged"
_CODE = "code, has_error, has_warning"
#: Table -> its primary key (unchanged by this migration).
TABLES = {
    "job_group_rollups": f"group_id, {_JOB_KEY}, shard",
    "job_code_pair_rollups": f"filter_code, {_JOB_KEY}, {_CODE}, shard",
    "job_group_code_rollups": f"group_id, {_JOB_KEY}, {_CODE}, shard",
}
#: The partitions, as 0015 names them.
GRAINS = ((0, "all"), (1, "day"), (2, "hour"))


def _swap(table: str, key: str, *, partitioned: bool) -> list[str]:
    """Statements that rebuild ``table`` as partitioned by grain or not,
    keeping its name, columns, primary key name and counting rows."""
    old = f"{table}_before_0024"
    statements = [
        # Writers wait here until the migration commits (then write to the
        # new table: the triggers look the table up by name on each call).
        f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE",
        f"ALTER TABLE {table} RENAME TO {old}",
        f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}",
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS)"
        + (" PARTITION BY LIST (grain)" if partitioned else ""),
        f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({key})",
    ]
    if partitioned:
        statements += [
            f"CREATE TABLE {table}_{name} PARTITION OF {table} FOR VALUES IN ({grain})" for grain, name in GRAINS
        ]
    statements += [
        # In key order, so the rows of one group or code are on few pages.
        f"INSERT INTO {table} SELECT * FROM {old} WHERE jobs <> 0 ORDER BY {key}",
        f"DROP TABLE {old}",
    ]
    return statements


def upgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # The copy and the index builds of millions of rows run longer than
        # the app's per-statement limit (DB_STATEMENT_TIMEOUT_MS), which is
        # meant for requests.
        op.execute("SET LOCAL statement_timeout = 0")
        _partition()
    for table in TABLES:
        op.create_index(f"ix_{table}_grain_created_bucket", table, ["grain", "created_bucket"])


def _partition() -> None:
    for table, key in TABLES.items():
        for statement in _swap(table, key, partitioned=True):
            op.execute(statement)


def downgrade():
    for table in TABLES:
        op.drop_index(f"ix_{table}_grain_created_bucket", table_name=table)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("SET LOCAL statement_timeout = 0")
    for table, key in TABLES.items():
        for statement in _swap(table, key, partitioned=False):
            op.execute(statement)
