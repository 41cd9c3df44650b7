"""create processing_jobs

Revision ID: 0001_processing_jobs
Revises:
Create Date: 2026-11-29

Read and edited after autogenerate: timestamps use the plain
``DateTime(timezone=True)`` (the model's UTCDateTime decorator only adds Python
behaviour), and the status CHECK constraint is written out because
autogenerate does not detect CHECK constraints.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_processing_jobs"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = ("Pending", "Processing", "Completed", "Failed", "Validation_Failed")


def upgrade():
    op.create_table(
        "processing_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.String(length=200), nullable=False),
        sa.Column("job_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "error_details",
            sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")",
            name=op.f("ck_processing_jobs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processing_jobs")),
    )
    with op.batch_alter_table("processing_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_processing_jobs_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_processing_jobs_document_id", ["document_id"], unique=False)
        batch_op.create_index(
            "ix_processing_jobs_status_created_at_id", ["status", "created_at", "id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("processing_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_processing_jobs_status_created_at_id")
        batch_op.drop_index("ix_processing_jobs_document_id")
        batch_op.drop_index("ix_processing_jobs_created_at_id")
    op.drop_table("processing_jobs")
