"""Failure-group pages benchmark: ``/groups``, ``/groups/<id>``, ``/jobs?group=``,
the exact summary and the header search, on a large table.

Run it on a throwaway PostgreSQL (scripts/with-postgres starts one and sets
TEST_DATABASE_URL)::

    scripts/with-postgres .venv/bin/python bench/groups_benchmark.py --jobs 1000000

It drops and re-creates the ``public`` schema of that database (loopback
only), builds it with the app's migrations, and loads by COPY, in one pass:

* the jobs of ``bench/dashboard_benchmark.py`` (same generator, same seed),
  except that 2 % of the error items get a code from a long tail of 2,000
  rule codes (``rule.r0001`` ...; Zipf), so that there are groups in the
  thousands, big and small, as in a system that has run for a while;
* one ``job_failures`` row per failed job (its failure as the recorder
  stores it, worker ``reference-worker`` 1.4.0 before 30 days ago, 1.5.0
  after);
* the failure groups of those failures, fingerprinted by the app's own
  :func:`~app.services.failure_groups.fingerprint.item_key` /
  ``message_key`` (cached per distinct item), one occurrence per (failure,
  group) with its item count, highest severity and item positions, all
  current (every failed job's only failure is its current one);
* then by ``INSERT ... SELECT`` from the occurrences: the sharded counters
  (``occurrences``, ``jobs``, ``current_jobs`` per group, job type, worker
  version and a random shard of 16) and the hourly rollups (random shard),
  the totals the recorder would have written; one ``created`` event per
  group. ``--check`` compares them with the recorder's own check
  (:func:`~app.services.failure_groups.recording.rebuild_counts_check`).

Indexes that back no constraint are dropped for the load and re-created
from their own definitions; foreign keys are not checked during the COPY
(``session_replication_role = replica``: the rows are made consistent by
construction); then ``VACUUM (ANALYZE)``.

Then it measures, through the Flask test client signed in as an admin, each
page **cold** (the summary cache emptied first) and **warm** (straight
after), ``--runs`` rounds after ``--warmup``, pages interleaved round by
round; and for each request the time of its own SQL statements (the sum of
``before_cursor_execute`` .. ``after_cursor_execute`` over the request, the
fetch of the rows included), so the ratio page / queries comes from the same
requests. Pages: ``/groups`` (default sort and each sort), ``/groups/<id>``
of the biggest and of a small group, ``/jobs?group=<id>`` of both,
``/jobs/summary?group=<id>`` (the summary framed beside ``/jobs``), and the header search
``/search?q=<title word>`` with the list it redirects to.

Targets (issues #12 and #14): every page under 50 ms median cold, and page
time at most 2x its queries' time. Prints a table; exits 1 when a page
misses one. ``--backfill`` instead drops the groups after the load and
times :func:`~app.services.failure_groups.backfill.backfill_groups` (what
``flask groups backfill`` runs) regrouping every failure. ``--only TEXT`` times
only the pages whose label holds TEXT. ``--profile PAGE``
writes a cProfile of 50 warm requests of the
page labelled ``PAGE`` to ``--profile-out``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import fresh_schema, loopback_database_url, signed_in_client  # noqa: E402 (bench/ is on sys.path)
from dashboard_benchmark import CODES, _dsn, _rows, machine_facts, summary  # noqa: E402

TARGET_MS = 50.0
TARGET_RATIO = 2.0
TAIL_CODES = 2_000
TAIL_SHARE = 0.02
TAIL_WEIGHTS = [1 / rank**1.1 for rank in range(1, TAIL_CODES + 1)]
WORKER = "reference-worker"
COUNTER_SHARDS = 16

#: Tables loaded by COPY; their indexes that back no constraint are dropped first.
LOADED_TABLES = ("processing_jobs", "job_failures", "failure_groups", "failure_occurrences")
INDEX_QUERY = """
SELECT i.indexname, i.indexdef FROM pg_indexes AS i
WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c
                  WHERE c.conindid = format('%%I.%%I', i.schemaname, i.indexname)::regclass)
