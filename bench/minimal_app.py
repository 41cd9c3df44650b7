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
5. one statement for all the groups the report hits (two here): it reads
   the groups and writes their occurrences, counter shards and hourly
   rollups (CTEs); when the job was failing already, it also ends its
   current occurrences and lowers their ``current_jobs`` (one more CTE);
   for each group that does not exist yet, its ``INSERT ... ON CONFLICT DO
   NOTHING`` and the ``created`` event, then the statement again for those;
6. the group's ``last_seen`` ``UPDATE`` when it is more than a second old;
7. ``COMMIT``.

The floor's groups have their own fingerprints (a SHA-256 of the item's code
and pointer), so floor and app do not share group rows. The group statement
is the app's own (``record_hits``', compiled once for psycopg), so the
two cannot drift apart; its counter shard is the app's too (the job's,
``job_shard``), which is what keeps two re-failures on a hot group from
deadlocking.

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
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

from app.services.failure_groups.hits_statement import record_hits_statement
from app.services.failure_groups.write_statements import GROUP_STATE_COLUMNS, job_shard

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
    " worker_name, worker_version, started_at)"
    " VALUES (%s, %s, 'Validation_Failed', %s, %s, 'normalized', %s, NULL, NULL, %s)"
)


def _compiled(end_previous: bool) -> tuple[str, dict]:
    """The app's group statement (``record_hits``), as SQLAlchemy
    compiles it for psycopg (``%(name)s`` placeholders, the same casts),
    and the values of its anonymous parameters (constants SQLAlchemy binds)."""
    compiled = record_hits_statement(end_previous).compile(dialect=psycopg_dialect.dialect())
    constants = {name: value for name, value in compiled.params.items() if name.startswith("param_")}
    return str(compiled), constants


#: Reads the groups and writes their occurrences, counter shards and hourly rollups.
GROUP_SQL, _GROUP_CONSTANTS = _compiled(end_previous=False)
#: The same, first ending the job's current occurrences (a re-failure).
GROUP_ENDING_SQL, _ENDING_CONSTANTS = _compiled(end_previous=True)
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
#: Column positions in GROUP_SQL's answer (the state columns, then the fingerprint).
_GROUP_ID, _LAST_SEEN = GROUP_STATE_COLUMNS.index("id"), GROUP_STATE_COLUMNS.index("last_seen")
_FINGERPRINT = len(GROUP_STATE_COLUMNS)
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
            HISTORY_SQL, (uuid.uuid4(), job_id, body["error_message"], Jsonb(details), now, row[8]), prepare=True
        )
    return jsonify(id=job_id, status="Validation_Failed")


def _record_same_sql(job_id: str):  # noqa: ANN202
    """The app's statements for this report (module docstring), nothing else."""
    body = request.get_json()
    details = _details(body)
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    connection = _connection()
    # Replayed after a deadlock or serialization failure, as the app's
    # replayed_write_transaction does (app/unit_of_work.py), so the floor
    # answers what the app answers.
    for _replay in range(REPLAYS):
        try:
            return _record_same_sql_once(connection, job_id, body, details, digest)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            continue
    return _record_same_sql_once(connection, job_id, body, details, digest)


#: Replays after the first try (the app's WRITE_ATTEMPTS - 1).
REPLAYS = 2


def _record_same_sql_once(connection: psycopg.Connection, job_id: str, body: dict, details: dict,
                          digest: str):  # noqa: ANN202
    """One try of :func:`_record_same_sql`: its statements in one transaction."""
    now = datetime.now(timezone.utc)
    failure_id = uuid.uuid4()
    with connection.transaction():
        connection.execute(TOKEN_SQL, (digest,), prepare=True).fetchone()
        row = connection.execute(LOCK_SQL, (job_id,), prepare=True).fetchone()
        if row is None:
            return jsonify(error="no such job"), 404
        job_type, previous_status, started_at = row[2], row[3], row[8]
        connection.execute(UPDATE_SQL, (body["error_message"], Jsonb(details), now, now, job_id), prepare=True)
        connection.execute(
            HISTORY_SQL, (failure_id, job_id, body["error_message"], Jsonb(details), now, started_at), prepare=True
        )
        end_previous = previous_status in FAILURE_STATUSES
        hits = []
        for position, item in enumerate(details["errors"]):
            pattern = _DIGITS.sub("/*", item["pointer"])
            fingerprint = hashlib.sha256(f"floor|{item['code']}|{pattern}".encode()).hexdigest()
            hits.append((fingerprint, position, item, pattern))
        # By fingerprint, as the app: concurrent reports lock the groups' rows in one order.
        hits.sort(key=lambda hit: hit[:2])
        parameters = {
            **_GROUP_CONSTANTS, **_ENDING_CONSTANTS,
            "version": 1,
            "occ_failure_id": failure_id, "occ_job_id": uuid.UUID(job_id), "occ_occurred_at": now,
            "occ_job_type": job_type, "occ_worker_name": None, "occ_worker_version": None,
            "occ_is_current": True, "counted_version": "", "current_jobs": 1,
            "count_shard": job_shard(job_id),
            "hour": now.replace(minute=0, second=0, microsecond=0), "hour_shard": random.randrange(16),
        }

        def payload(chosen: list) -> Jsonb:  # noqa: ANN001
            return Jsonb([{"fingerprint": fingerprint, "item_count": 1, "severity": "error", "positions": [position]}
                          for fingerprint, position, _item, _pattern in chosen])

        statement = GROUP_ENDING_SQL if end_previous else GROUP_SQL
        found = {row[_FINGERPRINT]: row for row in connection.execute(
            statement, {**parameters, "hits": payload(hits)}, prepare=True).fetchall()}
        missing = [hit for hit in hits if hit[0] not in found]
        for fingerprint, _position, item, pattern in missing:
            created = connection.execute(CREATE_GROUP_SQL, {
                "fingerprint": fingerprint, "title": item["code"], "code": item["code"], "pattern": pattern,
                "message": item["message"], "at": now,
            }).fetchone()
            if created is not None:
                connection.execute(CREATED_EVENT_SQL, (created[0], now))
        if missing:  # without the ending: done by the first statement, as the app
            connection.execute(GROUP_SQL, {**parameters, "hits": payload(missing)}, prepare=True).fetchall()
        for fingerprint, _position, item, _pattern in hits:
            group = found.get(fingerprint)
            if group is not None and group[_LAST_SEEN] < now - timedelta(seconds=1):
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
