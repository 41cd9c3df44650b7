"""the pair rollups leave out jobs with more than 16 error items; an index finds those jobs

Revision ID: 0028_wide_jobs
Revises: 0027_sqlite_exact_buckets
Create Date: 2026-12-06

``job_code_pair_rollups`` and ``job_group_code_rollups`` (0022) hold a row
per pair of a job's codes and per (current group, code) of a job: k(k - 1)
and about k * k rows per grain for a job with k codes. A report of 200
items with 200 codes (the most a report keeps) wrote 240,000 rollup rows
and took 3 s on either database, and a second report on the job with other
codes 8 s on SQLite and 11-13 s on PostgreSQL, holding the rows it wrote
(docs/benchmarks.md, "Reports with many codes").

A job whose ``error_details.errors`` is an array of more than 16 items (a
*wide* job) is now left out of both (its codes still count in
``job_code_rollups``). The top codes under a code or group filter read
the wide jobs' codes from their details instead
(app/services/top_codes.py), through a partial index on
``processing_jobs.created_at`` of the wide jobs only. At 16 items a
report writes at most 240 pair rows per grain.

* PostgreSQL: ``job_pair_details(details)`` gives NULL for wide details
  and the details otherwise; the seven pair and group-code trigger
  functions are re-created as the database has them, each
  ``job_rollup_codes(x)`` made ``job_rollup_codes(job_pair_details(x))``.
* SQLite: the seven pair and group-code triggers re-created as the
  database has them, each read of the ``errors`` array also asking for at
  most 16 items.
* Both: the rows the wide jobs had are taken away (an upsert of their
  negation, shard 0), under a SHARE lock on both tables on PostgreSQL so
  no writer is counted by one rule and not the other. The downgrade adds
  them back under the old triggers.
"""

import re

from alembic import op

revision = "0028_wide_jobs"
down_revision = "0027_sqlite_exact_buckets"
branch_labels = None
depends_on = None

WIDE_ITEMS = 16
PAIRS = "job_code_pair_rollups"
GROUP_CODES = "job_group_code_rollups"
_JOB_KEY = "grain, created_bucket, finished_bucket, status, job_type, acknowledged"
_CODE = "code, has_error, has_warning"
PAIR_KEY = f"filter_code, {_JOB_KEY}, {_CODE}"
GROUP_CODE_KEY = f"group_id, {_JOB_KEY}, {_CODE}"
INDEX = "ix_processing_jobs_wide_created_at"

_PG_WIDE = ("CASE WHEN jsonb_typeof(error_details -> 'errors') = 'array'"
            f" THEN jsonb_array_length(error_details -> 'errors') ELSE 0 END > {WIDE_ITEMS}")
_SQLITE_WIDE = ("CASE WHEN json_type(error_details, '$.errors') = 'array'"
                f" THEN json_array_length(error_details, '$.errors') ELSE 0 END > {WIDE_ITEMS}")

_PAIR_DETAILS = f"""CREATE FUNCTION job_pair_details(details jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN (CASE WHEN jsonb_typeof(details -> 'errors') = 'array'
                         THEN jsonb_array_length(details -> 'errors') ELSE 0 END) > {WIDE_ITEMS}
              THEN NULL ELSE details END
$$"""

_PG_FUNCTIONS = (
    "job_code_pair_rollups_insert", "job_code_pair_rollups_delete", "job_code_pair_rollups_update",
    "job_group_code_rollups_occurrence_insert", "job_group_code_rollups_occurrence_delete",
    "job_group_code_rollups_occurrence_update", "job_group_code_rollups_job_update",
)
_SQLITE_TRIGGERS = (
    "job_code_pair_rollups_insert", "job_code_pair_rollups_delete", "job_code_pair_rollups_update",
    "job_group_code_rollups_insert", "job_group_code_rollups_delete", "job_group_code_rollups_update",
    "job_group_code_rollups_job_update",
)

_PG_ALL = re.compile(r"job_rollup_codes\(([\w.]+)\)")
_PG_NARROW = re.compile(r"job_rollup_codes\(job_pair_details\(([\w.]+)\)\)")
# A details expression holds no json_type( of its own (it may hold brackets:
# a subquery on the job), so the shortest match is the one read's.
_SQLITE_ALL = re.compile(r"json_type\(((?:(?!json_type\().)+?), '\$\.errors'\) = 'array' THEN")
_SQLITE_NARROW = re.compile(
    r"json_type\(((?:(?!json_type\().)+?), '\$\.errors'\) = 'array'"
    rf" AND json_array_length\(\1, '\$\.errors'\) <= {WIDE_ITEMS} THEN")


def _rewrite_postgresql(pattern: re.Pattern[str], replacement: str) -> None:
    connection = op.get_bind()
    for name in _PG_FUNCTIONS:
        definition = connection.exec_driver_sql(
            "SELECT pg_get_functiondef(%(name)s::regproc)", {"name": name}).scalar_one()
        changed, count = pattern.subn(replacement, definition)
        if not count:
            raise RuntimeError(f"{name}: unexpected definition, not changed")
        op.execute(changed)


def _rewrite_sqlite(pattern: re.Pattern[str], replacement: str) -> None:
    connection = op.get_bind()
    for name in _SQLITE_TRIGGERS:
        sql = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).scalar_one()
        changed, count = pattern.subn(replacement, sql)
        if not count:
            raise RuntimeError(f"{name}: unexpected definition, not changed")
        op.execute(f"DROP TRIGGER {name}")
        op.execute(changed)