ORDER BY i.indexname
"""

#: The /jobs summary's rollups (migration 0014): the COPY above runs as a
#: replica, so the triggers that keep them did not fire. Filled from the
#: jobs with the triggers' own functions, spread over the 8 shards as 8
#: writers would leave them (by a hash of the job id): the most rows a
#: summary sums.
_GRAINS = "(VALUES (0::smallint), (1::smallint), (2::smallint)) AS g(grain)"
#: The code rollup also has weeks (migration 0026).
_CODE_GRAINS = "(VALUES (0::smallint), (1::smallint), (2::smallint), (3::smallint)) AS g(grain)"
ROLLUP_SQL = (
    "INSERT INTO job_count_rollups (grain, created_bucket, finished_bucket, status, job_type, acknowledged, shard, jobs)"
    " SELECT g.grain, job_rollup_bucket(g.grain, j.created_at), job_rollup_bucket(g.grain, j.completed_at), j.status,"
    " j.job_type, j.acknowledged_at IS NOT NULL, abs(hashtext(j.id::text)) % 8, count(*)"
    f" FROM processing_jobs AS j CROSS JOIN {_GRAINS} GROUP BY 1, 2, 3, 4, 5, 6, 7",
    "INSERT INTO job_code_rollups (grain, created_bucket, finished_bucket, status, job_type, acknowledged, code,"
    " has_error, has_warning, shard, jobs)"
    " SELECT g.grain, job_rollup_bucket(g.grain, j.created_at), job_rollup_bucket(g.grain, j.completed_at), j.status,"
    " j.job_type, j.acknowledged_at IS NOT NULL, c.code, c.has_error, c.has_warning, abs(hashtext(j.id::text)) % 8,"
    " count(*) FROM processing_jobs AS j CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c"
    f" CROSS JOIN {_CODE_GRAINS} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    # The group filter's rollup (migration 0019): current occurrences at their job's key.
    "INSERT INTO job_group_rollups (group_id, grain, created_bucket, finished_bucket, status, job_type, acknowledged,"
    " shard, jobs)"
    " SELECT o.group_id, g.grain, job_rollup_bucket(g.grain, j.created_at), job_rollup_bucket(g.grain, j.completed_at),"
    " j.status, j.job_type, j.acknowledged_at IS NOT NULL, abs(hashtext(j.id::text)) % 8, count(*)"
    " FROM failure_occurrences AS o JOIN processing_jobs AS j ON j.id = o.job_id"
    f" CROSS JOIN {_GRAINS} WHERE o.is_current GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
    # The top codes' pair rollups (migration 0022): the codes of the jobs
    # having a code, and of the jobs currently failing on a group.
    "INSERT INTO job_code_pair_rollups (filter_code, grain, created_bucket, finished_bucket, status, job_type,"
    " acknowledged, code, has_error, has_warning, shard, jobs)"
    " SELECT f.code, g.grain, job_rollup_bucket(g.grain, j.created_at), job_rollup_bucket(g.grain, j.completed_at),"
    " j.status, j.job_type, j.acknowledged_at IS NOT NULL, c.code, c.has_error, c.has_warning,"
    " abs(hashtext(j.id::text)) % 8, count(*) FROM processing_jobs AS j"
    " CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c"
    " CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS f"
    f" CROSS JOIN {_GRAINS} WHERE f.code <> c.code GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11",
    "INSERT INTO job_group_code_rollups (group_id, grain, created_bucket, finished_bucket, status, job_type,"
    " acknowledged, code, has_error, has_warning, shard, jobs)"
    " SELECT o.group_id, g.grain, job_rollup_bucket(g.grain, j.created_at), job_rollup_bucket(g.grain, j.completed_at),"
    " j.status, j.job_type, j.acknowledged_at IS NOT NULL, c.code, c.has_error, c.has_warning,"
    " abs(hashtext(j.id::text)) % 8, count(*)"
    " FROM failure_occurrences AS o JOIN processing_jobs AS j ON j.id = o.job_id"
    " CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c"
    f" CROSS JOIN {_GRAINS} WHERE o.is_current GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11",
)

JOB_COLUMNS = ("id, document_id, job_type, status, error_message, error_details, error_format, "
               "created_at, started_at, completed_at, acknowledged_at, acknowledged_by, updated_at")
FAILURE_COLUMNS = ("id, job_id, status, error_message, error_details, error_format, recorded_at, "
                   "worker_name, worker_version")
OCCURRENCE_COLUMNS = ("id, group_id, failure_id, job_id, occurred_at, job_type, worker_name, worker_version, "
                      "severity, item_count, item_positions, is_current")
GROUP_COLUMNS = ("id, grouping_version, fingerprint, title, code, pointer_pattern, entity_type, sample_message, "
                 "severity, state, substate, first_seen, last_seen, state_changed_at")

COUNTS_SQL = f"""
INSERT INTO failure_group_counts (group_id, job_type, worker_version, shard, occurrences, jobs, current_jobs)
SELECT group_id, job_type, worker_version, shard, count(*), count(*), count(*) FILTER (WHERE is_current)
FROM (SELECT group_id, job_type, coalesce(worker_version, '') AS worker_version, is_current,
             floor(random() * {COUNTER_SHARDS})::smallint AS shard
      FROM failure_occurrences) AS o
