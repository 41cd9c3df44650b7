"""Idempotent answers of the API's changing requests (``Idempotency-Key``,
draft-ietf-httpapi-idempotency-key-header): the key is claimed, the change
made and its answer stored in one write transaction, and a retry with the
same key gets the stored answer with ``Idempotent-Replayed: true``
(:mod:`app.services.idempotency` keeps the keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, g, jsonify, request, url_for

from app.services.idempotency import IdempotencyClaim
from app.unit_of_work import WriteTransaction, replayed_write_transaction


def idempotent_answer(produce: Callable[[], Any], body: Any, *, status: int = 200) -> Response:
    """Run ``produce`` (a change that returns its JSON answer) and answer
    with it, idempotently when the request has an ``Idempotency-Key``.

    One write transaction, in this order: claim the key (a retry gets the
    stored answer and changes nothing), run the change (its service joins
    the transaction), render the answer from the flushed rows (nothing is
    read back after the commit) and store it with the key. The whole of
    it runs again when PostgreSQL aborts it as a deadlock's victim
    (:func:`app.unit_of_work.replayed_write_transaction`). Keys are
    scoped to the worker token that sent them (``g.worker_token_id``, set by
    :func:`app.auth.guards.enforce_access`). ``body``: the parsed JSON body
    (``None`` when there is none), part of what a retry must repeat.

    Raises:
        InvalidIdempotencyKeyError: a malformed key (400).
    """
    key = request.headers.get("Idempotency-Key")
    claim = (
        IdempotencyClaim.for_request(g.worker_token_id, key, request.method, request.path, body)
        if key is not None
        else None
    )
    def claim_change_and_stage(transaction: WriteTransaction) -> tuple[Any, bool]:
        stored = claim.claim() if claim is not None else None
        if stored is not None:
            transaction.rollback()  # nothing was written
            return stored, True
        payload = produce()
        if claim is not None:
            claim.stage(status, payload)
        return payload, False

    # Replayed from the claim on when PostgreSQL picks it as a deadlock's
    # victim: the worker gets its answer instead of a 503.
    answer, replayed = replayed_write_transaction(claim_change_and_stage)
    if replayed:
        return _json(answer.status, answer.body, replayed=True)
    return _json(status, answer, replayed=False)


def _json(status: int, payload: Any, *, replayed: bool) -> Response:
    response = jsonify(payload)
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("api.get_processing_job", job_id=payload["id"])
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
