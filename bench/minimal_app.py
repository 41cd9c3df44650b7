"""The framework floor for bench/load.py: the least a Flask endpoint can do.

Flask under gunicorn with the same worker, thread and keep-alive settings as
the app, answering the record-failure route with raw psycopg, one connection
per thread, and nothing else: no authentication check, no body check against
the contract, no normalisation, no ORM, no logging or metrics. Its
throughput is the most a Flask app could reach on this machine with the same
database work, so the endpoint's share of it is the cost of the app's own
Python (framework extensions, services, ORM) and nothing else.

Two floors, one module:

``app`` (the floor bench/load.py compares with): **the statements the app
sends for the same report**, in one transaction, with the same parameters
and row counts (docs/benchmarks.md, "What the floor sends"):

1. ``SELECT`` the worker token by its SHA-256 digest (the app's bearer check);
2. ``SELECT ... FOR UPDATE`` of the job's thirteen columns;
3. ``UPDATE processing_jobs`` (status, failure, ``completed_at``, acknowledgement cleared);
4. ``INSERT job_failures``;
5. when the job was failed already: the statement that ends its current
   occurrences and lowers the groups' ``current_jobs`` counters (CTEs);
6. per group the report hits (two here): the statement that reads the group
   and writes its occurrence, counter shard and hourly rollup (CTEs); if the
   group does not exist yet, its ``INSERT ... ON CONFLICT DO NOTHING``, the
   ``created`` event and the statement again;
7. the group's ``last_seen`` ``UPDATE`` when it is more than a second old;
8. ``COMMIT``.

The floor's groups have their own fingerprints (a SHA-256 of the item's code
and pointer), so floor and app do not share group rows. Two differences of
parameters and order, not of work: the floor draws one counter shard per
report and ends current occurrences in group-id order (``ORDER BY
group_id``), so its reports take counter-row locks in one order. The app
draws a shard per statement and takes them in whatever order the ``GROUP
BY`` gives; under bench/load.py's 16 clients that deadlocks now and then
(PostgreSQL detects it after ``deadlock_timeout``, 1 s, and the request
fails), and a floor that deadlocks would measure the deadlocks, not the
framework.

``classic_app``: the floor as defined before failure groups joined the
recorder's transaction (statements 2, 3, 4 and 8 only), kept to compare the
two definitions in one run.

Not part of the product; started by bench/load.py with ``BENCH_DSN`` set.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
from flask import Flask, jsonify, request
from psycopg.types.json import Jsonb

_local = threading.local()

#: Statements as the app's SQLAlchemy compiles them for psycopg (a
#: statement log of one report), with the parameters in the same places.
TOKEN_SQL = (
    "SELECT id, name, token_hash, revoked_at, last_used_at FROM worker_tokens WHERE token_hash = %s::VARCHAR"
)
LOCK_SQL = (
    "SELECT id, document_id, job_type, status, error_message, error_details, error_format, created_at,"
    " started_at, completed_at, acknowledged_at, acknowledged_by, updated_at"
    " FROM processing_jobs WHERE id = %s::UUID FOR UPDATE"
)
UPDATE_SQL = (
    "UPDATE processing_jobs SET status = 'Validation_Failed', error_message = %s::VARCHAR,"
    " error_details = %s::JSONB, error_format = 'normalized', completed_at = %s, acknowledged_at = NULL,"
    " acknowledged_by = NULL, updated_at = %s WHERE id = %s::UUID"
)
HISTORY_SQL = (
    "INSERT INTO job_failures (id, job_id, status, error_message, error_details, error_format, recorded_at,"
    " worker_name, worker_version) VALUES (%s, %s, 'Validation_Failed', %s, %s, 'normalized', %s, NULL, NULL)"
)
END_CURRENT_SQL = (
    "WITH ended AS (UPDATE failure_occurrences SET is_current = false"
    " WHERE job_id IN (%(job_id)s::UUID) AND is_current IS true"
    " RETURNING group_id, job_type, worker_version),"
    " lowered AS (INSERT INTO failure_group_counts"
    " (group_id, job_type, worker_version, shard, occurrences, jobs, current_jobs)"
    " SELECT group_id, job_type, coalesce(worker_version, ''), %(shard)s::SMALLINT, 0, 0, -count(*)"
    " FROM ended GROUP BY group_id, job_type, coalesce(worker_version, '') ORDER BY group_id"
    " ON CONFLICT (group_id, job_type, worker_version, shard)"
    " DO UPDATE SET current_jobs = failure_group_counts.current_jobs + excluded.current_jobs)"
    " SELECT count(*) FROM ended"
)
_TARGET = "grouping_version = 1 AND fingerprint = %(fingerprint)s::VARCHAR"
GROUP_SQL = (
    "WITH new_occurrence AS (INSERT INTO failure_occurrences (group_id, failure_id, job_id, occurred_at,"
    " job_type, worker_name, worker_version, severity, item_count, item_positions, is_current)"
    " SELECT id, %(failure_id)s::UUID, %(job_id)s::UUID, %(at)s, %(job_type)s::VARCHAR, NULL, NULL,"
    " 'error', 1, %(positions)s::JSONB, true FROM failure_groups WHERE " + _TARGET + "),"
    " counted AS (INSERT INTO failure_group_counts"
    " (group_id, job_type, worker_version, shard, occurrences, jobs, current_jobs)"
    " SELECT g.id, %(job_type)s::VARCHAR, '', %(count_shard)s::SMALLINT, 1,"
    " CASE WHEN EXISTS (SELECT o.id FROM failure_occurrences o WHERE o.group_id = g.id"
    " AND o.job_id = %(job_id)s::UUID) THEN 0 ELSE 1 END, 1"
    " FROM failure_groups g WHERE g." + _TARGET.replace(" AND ", " AND g.") + ""
    " ON CONFLICT (group_id, job_type, worker_version, shard) DO UPDATE SET"
    " occurrences = failure_group_counts.occurrences + excluded.occurrences,"
    " jobs = failure_group_counts.jobs + excluded.jobs,"
    " current_jobs = failure_group_counts.current_jobs + excluded.current_jobs),"
    " rolled AS (INSERT INTO failure_group_hourly (group_id, hour, shard, occurrences)"
    " SELECT id, %(hour)s, %(hour_shard)s::SMALLINT, 1 FROM failure_groups WHERE " + _TARGET + ""
    " ON CONFLICT (group_id, hour, shard) DO UPDATE SET"
    " occurrences = failure_group_hourly.occurrences + excluded.occurrences)"
    " SELECT id, grouping_version, fingerprint, title, code, pointer_pattern, entity_type, sample_message,"
    " severity, state, substate, resolved_by, resolved_at, resolved_in_version, ignore_mode, ignored_by,"
    " ignored_at, ignore_until, ignore_until_occurrences, ignore_base_occurrences, first_seen, last_seen,"
    " state_changed_at FROM failure_groups WHERE " + _TARGET
)
CREATE_GROUP_SQL = (
    "INSERT INTO failure_groups (grouping_version, fingerprint, title, code, pointer_pattern, entity_type,"
    " sample_message, severity, state, substate, first_seen, last_seen, state_changed_at)"
    " VALUES (1, %(fingerprint)s, %(title)s, %(code)s, %(pattern)s, NULL, %(message)s, 'error',"
    " 'unresolved', 'new', %(at)s, %(at)s, %(at)s)"
    " ON CONFLICT (grouping_version, fingerprint) DO NOTHING RETURNING id"
)
CREATED_EVENT_SQL = (
    "INSERT INTO failure_group_events (group_id, at, actor, reason, from_state, to_state, to_substate)"
    " VALUES (%s, %s, 'system', 'created', NULL, 'unresolved', 'new')"
)
LAST_SEEN_SQL = (
    "UPDATE failure_groups SET last_seen = CASE WHEN last_seen < %(at)s THEN %(at)s ELSE last_seen END,"
    " sample_message = CASE WHEN last_seen < %(at)s THEN %(message)s ELSE sample_message END"
    " WHERE id = %(id)s AND last_seen < %(before)s"
)
#: Column positions in GROUP_SQL's answer.
_GROUP_ID, _LAST_SEEN = 0, 21
FAILURE_STATUSES = {"Failed", "Validation_Failed"}
_DIGITS = re.compile(r"/\d+")


def _connection() -> psycopg.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed:
        connection = _local.connection = psycopg.connect(os.environ["BENCH_DSN"])
    return connection


def _details(body: dict) -> dict:
    return {"schema_version": 1, **body["error_details"], "error_count": 2, "truncated": False}


def _record_classic(job_id: str):  # noqa: ANN202
    """Lock, update, append history, commit: the floor before failure groups."""
    body = request.get_json()
    details = _details(body)
    connection = _connection()
    now = datetime.now(timezone.utc)
    with connection.transaction():
        row = connection.execute(LOCK_SQL, (job_id,), prepare=True).fetchone()
        if row is None:
            return jsonify(error="no such job"), 404
        connection.execute(UPDATE_SQL, (body["error_message"], Jsonb(details), now, now, job_id), prepare=True)
        connection.execute(
            HISTORY_SQL, (uuid.uuid4(), job_id, body["error_message"], Jsonb(details), now), prepare=True
        )
    return jsonify(id=job_id, status="Validation_Failed")


def _record_same_sql(job_id: str):  # noqa: ANN202
    """The app's statements for this report (module docstring), nothing else."""
    body = request.get_json()
    details = _details(body)
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    connection = _connection()
    now = datetime.now(timezone.utc)
    failure_id = uuid.uuid4()
    with connection.transaction():
        connection.execute(TOKEN_SQL, (digest,), prepare=True).fetchone()
        row = connection.execute(LOCK_SQL, (job_id,), prepare=True).fetchone()
        if row is None:
            return jsonify(error="no such job"), 404
        job_type, previous_status = row[2], row[3]
        connection.execute(UPDATE_SQL, (body["error_message"], Jsonb(details), now, now, job_id), prepare=True)
        connection.execute(
            HISTORY_SQL, (failure_id, job_id, body["error_message"], Jsonb(details), now), prepare=True
        )
        # One counter shard for the whole report (the app draws one per
        # statement): with the groups in one order, two reports then take
        # the counter rows' locks in one order and cannot deadlock.
        shard = random.randrange(16)
        if previous_status in FAILURE_STATUSES:
            connection.execute(END_CURRENT_SQL, {"job_id": job_id, "shard": shard}, prepare=True)
        hits = []
        for position, item in enumerate(details["errors"]):
            pattern = _DIGITS.sub("/*", item["pointer"])
            fingerprint = hashlib.sha256(f"floor|{item['code']}|{pattern}".encode()).hexdigest()
            hits.append((fingerprint, position, item, pattern))
        # By fingerprint, as the app: concurrent reports lock the groups' rows in one order.
        for fingerprint, position, item, pattern in sorted(hits, key=lambda hit: hit[:2]):
            parameters = {
                "fingerprint": fingerprint, "failure_id": failure_id, "job_id": job_id, "at": now,
                "job_type": job_type, "positions": Jsonb([position]), "count_shard": shard,
                "hour": now.replace(minute=0, second=0, microsecond=0), "hour_shard": random.randrange(16),
            }
            group = connection.execute(GROUP_SQL, parameters, prepare=True).fetchone()
            if group is None:
                created = connection.execute(CREATE_GROUP_SQL, {
                    "fingerprint": fingerprint, "title": item["code"], "code": item["code"], "pattern": pattern,
                    "message": item["message"], "at": now,
                }).fetchone()
                if created is not None:
                    connection.execute(CREATED_EVENT_SQL, (created[0], now))
                group = connection.execute(GROUP_SQL, parameters, prepare=True).fetchone()
            elif group[_LAST_SEEN] < now - timedelta(seconds=1):
                connection.execute(LAST_SEEN_SQL, {
                    "at": now, "message": item["message"], "id": group[_GROUP_ID],
                    "before": now - timedelta(seconds=1),
                }, prepare=True)
    return jsonify(id=job_id, status="Validation_Failed")


def create_floor(record) -> Flask:  # noqa: ANN001
    """A bare Flask app answering the record route with ``record(job_id)`` and ``GET /readyz``."""
    floor = Flask(__name__)
    floor.add_url_rule(
        "/api/v1/processing-jobs/<job_id>/validation-failure", "record_validation_failure", record,
        methods=["POST"],
    )
    floor.add_url_rule("/readyz", "readyz", lambda: "ok")
    return floor


#: The floor bench/load.py and bench/profile_record.py compare with: the app's statements.
app = create_floor(_record_same_sql)
#: The floor before failure groups: lock, update, history, commit.
classic_app = create_floor(_record_classic)
