"""job_count_rollups, job_code_rollups: exact summary counts kept by triggers

Revision ID: 0014_job_rollups
Revises: 0013_group_hourly_cover
Create Date: 2026-12-03

Write-time rollups of processing_jobs for the /jobs summary
(docs/summary-counts.md, app/models/job_rollup.py). Triggers keep them, so
every write path does, in the writer's transaction:

* PostgreSQL: statement-level AFTER INSERT / UPDATE / DELETE triggers with
  transition tables: one grouped upsert per statement (a COPY of a million
  rows is one statement, not a million upserts), rows in key order so two
  writers lock rollup rows in the same order; the shard is the backend's
  pid modulo 8. TRUNCATE empties the rollups.
* SQLite: row-level triggers (the only kind), shard 0.

The tables are filled from the existing jobs here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_job_rollups"
down_revision = "0013_group_hourly_cover"
branch_labels = None
depends_on = None

KEY = "created_hour, finished_hour, status, job_type, acknowledged"
CODE_KEY = KEY + ", code, has_error, has_warning"

POSTGRESQL_FUNCTIONS = """
CREATE FUNCTION job_rollup_hour(moment timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN moment IS NULL THEN -1 ELSE floor(extract(epoch FROM moment) / 3600)::integer END
$$;

-- The codes of an error-details document, once each, with their kinds: the
-- string "code" of object items of an "errors" array (the error_code
-- filter's containment query matches exactly these).
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

# One function per event: a transition table is only visible to the
# trigger that declares it, and plpgsql plans each statement on first use.
_COUNT_UPSERT = """
    INSERT INTO job_count_rollups AS r ({key}, shard, jobs)
    SELECT {key}, {shard}, sum(delta) FROM ({rows}) AS changes
    GROUP BY {key} HAVING sum(delta) <> 0 ORDER BY {key}
    ON CONFLICT ({key}, shard) DO UPDATE SET jobs = r.jobs + EXCLUDED.jobs;
"""
_CODE_UPSERT = """
    INSERT INTO job_code_rollups AS r ({code_key}, shard, jobs)
    SELECT {code_key}, {shard}, sum(delta) FROM ({rows}) AS changes
    GROUP BY {code_key} HAVING sum(delta) <> 0 ORDER BY {code_key}
    ON CONFLICT ({code_key}, shard) DO UPDATE SET jobs = r.jobs + EXCLUDED.jobs;
"""


def _key_rows(table: str, delta: str) -> str:
    return (
        f"SELECT job_rollup_hour(j.created_at) AS created_hour, job_rollup_hour(j.completed_at) AS finished_hour,"
        f" j.status, j.job_type, j.acknowledged_at IS NOT NULL AS acknowledged, {delta} AS delta FROM {table} AS j"
    )


def _code_rows(table: str, delta: str) -> str:
    return (
        f"SELECT job_rollup_hour(j.created_at) AS created_hour, job_rollup_hour(j.completed_at) AS finished_hour,"
        f" j.status, j.job_type, j.acknowledged_at IS NOT NULL AS acknowledged,"
        f" c.code, c.has_error, c.has_warning, {delta} AS delta"
        f" FROM {table} AS j CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c"
    )


def _postgresql_function(name: str, count_rows: str, code_rows: str) -> str:
    shard = "(pg_backend_pid() % 8)::smallint"
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        + _COUNT_UPSERT.format(key=KEY, shard=shard, rows=count_rows)
        + _CODE_UPSERT.format(code_key=CODE_KEY, shard=shard, rows=code_rows)
        + "  RETURN NULL;\nEND $$;\n"
    )


def _postgresql_sql() -> list[str]:
    # An UPDATE counts the old rows out and the new ones in; keys that did
    # not change cancel out (HAVING sum <> 0) and write nothing.
    changed = "SELECT o.* FROM old_rows o JOIN new_rows n USING (id) WHERE {cond}"
    key_changed = (
        "(o.status, o.job_type, o.created_at, o.completed_at, o.acknowledged_at IS NULL)"
        " IS DISTINCT FROM (n.status, n.job_type, n.created_at, n.completed_at, n.acknowledged_at IS NULL)"
    )
    code_changed = key_changed + " OR o.error_details IS DISTINCT FROM n.error_details"
    old_keys = f"({changed.format(cond=key_changed)})"
    new_keys = old_keys.replace("SELECT o.*", "SELECT n.*")
    old_codes = f"({changed.format(cond=code_changed)})"
    new_codes = old_codes.replace("SELECT o.*", "SELECT n.*")
    return [
        _postgresql_function("job_rollups_insert", _key_rows("new_rows", "1"), _code_rows("new_rows", "1")),
        _postgresql_function("job_rollups_delete", _key_rows("old_rows", "-1"), _code_rows("old_rows", "-1")),
        _postgresql_function(
            "job_rollups_update",
            _key_rows(new_keys, "1") + " UNION ALL " + _key_rows(old_keys, "-1"),
            _code_rows(new_codes, "1") + " UNION ALL " + _code_rows(old_codes, "-1"),
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


def _sqlite_hour(column: str) -> str:
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / 3600)"


def _sqlite_key(row: str) -> str:
    finished = f"CASE WHEN {row}.completed_at IS NULL THEN -1 ELSE {_sqlite_hour(row + '.completed_at')} END"
    return (
        f"{_sqlite_hour(row + '.created_at')}, {finished}, {row}.status, {row}.job_type,"
        f" {row}.acknowledged_at IS NOT NULL"
    )


def _sqlite_statements(row: str, delta: int) -> str:
    """Add ``delta`` to the rollups of the job ``row`` (NEW or OLD)."""
    details = f"{row}.error_details"
    # CASE, not AND: SQLite does not promise to evaluate AND left to right,
    # and json_type()/json_extract() raise on an item that is not JSON.
    items = (
        f"json_each(CASE WHEN json_type({details}, '$.errors') = 'array'"
        f" THEN json_extract({details}, '$.errors') ELSE '[]' END)"
    )
    code = "CASE WHEN type = 'object' THEN CASE WHEN json_type(value, '$.code') = 'text' THEN json_extract(value, '$.code') END END"
    severity = "CASE WHEN type = 'object' THEN coalesce(json_extract(value, '$.severity'), '') END"
    return f"""
  INSERT INTO job_count_rollups ({KEY}, shard, jobs)
  VALUES ({_sqlite_key(row)}, 0, {delta})
  ON CONFLICT ({KEY}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;
  INSERT INTO job_code_rollups ({CODE_KEY}, shard, jobs)
  SELECT {_sqlite_key(row)}, code, max(is_error), max(is_warning), 0, {delta}
  FROM (SELECT {code} AS code,
               {severity} NOT IN ('warning', 'information') AS is_error,
               {severity} = 'warning' AS is_warning
        FROM {items}) AS items
  WHERE code IS NOT NULL
  GROUP BY code
  ON CONFLICT ({CODE_KEY}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;"""


def _sqlite_sql() -> list[str]:
    watched = "status, job_type, created_at, completed_at, acknowledged_at, error_details"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in watched.split(", "))
    return [
        f"CREATE TRIGGER job_rollups_insert AFTER INSERT ON processing_jobs BEGIN{_sqlite_statements('NEW', 1)}\nEND",
        f"CREATE TRIGGER job_rollups_delete AFTER DELETE ON processing_jobs BEGIN{_sqlite_statements('OLD', -1)}\nEND",
        f"CREATE TRIGGER job_rollups_update AFTER UPDATE OF {watched} ON processing_jobs"
        f" WHEN {changed} BEGIN{_sqlite_statements('OLD', -1)}{_sqlite_statements('NEW', 1)}\nEND",
    ]


def _backfill(dialect: str) -> list[str]:
    if dialect == "postgresql":
        counts = _key_rows("processing_jobs", "1")
        codes = _code_rows("processing_jobs", "1")
    else:
        return [
            f"INSERT INTO job_count_rollups ({KEY}, shard, jobs)"
            f" SELECT {_sqlite_key('j')}, 0, count(*) FROM processing_jobs AS j WHERE true GROUP BY 1, 2, 3, 4, 5",
            # The insert trigger's expressions, grouped over every job at once.
            _sqlite_code_backfill(),
        ]
    return [
        f"INSERT INTO job_count_rollups ({KEY}, shard, jobs) SELECT {KEY}, 0, sum(delta) FROM ({counts}) AS c GROUP BY {KEY}",
        f"INSERT INTO job_code_rollups ({CODE_KEY}, shard, jobs) SELECT {CODE_KEY}, 0, sum(delta) FROM ({codes}) AS c GROUP BY {CODE_KEY}",
    ]


def _sqlite_code_backfill() -> str:
    details = "j.error_details"
    items = (
        f"json_each(CASE WHEN json_type({details}, '$.errors') = 'array'"
        f" THEN json_extract({details}, '$.errors') ELSE '[]' END) AS i"
    )
    code = "CASE WHEN i.type = 'object' THEN CASE WHEN json_type(i.value, '$.code') = 'text' THEN json_extract(i.value, '$.code') END END"
    severity = "CASE WHEN i.type = 'object' THEN coalesce(json_extract(i.value, '$.severity'), '') END"
    per_job = (
        f"SELECT {_sqlite_hour('j.created_at')} AS created_hour,"
        f" CASE WHEN j.completed_at IS NULL THEN -1 ELSE {_sqlite_hour('j.completed_at')} END AS finished_hour,"
        f" j.status AS status, j.job_type AS job_type, j.acknowledged_at IS NOT NULL AS acknowledged,"
        f" {code} AS code,"
        f" max({severity} NOT IN ('warning', 'information')) AS has_error, max({severity} = 'warning') AS has_warning"
        f" FROM processing_jobs AS j, {items} WHERE {code} IS NOT NULL GROUP BY j.id, {code}"
    )
    return (
        f"INSERT INTO job_code_rollups ({CODE_KEY}, shard, jobs)"
        f" SELECT {CODE_KEY}, 0, count(*) FROM ({per_job}) AS c WHERE true GROUP BY {CODE_KEY}"
    )


def upgrade():
    op.create_table(
        "job_count_rollups",
        sa.Column("created_hour", sa.Integer(), nullable=False),
        sa.Column("finished_hour", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("job_type", sa.String(length=64), nullable=False),
        sa.Column("acknowledged", sa.Boolean(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "created_hour", "finished_hour", "status", "job_type", "acknowledged", "shard",
            name=op.f("pk_job_count_rollups"),
        ),
    )
    op.create_table(
        "job_code_rollups",
        sa.Column("created_hour", sa.Integer(), nullable=False),
        sa.Column("finished_hour", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("job_type", sa.String(length=64), nullable=False),
        sa.Column("acknowledged", sa.Boolean(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("has_error", sa.Boolean(), nullable=False),
        sa.Column("has_warning", sa.Boolean(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "created_hour", "finished_hour", "status", "job_type", "acknowledged", "code", "has_error",
            "has_warning", "shard", name=op.f("pk_job_code_rollups"),
        ),
    )
    op.create_index("ix_job_code_rollups_code_created_hour", "job_code_rollups", ["code", "created_hour"])
    dialect = op.get_bind().dialect.name
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
                         "job_rollups_truncate()", "job_rollup_codes(jsonb)", "job_rollup_hour(timestamptz)"):
            op.execute(f"DROP FUNCTION {function}")
    op.drop_index("ix_job_code_rollups_code_created_hour", table_name="job_code_rollups")
    op.drop_table("job_code_rollups")
    op.drop_table("job_count_rollups")
