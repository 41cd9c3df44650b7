"""Running the reference worker over a folder of entity documents."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.worker.client import WorkerApiClient
from app.worker.semantic_checks import BLOCKING_SEVERITIES
from app.worker.validation import is_valid, validate_entity_document

#: How many error codes the short ``error_message`` names before "…".
MESSAGE_CODES_SHOWN = 3

#: Entity fields that have a field of their own in the contract's
#: ``ExtractedEntityInput``; the measured value (:data:`QUANTITY_FIELDS`)
#: goes to ``value``, every other field under ``attributes``.
ENTITY_INPUT_FIELDS = ("entity_type", "text", "code", "code_system", "confidence")

#: The entity document's FHIR Quantity fields: an observation's ``value`` and
#: a medication's ``dosage`` become the contract's ``value``.
QUANTITY_FIELDS = ("value", "dosage")

#: The answer key that sits next to the documents of the demo corpus.
ANSWER_KEY_NAME = "expected.json"

#: Who the reference worker says it is in each report (``"worker"``: the
#: failure groups show it, and "resolved in version X" compares it).
WORKER_NAME = "reference-worker"
WORKER_VERSION = "1.0.0"
DEFAULT_WORKER = {"name": WORKER_NAME, "version": WORKER_VERSION}


@dataclass
class DocumentOutcome:
    """What happened to one document.

    Attributes:
        file: the file name (no folder).
        document_id: the id the job was created with.
        job_id: the job's UUID.
        status: the job's final status as the API answered it (``Completed``,
            ``Validation_Failed``).
        error_codes: the distinct codes of its blocking errors, sorted (empty when valid).
        entity_count: how many entities were stored with the job (0 when invalid).
    """

    file: str
    document_id: str
    job_id: str
    status: str
    error_codes: list[str] = field(default_factory=list)
    entity_count: int = 0


def summarise(errors: list[dict[str, Any]]) -> str:
    """A short ``error_message`` for a list of error items; no patient text.

    Example: ``"Entity validation failed: 2 errors (code.unknown_icd10cm, schema.required)"``.
    """
    blocking = [e for e in errors if e["severity"] in BLOCKING_SEVERITIES]
    codes = sorted({e["code"] for e in blocking})
    shown = ", ".join(codes[:MESSAGE_CODES_SHOWN]) + (", …" if len(codes) > MESSAGE_CODES_SHOWN else "")
    noun = "error" if len(blocking) == 1 else "errors"
    return f"Entity validation failed: {len(blocking)} {noun} ({shown})"


#: An entity's ``code`` is sent with an error only when it looks like a code
#: (letters, digits, ``.`` and ``-``, at most 20): an extractor that put a
#: phrase of patient text in ``code`` must not have it copied into the error.
_CODE_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,19}")

_TYPE_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

_ENTITY_POINTER = re.compile(r"/entities/(0|[1-9][0-9]*)(?:/|\Z)")


def with_entities(errors: list[dict[str, Any]], document: Any) -> list[dict[str, Any]]:
    """The error items, each about one entity of ``document`` (pointer under
    ``/entities/<n>``) given ``entity``: ``{"type", "code"}`` of that entity
    (error-details contract v1), as far as each looks like a type name or
    a code. No patient text: never ``text``, values or dates.
    Items about the document as a whole are returned unchanged.
    """
    entities = document.get("entities") if isinstance(document, dict) else None
    if not isinstance(entities, list):
        return errors
    result = []
    for item in errors:
        match = _ENTITY_POINTER.match(item["pointer"])
        entity = entities[int(match.group(1))] if match and int(match.group(1)) < len(entities) else None
        reference: dict[str, str] = {}
        if isinstance(entity, dict):
            if isinstance(entity.get("entity_type"), str) and _TYPE_SHAPE.fullmatch(entity["entity_type"]):
                reference["type"] = entity["entity_type"]
            if isinstance(entity.get("code"), str) and _CODE_SHAPE.fullmatch(entity["code"]):
                reference["code"] = entity["code"]
        result.append({**item, "entity": reference} if reference else item)
    return result


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


def entity_input(entity: dict[str, Any]) -> dict[str, Any]:
    """Map one entity of a valid entity document to the contract's ``ExtractedEntityInput``.

    Args:
        entity: an entity that passed :func:`validate_entity_document`
            (``schemas/entity-document.v1.schema.json``).

    Returns:
        ``{"entity_type", "text", "code", "code_system", "confidence", "span":
        {"page", "start", "end"}, "value"?: Quantity, "attributes": {...}}``.
        ``value`` is the observation's ``value`` or the medication's
        ``dosage`` (a FHIR Quantity), left out when there is none.
        ``attributes`` holds the document's own ``attributes`` plus the other
        type-specific fields (``onset_date``, ``effective_date``,
        ``criticality``, ``performed_date``), always an object (``{}`` when
        there are none). A type-specific field wins over an extractor
        attribute of the same name: it is the one the worker validated.
    """
    reserved = {*ENTITY_INPUT_FIELDS, *QUANTITY_FIELDS, "span", "attributes"}
    attributes = {**entity.get("attributes", {}), **{k: v for k, v in entity.items() if k not in reserved}}
    span = entity["span"]
    mapped = {
        **{name: entity[name] for name in ENTITY_INPUT_FIELDS},
        "span": {"page": span["page"], "start": span["start"], "end": span["end"]},
    }
    quantity = next((entity[name] for name in QUANTITY_FIELDS if name in entity), None)
    if quantity is not None:
        mapped["value"] = dict(quantity)
    mapped["attributes"] = attributes
    return mapped


def process_document(
    client: WorkerApiClient, path: Path, worker: dict[str, str] | None = None
) -> DocumentOutcome:
    """Create a job for ``path``, start it, validate the document and post the result.

    A valid document is posted ``completed`` with its entities (see
    :func:`entity_input`), in document order. An invalid one, or a file that is
    not JSON (a single fatal ``schema.type`` item), is posted
    ``validation_failed`` with ``error_format: "normalized"``, every item the
    validator gave (warnings included), each with the type and code of the
    entity it is about (:func:`with_entities`), the short :func:`summarise`
    message, which quotes no patient text, and ``"worker": {"name",
    "version"}`` (``worker``, default :data:`DEFAULT_WORKER`; the contract
    takes it on failures only).

    Raises:
        ApiError: the API refused a step (e.g. 409 on a finished job, 422 on
            a body it does not accept).
        requests.ConnectionError / requests.Timeout: the server stayed
            unreachable after the client's retries.
    """
    document, document_id = load_document(path)
    who = {"worker": dict(worker or DEFAULT_WORKER)}
    job = client.create_job(document_id)
    client.start_job(job["id"])
    errors = validate_entity_document(document)
    if is_valid(errors):
        entities = [entity_input(entity) for entity in document["entities"]]
        finished = client.record_result(job["id"], {"status": "completed", "entities": entities})
        return DocumentOutcome(path.name, document_id, job["id"], finished["status"], entity_count=len(entities))
    finished = client.record_result(
        job["id"],
        {
            "status": "validation_failed",
            "error_message": summarise(errors),
            "error_details": {"errors": with_entities(errors, document)},
            "error_format": "normalized",
            **who,
        },
    )
    codes = sorted({e["code"] for e in errors if e["severity"] in BLOCKING_SEVERITIES})
    return DocumentOutcome(path.name, document_id, job["id"], finished["status"], codes)


def corpus_documents(corpus: Path) -> list[Path]:
    """The documents of a corpus folder: its ``*.json`` files sorted by name,
    without the answer key (``expected.json``)."""
    return [path for path in sorted(corpus.glob("*.json")) if path.name != ANSWER_KEY_NAME]


def run_worker(
    client: WorkerApiClient,
    corpus: Path,
    on_outcome: Callable[[DocumentOutcome], None] | None = None,
    worker: dict[str, str] | None = None,
) -> list[DocumentOutcome]:
    """Process every document of ``corpus`` (see :func:`corpus_documents`), in order.

    Returns one :class:`DocumentOutcome` per document, in order; ``on_outcome``
    is called after each. Raises what :func:`process_document` raises, at the
    first document that fails so.
    """
    outcomes = []
    for path in corpus_documents(corpus):
        outcome = process_document(client, path, worker)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return outcomes
