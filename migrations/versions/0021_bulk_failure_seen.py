"""bulk action jobs: the failure each job had when the selection was frozen

Revision ID: 0021_bulk_failure_seen
Revises: 0020_earlier_failure_search
Create Date: 2026-12-04

A frozen selection (a group's or a filter's jobs, app.services.bulk_actions)
is confirmed by an operator who was shown its count. A job that failed
again, or was requeued, before its batch ran now has a failure nobody saw;
acknowledging it would hide it. bulk_action_jobs.failed_at keeps the job's
completed_at as it was frozen, and a batch changes only the jobs whose
completed_at is still that. Rows frozen before this migration have NULL
and are checked as before (by status only).
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_bulk_failure_seen"
down_revision = "0020_earlier_failure_search"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("bulk_action_jobs") as batch:
        batch.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("bulk_action_jobs") as batch:
        batch.drop_column("failed_at")
