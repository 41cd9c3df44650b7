"""``METRICS_TOKEN_SHA256``: a scrape-only token for ``/metrics``, checked
without the database (a trial: with the database down the scrape was a 503,
so the 503 alert could not fire, and Prometheus held a worker token)."""

from __future__ import annotations

import hashlib

import pytest

from app import create_app
from app.config import ConfigError, load_config
from app.extensions import db
from tests.live_server import free_port

TOKEN = "scrape-only-3f9c"
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()


def test_the_metrics_token_reads_metrics_while_the_database_is_down():
    app = create_app({"TESTING": True, "METRICS_TOKEN_SHA256": DIGEST, "DB_CONNECT_TIMEOUT_S": 2,
                      "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://u@127.0.0.1:{free_port()}/none"})
    try:
        client = app.test_client()
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        assert b"http_requests_total" in response.data
        # Another token needs the database to be checked: not a 200.
        assert client.get("/metrics", headers={"Authorization": "Bearer other"}).status_code in (401, 503)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_metrics_token_opens_nothing_else(make_app):
    app = make_app(METRICS_TOKEN_SHA256=DIGEST)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/metrics", headers=headers).status_code == 200
    assert client.get("/api/v1/processing-jobs", headers=headers).status_code == 401
    assert client.post("/api/v1/processing-jobs", headers=headers, json={"document_id": "d"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401


def test_the_setting_must_be_a_sha256_digest(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN_SHA256", TOKEN)
    with pytest.raises(ConfigError, match="METRICS_TOKEN_SHA256"):
        load_config({})
    monkeypatch.setenv("METRICS_TOKEN_SHA256", DIGEST.upper())
    assert load_config({})["METRICS_TOKEN_SHA256"] == DIGEST
