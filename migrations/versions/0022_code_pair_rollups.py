"""job_code_pair_rollups, job_group_code_rollups: exact top codes under a code or group filter

Revision ID: 0022_code_pair_rollups
Revises: 0021_bulk_failure_seen
Create Date: 2026-12-05

The /jobs summary's top-codes table says which error codes the matching
jobs carry. Without a code or group filter it comes from job_code_rollups
(0015). Under ``error_code=a`` it needs the codes of the jobs having ``a``,
and under ``group=g`` the codes of the jobs currently failing on ``g``: no
rollup was keyed so, and the table was read from the newest 2,000 matching
jobs. Two rollups with the summary key (grain, bucket created, bucket
finished, status, job type, acknowledged) make it exact at any scale
(docs/summary-counts.md, app/models/job_rollup.py):

* ``job_code_pair_rollups``: per (code filtered by, other code listed) of
  the job's current error details; kept like job_code_rollups by triggers
  on processing_jobs. A code's own row is job_code_rollups' (a pair of a
  code with itself would repeat it), so a job with one code, the common
  case, writes no pair row;
* ``job_group_code_rollups``: per (group, code of the job), for the jobs
  with a current occurrence of the group; kept like job_group_rollups
  (0019) by triggers on failure_occurrences and processing_jobs, and also
  when a failing job's error details change (a re-failure writes the job
  and its occurrences in either order; the sums come out the same).

PostgreSQL: statement-level triggers with transition tables where 0015 and
0019 have them (one grouped upsert per statement, rows in key order, shard
``pg_backend_pid() % 8``) except for a job's update: row-level, each with
a ``WHEN`` that lets through only what can change its rows (the pairs: a
job with two items or more; the groups' codes: a job's key or items), so
that a report on a job already failing with the same items calls
nothing. And ``TRUNCATE``. SQLite: row-level triggers, shard 0. Both tables are filled
from the existing jobs and occurrences here.

Two changes to what 0015 and 0019 made, for the recorder's sake (down
restores both): job_rollup_bucket() gets a body PostgreSQL can inline
(the same numbers), and 0019's row trigger on a job's key compares the
hours written out instead of calling that function in its ``WHEN``.

The helpers below repeat 0015's and 0019's on purpose: a migration keeps
the SQL it ran.
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_code_pair_rollups"
down_revision = "0021_bulk_failure_seen"
branch_labels = None
depends_on = None

PAIRS = "job_code_pair_rollups"
GROUP_CODES = "job_group_code_rollups"
_JOB_KEY = "grain, created_bucket, finished_bucket, status, job_type, acknowledged"
_CODE = "code, has_error, has_warning"
PAIR_KEY = f"filter_code, {_JOB_KEY}, {_CODE}"
GROUP_CODE_KEY = f"group_id, {_JOB_KEY}, {_CODE}"
SHARDS = 8
#: The job columns a job's key or its codes come from.
JOB_COLUMNS = ("status", "job_type", "created_at", "completed_at", "acknowledged_at", "error_details")

_PG_GRAINS = "(VALUES (0::smallint), (1::smallint), (2::smallint)) AS g(grain)"
_PG_HOUR = "floor(extract(epoch FROM {0}) / 3600)::integer"


def _pg_upsert(table: str, key: str, rows: str) -> str:
    shard = f"(pg_backend_pid() % {SHARDS})::smallint"
    return (
        f"\n  INSERT INTO {table} AS r ({key}, shard, jobs)"
        f" SELECT {key}, {shard}, sum(delta) FROM ({rows}) AS changes"
        f" GROUP BY {key} HAVING sum(delta) <> 0 ORDER BY {key}"
        f" ON CONFLICT ({key}, shard) DO UPDATE SET jobs = r.jobs + EXCLUDED.jobs;"
    )


def _pg_function(name: str, body: str, returns: str = "NULL") -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN{body}\n"
        f"  RETURN {returns};\nEND $$;"
    )


def _pg_pair_rows(jobs: str, delta: str) -> str:
    """``(pair key..., delta)`` of the jobs of ``jobs`` at every grain: grouped
    by hour first (one pass over the jobs), then spread to days and all
    time as 0015 does (a day is 24 whole hours since 1970)."""
    hour_key = "created_hour, finished_hour, status, job_type, acknowledged, filter_code, code, has_error, has_warning"
    hourly = (
        f"SELECT {_PG_HOUR.format('j.created_at')} AS created_hour,"
        f" coalesce({_PG_HOUR.format('j.completed_at')}, -1) AS finished_hour,"
        " j.status, j.job_type, j.acknowledged_at IS NOT NULL AS acknowledged,"
        f" f.code AS filter_code, c.code, c.has_error, c.has_warning, {delta} AS delta"
        f" FROM {jobs} AS j CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c"
        " CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS f"
        " WHERE jsonb_typeof(j.error_details -> 'errors') = 'array' AND f.code <> c.code"
    )
    grouped = f"SELECT {hour_key}, sum(delta) AS delta FROM ({hourly}) AS x GROUP BY {hour_key}"
    return (
        "SELECT h.filter_code, g.grain,"
        " CASE g.grain WHEN 0 THEN 0 WHEN 1 THEN h.created_hour / 24 ELSE h.created_hour END AS created_bucket,"
        " CASE WHEN h.finished_hour < 0 THEN -1 WHEN g.grain = 0 THEN 0"
        " WHEN g.grain = 1 THEN h.finished_hour / 24 ELSE h.finished_hour END AS finished_bucket,"
        " h.status, h.job_type, h.acknowledged, h.code, h.has_error, h.has_warning, h.delta"
        f" FROM ({grouped}) AS h CROSS JOIN {_PG_GRAINS}"
    )


def _pg_group_code_rows(occurrences: str, condition: str, delta: str) -> str:
    """``(group code key..., delta)`` for each row of ``occurrences`` (alias
    c), at its job's key and codes as the job is now."""
    return (
        "SELECT c.group_id, g.grain, job_rollup_bucket(g.grain, j.created_at) AS created_bucket,"
        " job_rollup_bucket(g.grain, j.completed_at) AS finished_bucket, j.status, j.job_type,"
        " j.acknowledged_at IS NOT NULL AS acknowledged, x.code, x.has_error, x.has_warning,"
        f" {delta} AS delta FROM {occurrences} AS c JOIN processing_jobs AS j ON j.id = c.job_id"
        f" CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS x CROSS JOIN {_PG_GRAINS} WHERE {condition}"
    )


