"""job_code_rollups: week rows, so a month's top codes sum weeks, not days

Revision ID: 0026_code_rollup_weeks
Revises: 0025_resolved_in_worker
Create Date: 2026-12-05

The top codes of a range without a code or group filter sum every code of
every day in it: 49,957 day rows for 27 days at 10,000,000 jobs, about 47
of the 28-day summary's 85 ms (docs/benchmarks.md). Nearly every code
appears on every day, so a week holds about as many keys as a day: the
code rollup now also counts each job per week of 7 days since
1970-01-01T00:00Z (grain 3, ``floor(epoch / 604800)``; a week runs Thursday
to Wednesday, UTC), and a range reads its whole weeks there, then days,
hours and partial hours as before (app/services/summary_counts.py).

Only ``job_code_rollups`` gets weeks: the count rollup's days are a few
rows each, and the pair and group-code rollups are read for one code or
group. The writer's cost: one more row per code of a changed job in the
code rollup's grouped upsert (PostgreSQL), one more upsert per code
(SQLite).

* PostgreSQL: a ``job_code_rollups_week`` partition; ``job_rollups_insert``,
  ``_delete`` and ``_update`` (0015) re-created to spread code rows over
  four grains; ``job_rollup_bucket()`` (0022's) numbers weeks too (the
  benchmark's loader uses it). ``processing_jobs`` is locked against
  writers (SHARE) while the functions change and the week rows are summed
  from the day rows, so no write is counted by one and not the other.
* SQLite: the three row triggers re-created the same way; the week rows
  summed from the day rows.
"""

from alembic import op

revision = "0026_code_rollup_weeks"
down_revision = "0025_resolved_in_worker"
branch_labels = None
depends_on = None

KEY = "grain, created_bucket, finished_bucket, status, job_type, acknowledged"
CODE_KEY = KEY + ", code, has_error, has_warning"
SHARDS = 8
WEEK = 3

# ---------------------------------------------------------------- PostgreSQL
# 0015's trigger functions, written for a set of code-rollup grains.

_BUCKET = """CREATE OR REPLACE FUNCTION job_rollup_bucket(grain smallint, moment timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN moment IS NULL THEN -1 WHEN grain = 0 THEN 0
              ELSE floor(extract(epoch FROM moment - timestamptz '1970-01-01 00:00:00+00')
                         / CASE grain WHEN 1 THEN 86400 WHEN 3 THEN 604800 ELSE 3600 END)::integer END
$$"""
#: 0022's, for the downgrade.
_OLD_BUCKET = """CREATE OR REPLACE FUNCTION job_rollup_bucket(grain smallint, moment timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN moment IS NULL THEN -1 WHEN grain = 0 THEN 0
              ELSE floor(extract(epoch FROM moment - timestamptz '1970-01-01 00:00:00+00') / CASE WHEN grain = 1 THEN 86400 ELSE 3600 END)::integer END
$$"""

_UPSERT = """
    INSERT INTO {table} AS r ({key}, shard, jobs)
    SELECT {key}, {shard}, sum(delta) FROM ({rows}) AS changes
    GROUP BY {key} HAVING sum(delta) <> 0 ORDER BY {key}
    ON CONFLICT ({key}, shard) DO UPDATE SET jobs = r.jobs + EXCLUDED.jobs;
"""
_HOUR = "floor(extract(epoch FROM {0}) / 3600)::integer"
_HOURLY_KEY = "created_hour, finished_hour, status, job_type, acknowledged"


def _grains(weeks: bool) -> str:
    values = "(0::smallint), (1::smallint), (2::smallint)" + (", (3::smallint)" if weeks else "")
    return f"(VALUES {values}) AS g(grain)"


