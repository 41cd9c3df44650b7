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
    op.add_column("failure_groups", sa.Column("resolved_in_worker", sa.String(length=100), nullable=True))


def downgrade():
    # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35 and later), not a
    # batch: on SQLite a batch copies the table and drops the old one, and
    # with foreign keys on that DROP deletes every occurrence, event and
    # counter of every group (ON DELETE CASCADE).
    op.execute("ALTER TABLE failure_groups DROP COLUMN resolved_in_worker")
