"""acknowledged failures

Revision ID: 0003_acknowledged
Revises: 0002_entities_history_idem
Create Date: 2026-11-29

Operators acknowledge (resolve) a failure so it leaves the default view.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_acknowledged"
down_revision = "0002_entities_history_idem"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("processing_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table("processing_jobs", schema=None) as batch_op:
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
