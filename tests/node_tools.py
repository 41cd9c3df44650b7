"""The Node.js side of the tests: examples/node-worker/ and its pinned packages.

ajv and zod are JavaScript libraries, so the adapters for their output are
tested on what the real libraries print: ``examples/node-worker/native-errors.mjs``
validates documents with ajv 8 and zod 3 and 4 (versions pinned in its
committed ``package-lock.json``) and prints their native errors.

Node and npm come from Debian (``scripts/ensure-test-tools`` installs them);
the packages are installed with ``npm ci`` by ``make test`` and, when they
are missing or older than the lock file, by :func:`ensure_node_packages`.
A missing ``node`` or ``npm`` fails the tests: they are never skipped.
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
NODE_WORKER = ROOT / "examples" / "node-worker"
#: Written by npm ci (and npm install) after a complete install.
_INSTALLED_MARK = NODE_WORKER / "node_modules" / ".package-lock.json"
#: Seconds npm ci may take (a cold cache downloads a handful of small packages).
NPM_DEADLINE_S = 300
NODE_DEADLINE_S = 120


def node_binary() -> str:
    """The ``node`` program; fails the test when it is missing."""
    node = os.environ.get("NODE") or shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail("node not found: run scripts/ensure-test-tools (apt-get install nodejs npm)")
    return node


def ensure_node_packages() -> Path:
    """Install examples/node-worker's packages with ``npm ci`` unless they are
    already installed from the current lock file; return the folder."""
    node_binary()
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not found: run scripts/ensure-test-tools (apt-get install nodejs npm)")
    lock = NODE_WORKER / "package-lock.json"
    if _INSTALLED_MARK.exists() and _INSTALLED_MARK.stat().st_mtime >= lock.stat().st_mtime:
        return NODE_WORKER
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_WORKER,
        capture_output=True,
        text=True,
        timeout=NPM_DEADLINE_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci failed in {NODE_WORKER}: {result.stderr[-2000:]}")
    return NODE_WORKER


def run_node(script: str, *args: str, stdin: str = "", env: dict[str, str] | None = None,
             timeout: float = NODE_DEADLINE_S) -> subprocess.CompletedProcess[str]:
    """Run ``node <script> <args>`` in examples/node-worker (packages installed first)."""
    ensure_node_packages()
    return subprocess.run(
        [node_binary(), script, *args],
        cwd=NODE_WORKER,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def native_errors(documents: list[Any]) -> list[dict[str, Any]]:
    """What ajv and zod say about each document (see native-errors.mjs):
    ``{"ajv_all_errors", "ajv_first_error", "ajv_verbose", "zod3", "zod4"}``
    per document, ``None`` where the document is valid."""
    result = run_node("native-errors.mjs", stdin=json.dumps(documents))
    if result.returncode != 0:
        pytest.fail(f"native-errors.mjs failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)
