"""The framework floor for bench/load.py: the least a Flask endpoint can do.

Flask under gunicorn with the same worker, thread and keep-alive settings as
the app, answering the record-failure route with the psycopg-direct phase's
transaction (``SELECT ... FOR UPDATE``, ``UPDATE``, ``INSERT``, ``COMMIT``),
one psycopg connection per thread, and nothing else: no authentication, no
body check against the contract, no normalisation, no ORM, no logging or
metrics. Its throughput is the most any Flask app could reach on this
machine, so it tells how much of the gap to psycopg direct is the framework
and how much is the app. Not part of the product; started by bench/load.py
with ``BENCH_DSN`` set.
"""

from __future__ import annotations

import os
import threading
import uuid

import psycopg
from flask import Flask, jsonify, request
from psycopg.types.json import Jsonb

app = Flask(__name__)
_local = threading.local()


def _connection() -> psycopg.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed:
        connection = _local.connection = psycopg.connect(os.environ["BENCH_DSN"])
    return connection


@app.post("/api/v1/processing-jobs/<job_id>/validation-failure")
def record_validation_failure(job_id: str):  # noqa: ANN201
    """The psycopg-direct transaction behind a Flask route; 200 and the id."""
    body = request.get_json()
    details = {"schema_version": 1, **body["error_details"], "error_count": 2, "truncated": False}
    connection = _connection()
    with connection.transaction():
        row = connection.execute(
            "SELECT id, status, error_message, error_details FROM processing_jobs WHERE id = %s FOR UPDATE",
            (job_id,),
        ).fetchone()
        if row is None:
            return jsonify(error="no such job"), 404
        connection.execute(
            "UPDATE processing_jobs SET status = 'Validation_Failed', error_message = %s,"
            " error_details = %s, error_format = 'normalized', completed_at = now(),"
            " acknowledged_at = NULL, acknowledged_by = NULL, updated_at = now() WHERE id = %s",
            (body["error_message"], Jsonb(details), job_id),
        )
        connection.execute(
            "INSERT INTO job_failures (id, job_id, status, error_message, error_details, error_format, recorded_at)"
            " VALUES (%s, %s, 'Validation_Failed', %s, %s, 'normalized', now())",
            (uuid.uuid4(), job_id, body["error_message"], Jsonb(details)),
        )
    return jsonify(id=job_id, status="Validation_Failed")


@app.get("/readyz")
def readyz():  # noqa: ANN201
    """Up (bench/load.py waits for it)."""
    return "ok"
