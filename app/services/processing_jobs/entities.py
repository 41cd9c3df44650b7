"""The entities of a ``completed`` result: the checks the contract's schema
cannot state, the rows stored, and whether a result repeats the stored one.

Pure but for :func:`same_entities` (one read of the job's entities).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from app.errors import FieldError, field_error
from app.extensions import db
from app.models import EntityType, ExtractedEntity
from app.services.json_values import (
    InvalidJSONValueError,
    clean_json_value,
    clean_text,
    has_acting_control,
    json_equal,
)
from app.services.processing_jobs.errors import InvalidEntitiesError

#: Deepest nesting accepted in an entity's ``attributes``.
MAX_ATTRIBUTES_DEPTH = 8


def entity_errors(entities: Any) -> list[FieldError]:
    """The checks of ``completed`` entities that the contract's schema cannot
    state: a span that ends before it starts, ``attributes`` nested deeper
    than :data:`MAX_ATTRIBUTES_DEPTH` or holding a string over 2,000
    characters, a control character other than TAB, LF and CR (NUL
    included) in a ``code``, ``code_system`` or the ``value``'s ``unit``,
    ``system`` or ``code`` (identifiers, as an error item's entity code is).
    Pure (no database), and safe on any JSON value, so the API can report
    these faults together with the schema's.

    Returns:
        Field errors with pointers into the request body (``/entities/N/...``).
    """
    if not isinstance(entities, list):
        return []
    errors: list[FieldError] = []
    for index, entity in enumerate(entities):
        if isinstance(entity, Mapping):
            errors.extend(_entity_errors(index, entity)[0])
    return errors


def _entity_errors(index: int, entity: Mapping[str, Any]) -> tuple[list[FieldError], Any]:
    errors: list[FieldError] = []
    span = entity.get("span")
    if isinstance(span, Mapping):
        start, end = span.get("start"), span.get("end")
        # Numbers, not only ints: JSON Schema's "integer" takes 1.0 too.
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end)) and end < start:
            errors.append(field_error(f"/entities/{index}/span/end", "must not be before span.start"))
    # Codes, code systems and units are identifiers, as an error item's
    # entity code is (error_details.items.require_identifier).
    value = entity.get("value")
    identifiers = [(key, entity.get(key)) for key in ("code", "code_system")]
    if isinstance(value, Mapping):
        identifiers += [(f"value/{key}", value.get(key)) for key in ("unit", "system", "code")]
    for where, text in identifiers:
        # NUL too: the module rule's U+FFFD would store another code (a
        # trial: "http://x\u0000" became "http://x\ufffd").
        if isinstance(text, str) and (has_acting_control(text) or "\x00" in text):
            errors.append(field_error(
                f"/entities/{index}/{where}", "must not hold a control character other than TAB, LF and CR (a code)"
            ))
    attributes = entity.get("attributes")
    try:
        attributes = clean_json_value(attributes, max_depth=MAX_ATTRIBUTES_DEPTH, max_string_length=2_000)
    except InvalidJSONValueError as exc:
        errors.append(field_error(f"/entities/{index}/attributes{exc.pointer}", exc.reason))
    return errors, attributes


def _entity_row(index: int, entity: Mapping[str, Any], attributes: Any) -> ExtractedEntity:
    """The row of a checked entity; ``attributes`` as :func:`_entity_errors` cleaned them."""
    span = entity["span"]
    code = entity.get("code")
    code_system = entity.get("code_system")
    return ExtractedEntity(
        position=index,
        entity_type=EntityType(entity["entity_type"]).value,
        text=clean_text(entity["text"]),
        code=clean_text(code) if code is not None else None,
        code_system=clean_text(code_system) if code_system is not None else None,
        confidence=float(entity["confidence"]),
        page=span.get("page"),
        span_start=span["start"],
        span_end=span["end"],
        value=_quantity(entity.get("value")),
        attributes=attributes,
    )


def _quantity(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # Checked against the contract's Quantity schema by the caller: a number
    # and short strings; the strings follow the stored-text rule.
    if value is None:
        return None
    return {key: clean_text(item) if isinstance(item, str) else item for key, item in value.items()}


def checked_entity_rows(entities: Sequence[Mapping[str, Any]]) -> list[ExtractedEntity]:
    """The rows of a result's ``entities`` (the contract's
    ``ExtractedEntityInput`` objects, already checked against its schema),
    in the worker's order, not yet added to a session nor given a job.

    Raises:
        InvalidEntitiesError: every entity's faults of :func:`entity_errors`, in one answer.
    """
    # Every entity checked once, and every entity's faults in one answer.
    checked = [_entity_errors(index, entity) for index, entity in enumerate(entities)]
    faults = [fault for errors, _attributes in checked for fault in errors]
    if faults:
        raise InvalidEntitiesError(faults)
    return [
        _entity_row(index, entity, attributes)
        for index, (entity, (_errors, attributes)) in enumerate(zip(entities, checked))
    ]


#: The columns a result sets, compared by :func:`same_entities`.
_RESULT_COLUMNS = ("position", "entity_type", "text", "code", "code_system", "confidence", "page",
                   "span_start", "span_end", "value", "attributes")


def same_entities(job_id: uuid.UUID, rows: Sequence[ExtractedEntity]) -> bool:
    """Whether the job's stored entities are ``rows`` (from
    :func:`checked_entity_rows`), field for field and in order: the same
    ``completed`` result sent again. JSON fields compare as JSON values
    (:func:`~app.services.json_values.json_equal`: key order aside, numbers
    by value)."""
    stored = db.session.scalars(
        sa.select(ExtractedEntity).where(ExtractedEntity.job_id == job_id).order_by(ExtractedEntity.position)
    ).all()
    return len(stored) == len(rows) and all(
        _same_fields(old, new) for old, new in zip(stored, rows)
    )


def _same_fields(old: ExtractedEntity, new: ExtractedEntity) -> bool:
    # JSON fields as JSON (json_equal): PostgreSQL's jsonb gives 1e16 back
    # as the integer 10000000000000000, and the same result sent again was
    # a 409 (a trial).
    return all(
        json_equal(getattr(old, name), getattr(new, name)) if name in ("value", "attributes")
        else getattr(old, name) == getattr(new, name)
        for name in _RESULT_COLUMNS
    )