GROUP BY group_id, job_type, worker_version, shard
"""
# One failure per job here, so each occurrence is its job's first in the
# group: ``jobs`` = ``occurrences``, as the recorder would have counted.
HOURLY_SQL = f"""
INSERT INTO failure_group_hourly (group_id, hour, shard, occurrences)
SELECT group_id, hour, shard, count(*)
FROM (SELECT group_id, date_trunc('hour', occurred_at) AS hour,
             floor(random() * {COUNTER_SHARDS})::smallint AS shard
      FROM failure_occurrences) AS o
GROUP BY group_id, hour, shard
"""
# The closed UTC days' sums (app/services/failure_groups/daily.py), as
# roll_up_closed_days would leave them, then its mark; %(through)s is the
# last closed day's end.
DAILY_SQL = """
INSERT INTO failure_group_daily (group_id, day, occurrences)
SELECT group_id, date_trunc('day', hour, 'UTC'), sum(occurrences)
FROM failure_group_hourly WHERE hour < %(through)s
GROUP BY 1, 2
"""
DAILY_STATE_SQL = """
INSERT INTO failure_group_daily_state (id, rolled_through) VALUES (1, %(through)s)
ON CONFLICT (id) DO UPDATE SET rolled_through = excluded.rolled_through
"""
EVENTS_SQL = """
INSERT INTO failure_group_events (group_id, at, actor, reason, from_state, to_state, to_substate)
SELECT id, first_seen, 'system', 'created', NULL, 'unresolved', 'new' FROM failure_groups
"""


# -- data ---------------------------------------------------------------------------------


class _Grouper:
    """Fingerprints items with the app's own rules (cached per distinct item)
    and keeps each group's first/last seen, highest severity and sample."""

    def __init__(self) -> None:
        from app.services.failure_groups import fingerprint

        self._fingerprint = fingerprint
        self._keys: dict[tuple, object] = {}
        self.groups: dict[str, dict] = {}  # fingerprint -> facts and id

    def keys(self, message: str, items: list[dict] | None) -> list[tuple[int | None, object]]:
        if not items:
            key = self._keys.get(("message", message))
            if key is None:
                key = self._keys[("message", message)] = self._fingerprint.message_key(message)
            return [(None, key)]
        out = []
        for position, item in enumerate(items):
            cache_key = (item["code"], item["severity"], item["message"], item["pointer"])
            key = self._keys.get(cache_key)
            if key is None:
                key = self._keys[cache_key] = self._fingerprint.item_key(item)
            out.append((position, key))
        return out

    def group_id(self, key, at: datetime, severity: str) -> int:  # noqa: ANN001
        from app.models.failure_group import SEVERITY_ORDER

        group = self.groups.get(key.fingerprint)
        if group is None:
            group = self.groups[key.fingerprint] = {
                "id": len(self.groups) + 1, "key": key, "first": at, "last": at, "severity": severity,
                "sample": key.message,
            }
        else:
            if at > group["last"]:
                group["last"], group["sample"] = at, key.message
            group["first"] = min(group["first"], at)
            if SEVERITY_ORDER.index(severity) > SEVERITY_ORDER.index(group["severity"]):
                group["severity"] = severity
        return group["id"]