def _pg_wide_rows(sign: str) -> list[str]:
    """Add ``sign`` times the pair and group-code rows of every wide job, at shard 0."""
    bucket = "job_rollup_bucket(g.grain, j.{0})"
    job_key = (f"g.grain, {bucket.format('created_at')}, {bucket.format('completed_at')}, j.status, j.job_type,"
               " j.acknowledged_at IS NOT NULL")
    grains = "(VALUES (0::smallint), (1::smallint), (2::smallint)) AS g(grain)"
    wide = _PG_WIDE.replace("error_details", "j.error_details")
    upsert = " ON CONFLICT ({0}, shard) DO UPDATE SET jobs = r.jobs + EXCLUDED.jobs"
    return [
        f"INSERT INTO {PAIRS} AS r ({PAIR_KEY}, shard, jobs)"
        f" SELECT f.code, {job_key}, c.code, c.has_error, c.has_warning, 0, {sign} count(*)"
        " FROM processing_jobs AS j CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c"
        f" CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS f CROSS JOIN {grains}"
        f" WHERE {wide} AND f.code <> c.code GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" + upsert.format(PAIR_KEY),
        f"INSERT INTO {GROUP_CODES} AS r ({GROUP_CODE_KEY}, shard, jobs)"
        f" SELECT o.group_id, {job_key}, c.code, c.has_error, c.has_warning, 0, {sign} count(*)"
        " FROM failure_occurrences AS o JOIN processing_jobs AS j ON j.id = o.job_id"
        f" CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c CROSS JOIN {grains}"
        f" WHERE o.is_current AND {wide} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" + upsert.format(GROUP_CODE_KEY),
    ]


def _sqlite_wide_rows(sign: str) -> list[str]:
    """:func:`_pg_wide_rows` for SQLite (no LATERAL: each job's codes from json_each joined to it)."""
    def bucket(column: str) -> str:
        return (f"CASE WHEN p.{column} IS NULL THEN -1 WHEN g.grain = 0 THEN 0"
                f" ELSE CAST(strftime('%s', substr(p.{column}, 1, 19)) AS INTEGER)"
                " / CASE WHEN g.grain = 1 THEN 86400 ELSE 3600 END END")
    job_key = (f"g.grain, {bucket('created_at')}, {bucket('completed_at')}, p.status, p.job_type,"
               " p.acknowledged_at IS NOT NULL")
    code = ("CASE WHEN e.type = 'object' THEN CASE WHEN json_type(e.value, '$.code') = 'text'"
            " THEN json_extract(e.value, '$.code') END END")
    severity = "CASE WHEN e.type = 'object' THEN coalesce(json_extract(e.value, '$.severity'), '') END"
    per_job_code = (
        f"SELECT j.id, j.created_at, j.completed_at, j.status, j.job_type, j.acknowledged_at, {code} AS code,"
        f" max({severity} NOT IN ('warning', 'information')) AS has_error, max({severity} = 'warning') AS has_warning"
        " FROM processing_jobs AS j, json_each(j.error_details, '$.errors') AS e"
        f" WHERE {_SQLITE_WIDE.replace('error_details', 'j.error_details')} AND {code} IS NOT NULL"
        f" GROUP BY j.id, {code}"
    )
    grains = "(SELECT 0 AS grain UNION ALL SELECT 1 UNION ALL SELECT 2) AS g"
    upsert = " ON CONFLICT ({0}, shard) DO UPDATE SET jobs = jobs + excluded.jobs"
    return [
        f"INSERT INTO {PAIRS} ({PAIR_KEY}, shard, jobs)"
        f" SELECT f.code, {job_key}, p.code, p.has_error, p.has_warning, 0, {sign} count(*)"
        f" FROM ({per_job_code}) AS p JOIN ({per_job_code}) AS f ON f.id = p.id AND f.code <> p.code, {grains}"
        " WHERE true GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" + upsert.format(PAIR_KEY),
        f"INSERT INTO {GROUP_CODES} ({GROUP_CODE_KEY}, shard, jobs)"
        f" SELECT o.group_id, {job_key}, p.code, p.has_error, p.has_warning, 0, {sign} count(*)"
        f" FROM failure_occurrences AS o JOIN ({per_job_code}) AS p ON p.id = o.job_id, {grains}"
        " WHERE o.is_current GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" + upsert.format(GROUP_CODE_KEY),
    ]


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE processing_jobs, failure_occurrences IN SHARE MODE")
        op.execute(_PAIR_DETAILS)
        _rewrite_postgresql(_PG_ALL, r"job_rollup_codes(job_pair_details(\1))")
        statements = _pg_wide_rows("-")
        op.execute(f"CREATE INDEX {INDEX} ON processing_jobs (created_at) WHERE {_PG_WIDE}")
    else:
        _rewrite_sqlite(_SQLITE_ALL, rf"json_type(\1, '$.errors') = 'array'"
                                     rf" AND json_array_length(\1, '$.errors') <= {WIDE_ITEMS} THEN")
        statements = _sqlite_wide_rows("-")
        op.execute(f"CREATE INDEX {INDEX} ON processing_jobs (created_at) WHERE {_SQLITE_WIDE}")
    for statement in statements:
        op.execute(statement)


def downgrade():
    op.execute(f"DROP INDEX {INDEX}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE processing_jobs, failure_occurrences IN SHARE MODE")
        _rewrite_postgresql(_PG_NARROW, r"job_rollup_codes(\1)")
        op.execute("DROP FUNCTION job_pair_details(jsonb)")
        statements = _pg_wide_rows("")
    else:
        _rewrite_sqlite(_SQLITE_NARROW, r"json_type(\1, '$.errors') = 'array' THEN")
        statements = _sqlite_wide_rows("")
    for statement in statements:
        op.execute(statement)