def _pg_key(row: str) -> str:
    """The key of the job ``row`` (OLD or NEW) as a trigger's ``WHEN``
    compares it: status, type, acknowledged, the hours of its creation and
    completion. Written out, not through job_rollup_bucket(): a ``WHEN``
    is not planned, so an SQL function there is never inlined and each
    call runs through the SQL-function executor."""
    return (f"{row}.status, {row}.job_type, {row}.acknowledged_at IS NULL,"
            f" floor(extract(epoch FROM {row}.created_at) / 3600), floor(extract(epoch FROM {row}.completed_at) / 3600)")


def _pg_job_moved() -> str:
    """True when a job's key or its error items changed (the rest of the
    details, and a report's new message, decide no code)."""
    return (f"({_pg_key('OLD')}, OLD.error_details -> 'errors')"
            f" IS DISTINCT FROM ({_pg_key('NEW')}, NEW.error_details -> 'errors')")


def _pg_several_items(row: str) -> str:
    """True when the job ``row`` (OLD or NEW) has an ``errors`` array of two
    items or more: only such a job can have a pair of codes."""
    errors = f"{row}.error_details -> 'errors'"
    return f"(CASE WHEN jsonb_typeof({errors}) = 'array' THEN jsonb_array_length({errors}) ELSE 0 END > 1)"


