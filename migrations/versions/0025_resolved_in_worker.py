"""failure_groups.resolved_in_worker: the worker a resolved-in version is of

Revision ID: 0025_resolved_in_worker
Revises: 0024_partition_group_rollups
Create Date: 2026-12-05

A group resolved in version 1.6.0 stayed resolved when a failure came from
another worker (another ``worker.name``) at 1.0.0: its version "precedes"
1.6.0, though the two workers' versions have nothing to do with each
other. The version now belongs to a worker's name, and only that worker's
older versions leave the group resolved
(app/services/failure_groups/states.py, ``is_regression``).

A nullable column, added without a rewrite on PostgreSQL (no default) and
SQLite alike. Groups resolved in a version before it keep ``NULL``: any
worker's older version leaves them resolved, as when they were resolved.
"""

import sqlalchemy as sa
from alembic import op

revision = "0025_resolved_in_worker"
down_revision = "0024_partition_group_rollups"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("failure_groups") as batch:
        batch.add_column(sa.Column("resolved_in_worker", sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table("failure_groups") as batch:
        batch.drop_column("resolved_in_worker")
