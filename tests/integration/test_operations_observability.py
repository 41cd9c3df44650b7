"""Request ids, the per-request log line, JSON log lines and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.web.errors import PROBLEM_MEDIA_TYPE
from app.observability.logs import JSONFormatter, RequestIdFilter, logging_config
from app.observability import metrics
from app.observability.metrics import code_label, failure_codes

PATIENT_TEXT = "Jane Doe MRN 0042 penicillin allergy"


@pytest.fixture(autouse=True)
def _fresh_code_labels(monkeypatch):
    # The code labels are capped per process (MAX_CODE_LABELS); earlier tests
    # of the same run (test_worker_contract posts 450 codes) may have used
    # them all, and then the codes these tests send would count as "other".
    monkeypatch.setattr(metrics, "_seen_codes", set())


def _sample(client, name: str, **labels: str) -> float:
    """The value of one sample on ``/metrics`` (0 when absent)."""
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _new_job(client) -> str:
    response = client.post("/api/v1/processing-jobs", json={"document_id": "doc-1"})
    assert response.status_code == 201
    return response.json["id"]


def test_a_valid_incoming_request_id_is_returned_and_put_in_problems(client):
    response = client.get(
        f"/api/v1/processing-jobs/{uuid.uuid4()}", headers={"X-Request-ID": "worker-7.abc_1"}
    )
    assert response.status_code == 404
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    assert response.headers["X-Request-ID"] == "worker-7.abc_1"
    assert response.json["request_id"] == "worker-7.abc_1"


@pytest.mark.parametrize("incoming", ["", "has space", "x" * 129, "tab\there", "<script>", "é"])
def test_an_invalid_request_id_is_replaced_by_a_generated_one(client, incoming):
    response = client.get("/healthz", headers={"X-Request-ID": incoming})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_every_response_gets_a_request_id_even_an_unrouted_one(client):
    response = client.get("/api/v1/nowhere")
    assert response.status_code == 404
    assert response.json["request_id"] == response.headers["X-Request-ID"]


def test_one_request_line_names_endpoint_status_and_duration_but_no_query_or_body(
    client, worker_token, caplog
):
    job_id = _new_job(client)
    caplog.set_level(logging.INFO, logger="app.requests")
    client.post(
        f"/api/v1/processing-jobs/{job_id}/validation-failure",
        json={"error_message": PATIENT_TEXT, "error_details": {"note": PATIENT_TEXT}},
        headers={"X-Request-ID": "rid-42", "Authorization": f"Bearer {worker_token}"},
    )
    (record,) = [r for r in caplog.records if r.name == "app.requests"]
    assert record.method == "POST"
    assert record.endpoint == "api.record_validation_failure"
    assert record.status == 200
    assert record.duration_ms >= 0
    assert record.request_id == "rid-42"
    line = JSONFormatter().format(record)
    entry = json.loads(line)
    assert {
        "time",
        "level",
        "logger",
        "message",
        "request_id",
        "method",
        "endpoint",
        "status",
        "duration_ms",
    } <= set(entry)
    for secret in ("Jane", "patient", "penicillin", worker_token, job_id):
        assert secret not in line

    # A refused credential stays out of the log line too.
    caplog.clear()
    refused = client.post(
        f"/api/v1/processing-jobs/{job_id}/validation-failure?patient=Jane+Doe",
        json={"error_message": PATIENT_TEXT, "error_details": {"note": PATIENT_TEXT}},
        headers={"X-Request-ID": "rid-43", "Authorization": "Bearer tok-secret"},
    )
    assert refused.status_code == 401
    (record,) = [r for r in caplog.records if r.name == "app.requests"]
    assert record.status == 401 and record.request_id == "rid-43"
    line = JSONFormatter().format(record)
    for secret in ("Jane", "patient", "penicillin", "tok-secret", job_id):
        assert secret not in line

    # Patient text in a query string: refused (a write takes no query parameter), and out of the line.
    caplog.clear()
    queried = client.post(
        f"/api/v1/processing-jobs/{job_id}/validation-failure?patient=Jane+Doe",
        json={"error_message": PATIENT_TEXT, "error_details": {"note": PATIENT_TEXT}},
        headers={"X-Request-ID": "rid-44", "Authorization": f"Bearer {worker_token}"},
    )
    assert queried.status_code == 400
    (record,) = [r for r in caplog.records if r.name == "app.requests"]
    assert record.status == 400 and record.request_id == "rid-44"
    line = JSONFormatter().format(record)
    for secret in ("Jane", "patient", "penicillin", worker_token, job_id):
        assert secret not in line


def test_probe_requests_are_logged_at_debug_only(client, caplog):
    caplog.set_level(logging.INFO, logger="app.requests")
    client.get("/healthz")
    client.get("/metrics")
    assert [r for r in caplog.records if r.name == "app.requests"] == []


def test_json_formatter_writes_exception_type_and_frames_never_the_message():
    try:
        raise ValueError(PATIENT_TEXT)
    except ValueError:
        record = logging.LogRecord(
            "app.x", logging.ERROR, __file__, 1, "unhandled %s", ("ValueError",), sys.exc_info()
        )
    record.body = PATIENT_TEXT  # not a whitelisted field
    entry = json.loads(JSONFormatter().format(record))
    assert entry["exc_type"] == "ValueError"
    assert entry["exc_frames"] and all(" in " in frame for frame in entry["exc_frames"])
    assert PATIENT_TEXT not in json.dumps(entry)


def test_a_librarys_exception_in_its_message_arguments_is_written_as_its_type_only():
    # A trial: with the database down, the bulk worker logged psycopg_pool's
    # "error connecting in %r: %s" with the error's text (host, port, user).
    import psycopg

    from tests.live_server import free_port

    port = free_port()
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"host=127.0.0.1 port={port} user=ward7user dbname=ward7db connect_timeout=5")
    assert str(port) in str(refused.value)  # the text this guards against
    record = logging.LogRecord("psycopg.pool", logging.WARNING, __file__, 1, "error connecting in %r: %s",
                               ("pool-1", refused.value), None)
    keyed = logging.LogRecord("psycopg", logging.WARNING, __file__, 1, "%(why)s", None, None)
    keyed.args = {"why": ValueError(PATIENT_TEXT)}  # a mapping, as logging allows
    lines = [JSONFormatter().format(r) for r in (record, keyed)]
    assert [json.loads(line)["message"] for line in lines] == [
        "error connecting in 'pool-1': <OperationalError>", "<ValueError>"]
    assert not any(text in "".join(lines) for text in (str(port), "ward7", PATIENT_TEXT))


def test_request_id_filter_adds_the_id_inside_a_request(app):
    with app.test_request_context(headers={"X-Request-ID": "rid-filter"}):
        record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "m", (), None)
        RequestIdFilter().filter(record)
    assert record.request_id == "rid-filter"


def test_logging_config_keeps_sql_and_dev_server_loggers_quiet_at_debug():
    config = logging_config("DEBUG")
    assert config["root"]["level"] == "DEBUG"
    for name in ("sqlalchemy", "werkzeug"):
        assert config["loggers"][name]["level"] == "WARNING"
    assert config["loggers"]["gunicorn.access"]["level"] == "WARNING"
    assert logging_config("INFO", access_log=True)["loggers"]["gunicorn.access"]["level"] == "INFO"


def test_requests_are_counted_by_endpoint_name_not_path(client):
    before = _sample(
        client, "http_requests_total", endpoint="api.get_processing_job", method="GET", status="404"
    )
    client.get(f"/api/v1/processing-jobs/{uuid.uuid4()}")
    client.get(f"/api/v1/processing-jobs/{uuid.uuid4()}")
    after = _sample(
        client, "http_requests_total", endpoint="api.get_processing_job", method="GET", status="404"
    )
    assert after - before == 2
    text = client.get("/metrics").get_data(as_text=True)
    assert "/api/v1/processing-jobs/" not in text
    assert (
        _sample(
            client, "http_request_duration_seconds_count", endpoint="api.get_processing_job", method="GET"
        )
        >= 2
    )


def test_committed_failures_are_counted_by_code_and_refused_ones_are_not(client):
    job_id = _new_job(client)
    details = {
        "errors": [
            {"code": "schema.required", "severity": "error", "message": "missing", "pointer": "/a"},
            {"code": "schema.required", "severity": "error", "message": "missing", "pointer": "/b"},
            {"code": "unit.not_ucum", "severity": "error", "message": "bad unit", "pointer": "/c"},
        ]
    }
    required = _sample(client, "clinical_job_failure_codes_total", code="schema.required")
    ucum = _sample(client, "clinical_job_failure_codes_total", code="unit.not_ucum")
    recorded = _sample(
        client, "clinical_job_failures_recorded_total", status="Validation_Failed", error_format="normalized"
    )
    response = client.post(
        f"/api/v1/processing-jobs/{job_id}/validation-failure",
        json={"error_message": "Entity validation failed", "error_details": details},
    )
    assert response.status_code == 200
    # Refused (422) and unknown-job (404) reports store nothing and count nothing.
    client.post(
        f"/api/v1/processing-jobs/{job_id}/validation-failure",
        json={"error_message": " ", "error_details": details},
    )
    client.post(
        f"/api/v1/processing-jobs/{uuid.uuid4()}/validation-failure",
        json={"error_message": "x", "error_details": details},
    )
    assert _sample(client, "clinical_job_failure_codes_total", code="schema.required") - required == 1
    assert _sample(client, "clinical_job_failure_codes_total", code="unit.not_ucum") - ucum == 1
    assert (
        _sample(
            client,
            "clinical_job_failures_recorded_total",
            status="Validation_Failed",
            error_format="normalized",
        )
        - recorded
        == 1
    )


def test_failure_codes_reads_only_the_envelope_and_bounds_labels():
    assert failure_codes({"errors": [{"code": "a.b"}, {"code": "a.b"}, {"code": "c"}]}) == ["a.b", "c"]
    assert failure_codes("free text") == [] and failure_codes(None) == []
    assert code_label("Jane Doe has MRN 42") == "other"
    assert code_label(42) == "other"


def test_pool_use_is_exported(client):
    _new_job(client)
    assert _sample(client, "db_pool_size_connections") >= 1
    assert _sample(client, "db_pool_checked_out_connections") >= 0
