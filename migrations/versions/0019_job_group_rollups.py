"""job_group_rollups: exact /jobs?group= summary counts kept by triggers

Revision ID: 0019_job_group_rollups
Revises: 0018_document_prefix
Create Date: 2026-12-04

The jobs currently failing on each failure group, per the key of the
summary rollups of 0015_job_rollups (grain, bucket created, bucket
finished, status, job type, acknowledged), so the status counts and the
chart of ``/jobs?group=`` are exact at any scale (docs/summary-counts.md,
app/models/job_rollup.py). A row counts the pairs (job, group) that have a
current occurrence, at the job's key. Triggers keep the sums, in the
writer's transaction, whatever the order of the writes:

* an occurrence becoming current, or no longer (insert, update, delete):
  +1 or -1 at its job's key as the job is at that moment;
* a job whose key changes: its current occurrences move from the old key to
  the new one;
* a job about to be deleted: its current occurrences end first (``BEFORE
  DELETE``), counted out at its key while the job is still there. The
  cascade then deletes occurrences that are no longer current, which count
  nothing (an ``AFTER`` trigger would no longer find the job's key).

PostgreSQL: statement-level triggers with transition tables on the
occurrences (one grouped upsert per statement, rows in key order, shard
``pg_backend_pid() % 8``), and ``TRUNCATE``; row-level ones on the jobs,
whose ``WHEN`` compares the key's hour buckets, so that the recorder's
update of a job already failing, in the same hour, calls nothing; the
delete's ``BEFORE`` trigger. SQLite: row-level triggers, shard 0. The table
is filled from the current occurrences here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_job_group_rollups"
down_revision = "0018_document_prefix"
branch_labels = None
depends_on = None

TABLE = "job_group_rollups"
KEY = "group_id, grain, created_bucket, finished_bucket, status, job_type, acknowledged"
SHARDS = 8
# The job columns a key is made of (a change of any moves the job's occurrences).
KEY_COLUMNS = ("status", "job_type", "created_at", "completed_at", "acknowledged_at")

_PG_GRAINS = "(VALUES (0::smallint), (1::smallint), (2::smallint)) AS g(grain)"


def _pg_rows(occurrences: str, jobs: str, condition: str, delta: str) -> str:
    """``(key..., delta)`` for each row of ``occurrences`` (alias c) and its job (alias j)."""
    return (
        "SELECT c.group_id, g.grain, job_rollup_bucket(g.grain, j.created_at) AS created_bucket,"
        " job_rollup_bucket(g.grain, j.completed_at) AS finished_bucket, j.status, j.job_type,"
        f" j.acknowledged_at IS NOT NULL AS acknowledged, {delta} AS delta"
        f" FROM {occurrences} AS c JOIN {jobs} AS j ON j.id = c.job_id CROSS JOIN {_PG_GRAINS} WHERE {condition}"
    )


def _pg_key_moved() -> str:
    """True when a job's key changed: its status, type, acknowledged, or the
    hour of its creation or completion (the hour decides the day too)."""
    def key(row: str) -> str:
        return (f"{row}.status, {row}.job_type, {row}.acknowledged_at IS NULL,"
                f" job_rollup_bucket(2::smallint, {row}.created_at), job_rollup_bucket(2::smallint, {row}.completed_at)")
    return f"({key('OLD')}) IS DISTINCT FROM ({key('NEW')})"


def _pg_upsert(rows: str) -> str:
    shard = f"(pg_backend_pid() % {SHARDS})::smallint"
    return (
        f"INSERT INTO {TABLE} AS r ({KEY}, shard, jobs)"
        f" SELECT {KEY}, {shard}, sum(delta) FROM ({rows}) AS changes"
        f" GROUP BY {KEY} HAVING sum(delta) <> 0 ORDER BY {KEY}"
        f" ON CONFLICT ({KEY}, shard) DO UPDATE SET jobs = r.jobs + EXCLUDED.jobs;"
    )


def _pg_function(name: str, body: str, returns: str = "NULL") -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  {body}\n"
        f"  RETURN {returns};\nEND $$;"
    )


def _postgresql_sql() -> list[str]:
    changed_occurrence = (
        "(o.is_current, o.group_id, o.job_id) IS DISTINCT FROM (n.is_current, n.group_id, n.job_id)"
    )
    occurrence_pairs = f"(SELECT {{side}}.* FROM old_rows o JOIN new_rows n USING (id) WHERE {changed_occurrence})"
    return [
        _pg_function("job_group_rollups_occurrence_insert",
                     _pg_upsert(_pg_rows("new_rows", "processing_jobs", "c.is_current", "1"))),
        _pg_function("job_group_rollups_occurrence_delete",
                     _pg_upsert(_pg_rows("old_rows", "processing_jobs", "c.is_current", "-1"))),
        _pg_function(
            "job_group_rollups_occurrence_update",
            _pg_upsert(
                _pg_rows(occurrence_pairs.format(side="n"), "processing_jobs", "c.is_current", "1")
                + " UNION ALL "
                + _pg_rows(occurrence_pairs.format(side="o"), "processing_jobs", "c.is_current", "-1")
            ),
        ),
        # Row-level, with the key compared in the trigger's WHEN (evaluated
        # without calling the function): a report on a job already failing,
        # in the same hour as its last one, changes completed_at but not
        # the key's buckets, and costs nothing here. The job's current
        # occurrences as they are now (either order of the two writes in a
        # transaction: an occurrence changed earlier was counted at the
        # job's old key by its own trigger).
        _pg_function("job_group_rollups_job_update", _pg_upsert(
            "SELECT c.group_id, g.grain, job_rollup_bucket(g.grain, k.created_at) AS created_bucket,"
            " job_rollup_bucket(g.grain, k.completed_at) AS finished_bucket, k.status, k.job_type, k.acknowledged,"
            " k.delta FROM failure_occurrences AS c CROSS JOIN (VALUES"
            " (OLD.created_at, OLD.completed_at, OLD.status, OLD.job_type, OLD.acknowledged_at IS NOT NULL, -1),"
            " (NEW.created_at, NEW.completed_at, NEW.status, NEW.job_type, NEW.acknowledged_at IS NOT NULL, 1))"
            " AS k(created_at, completed_at, status, job_type, acknowledged, delta)"
            f" CROSS JOIN {_PG_GRAINS} WHERE c.job_id = NEW.id AND c.is_current")),
        _pg_function(
            "job_group_rollups_job_delete",
            "UPDATE failure_occurrences SET is_current = false WHERE job_id = OLD.id AND is_current;",
            returns="OLD",
        ),
        _pg_function("job_group_rollups_truncate", f"DELETE FROM {TABLE};"),
        "CREATE TRIGGER job_group_rollups_insert AFTER INSERT ON failure_occurrences"
        " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_group_rollups_occurrence_insert()",
        "CREATE TRIGGER job_group_rollups_delete AFTER DELETE ON failure_occurrences"
        " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_group_rollups_occurrence_delete()",
        "CREATE TRIGGER job_group_rollups_update AFTER UPDATE ON failure_occurrences"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION job_group_rollups_occurrence_update()",
        "CREATE TRIGGER job_group_rollups_truncate AFTER TRUNCATE ON failure_occurrences"
        " FOR EACH STATEMENT EXECUTE FUNCTION job_group_rollups_truncate()",
        f"CREATE TRIGGER job_group_rollups_job_update AFTER UPDATE OF {', '.join(KEY_COLUMNS)} ON processing_jobs"
        f" FOR EACH ROW WHEN ({_pg_key_moved()}) EXECUTE FUNCTION job_group_rollups_job_update()",
        "CREATE TRIGGER job_group_rollups_job_delete BEFORE DELETE ON processing_jobs"
        " FOR EACH ROW EXECUTE FUNCTION job_group_rollups_job_delete()",
    ]


_SQLITE_GRAINS = "(SELECT 0 AS grain UNION ALL SELECT 1 UNION ALL SELECT 2) AS g"


def _sqlite_bucket(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL THEN -1 WHEN g.grain = 0 THEN 0"
        f" ELSE CAST(strftime('%s', {column}) AS INTEGER) / CASE WHEN g.grain = 1 THEN 86400 ELSE 3600 END END"
    )


def _sqlite_key(group: str, job: str) -> str:
    return (
        f"{group}, g.grain, {_sqlite_bucket(job + '.created_at')}, {_sqlite_bucket(job + '.completed_at')},"
        f" {job}.status, {job}.job_type, {job}.acknowledged_at IS NOT NULL"
    )


def _sqlite_add(group: str, job_id: str, condition: str, delta: int) -> str:
    """Add ``delta`` at the key of the job ``job_id`` as it is now, at every grain, when ``condition``."""
    return (
        f"\n  INSERT INTO {TABLE} ({KEY}, shard, jobs) SELECT {_sqlite_key(group, 'j')}, 0, {delta}"
        f" FROM processing_jobs AS j, {_SQLITE_GRAINS} WHERE j.id = {job_id} AND {condition}"
        f" ON CONFLICT ({KEY}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;"
    )


def _sqlite_sql() -> list[str]:
    occurrence_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in ("is_current", "group_id", "job_id"))
    def hour(column: str) -> str:
        return f"CAST(strftime('%s', {column}) AS INTEGER) / 3600"

    key_changed = " OR ".join(
        [f"OLD.{c} IS NOT NEW.{c}" for c in ("status", "job_type")]
        + ["(OLD.acknowledged_at IS NULL) IS NOT (NEW.acknowledged_at IS NULL)"]
        + [f"{hour('OLD.' + c)} IS NOT {hour('NEW.' + c)}" for c in ("created_at", "completed_at")]
    )

    def move(row: str, delta: int) -> str:
        # One row per current occurrence of the job, at the job's key (OLD or NEW).
        return (
            f"\n  INSERT INTO {TABLE} ({KEY}, shard, jobs) SELECT {_sqlite_key('c.group_id', row)}, 0, {delta}"
            f" FROM failure_occurrences AS c, {_SQLITE_GRAINS} WHERE c.job_id = {row}.id AND c.is_current"
            f" ON CONFLICT ({KEY}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;"
        )

    return [
        "CREATE TRIGGER job_group_rollups_insert AFTER INSERT ON failure_occurrences WHEN NEW.is_current BEGIN"
        + _sqlite_add("NEW.group_id", "NEW.job_id", "true", 1) + "\nEND",
        "CREATE TRIGGER job_group_rollups_delete AFTER DELETE ON failure_occurrences WHEN OLD.is_current BEGIN"
        + _sqlite_add("OLD.group_id", "OLD.job_id", "true", -1) + "\nEND",
        "CREATE TRIGGER job_group_rollups_update AFTER UPDATE OF is_current, group_id, job_id ON failure_occurrences"
        f" WHEN {occurrence_changed} BEGIN"
        + _sqlite_add("OLD.group_id", "OLD.job_id", "OLD.is_current", -1)
        + _sqlite_add("NEW.group_id", "NEW.job_id", "NEW.is_current", 1) + "\nEND",
        f"CREATE TRIGGER job_group_rollups_job_update AFTER UPDATE OF {', '.join(KEY_COLUMNS)} ON processing_jobs"
        f" WHEN {key_changed} BEGIN" + move("OLD", -1) + move("NEW", 1) + "\nEND",
        "CREATE TRIGGER job_group_rollups_job_delete BEFORE DELETE ON processing_jobs BEGIN"
        "\n  UPDATE failure_occurrences SET is_current = 0 WHERE job_id = OLD.id AND is_current;\nEND",
    ]


def _backfill(dialect: str) -> str:
    """The triggers' rows for every current occurrence, grouped once (shard 0)."""
    if dialect == "postgresql":
        rows = _pg_rows("failure_occurrences", "processing_jobs", "c.is_current", "1")
        return f"INSERT INTO {TABLE} ({KEY}, shard, jobs) SELECT {KEY}, 0, sum(delta) FROM ({rows}) AS c GROUP BY {KEY}"
    return (
        f"INSERT INTO {TABLE} ({KEY}, shard, jobs) SELECT {_sqlite_key('c.group_id', 'j')}, 0, count(*)"
        f" FROM failure_occurrences AS c JOIN processing_jobs AS j ON j.id = c.job_id, {_SQLITE_GRAINS}"
        " WHERE c.is_current GROUP BY 1, 2, 3, 4, 5, 6, 7"
    )


def upgrade():
    op.create_table(
        TABLE,
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("created_bucket", sa.Integer(), nullable=False),
        sa.Column("finished_bucket", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("job_type", sa.String(length=64), nullable=False),
        sa.Column("acknowledged", sa.Boolean(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*KEY.split(", "), "shard", name=op.f(f"pk_{TABLE}")),
    )
    dialect = op.get_bind().dialect.name
    op.execute(_backfill(dialect))
    for statement in _postgresql_sql() if dialect == "postgresql" else _sqlite_sql():
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    triggers = {
        "failure_occurrences": ("insert", "update", "delete") + (("truncate",) if dialect == "postgresql" else ()),
        "processing_jobs": ("job_update", "job_delete"),
    }
    for table, events in triggers.items():
        for event in events:
            op.execute(f"DROP TRIGGER job_group_rollups_{event}" + (f" ON {table}" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        for function in ("occurrence_insert", "occurrence_update", "occurrence_delete", "job_update", "job_delete",
                         "truncate"):
            op.execute(f"DROP FUNCTION job_group_rollups_{function}()")
    op.drop_table(TABLE)