def _spread(extra: str, hourly: str, weeks: bool) -> str:
    # The changed jobs grouped by hour first; the other grains' rows come
    # from those few groups (a day is 24 whole hours since 1970, a week 168).
    created_week = " WHEN 3 THEN h.created_hour / 168" if weeks else ""
    finished_week = " WHEN g.grain = 3 THEN h.finished_hour / 168" if weeks else ""
    return (
        f"SELECT g.grain, CASE g.grain WHEN 0 THEN 0 WHEN 1 THEN h.created_hour / 24{created_week}"
        " ELSE h.created_hour END AS created_bucket,"
        " CASE WHEN h.finished_hour < 0 THEN -1 WHEN g.grain = 0 THEN 0"
        f" WHEN g.grain = 1 THEN h.finished_hour / 24{finished_week} ELSE h.finished_hour END AS finished_bucket,"
        f" h.status, h.job_type, h.acknowledged{extra}, h.delta FROM ({hourly}) AS h CROSS JOIN {_grains(weeks)}"
    )


def _grouped(rows: str, columns: str) -> str:
    return f"SELECT {columns}, sum(delta) AS delta FROM ({rows}) AS x GROUP BY {columns}"


def _key_rows(table: str, delta: str) -> str:
    hourly = (
        f"SELECT {_HOUR.format('j.created_at')} AS created_hour,"
        f" coalesce({_HOUR.format('j.completed_at')}, -1) AS finished_hour,"
        f" j.status, j.job_type, j.acknowledged_at IS NOT NULL AS acknowledged, {delta} AS delta FROM {table} AS j"
    )
    return _spread("", _grouped(hourly, _HOURLY_KEY), weeks=False)


def _code_rows(table: str, delta: str, weeks: bool) -> str:
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
    return _spread(", h.code, h.has_error, h.has_warning",
                   _grouped(hourly, _HOURLY_KEY + ", code, has_error, has_warning"), weeks)


def _function(name: str, count_rows: str, code_rows: str) -> str:
    shard = f"(pg_backend_pid() % {SHARDS})::smallint"
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        + _UPSERT.format(table="job_count_rollups", key=KEY, shard=shard, rows=count_rows)
        + _UPSERT.format(table="job_code_rollups", key=CODE_KEY, shard=shard, rows=code_rows)
        + "  RETURN NULL;\nEND $$;\n"
    )


def _postgresql_functions(weeks: bool) -> list[str]:
    changed = "SELECT {side}.* FROM old_rows o JOIN new_rows n USING (id) WHERE {cond}"
    key_changed = (
        "(o.status, o.job_type, o.created_at, o.completed_at, o.acknowledged_at IS NULL)"
        " IS DISTINCT FROM (n.status, n.job_type, n.created_at, n.completed_at, n.acknowledged_at IS NULL)"
    )
    code_changed = key_changed + " OR o.error_details IS DISTINCT FROM n.error_details"

    def side(name: str, cond: str) -> str:
        return "(" + changed.format(side=name, cond=cond) + ")"

    return [
        _function("job_rollups_insert", _key_rows("new_rows", "1"), _code_rows("new_rows", "1", weeks)),
        _function("job_rollups_delete", _key_rows("old_rows", "-1"), _code_rows("old_rows", "-1", weeks)),
        _function(
            "job_rollups_update",
            _key_rows(side("n", key_changed), "1") + " UNION ALL " + _key_rows(side("o", key_changed), "-1"),
            _code_rows(side("n", code_changed), "1", weeks)
            + " UNION ALL " + _code_rows(side("o", code_changed), "-1", weeks),
        ),
    ]


# -------------------------------------------------------------------- SQLite
# 0015's row triggers, written for a set of code-rollup grains.


def _sqlite_grains(weeks: bool) -> str:
    return "(SELECT 0 AS grain UNION ALL SELECT 1 UNION ALL SELECT 2" + (" UNION ALL SELECT 3" if weeks else "") + ") AS g"