#: job_rollup_bucket() (0015) as it was, and as it is from here on: the same
#: numbers, from immutable operators only. Declared IMMUTABLE, the old body
#: called extract() on a timestamptz, which is STABLE, so PostgreSQL never
#: inlined it: every call in the triggers' statements ran the SQL-function
#: executor (32 calls per report on a job already failing on one group).
_BUCKET_FUNCTION = """CREATE OR REPLACE FUNCTION job_rollup_bucket(grain smallint, moment timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN moment IS NULL THEN -1 WHEN grain = 0 THEN 0
              ELSE floor(extract(epoch FROM {moment}) / CASE WHEN grain = 1 THEN 86400 ELSE 3600 END)::integer END
$$"""
OLD_BUCKET = _BUCKET_FUNCTION.format(moment="moment")
NEW_BUCKET = _BUCKET_FUNCTION.format(moment="moment - timestamptz '1970-01-01 00:00:00+00'")


def _group_job_trigger(when: str) -> list[str]:
    """0019's row trigger on a job's key, re-created with ``when``."""
    columns = "status, job_type, created_at, completed_at, acknowledged_at"
    return [
        "DROP TRIGGER job_group_rollups_job_update ON processing_jobs",
        f"CREATE TRIGGER job_group_rollups_job_update AFTER UPDATE OF {columns} ON processing_jobs"
        f" FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION job_group_rollups_job_update()",
    ]


def _old_group_job_when() -> str:
    def key(row: str) -> str:
        return (f"{row}.status, {row}.job_type, {row}.acknowledged_at IS NULL,"
                f" job_rollup_bucket(2::smallint, {row}.created_at), job_rollup_bucket(2::smallint, {row}.completed_at)")
    return f"({key('OLD')}) IS DISTINCT FROM ({key('NEW')})"