def _with_tail(row: tuple, rng: random.Random) -> tuple:
    """``row`` of ``_rows`` with 2 % of its items moved to the long tail of codes."""
    details = row[5]
    if row[3] != "Validation_Failed":
        return row
    envelope = json.loads(details)
    changed = False
    for item in envelope["errors"]:
        if rng.random() < TAIL_SHARE:
            rank = rng.choices(range(1, TAIL_CODES + 1), TAIL_WEIGHTS)[0]
            item["code"] = f"rule.r{rank:04d}"
            item["message"] = f"business rule {rank} is not met"
            changed = True
    if not changed:
        return row
    return (*row[:5], json.dumps(envelope), *row[6:])


def prepare_database(url: str, jobs: int, seed: int) -> dict[str, float]:
    """Fresh schema by the app's migrations, then the jobs, failures, groups,
    occurrences, counters and rollups (module docstring); returns phase seconds."""
    import psycopg

    from app.models.failure_group import SEVERITY_ORDER
    from app.services.failure_groups.daily import closed_through

    phases: dict[str, float] = {}
    began = time.perf_counter()
    fresh_schema(url)
    phases["migrate"] = time.perf_counter() - began

    now = datetime.now(timezone.utc).replace(microsecond=0)
    version_switch = now - timedelta(days=30)
    rng = random.Random(seed + 1)
    grouper = _Grouper()
    connections = [psycopg.connect(_dsn(url), autocommit=True) for _ in range(3)]
    try:
        main = connections[0]
        indexes = main.execute(INDEX_QUERY, (list(LOADED_TABLES),)).fetchall()
        for name, _definition in indexes:
            main.execute(f'DROP INDEX "{name}"')
        for connection in connections:
            # No foreign-key triggers during the load: the rows are consistent
            # by construction, and three tables stream at once.
            connection.execute("SET session_replication_role = replica")
        began = time.perf_counter()
        occurrence_id = 0
        with (
            connections[0].cursor() as c0, c0.copy(f"COPY processing_jobs ({JOB_COLUMNS}) FROM STDIN") as jobs_copy,
            connections[1].cursor() as c1, c1.copy(f"COPY job_failures ({FAILURE_COLUMNS}) FROM STDIN") as failures_copy,
            connections[2].cursor() as c2,
            c2.copy(f"COPY failure_occurrences ({OCCURRENCE_COLUMNS}) FROM STDIN") as occurrences_copy,
        ):
            for row in _rows(jobs, seed, now):
                row = _with_tail(row, rng)
                jobs_copy.write_row(row)
                status = row[3]
                if status not in ("Validation_Failed", "Failed"):
                    continue
                job_id, job_type, message, details, fmt, at = row[0], row[2], row[4], row[5], row[6], row[9]
                failure_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                worker_version = "1.5.0" if at >= version_switch else "1.4.0"
                failures_copy.write_row((failure_id, job_id, status, message, details, fmt, at, WORKER, worker_version))
                items = json.loads(details)["errors"] if fmt == "normalized" else None
                hits: dict[str, list] = {}
                for position, key in grouper.keys(message, items):
                    hit = hits.get(key.fingerprint)
                    if hit is None:
                        hits[key.fingerprint] = [key, 1, key.severity, [] if position is None else [position]]
                    else:
                        hit[1] += 1
                        if SEVERITY_ORDER.index(key.severity) > SEVERITY_ORDER.index(hit[2]):
                            hit[2] = key.severity
                        hit[3].append(position)
                for key, count, severity, positions in hits.values():
                    occurrence_id += 1
                    group_id = grouper.group_id(key, at, severity)
                    occurrences_copy.write_row((occurrence_id, group_id, failure_id, job_id, at, job_type, WORKER,
                                                worker_version, severity, count, json.dumps(positions), True))
        phases["copy jobs, failures, occurrences"] = time.perf_counter() - began

        began = time.perf_counter()
        with main.cursor() as cursor, cursor.copy(f"COPY failure_groups ({GROUP_COLUMNS}) FROM STDIN") as copy:
            for group in grouper.groups.values():
                key = group["key"]
                copy.write_row((group["id"], 1, key.fingerprint, key.title, key.code, key.pointer_pattern,
                                key.entity_type, group["sample"][:1000], group["severity"], "unresolved", "new",
                                group["first"], group["last"], group["first"]))
        main.execute("SELECT setval(pg_get_serial_sequence('failure_groups', 'id'), %s)", (len(grouper.groups),))
        main.execute("SELECT setval(pg_get_serial_sequence('failure_occurrences', 'id'), %s)", (occurrence_id,))
        main.execute("SET session_replication_role = origin")
        main.execute(EVENTS_SQL)
        phases["copy groups"] = time.perf_counter() - began

        began = time.perf_counter()
        main.execute("SET maintenance_work_mem = '512MB'")
        for _name, definition in indexes:
            main.execute(definition)
        phases["indexes"] = time.perf_counter() - began

        began = time.perf_counter()
        main.execute("SET work_mem = '256MB'")
        main.execute(COUNTS_SQL)
        main.execute(HOURLY_SQL)
        through = {"through": closed_through(datetime.now(timezone.utc))}
        main.execute(DAILY_SQL, through)
        main.execute(DAILY_STATE_SQL, through)
        phases["counters and rollups"] = time.perf_counter() - began

        began = time.perf_counter()
        for statement in ROLLUP_SQL:
            main.execute(statement)
        phases["summary rollups"] = time.perf_counter() - began

        began = time.perf_counter()
        for table in (*LOADED_TABLES, "failure_group_counts", "failure_group_hourly", "failure_group_daily",
                      "failure_group_events",
                      "job_count_rollups", "job_code_rollups", "job_group_rollups", "job_code_pair_rollups",
                      "job_group_code_rollups"):
            main.execute(f"VACUUM (ANALYZE) {table}")
        phases["vacuum analyze"] = time.perf_counter() - began
    finally:
        for connection in connections:
            connection.close()
    return phases


