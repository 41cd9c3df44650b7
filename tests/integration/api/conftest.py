"""Fixtures of the JSON API tests: a pending job, a failed job, the Node
example worker installed outside the work tree (extra apps: ``make_app`` in
tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.integration.api.helpers import FIRST_FAILURE, create_job, job_url, post_ok
from tests.node_tools import install_node_worker


@pytest.fixture(scope="session")
def node_worker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/node-worker with its pinned packages, in a temporary folder
    (``npm ci`` once per session; nothing is written to the work tree)."""
    return install_node_worker(tmp_path_factory.mktemp("node-worker"))


@pytest.fixture
def job(client: FlaskClient) -> dict[str, Any]:
    """A ``Pending`` job, as the API returned it."""
    return create_job(client)


@pytest.fixture
def failed_job(client: FlaskClient, job: dict[str, Any]) -> dict[str, Any]:
    """A job already ``Validation_Failed`` with a first report, so a refused
    request that slipped through would show as a changed message or details."""
    return post_ok(client, job_url(job["id"], "validation-failure"), FIRST_FAILURE)