def _postgresql_sql() -> list[str]:
    changed_occurrences = (
        "(SELECT {side}.* FROM old_rows o JOIN new_rows n USING (id)"
        " WHERE (o.is_current, o.group_id, o.job_id) IS DISTINCT FROM (n.is_current, n.group_id, n.job_id))"
    )
    return [
        NEW_BUCKET,
        # 0019's trigger, with its key written out (see _pg_key).
        *_group_job_trigger(f"({_pg_key('OLD')}) IS DISTINCT FROM ({_pg_key('NEW')})"),
        _pg_function("job_code_pair_rollups_insert", _pg_upsert(PAIRS, PAIR_KEY, _pg_pair_rows("new_rows", "1"))),
        _pg_function("job_code_pair_rollups_delete", _pg_upsert(PAIRS, PAIR_KEY, _pg_pair_rows("old_rows", "-1"))),
        # Row-level, with a WHEN that lets through only a job with two
        # items or more (before or after) whose key or items changed: a
        # report on a job with one code, the common case, calls nothing.
        _pg_function("job_code_pair_rollups_update", _pg_upsert(
            PAIRS, PAIR_KEY,
            "SELECT f.code AS filter_code, g.grain, job_rollup_bucket(g.grain, k.created_at) AS created_bucket,"
            " job_rollup_bucket(g.grain, k.completed_at) AS finished_bucket, k.status, k.job_type, k.acknowledged,"
            " c.code, c.has_error, c.has_warning, k.delta FROM (VALUES"
            " (OLD.created_at, OLD.completed_at, OLD.status, OLD.job_type, OLD.acknowledged_at IS NOT NULL,"
            " OLD.error_details, -1),"
            " (NEW.created_at, NEW.completed_at, NEW.status, NEW.job_type, NEW.acknowledged_at IS NOT NULL,"
            " NEW.error_details, 1))"
            " AS k(created_at, completed_at, status, job_type, acknowledged, details, delta)"
            " CROSS JOIN LATERAL job_rollup_codes(k.details) AS c CROSS JOIN LATERAL job_rollup_codes(k.details) AS f"
            f" CROSS JOIN {_PG_GRAINS} WHERE f.code <> c.code")),
        _pg_function("job_code_pair_rollups_truncate", f"\n  DELETE FROM {PAIRS};"),
        _pg_function("job_group_code_rollups_occurrence_insert", _pg_upsert(
            GROUP_CODES, GROUP_CODE_KEY, _pg_group_code_rows("new_rows", "c.is_current", "1"))),
        _pg_function("job_group_code_rollups_occurrence_delete", _pg_upsert(
            GROUP_CODES, GROUP_CODE_KEY, _pg_group_code_rows("old_rows", "c.is_current", "-1"))),
        _pg_function("job_group_code_rollups_occurrence_update", _pg_upsert(
            GROUP_CODES, GROUP_CODE_KEY,
            _pg_group_code_rows(changed_occurrences.format(side="n"), "c.is_current", "1") + " UNION ALL "
            + _pg_group_code_rows(changed_occurrences.format(side="o"), "c.is_current", "-1"))),
        # Row-level, compared in the WHEN: a job with no current occurrence
        # reads none here, and a report on a job already failing moves its
        # occurrences from its old codes to its new ones (either order of
        # the writes in a transaction: an occurrence changed earlier was
        # counted at the job as it then was by its own trigger).
        _pg_function("job_group_code_rollups_job_update", _pg_upsert(
            GROUP_CODES, GROUP_CODE_KEY,
            "SELECT c.group_id, g.grain, job_rollup_bucket(g.grain, k.created_at) AS created_bucket,"
            " job_rollup_bucket(g.grain, k.completed_at) AS finished_bucket, k.status, k.job_type, k.acknowledged,"
            " x.code, x.has_error, x.has_warning, k.delta FROM failure_occurrences AS c CROSS JOIN (VALUES"
            " (OLD.created_at, OLD.completed_at, OLD.status, OLD.job_type, OLD.acknowledged_at IS NOT NULL,"
            " OLD.error_details, -1),"
            " (NEW.created_at, NEW.completed_at, NEW.status, NEW.job_type, NEW.acknowledged_at IS NOT NULL,"
            " NEW.error_details, 1))"
            " AS k(created_at, completed_at, status, job_type, acknowledged, details, delta)"
            " CROSS JOIN LATERAL job_rollup_codes(k.details) AS x"
            f" CROSS JOIN {_PG_GRAINS} WHERE c.job_id = NEW.id AND c.is_current")),
        _pg_function("job_group_code_rollups_truncate", f"\n  DELETE FROM {GROUP_CODES};"),
        "CREATE TRIGGER job_code_pair_rollups_insert AFTER INSERT ON processing_jobs"
        " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_code_pair_rollups_insert()",
        "CREATE TRIGGER job_code_pair_rollups_delete AFTER DELETE ON processing_jobs"
        " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_code_pair_rollups_delete()",
        f"CREATE TRIGGER job_code_pair_rollups_update AFTER UPDATE OF {', '.join(JOB_COLUMNS)} ON processing_jobs"
        f" FOR EACH ROW WHEN (({_pg_several_items('OLD')} OR {_pg_several_items('NEW')}) AND {_pg_job_moved()})"
        " EXECUTE FUNCTION job_code_pair_rollups_update()",
        "CREATE TRIGGER job_code_pair_rollups_truncate AFTER TRUNCATE ON processing_jobs"
        " FOR EACH STATEMENT EXECUTE FUNCTION job_code_pair_rollups_truncate()",
        "CREATE TRIGGER job_group_code_rollups_insert AFTER INSERT ON failure_occurrences"
        " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION job_group_code_rollups_occurrence_insert()",
        "CREATE TRIGGER job_group_code_rollups_delete AFTER DELETE ON failure_occurrences"
        " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION job_group_code_rollups_occurrence_delete()",
        "CREATE TRIGGER job_group_code_rollups_update AFTER UPDATE ON failure_occurrences"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION job_group_code_rollups_occurrence_update()",
        "CREATE TRIGGER job_group_code_rollups_truncate AFTER TRUNCATE ON failure_occurrences"
        " FOR EACH STATEMENT EXECUTE FUNCTION job_group_code_rollups_truncate()",
        f"CREATE TRIGGER job_group_code_rollups_job_update AFTER UPDATE OF {', '.join(JOB_COLUMNS)}"
        f" ON processing_jobs FOR EACH ROW WHEN ({_pg_job_moved()})"
        " EXECUTE FUNCTION job_group_code_rollups_job_update()",
    ]