def _sqlite_bucket(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL THEN -1 WHEN g.grain = 0 THEN 0"
        f" ELSE CAST(strftime('%s', {column}) AS INTEGER)"
        " / CASE g.grain WHEN 1 THEN 86400 WHEN 3 THEN 604800 ELSE 3600 END END"
    )


def _sqlite_key(row: str) -> str:
    return (
        f"g.grain, {_sqlite_bucket(row + '.created_at')}, {_sqlite_bucket(row + '.completed_at')},"
        f" {row}.status, {row}.job_type, {row}.acknowledged_at IS NOT NULL"
    )


def _sqlite_items(details: str) -> str:
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


def _sqlite_statements(row: str, delta: int, weeks: bool) -> str:
    return f"""
  INSERT INTO job_count_rollups ({KEY}, shard, jobs)
  SELECT {_sqlite_key(row)}, 0, {delta} FROM {_sqlite_grains(False)} WHERE true
  ON CONFLICT ({KEY}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;
  INSERT INTO job_code_rollups ({CODE_KEY}, shard, jobs)
  SELECT {_sqlite_key(row)}, i.code, max(i.is_error), max(i.is_warning), 0, {delta}
  FROM {_sqlite_grains(weeks)}, ({_sqlite_items(row + '.error_details')}) AS i
  WHERE i.code IS NOT NULL
  GROUP BY g.grain, i.code
  ON CONFLICT ({CODE_KEY}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;"""


def _sqlite_triggers(weeks: bool) -> list[str]:
    watched = ("status", "job_type", "created_at", "completed_at", "acknowledged_at", "error_details")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in watched)
    return [
        "DROP TRIGGER job_rollups_insert",
        "DROP TRIGGER job_rollups_delete",
        "DROP TRIGGER job_rollups_update",
        "CREATE TRIGGER job_rollups_insert AFTER INSERT ON processing_jobs"
        f" BEGIN{_sqlite_statements('NEW', 1, weeks)}\nEND",
        "CREATE TRIGGER job_rollups_delete AFTER DELETE ON processing_jobs"
        f" BEGIN{_sqlite_statements('OLD', -1, weeks)}\nEND",
        f"CREATE TRIGGER job_rollups_update AFTER UPDATE OF {', '.join(watched)} ON processing_jobs"
        f" WHEN {changed} BEGIN{_sqlite_statements('OLD', -1, weeks)}{_sqlite_statements('NEW', 1, weeks)}\nEND",
    ]


# ------------------------------------------------------------------ both

#: The week rows, summed from the day rows (a week is 7 whole days since 1970).
_WEEKS_FROM_DAYS = (
    f"INSERT INTO job_code_rollups ({CODE_KEY}, shard, jobs)"
    f" SELECT {WEEK}, created_bucket / 7, CASE WHEN finished_bucket < 0 THEN -1 ELSE finished_bucket / 7 END,"
    " status, job_type, acknowledged, code, has_error, has_warning, 0, sum(jobs)"
    " FROM job_code_rollups WHERE grain = 1"
    " GROUP BY 2, 3, status, job_type, acknowledged, code, has_error, has_warning HAVING sum(jobs) <> 0"
)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE processing_jobs IN SHARE MODE")
        op.execute(f"CREATE TABLE job_code_rollups_week PARTITION OF job_code_rollups FOR VALUES IN ({WEEK})")
        op.execute(_BUCKET)
        for statement in _postgresql_functions(weeks=True):
            op.execute(statement)
    else:
        for statement in _sqlite_triggers(weeks=True):
            op.execute(statement)
    op.execute(_WEEKS_FROM_DAYS)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE processing_jobs IN SHARE MODE")
        for statement in _postgresql_functions(weeks=False):
            op.execute(statement)
        op.execute(_OLD_BUCKET)
        op.execute("DROP TABLE job_code_rollups_week")
    else:
        for statement in _sqlite_triggers(weeks=False):
            op.execute(statement)
        op.execute(f"DELETE FROM job_code_rollups WHERE grain = {WEEK}")
