"""The ``processing_jobs`` table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.job_status import JobStatus
from app.models.types import JSONDocument, UTCDateTime, utcnow

#: Longest ``document_id`` / ``job_type`` accepted, in characters.
DOCUMENT_ID_MAX_LENGTH = 200
JOB_TYPE_MAX_LENGTH = 64

#: A job whose ``error_details.errors`` is an array of more items than this
#: is *wide*: the two pair rollups (:class:`~app.models.job_rollup.JobCodePairRollup`,
#: :class:`~app.models.job_rollup.JobGroupCodeRollup`) leave it out, since a
#: job with k codes writes about k * k rows there (a report of 200 codes took
#: 3 to 13 s; migration 0028), and the top codes read its codes from its
#: details instead (app/services/top_codes.py).
WIDE_JOB_ITEMS = 16
def wide_job_sql(dialect: str, column: str = "error_details") -> str:
    """"This job is wide" as SQL on the details column ``column`` (bare, or
    qualified such as ``processing_jobs.error_details``) for ``dialect``
    (``"postgresql"`` or ``"sqlite"``): more than :data:`WIDE_JOB_ITEMS`
    items in its ``errors`` array. Bare, it is the predicate of the partial
    index ``ix_processing_jobs_wide_created_at`` (:data:`WIDE_JOB_SQL`); a
    query must say it in these words for the planner to use the index.

    Raises:
        KeyError: another dialect.
    """
    template = {
        "postgresql": "CASE WHEN jsonb_typeof({c} -> 'errors') = 'array'"
                      " THEN jsonb_array_length({c} -> 'errors') ELSE 0 END > {n}",
        "sqlite": "CASE WHEN json_type({c}, '$.errors') = 'array'"
                  " THEN json_array_length({c}, '$.errors') ELSE 0 END > {n}",
    }[dialect]
    return template.format(c=column, n=WIDE_JOB_ITEMS)


#: :func:`wide_job_sql` on the bare column, per dialect: the partial index's predicate.
WIDE_JOB_SQL = {dialect: wide_job_sql(dialect) for dialect in ("postgresql", "sqlite")}

#: Schema objects of ``processing_jobs`` that exist on PostgreSQL only, made
#: by migration 0008 and left out of the model (SQLite has no such column):
#: the search's stored text ``search_text`` (generated from the document id,
#: the message and the error items; read by ``JobFilter.text``) and its
#: trigram index; and the text of the job's earlier failures
#: ``earlier_search_text`` (migration 0020, kept by a trigger) and its index.
#: :func:`is_schema_compared` keeps Alembic's comparison
#: (``flask db migrate``, tests/integration/test_migrations.py) off them.
POSTGRESQL_ONLY = {("column", "search_text"), ("index", "ix_processing_jobs_search_text"),
                   ("column", "earlier_search_text"), ("index", "ix_processing_jobs_earlier_search_text")}
#: The same for other tables: the trigram index of the failure groups'
#: titles (migration 0009), which the header search uses.
#: And the GIN index of the audit rows' ``job_ids`` (migration 0014), and
#: the document id's text_pattern_ops btree (migration 0018_document_prefix).
POSTGRESQL_ONLY_INDEXES = {("index", "ix_failure_groups_title_trgm"), ("index", "ix_audit_events_job_ids"),
                           ("index", "ix_processing_jobs_document_id_pattern")}


def is_schema_compared(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic ``include_object`` hook: ``False`` for :data:`POSTGRESQL_ONLY`
    objects found in the database, for procrastinate's job-queue tables
    (migration 0012, not models of ours) and for the summary rollups'
    partitions (:data:`app.models.job_rollup.ROLLUP_PARTITIONS`), ``True``
    for everything else."""
    from app.models.job_rollup import ROLLUP_PARTITIONS  # it imports this module

    if reflected and type_ == "table" and (name or "").startswith("procrastinate_"):
        return False
    if reflected and type_ == "table" and name in ROLLUP_PARTITIONS:
        return False
    return not (reflected and ((type_, name) in POSTGRESQL_ONLY or (type_, name) in POSTGRESQL_ONLY_INDEXES))


class ProcessingJob(db.Model):
    """One clinical document going through entity extraction.

    Timestamps are timezone-aware UTC on every backend (:class:`UTCDateTime`).
    ``error_details`` is any JSON value (``jsonb`` on PostgreSQL). Assign a new
    value to change it; the column does not track in-place mutation.
    """

    __tablename__ = "processing_jobs"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s.value}'" for s in JobStatus) + ")", name="status"
        ),
        sa.Index("ix_processing_jobs_status_created_at_id", "status", "created_at", "id"),
        sa.Index("ix_processing_jobs_created_at_id", "created_at", "id"),
        sa.Index("ix_processing_jobs_document_id", "document_id"),
        # Listing by completion time (dashboard time_field=completed), as the
        # two created_at indexes above serve the default order.
        sa.Index("ix_processing_jobs_status_completed_at_id", "status", "completed_at", "id"),
        sa.Index("ix_processing_jobs_completed_at_id", "completed_at", "id"),
        # The error_code filter: `error_details @> '{"errors":[{"code":...}]}'`
        # on PostgreSQL. On SQLite (json_each cannot use an index) migration
        # 0004 creates an empty partial index (WHERE 0) of the same name so
        # models and migrations agree there too; Alembic ignores ddl_if().
        sa.Index(
            "ix_processing_jobs_error_details",
            "error_details",
            postgresql_using="gin",
            postgresql_ops={"error_details": "jsonb_path_ops"},
            sqlite_where=sa.text("0"),
        ),
        # The wide jobs, which the top codes under a code or group filter
        # read one by one (migration 0028): few, so a small index.
        sa.Index(
            "ix_processing_jobs_wide_created_at",
            "created_at",
            postgresql_where=sa.text(WIDE_JOB_SQL["postgresql"]),
            sqlite_where=sa.text(WIDE_JOB_SQL["sqlite"]),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    document_id: Mapped[str] = mapped_column(sa.String(DOCUMENT_ID_MAX_LENGTH), nullable=False)
    job_type: Mapped[str] = mapped_column(
        sa.String(JOB_TYPE_MAX_LENGTH), nullable=False, default="entity_extraction"
    )
    status: Mapped[str] = mapped_column(
        sa.String(32), nullable=False, default=JobStatus.PENDING.value
    )
    error_message: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    error_details: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    #: Format the latest details arrived in (see app/services/error_details).
    error_format: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: When an operator acknowledged (resolved) the current failure; cleared
    #: when a new failure is recorded or the job is requeued.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Who acknowledged it: the signed-in operator's user name, copied as text
    #: (as the audit log's actor is), not a reference to the account.
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    @property
    def job_status(self) -> JobStatus:
        """The status as a :class:`JobStatus`."""
        return JobStatus(self.status)

    def __repr__(self) -> str:  # never include error text: it may hold patient data
        return f"<ProcessingJob {self.id} {self.status}>"