_SQLITE_GRAINS = "(SELECT 0 AS grain UNION ALL SELECT 1 UNION ALL SELECT 2) AS g"


def _sqlite_bucket(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL THEN -1 WHEN g.grain = 0 THEN 0"
        f" ELSE CAST(strftime('%s', {column}) AS INTEGER) / CASE WHEN g.grain = 1 THEN 86400 ELSE 3600 END END"
    )


def _sqlite_key(row: str) -> str:
    """The job key of ``row`` (a job, or a row with its columns) at ``g.grain``."""
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


def _sqlite_upsert(key: str) -> str:
    return f" ON CONFLICT ({key}, shard) DO UPDATE SET jobs = jobs + excluded.jobs;"


def _sqlite_pairs(row: str, delta: int) -> str:
    """Add ``delta`` to the pair rollup of the job ``row`` (NEW or OLD), at every grain."""
    items = _sqlite_items(row + ".error_details")
    return (
        f"\n  INSERT INTO {PAIRS} ({PAIR_KEY}, shard, jobs)"
        f" SELECT f.code, {_sqlite_key(row)}, i.code, max(i.is_error), max(i.is_warning), 0, {delta}"
        f" FROM {_SQLITE_GRAINS}, ({items}) AS i, (SELECT DISTINCT code FROM ({items}) WHERE code IS NOT NULL) AS f"
        " WHERE i.code IS NOT NULL AND i.code <> f.code GROUP BY g.grain, f.code, i.code" + _sqlite_upsert(PAIR_KEY)
    )


def _sqlite_group_codes(group: str, job_id: str, condition: str, delta: int) -> str:
    """Add ``delta`` for the group ``group`` at the key and codes of the job
    ``job_id`` as it is now, at every grain, when ``condition``."""
    items = _sqlite_items(f"(SELECT error_details FROM processing_jobs WHERE id = {job_id})")
    return (
        f"\n  INSERT INTO {GROUP_CODES} ({GROUP_CODE_KEY}, shard, jobs)"
        f" SELECT {group}, {_sqlite_key('j')}, i.code, max(i.is_error), max(i.is_warning), 0, {delta}"
        f" FROM processing_jobs AS j, {_SQLITE_GRAINS}, ({items}) AS i"
        f" WHERE j.id = {job_id} AND {condition} AND i.code IS NOT NULL GROUP BY g.grain, i.code"
        + _sqlite_upsert(GROUP_CODE_KEY)
    )


def _sqlite_move(row: str, delta: int) -> str:
    """Add ``delta`` for every current occurrence of the job ``row`` (OLD or
    NEW), at that row's key and codes."""
    return (
        f"\n  INSERT INTO {GROUP_CODES} ({GROUP_CODE_KEY}, shard, jobs)"
        f" SELECT c.group_id, {_sqlite_key(row)}, i.code, max(i.is_error), max(i.is_warning), 0, {delta}"
        f" FROM failure_occurrences AS c, {_SQLITE_GRAINS}, ({_sqlite_items(row + '.error_details')}) AS i"
        f" WHERE c.job_id = {row}.id AND c.is_current AND i.code IS NOT NULL GROUP BY c.group_id, g.grain, i.code"
        + _sqlite_upsert(GROUP_CODE_KEY)
    )


