"""Running the reference worker over a folder of entity documents."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.worker.client import WorkerApiClient
from app.worker.validation import is_valid, validate_entity_document

#: How many error codes the short ``error_message`` names before "…".
MESSAGE_CODES_SHOWN = 3


@dataclass
class DocumentOutcome:
    """What happened to one document: its file, job id, final status and the
    codes of its blocking errors (empty when valid)."""

    file: str
    document_id: str
    job_id: str
    status: str
    error_codes: list[str] = field(default_factory=list)


def summarise(errors: list[dict[str, Any]]) -> str:
    """A short ``error_message`` for a list of error items; no patient text.

    Example: ``"Entity validation failed: 2 errors (code.unknown_icd10cm, schema.required)"``.
    """
    blocking = [e for e in errors if e["severity"] in ("fatal", "error")]
    codes = sorted({e["code"] for e in blocking})
    shown = ", ".join(codes[:MESSAGE_CODES_SHOWN]) + (", …" if len(codes) > MESSAGE_CODES_SHOWN else "")
    noun = "error" if len(blocking) == 1 else "errors"
    return f"Entity validation failed: {len(blocking)} {noun} ({shown})"


def load_document(path: Path) -> tuple[Any, str]:
    """Read one entity document; returns ``(document, document_id)``.

    A file that is not JSON yields ``(None, <file stem>)`` so it is reported
    as a fatal validation failure rather than stopping the run.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None, path.stem
    document_id = document.get("document_id") if isinstance(document, dict) else None
    if not isinstance(document_id, str) or not document_id.strip():
        document_id = path.stem
    return document, document_id


def process_document(client: WorkerApiClient, path: Path) -> DocumentOutcome:
    """Create a job for ``path``, start it, validate, and report the outcome.

    Raises:
        ApiError: the API refused a step (e.g. 409 on a finished job).
        requests.ConnectionError: the server stayed unreachable after retries.
    """
    document, document_id = load_document(path)
    job = client.create_job(document_id)
    client.start_job(job["id"])
    errors = validate_entity_document(document)
    if is_valid(errors):
        finished = client.complete_job(job["id"])
        return DocumentOutcome(path.name, document_id, job["id"], finished["status"])
    finished = client.record_validation_failure(job["id"], summarise(errors), {"errors": errors})
    codes = sorted({e["code"] for e in errors if e["severity"] in ("fatal", "error")})
    return DocumentOutcome(path.name, document_id, job["id"], finished["status"], codes)


def run_worker(
    client: WorkerApiClient,
    corpus: Path,
    on_outcome: Callable[[DocumentOutcome], None] | None = None,
) -> list[DocumentOutcome]:
    """Process every ``*.json`` file in ``corpus`` (sorted by name).

    ``expected.json`` (the corpus's answer key) is skipped. Returns one
    :class:`DocumentOutcome` per document, in order; ``on_outcome`` is called
    after each.
    """
    outcomes = []
    for path in sorted(corpus.glob("*.json")):
        if path.name == "expected.json":
            continue
        outcome = process_document(client, path)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return outcomes
