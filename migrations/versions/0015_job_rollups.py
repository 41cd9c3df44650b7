"""job_count_rollups, job_code_rollups: exact summary counts kept by triggers

Revision ID: 0015_job_rollups
Revises: 0014_job_history_links
Create Date: 2026-12-03

Write-time rollups of processing_jobs for the /jobs summary
(docs/summary-counts.md, app/models/job_rollup.py): jobs per grain (all
time, day, hour), bucket of creation and of completion, status, job type,
acknowledged (and error code). Triggers keep them, so every write path
does, in the writer's transaction:

* PostgreSQL: statement-level AFTER INSERT / UPDATE / DELETE triggers with
  transition tables: one grouped upsert per statement and table (a COPY of
  a million rows is one statement, not a million upserts), rows in key
  order so that writers lock rollup rows in the same order; the shard is
  the backend's pid modulo 8. TRUNCATE empties the rollups.
* SQLite: row-level triggers (the only kind), shard 0.

The tables are filled from the existing jobs here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_job_rollups"
down_revision = "0014_job_history_links"
branch_labels = None
depends_on = None

KEY = "grain, created_bucket, finished_bucket, status, job_type, acknowledged"
CODE_KEY = KEY + ", code, has_error, has_warning"
SHARDS = 8

POSTGRESQL_FUNCTIONS = """
-- The bucket of a moment at a grain: 0 all time (0; -1 for NULL), 1 days
-- and 2 hours since 1970-01-01T00:00Z (-1 for NULL: not finished).
CREATE FUNCTION job_rollup_bucket(grain smallint, moment timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN moment IS NULL THEN -1 WHEN grain = 0 THEN 0
              ELSE floor(extract(epoch FROM moment) / CASE WHEN grain = 1 THEN 86400 ELSE 3600 END)::integer END
$$;

-- The codes of an error-details document, once each, with their kinds: the
-- string "code" of object items of an "errors" array (what the error_code
-- filter's containment query matches).
CREATE FUNCTION job_rollup_codes(details jsonb)
RETURNS TABLE (code text, has_error boolean, has_warning boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT item ->> 'code',
         bool_or(coalesce(item ->> 'severity', '') NOT IN ('warning', 'information')),
         bool_or(coalesce(item ->> 'severity', '') = 'warning')
  FROM jsonb_array_elements(
         CASE WHEN jsonb_typeof(details -> 'errors') = 'array' THEN details -> 'errors' ELSE '[]'::jsonb END
       ) AS item
  WHERE jsonb_typeof(item -> 'code') = 'string'
  GROUP BY 1
$$;
"""

_GRAINS = "(VALUES (0::smallint), (1::smallint), (2::smallint)) AS g(grain)"
_UPSERT = """
    INSERT INTO {table} AS r ({key}, shard, jobs)
    SELECT {key}, {shard}, sum(delta) FROM ({rows}) AS changes
    GROUP BY {key} HAVING sum(delta) <> 0 ORDER BY {key}
    ON CONFLICT ({key}, shard) DO UPDATE SET jobs = r.jobs + EXCLUDED.jobs;
"""
_HOUR = "floor(extract(epoch FROM {0}) / 3600)::integer"
# The changed jobs are grouped by hour first, in one pass over the
# transition table; the day and all-time rows come from those few groups
# (a day is 24 whole hours since 1970), not from every job again.
_SPREAD = (
    "SELECT g.grain, CASE g.grain WHEN 0 THEN 0 WHEN 1 THEN h.created_hour / 24 ELSE h.created_hour END"
    " AS created_bucket, CASE WHEN h.finished_hour < 0 THEN -1 WHEN g.grain = 0 THEN 0"
    " WHEN g.grain = 1 THEN h.finished_hour / 24 ELSE h.finished_hour END AS finished_bucket,"
    " h.status, h.job_type, h.acknowledged{extra}, h.delta FROM ({hourly}) AS h CROSS JOIN " + _GRAINS
)


def _grouped(rows: str, columns: str) -> str:
    return f"SELECT {columns}, sum(delta) AS delta FROM ({rows}) AS x GROUP BY {columns}"


_HOURLY_KEY = "created_hour, finished_hour, status, job_type, acknowledged"


def _hourly_rows(table: str, delta: str) -> str:
    return (
        f"SELECT {_HOUR.format('j.created_at')} AS created_hour,"
        f" coalesce({_HOUR.format('j.completed_at')}, -1) AS finished_hour,"
        f" j.status, j.job_type, j.acknowledged_at IS NOT NULL AS acknowledged, {delta} AS delta FROM {table} AS j"
    )


def _key_rows(table: str, delta: str) -> str:
    """Rows ``(key..., delta)`` of the jobs of ``table`` at every grain (not grouped)."""
    return _SPREAD.format(extra="", hourly=_grouped(_hourly_rows(table, delta), _HOURLY_KEY))


def _code_rows(table: str, delta: str) -> str:
    """Rows ``(code key..., delta)``: one per job, code and grain (not grouped).

    The items are unpacked inline (a set-returning function per job costs
    a call each) and only for jobs whose ``errors`` is an array.
    """
    codes = (
        "SELECT item ->> 'code' AS code,"
        " bool_or(coalesce(item ->> 'severity', '') NOT IN ('warning', 'information')) AS has_error,"
        " bool_or(coalesce(item ->> 'severity', '') = 'warning') AS has_warning"
        " FROM jsonb_array_elements(j.error_details -> 'errors') AS item"
        " WHERE jsonb_typeof(item -> 'code') = 'string' GROUP BY 1"
    )
    hourly = (
        f"SELECT {_HOUR.format('j.created_at')} AS created_hour,"
        f" coalesce({_HOUR.format('j.completed_at')}, -1) AS finished_hour,"
        " j.status, j.job_type, j.acknowledged_at IS NOT NULL AS acknowledged,"
        f" c.code, c.has_error, c.has_warning, {delta} AS delta"
        f" FROM {table} AS j CROSS JOIN LATERAL ({codes}) AS c"
        " WHERE jsonb_typeof(j.error_details -> 'errors') = 'array'"
    )
    return _SPREAD.format(extra=", h.code, h.has_error, h.has_warning",
                          hourly=_grouped(hourly, _HOURLY_KEY + ", code, has_error, has_warning"))


def _postgresql_function(name: str, count_rows: str, code_rows: str) -> str:
    shard = f"(pg_backend_pid() % {SHARDS})::smallint"
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        + _UPSERT.format(table="job_count_rollups", key=KEY, shard=shard, rows=count_rows)
        + _UPSERT.format(table="job_code_rollups", key=CODE_KEY, shard=shard, rows=code_rows)
        + "  RETURN NULL;\nEND $$;\n"
    )


def _postgresql_sql() -> list[str]:
    # An UPDATE counts the changed rows' old values out and new ones in;
    # rows whose counted columns did not change are left out, and keys that
    # cancel out (HAVING sum <> 0) write nothing.
    changed = "SELECT {side}.* FROM old_rows o JOIN new_rows n USING (id) WHERE {cond}"
    key_changed = (
        "(o.status, o.job_type, o.created_at, o.completed_at, o.acknowledged_at IS NULL)"
        " IS DISTINCT FROM (n.status, n.job_type, n.created_at, n.completed_at, n.acknowledged_at IS NULL)"
    )
    code_changed = key_changed + " OR o.error_details IS DISTINCT FROM n.error_details"

    def side(name: str, cond: str) -> str:
        return "(" + changed.format(side=name, cond=cond) + ")"

    return [
        _postgresql_function("job_rollups_insert", _key_rows("new_rows", "1"), _code_rows("new_rows", "1")),
        _postgresql_function("job_rollups_delete", _key_rows("old_rows", "-1"), _code_rows("old_rows", "-1")),
        _postgresql_function(
            "job_rollups_update",
            _key_rows(side("n", key_changed), "1") + " UNION ALL " + _key_rows(side("o", key_changed), "-1"),
            _code_rows(side("n", code_changed), "1") + " UNION ALL " + _code_rows(side("o", code_changed), "-1"),
        ),
        """CREATE FUNCTION job_rollups_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM job_count_rollups;
  DELETE FROM job_code_rollups;
  RETURN NULL;
END $$;""",
        "CREATE TRIGGER job_rollups_insert AFTER INSERT ON processing_jobs"
        " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_rollups_insert()",
        "CREATE TRIGGER job_rollups_delete AFTER DELETE ON processing_jobs"
        " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_rollups_delete()",
        "CREATE TRIGGER job_rollups_update AFTER UPDATE ON processing_jobs"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION job_rollups_update()",
        "CREATE TRIGGER job_rollups_truncate AFTER TRUNCATE ON processing_jobs"
        " FOR EACH STATEMENT EXECUTE FUNCTION job_rollups_truncate()",
    ]


_SQLITE_GRAINS = "(SELECT 0 AS grain UNION ALL SELECT 1 UNION ALL SELECT 2) AS g"


def _sqlite_bucket(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL THEN -1 WHEN g.grain = 0 THEN 0"
        f" ELSE CAST(strftime('%s', {column}) AS INTEGER) / CASE WHEN g.grain = 1 THEN 86400 ELSE 3600 END END"
    )


def _sqlite_key(row: str) -> str:
    return (
        f"g.grain, {_sqlite_bucket(row + '.created_at')}, {_sqlite_bucket(row + '.completed_at')},"
        f" {row}.status, {row}.job_type, {row}.acknowledged_at IS NOT NULL"
    )


def _sqlite_items(details: str) -> str:
    """The codes of a job's details, once per item: ``(code, is_error, is_warning)``."""
    # CASE, not AND: SQLite does not promise to evaluate AND left to right,
    # and json_type()/json_extract() raise on an item that is not JSON.
    code = ("CASE WHEN type = 'object' THEN CASE WHEN json_type(value, '$.code') = 'text'"
            " THEN json_extract(value, '$.code') END END")
    severity = "CASE WHEN type = 'object' THEN coalesce(json_extract(value, '$.severity'), '') END"
    return (
        f"SELECT {code} AS code, {severity} NOT IN ('warning', 'information') AS is_error,"
        f" {severity} = 'warning' AS is_warning"
        f" FROM json_each(CASE WHEN json_type({details}, '$.errors') = 'array'"
        f" THEN json_extract({details}, '$.errors') ELSE '[]' END)"
    )


def _sqlite_statements(row: str, delta: int) -> str:
    """Add ``delta`` to the rollups of the job ``row`` (NEW or OLD), at every grain."""
    return f"""
  INSERT INTO job_count_rollups ({KEY}, shard, jobs)
  SELECT {_sqlite_key(row)}, 0, {delta} FROM {_SQLITE_GRAINS} WHERE true
  ON CONFLICT ({KEY}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;
  INSERT INTO job_code_rollups ({CODE_KEY}, shard, jobs)
  SELECT {_sqlite_key(row)}, i.code, max(i.is_error), max(i.is_warning), 0, {delta}
  FROM {_SQLITE_GRAINS}, ({_sqlite_items(row + '.error_details')}) AS i
  WHERE i.code IS NOT NULL
  GROUP BY g.grain, i.code
  ON CONFLICT ({CODE_KEY}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;"""


def _sqlite_sql() -> list[str]:
    watched = ("status", "job_type", "created_at", "completed_at", "acknowledged_at", "error_details")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in watched)
    return [
        f"CREATE TRIGGER job_rollups_insert AFTER INSERT ON processing_jobs BEGIN{_sqlite_statements('NEW', 1)}\nEND",
        f"CREATE TRIGGER job_rollups_delete AFTER DELETE ON processing_jobs BEGIN{_sqlite_statements('OLD', -1)}\nEND",
        f"CREATE TRIGGER job_rollups_update AFTER UPDATE OF {', '.join(watched)} ON processing_jobs"
        f" WHEN {changed} BEGIN{_sqlite_statements('OLD', -1)}{_sqlite_statements('NEW', 1)}\nEND",
    ]


def _backfill(dialect: str) -> list[str]:
    """The triggers' rows for every existing job, grouped once (shard 0)."""
    if dialect == "postgresql":
        counts = _key_rows("processing_jobs", "1")
        codes = _code_rows("processing_jobs", "1")
        return [
            f"INSERT INTO job_count_rollups ({KEY}, shard, jobs)"
            f" SELECT {KEY}, 0, sum(delta) FROM ({counts}) AS c GROUP BY {KEY}",
            f"INSERT INTO job_code_rollups ({CODE_KEY}, shard, jobs)"
            f" SELECT {CODE_KEY}, 0, sum(delta) FROM ({codes}) AS c GROUP BY {CODE_KEY}",
        ]
    # SQLite has no LATERAL subquery: the items' expressions over json_each() joined to each job.
    code = ("CASE WHEN e.type = 'object' THEN CASE WHEN json_type(e.value, '$.code') = 'text'"
            " THEN json_extract(e.value, '$.code') END END")
    severity = "CASE WHEN e.type = 'object' THEN coalesce(json_extract(e.value, '$.severity'), '') END"
    per_job_code = (
        f"SELECT j.created_at, j.completed_at, j.status, j.job_type, j.acknowledged_at, {code} AS code,"
        f" max({severity} NOT IN ('warning', 'information')) AS has_error, max({severity} = 'warning') AS has_warning"
        " FROM processing_jobs AS j, json_each(CASE WHEN json_type(j.error_details, '$.errors') = 'array'"
        " THEN json_extract(j.error_details, '$.errors') ELSE '[]' END) AS e"
        f" WHERE {code} IS NOT NULL GROUP BY j.id, {code}"
    )
    return [
        f"INSERT INTO job_count_rollups ({KEY}, shard, jobs)"
        f" SELECT {_sqlite_key('j')}, 0, count(*) FROM processing_jobs AS j, {_SQLITE_GRAINS}"
        " WHERE true GROUP BY 1, 2, 3, 4, 5, 6",
        f"INSERT INTO job_code_rollups ({CODE_KEY}, shard, jobs)"
        f" SELECT {_sqlite_key('j')}, j.code, j.has_error, j.has_warning, 0, count(*)"
        f" FROM ({per_job_code}) AS j, {_SQLITE_GRAINS} WHERE true GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
    ]


def upgrade():
    def key_columns() -> list[sa.Column]:
        return [
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("created_bucket", sa.Integer(), nullable=False),
        sa.Column("finished_bucket", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("job_type", sa.String(length=64), nullable=False),
        sa.Column("acknowledged", sa.Boolean(), nullable=False),
        ]

    op.create_table(
        "job_count_rollups",
        *key_columns(),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*KEY.split(", "), "shard", name=op.f("pk_job_count_rollups")),
        postgresql_partition_by="LIST (grain)",
    )
    op.create_table(
        "job_code_rollups",
        *key_columns(),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("has_error", sa.Boolean(), nullable=False),
        sa.Column("has_warning", sa.Boolean(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*CODE_KEY.split(", "), "shard", name=op.f("pk_job_code_rollups")),
        postgresql_partition_by="LIST (grain)",
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # One partition per grain: the all-time rows (what a filter without
        # a range sums) sit on a few pages of their own instead of scattered
        # among the hour rows (3,260 pages for 6,724 rows at 200,000 jobs).
        for table in ("job_count_rollups", "job_code_rollups"):
            for grain, name in ((0, "all"), (1, "day"), (2, "hour")):
                op.execute(f"CREATE TABLE {table}_{name} PARTITION OF {table} FOR VALUES IN ({grain})")
    op.create_index("ix_job_code_rollups_grain_code_created_bucket", "job_code_rollups",
                    ["grain", "code", "created_bucket"])
    if dialect == "postgresql":
        op.execute(POSTGRESQL_FUNCTIONS)  # the backfill uses them
    for statement in _backfill(dialect):
        op.execute(statement)
    for statement in _postgresql_sql() if dialect == "postgresql" else _sqlite_sql():
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    for event in ("insert", "update", "delete") + (("truncate",) if dialect == "postgresql" else ()):
        op.execute(f"DROP TRIGGER job_rollups_{event}" + (" ON processing_jobs" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        for function in ("job_rollups_insert()", "job_rollups_update()", "job_rollups_delete()",
                         "job_rollups_truncate()", "job_rollup_codes(jsonb)", "job_rollup_bucket(smallint, timestamptz)"):
            op.execute(f"DROP FUNCTION {function}")
    op.drop_index("ix_job_code_rollups_grain_code_created_bucket", table_name="job_code_rollups")
    op.drop_table("job_code_rollups")
    op.drop_table("job_count_rollups")
