"""The ``extracted_entities`` table: entities a worker extracted from a completed job."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import JSONDocument, UTCDateTime, utcnow


class EntityType(StrEnum):
    """Kinds of clinical entity, named after the FHIR resources they become."""

    CONDITION = "Condition"
    MEDICATION_STATEMENT = "MedicationStatement"
    ALLERGY_INTOLERANCE = "AllergyIntolerance"
    OBSERVATION = "Observation"
    PROCEDURE = "Procedure"


ENTITY_TEXT_MAX_LENGTH = 2_000
ENTITY_CODE_MAX_LENGTH = 64
CODE_SYSTEM_MAX_LENGTH = 255


class ExtractedEntity(db.Model):
    """One clinical entity from a ``Completed`` job, with typed columns.

    ``code_system`` is a URI as FHIR ``Coding.system`` uses (e.g.
    ``http://hl7.org/fhir/sid/icd-10-cm``). ``confidence`` is 0 to 1. The
    source span is ``page`` (1-based, optional) and the character offsets
    ``span_start`` <= ``span_end`` (0-based, end exclusive).
    ``value`` is the measured value as a FHIR Quantity ``{"value": number,
    "unit": str, "system"?: URI, "code"?: str}`` (an observation's result, a
    medication's dose), or ``None``. ``attributes`` holds any further JSON
    object the worker sent.
    """

    __tablename__ = "extracted_entities"
    __table_args__ = (
        sa.CheckConstraint(
            "entity_type IN (" + ", ".join(f"'{t.value}'" for t in EntityType) + ")", name="entity_type"
        ),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
        sa.CheckConstraint("span_start >= 0 AND span_end >= span_start", name="span_order"),
        sa.UniqueConstraint("job_id", "position", name="uq_extracted_entities_job_id_position"),
        sa.Index("ix_extracted_entities_code_system_code", "code_system", "code"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("processing_jobs.id", ondelete="CASCADE"), nullable=False
    )
    position: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    entity_type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    text: Mapped[str] = mapped_column(sa.Text, nullable=False)
    code: Mapped[str | None] = mapped_column(sa.String(ENTITY_CODE_MAX_LENGTH), nullable=True)
    code_system: Mapped[str | None] = mapped_column(sa.String(CODE_SYSTEM_MAX_LENGTH), nullable=True)
    confidence: Mapped[float] = mapped_column(sa.Float, nullable=False)
    page: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    span_start: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    span_end: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    value: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    attributes: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:  # never the text: it is patient data
        return f"<ExtractedEntity {self.entity_type} {self.code_system}|{self.code}>"