# -- measuring ----------------------------------------------------------------------------


def _stamp(day: datetime, hour: int, minute: int) -> str:
    """RFC 3339 (UTC) of ``day`` at ``hour:minute``: a range edge off the hour."""
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class QueryTimer:
    """Sums the time of the statements an engine runs while ``on``: from
    ``before_cursor_execute`` to ``after_cursor_execute`` (the driver's
    execute; psycopg 3 has the rows by then), in seconds."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        import sqlalchemy as sa

        self.on = False
        self.seconds = 0.0
        self.statements = 0
        self._started: list[float] = []

        @sa.event.listens_for(engine, "before_cursor_execute")
        def before(*_args):  # noqa: ANN002, ANN202
            if self.on:
                self._started.append(time.perf_counter())

        @sa.event.listens_for(engine, "after_cursor_execute")
        def after(*_args):  # noqa: ANN002, ANN202
            if self.on and self._started:
                self.seconds += time.perf_counter() - self._started.pop()
                self.statements += 1

    def start(self) -> None:
        self.on, self.seconds, self.statements = True, 0.0, 0

    def stop(self) -> tuple[float, int]:
        self.on = False
        self._started.clear()
        return self.seconds, self.statements


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                        help="throwaway PostgreSQL on loopback (default: TEST_DATABASE_URL)")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs to load (default 1000000)")
    parser.add_argument("--runs", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--seed", type=int, default=20250301)
    parser.add_argument("--skip-load", action="store_true", help="reuse the data already loaded")
    parser.add_argument("--check", action="store_true", help="check the loaded counters against the recorder's check")
    parser.add_argument("--backfill", action="store_true",
                        help="after the load, drop every group and time `flask groups backfill`'s service on the failures, then exit")
    parser.add_argument("--fold-counters", action="store_true",
                        help="before timing, fold the groups' counter shards as the daily maintenance does "
                             "(rollup_compaction.compact_counters), and report its time")
    parser.add_argument("--fold-rollups", action="store_true",
                        help="before timing, fold the summary rollups' shards of past days and hours and of all "
                             "time as the daily maintenance does (rollup_compaction.compact_rollups), and report "
                             "its time")
    parser.add_argument("--only", action="append", default=[],
                        help="time only the pages whose label contains this text (repeatable; "
                             "the reference GET /jobs is always kept)")
    parser.add_argument("--profile", help="label of a page to profile (50 warm requests)")
    parser.add_argument("--profile-cold", action="store_true",
                        help="empty the summary cache before each profiled request (the cold page)")
    parser.add_argument("--profile-out", default="/tmp/groups-profile.txt", help="where the profile goes")
    args = parser.parse_args()
    url = loopback_database_url(parser, args)

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if not args.skip_load:
        print(f"loading {args.jobs:,} jobs with their failures and groups ...", flush=True)
        began = time.perf_counter()
        phases = prepare_database(url, args.jobs, args.seed)
        print("  " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
              + f"; total {time.perf_counter() - began:.1f} s", flush=True)

    import psycopg

    from app import create_app
    from app.extensions import db
    from app.services import dashboard_stats

    for key, value in machine_facts(url).items():
        print(f"{key}: {value}")
    with psycopg.connect(_dsn(url)) as connection:
        for table in ("processing_jobs", "job_failures", "failure_groups", "failure_occurrences",
                      "failure_group_counts", "failure_group_hourly", "failure_group_daily", "job_count_rollups",
                      "job_code_rollups", "job_group_rollups", "job_code_pair_rollups", "job_group_code_rollups"):
            count, size = connection.execute(
                f"SELECT count(*), pg_size_pretty(pg_total_relation_size('{table}')) FROM {table}"
            ).fetchone()
            print(f"{table}: {count:,} rows, {size} with indexes")
        ranked = connection.execute(
            "SELECT g.id, g.title, sum(c.current_jobs) AS jobs FROM failure_groups AS g "
            "JOIN failure_group_counts AS c ON c.group_id = g.id GROUP BY g.id, g.title ORDER BY jobs DESC, g.id"
        ).fetchall()
    big, small = ranked[0], ranked[len(ranked) * 3 // 4]
    print(f"big group {big[0]} ({big[1]}): {big[2]:,} jobs; small group {small[0]} ({small[1]}): {small[2]:,} jobs")

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    if args.backfill:
        from app.services.failure_groups.backfill import backfill_groups

        with psycopg.connect(_dsn(url), autocommit=True) as connection:
            connection.execute("TRUNCATE failure_groups CASCADE")  # occurrences, counters, rollups, events
        def report(result) -> None:  # noqa: ANN001 (a BackfillResult)
            if result.batches % 100 == 0:
                print(f"  {result.failures:,} failures in {result.seconds:.0f} s "
                      f"({result.failures / result.seconds:,.0f}/s; load average {os.getloadavg()[0]:.1f})", flush=True)

        with app.app_context():
            result = backfill_groups(progress=report)
            db.session.remove()
        print(f"backfill: {result.failures:,} failures, {result.occurrences:,} occurrences, {result.batches} batches "
              f"in {result.seconds:.1f} s: {result.failures / result.seconds:,.0f} failures/s")
        return 0
    if args.check:
        from app.services.failure_groups.recording import rebuild_counts_check

        from app.services.failure_groups.queries import group_counts

        with app.app_context():
            rebuilt = rebuild_counts_check([big[0], small[0]])
            counters = group_counts([big[0], small[0]])
            db.session.remove()
        for group_id, expected in rebuilt.items():
            got = counters[group_id]
            kept = {"occurrences": got.occurrence_count, "jobs": got.job_count, "current_jobs": got.current_job_count}
            if kept != expected:
                raise SystemExit(f"group {group_id}: counters {kept} but occurrences say {expected}")
        print(f"counters agree with rebuild_counts_check on both groups: {rebuilt}")

    if args.fold_counters:
        from app.services.rollup_compaction import compact_counters

        with app.app_context():
            began = time.perf_counter()
            folded = compact_counters()
            seconds = time.perf_counter() - began
            db.session.remove()
        print(f"counter fold: {folded.buckets} range(s) of groups, {folded.rows_before:,} rows to "
              f"{folded.rows_after:,} in {seconds:.1f} s; {len(folded.skipped)} skipped", flush=True)
        with psycopg.connect(_dsn(url), autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE failure_group_counts")

    if args.fold_rollups:
        from app.services.rollup_compaction import ROLLUPS, compact_rollups

        with app.app_context():
            began = time.perf_counter()
            folded = compact_rollups(datetime.now(timezone.utc))
            seconds = time.perf_counter() - began
            db.session.remove()
        print(f"rollup fold: {folded.buckets} set(s) of rows, {folded.rows_before:,} rows to "
              f"{folded.rows_after:,} in {seconds:.1f} s; {len(folded.skipped)} skipped", flush=True)
        with psycopg.connect(_dsn(url), autocommit=True) as connection:
            for model in ROLLUPS:
                connection.execute(f"VACUUM ANALYZE {model.__tablename__}")

    common_code = CODES[0][0]
    now = datetime.now(timezone.utc)
    word = "terminology"  # in a crash message's group title ("Timeout after <num> s waiting for the terminology server")
    pages = {
        "GET /groups": "/groups",
        **{f"GET /groups?sort={sort}": "/groups?" + urlencode({"sort": sort}) for sort in ("first_seen", "job_count")},
        "GET /groups/<big>": f"/groups/{big[0]}",
        "GET /groups/<small>": f"/groups/{small[0]}",
        "GET /jobs?group=<big>": "/jobs?" + urlencode({"group": big[0]}),
        "GET /jobs?group=<small>": "/jobs?" + urlencode({"group": small[0]}),
        "GET /jobs/summary?group=<big>": "/jobs/summary?" + urlencode({"group": big[0]}),
        "GET /jobs/summary?group=<small>": "/jobs/summary?" + urlencode({"group": small[0]}),
        # The exact summary of the other filters (issue #12), from the rollups.
        "GET /jobs/summary": "/jobs/summary",
        "GET /jobs/summary?status=Failed": "/jobs/summary?status=Failed",
        "GET /jobs/summary?job_type=fhir_validation": "/jobs/summary?job_type=fhir_validation",
        f"GET /jobs/summary?error_code={common_code}": "/jobs/summary?" + urlencode({"error_code": common_code}),
        "GET /jobs/summary?from=<-30 d 10:17>&to=<-2 d 14:41>": "/jobs/summary?" + urlencode({
            "from": _stamp(now - timedelta(days=30), 10, 17), "to": _stamp(now - timedelta(days=2), 14, 41)}),
        "GET /jobs/summary?acknowledged=only&time_field=completed": (
            "/jobs/summary?acknowledged=only&time_field=completed&status=all"),
        "GET /jobs (reference)": "/jobs",
        f"GET /search?q={word} (redirect)": "/search?" + urlencode({"q": word}),
    }
    client = signed_in_client(app, "admin")
    for name, path in list(pages.items()):
        response = client.get(path)
        if name.startswith("GET /search"):
            if response.status_code != 302:
                raise SystemExit(f"{path} answered {response.status_code}")
            pages[f"GET {response.headers['Location']} (search results)"] = response.headers["Location"]
        elif response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
    results = next(path for name, path in pages.items() if name.endswith("(search results)"))
    if word.encode() not in client.get(results).data:
        raise SystemExit(f"{results} does not list the group titled with {word!r}")

    if args.only:
        pages = {name: path for name, path in pages.items()
                 if name == "GET /jobs (reference)" or any(text in name for text in args.only)}
    if not args.only or any("summary" in text for text in args.only):
        # The rollups against a count of every job (what the summary of no filter shows).
        with psycopg.connect(_dsn(url)) as connection:
            direct = dict(connection.execute("SELECT status, count(*) FROM processing_jobs GROUP BY status").fetchall())
            rolled = dict(connection.execute(
                "SELECT status, sum(jobs)::bigint FROM job_count_rollups WHERE grain = 0"
                " GROUP BY status HAVING sum(jobs) <> 0").fetchall())
            if direct != rolled:
                raise SystemExit(f"job_count_rollups {rolled} but processing_jobs {direct}")
            rows = connection.execute("SELECT (SELECT count(*) FROM job_count_rollups), (SELECT count(*) FROM job_code_rollups)").fetchone()
            print(f"rollups agree with a count of every job {direct}; rows: {rows[0]:,} counts, {rows[1]:,} codes")
            for group_id in (big[0], small[0]):
                current = connection.execute(
                    "SELECT count(*) FROM failure_occurrences WHERE group_id = %s AND is_current", (group_id,)
                ).fetchone()[0]
                in_rollup = connection.execute(
                    "SELECT coalesce(sum(jobs), 0)::bigint FROM job_group_rollups WHERE group_id = %s AND grain = 0",
                    (group_id,)).fetchone()[0]
                if current != in_rollup:
                    raise SystemExit(f"group {group_id}: job_group_rollups {in_rollup} but {current} current jobs")
                print(f"group {group_id}: job_group_rollups agree with its {current:,} current jobs")
            # The top codes of a group's and a code's jobs (migration 0022) against their jobs' details.
            checks = {
                f"group {big[0]}": (
                    "SELECT c.code, count(*) FROM failure_occurrences AS o JOIN processing_jobs AS j ON j.id = o.job_id"
                    " CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c"
                    " WHERE o.group_id = %(key)s AND o.is_current GROUP BY c.code",
                    "SELECT code, sum(jobs)::bigint FROM job_group_code_rollups WHERE group_id = %(key)s AND grain = 0"
                    " GROUP BY code HAVING sum(jobs) <> 0", big[0]),
                f"code {common_code}": (
                    "SELECT c.code, count(*) FROM processing_jobs AS j"
                    " CROSS JOIN LATERAL job_rollup_codes(j.error_details) AS c"
                    " WHERE c.code <> %(key)s"
                    " AND EXISTS (SELECT 1 FROM job_rollup_codes(j.error_details) AS f WHERE f.code = %(key)s)"
                    " GROUP BY c.code",
                    "SELECT code, sum(jobs)::bigint FROM job_code_pair_rollups WHERE filter_code = %(key)s"
                    " AND grain = 0 GROUP BY code HAVING sum(jobs) <> 0", common_code),
            }
            for label, (direct_sql, rolled_sql, key) in checks.items():
                direct_codes = dict(connection.execute(direct_sql, {"key": key}).fetchall())
                rolled_codes = dict(connection.execute(rolled_sql, {"key": key}).fetchall())
                if direct_codes != rolled_codes:
                    raise SystemExit(f"{label}: top-code rollup {rolled_codes} but its jobs {direct_codes}")
                print(f"{label}: the top-code rollup agrees with its jobs' {len(direct_codes)} codes")

    with app.app_context():
        timer = QueryTimer(db.engine)

    if args.profile:
        path = pages[args.profile]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(50):
            if args.profile_cold:
                with dashboard_stats._cache_lock:
                    dashboard_stats._cache.clear()
            client.get(path)
        profiler.disable()
        with open(args.profile_out, "w") as out:
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(40)
        print(f"profile of {args.profile}: {args.profile_out}")

    modes = ("cold", "warm")
    page_samples = {(name, mode): [] for name in pages for mode in modes}
    query_samples = {(name, mode): [] for name in pages for mode in modes}
    statements: dict[str, int] = {}
    for round_ in range(args.warmup + args.runs):
        for name, path in pages.items():
            for mode in modes:
                if mode == "cold":
                    with dashboard_stats._cache_lock:
                        dashboard_stats._cache.clear()
                timer.start()
                began = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - began
                sql, count = timer.stop()
                assert response.status_code in (200, 302), (path, response.status_code)
                if round_ >= args.warmup:
                    page_samples[name, mode].append(elapsed)
                    query_samples[name, mode].append(sql)
                    statements[name] = count

    print()
    print(f"{args.runs} timed runs each after {args.warmup} warm-up rounds; ms; "
          f"queries = the request's own SQL statements; ratio = page median / queries median")
    width = max(len(name) for name in pages) + 2
    print(f"{'page':<{width}}{'mode':<6}{'median':>8}{'p95':>8}{'queries':>9}{'stmts':>6}{'ratio':>7}  target")
    missed = []
    for name in pages:
        for mode in modes:
            median, p95, _worst = summary(page_samples[name, mode])
            sql = statistics.median(query_samples[name, mode]) * 1000
            ratio = median / sql if sql else float("inf")
            verdict = ""
            if "reference" not in name and "(redirect)" not in name:
                fails = []
                if mode == "cold" and median >= TARGET_MS:
                    fails.append(f">= {TARGET_MS:.0f} ms")
                if ratio > TARGET_RATIO:
                    fails.append(f"ratio > {TARGET_RATIO:g}")
                verdict = "MISSED " + ", ".join(fails) if fails else "met"
                if fails:
                    missed.append((name, mode))
            print(f"{name:<{width}}{mode:<6}{median:>8.1f}{p95:>8.1f}{sql:>9.1f}{statements[name]:>6}{ratio:>7.2f}  {verdict}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