def _sqlite_sql() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in JOB_COLUMNS)

    def hour(column: str) -> str:
        return f"CAST(strftime('%s', {column}) AS INTEGER) / 3600"

    moved = " OR ".join(
        [f"OLD.{c} IS NOT NEW.{c}" for c in ("status", "job_type", "error_details")]
        + ["(OLD.acknowledged_at IS NULL) IS NOT (NEW.acknowledged_at IS NULL)"]
        + [f"{hour('OLD.' + c)} IS NOT {hour('NEW.' + c)}" for c in ("created_at", "completed_at")]
    )
    occurrence_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in ("is_current", "group_id", "job_id"))
    watched = ", ".join(JOB_COLUMNS)
    return [
        f"CREATE TRIGGER job_code_pair_rollups_insert AFTER INSERT ON processing_jobs BEGIN"
        f"{_sqlite_pairs('NEW', 1)}\nEND",
        f"CREATE TRIGGER job_code_pair_rollups_delete AFTER DELETE ON processing_jobs BEGIN"
        f"{_sqlite_pairs('OLD', -1)}\nEND",
        f"CREATE TRIGGER job_code_pair_rollups_update AFTER UPDATE OF {watched} ON processing_jobs"
        f" WHEN {changed} BEGIN{_sqlite_pairs('OLD', -1)}{_sqlite_pairs('NEW', 1)}\nEND",
        "CREATE TRIGGER job_group_code_rollups_insert AFTER INSERT ON failure_occurrences WHEN NEW.is_current BEGIN"
        + _sqlite_group_codes("NEW.group_id", "NEW.job_id", "true", 1) + "\nEND",
        "CREATE TRIGGER job_group_code_rollups_delete AFTER DELETE ON failure_occurrences WHEN OLD.is_current BEGIN"
        + _sqlite_group_codes("OLD.group_id", "OLD.job_id", "true", -1) + "\nEND",
        "CREATE TRIGGER job_group_code_rollups_update AFTER UPDATE OF is_current, group_id, job_id"
        f" ON failure_occurrences WHEN {occurrence_changed} BEGIN"
        + _sqlite_group_codes("OLD.group_id", "OLD.job_id", "OLD.is_current", -1)
        + _sqlite_group_codes("NEW.group_id", "NEW.job_id", "NEW.is_current", 1) + "\nEND",
        f"CREATE TRIGGER job_group_code_rollups_job_update AFTER UPDATE OF {watched} ON processing_jobs"
        f" WHEN {moved} BEGIN" + _sqlite_move("OLD", -1) + _sqlite_move("NEW", 1) + "\nEND",
    ]


