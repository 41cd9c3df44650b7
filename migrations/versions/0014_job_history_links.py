"""job history: each attempt's start, the jobs a bulk action changed, indexed reads

Revision ID: 0014_job_history_links
Revises: 0013_group_hourly_cover
Create Date: 2026-12-03

* ``job_failures.started_at``: when the attempt that failed had started. A
  requeue clears ``processing_jobs.started_at``, so without it the job page's
  history lost every start but the current one.
* ``bulk_action_jobs.changed_at``: set in the batch that changed the job
  (``NULL``: selected, but skipped or not reached), and an index on
  ``job_id``, so a job's history finds its bulk actions by index instead of
  reading the audit log.
* PostgreSQL only: a GIN index (``jsonb_path_ops``) on the audit rows'
  ``filter -> 'job_ids'``, which the history's containment test
  (``@> '["<job id>"]'``) uses for actions on one or selected jobs. SQLite
  reads the job's lifetime of the log through ``ix_audit_events_occurred_at``.
"""

from alembic import op
import sqlalchemy as sa

revision = "0014_job_history_links"
down_revision = "0013_group_hourly_cover"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("job_failures") as batch:
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("bulk_action_jobs") as batch:
        batch.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_bulk_action_jobs_job_id", "bulk_action_jobs", ["job_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_audit_events_job_ids ON audit_events "
            "USING gin ((filter -> 'job_ids') jsonb_path_ops)"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_audit_events_job_ids")
    op.drop_index("ix_bulk_action_jobs_job_id", table_name="bulk_action_jobs")
    with op.batch_alter_table("bulk_action_jobs") as batch:
        batch.drop_column("changed_at")
    with op.batch_alter_table("job_failures") as batch:
        batch.drop_column("started_at")
