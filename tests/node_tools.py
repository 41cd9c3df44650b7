"""The Node.js side of the tests: examples/node-worker/ and its pinned packages.

ajv and zod are JavaScript libraries, so the adapters for their output are
tested on what the real libraries print: ``examples/node-worker/native-errors.mjs``
validates documents with ajv 8 and zod 3 and 4 (versions pinned in its
committed ``package-lock.json``) and prints their native errors.

Node and npm come from Debian (``scripts/ensure-test-tools`` installs them).
The tests never install into the work tree: :func:`install_node_worker`
copies the example (and the entity-document schema it reads, at the same
relative place) into a temporary folder and runs ``npm ci`` there, once per
test session, as the browser tests do for axe-core. A missing ``node`` or
``npm``, or a failed install, fails the tests: they are never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_WORKER = Path("examples") / "node-worker"
#: What the example reads outside its folder (lib/ajv-validator.mjs), by the same relative path.
ENTITY_SCHEMA = Path("app") / "worker" / "schemas" / "entity-document.v1.schema.json"
#: Seconds npm ci may take (a cold cache downloads a handful of small packages).
NPM_DEADLINE_S = 300
NODE_DEADLINE_S = 120


def node_binary() -> str:
    """The ``node`` program; fails the test when it is missing."""
    node = os.environ.get("NODE") or shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail("node not found: run scripts/ensure-test-tools (apt-get install nodejs npm)")
    return node


def install_node_worker(into: Path) -> Path:
    """Copy examples/node-worker (without any ``node_modules``) under ``into``,
    install its packages there with ``npm ci`` from the committed lock file,
    and return the copy's folder (the working directory for :func:`run_node`)."""
    node_binary()
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not found: run scripts/ensure-test-tools (apt-get install nodejs npm)")
    folder = into / NODE_WORKER
    shutil.copytree(ROOT / NODE_WORKER, folder, ignore=shutil.ignore_patterns("node_modules"))
    (into / ENTITY_SCHEMA).parent.mkdir(parents=True)
    shutil.copyfile(ROOT / ENTITY_SCHEMA, into / ENTITY_SCHEMA)
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=NPM_DEADLINE_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci failed for the Node example worker: {result.stderr[-2000:]}")
    return folder


def run_node(folder: Path, script: str, *args: str, stdin: str = "", env: dict[str, str] | None = None,
             timeout: float = NODE_DEADLINE_S) -> subprocess.CompletedProcess[str]:
    """Run ``node <script> <args>`` in ``folder`` (from :func:`install_node_worker`)."""
    return subprocess.run(
        [node_binary(), script, *args],
        cwd=folder,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def native_errors(folder: Path, documents: list[Any]) -> list[dict[str, Any]]:
    """What ajv and zod say about each document (see native-errors.mjs):
    ``{"ajv_all_errors", "ajv_first_error", "ajv_verbose", "zod3", "zod4"}``
    per document, ``None`` where the document is valid."""
    result = run_node(folder, "native-errors.mjs", stdin=json.dumps(documents))
    if result.returncode != 0:
        pytest.fail(f"native-errors.mjs failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)