def _backfill(dialect: str) -> list[str]:
    """The triggers' rows for every existing job and current occurrence, grouped once (shard 0)."""
    if dialect == "postgresql":
        pairs = _pg_pair_rows("processing_jobs", "1")
        group_codes = _pg_group_code_rows("failure_occurrences", "c.is_current", "1")
        return [
            f"INSERT INTO {PAIRS} ({PAIR_KEY}, shard, jobs)"
            f" SELECT {PAIR_KEY}, 0, sum(delta) FROM ({pairs}) AS c GROUP BY {PAIR_KEY}",
            f"INSERT INTO {GROUP_CODES} ({GROUP_CODE_KEY}, shard, jobs)"
            f" SELECT {GROUP_CODE_KEY}, 0, sum(delta) FROM ({group_codes}) AS c GROUP BY {GROUP_CODE_KEY}",
        ]
    # SQLite has no LATERAL subquery: each job's codes from json_each() joined to it.
    code = ("CASE WHEN e.type = 'object' THEN CASE WHEN json_type(e.value, '$.code') = 'text'"
            " THEN json_extract(e.value, '$.code') END END")
    severity = "CASE WHEN e.type = 'object' THEN coalesce(json_extract(e.value, '$.severity'), '') END"
    per_job_code = (
        f"SELECT j.id, j.created_at, j.completed_at, j.status, j.job_type, j.acknowledged_at, {code} AS code,"
        f" max({severity} NOT IN ('warning', 'information')) AS has_error, max({severity} = 'warning') AS has_warning"
        " FROM processing_jobs AS j, json_each(CASE WHEN json_type(j.error_details, '$.errors') = 'array'"
        " THEN json_extract(j.error_details, '$.errors') ELSE '[]' END) AS e"
        f" WHERE {code} IS NOT NULL GROUP BY j.id, {code}"
    )
    return [
        f"INSERT INTO {PAIRS} ({PAIR_KEY}, shard, jobs)"
        f" SELECT f.code, {_sqlite_key('p')}, p.code, p.has_error, p.has_warning, 0, count(*)"
        f" FROM ({per_job_code}) AS p JOIN ({per_job_code}) AS f ON f.id = p.id AND f.code <> p.code, {_SQLITE_GRAINS}"
        " WHERE true GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
        f"INSERT INTO {GROUP_CODES} ({GROUP_CODE_KEY}, shard, jobs)"
        f" SELECT c.group_id, {_sqlite_key('p')}, p.code, p.has_error, p.has_warning, 0, count(*)"
        f" FROM failure_occurrences AS c JOIN ({per_job_code}) AS p ON p.id = c.job_id, {_SQLITE_GRAINS}"
        " WHERE c.is_current GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    ]


def _columns(first: sa.Column) -> list[sa.Column]:
    return [
        first,
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("created_bucket", sa.Integer(), nullable=False),
        sa.Column("finished_bucket", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("job_type", sa.String(length=64), nullable=False),
        sa.Column("acknowledged", sa.Boolean(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("has_error", sa.Boolean(), nullable=False),
        sa.Column("has_warning", sa.Boolean(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
    ]


def upgrade():
    op.create_table(
        PAIRS,
        *_columns(sa.Column("filter_code", sa.Text(), nullable=False)),
        sa.PrimaryKeyConstraint(*PAIR_KEY.split(", "), "shard", name=op.f(f"pk_{PAIRS}")),
    )
    op.create_table(
        GROUP_CODES,
        *_columns(sa.Column("group_id", sa.Integer(), nullable=False)),
        sa.PrimaryKeyConstraint(*GROUP_CODE_KEY.split(", "), "shard", name=op.f(f"pk_{GROUP_CODES}")),
    )
    dialect = op.get_bind().dialect.name
    for statement in _backfill(dialect):
        op.execute(statement)
    for statement in _postgresql_sql() if dialect == "postgresql" else _sqlite_sql():
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    on = dialect == "postgresql"
    triggers = [("job_code_pair_rollups_" + e, "processing_jobs") for e in ("insert", "update", "delete")]
    triggers += [("job_group_code_rollups_" + e, "failure_occurrences") for e in ("insert", "update", "delete")]
    triggers.append(("job_group_code_rollups_job_update", "processing_jobs"))
    if on:
        triggers += [("job_code_pair_rollups_truncate", "processing_jobs"),
                     ("job_group_code_rollups_truncate", "failure_occurrences")]
    for name, table in triggers:
        op.execute(f"DROP TRIGGER {name}" + (f" ON {table}" if on else ""))
    if on:
        for statement in _group_job_trigger(_old_group_job_when()):
            op.execute(statement)
        op.execute(OLD_BUCKET)
        for function in ("job_code_pair_rollups_insert", "job_code_pair_rollups_update", "job_code_pair_rollups_delete",
                         "job_code_pair_rollups_truncate", "job_group_code_rollups_occurrence_insert",
                         "job_group_code_rollups_occurrence_update", "job_group_code_rollups_occurrence_delete",
                         "job_group_code_rollups_job_update", "job_group_code_rollups_truncate"):
            op.execute(f"DROP FUNCTION {function}()")
    op.drop_table(GROUP_CODES)
    op.drop_table(PAIRS)
