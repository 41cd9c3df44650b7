"""dashboard filters: completion-time and error-code indexes

Revision ID: 0004_dashboard_filters
Revises: 0003_acknowledged
Create Date: 2026-11-30

The dashboard lists jobs by completion time (keyset on completed_at, id) and
filters them by an error-details item code. On PostgreSQL the code filter is
a jsonb containment query (`error_details @> '{"errors":[{"code": ...}]}'`),
served by a GIN index with the jsonb_path_ops operator class (smaller and
faster than jsonb_ops for @>; it supports no other operator, and none is
used). SQLite has no JSON index: json_each() scans. There the same index
name is an empty partial index (WHERE 0), so the schema still agrees with
the model, which declares one index for both backends (Alembic's compare
ignores Index.ddl_if()).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_dashboard_filters"
down_revision = "0003_acknowledged"
branch_labels = None
depends_on = None

ERROR_DETAILS_INDEX = "ix_processing_jobs_error_details"


def upgrade():
    op.create_index(
        "ix_processing_jobs_status_completed_at_id", "processing_jobs", ["status", "completed_at", "id"]
    )
    op.create_index("ix_processing_jobs_completed_at_id", "processing_jobs", ["completed_at", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            ERROR_DETAILS_INDEX,
            "processing_jobs",
            ["error_details"],
            postgresql_using="gin",
            postgresql_ops={"error_details": "jsonb_path_ops"},
        )
    else:
        op.create_index(ERROR_DETAILS_INDEX, "processing_jobs", ["error_details"], sqlite_where=sa.text("0"))


def downgrade():
    op.drop_index(ERROR_DETAILS_INDEX, table_name="processing_jobs")
    op.drop_index("ix_processing_jobs_completed_at_id", table_name="processing_jobs")
    op.drop_index("ix_processing_jobs_status_completed_at_id", table_name="processing_jobs")
