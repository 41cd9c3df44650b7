"""failure_group_hourly: an index for the sparklines' reads

Revision ID: 0013_group_hourly_cover
Revises: 0012_procrastinate
Create Date: 2026-12-03

The /groups page reads 14 days of hourly rollups for 50 groups (about 85,000
rows at 1,000,000 jobs, 16 counter shards per hour). Through the primary key
or the ``hour`` index that is a bitmap heap scan; with ``(group_id, hour)``
and the count INCLUDEd, PostgreSQL answers from the index alone
(docs/benchmarks.md, "Failure-group pages"). SQLite has no INCLUDE: a plain
``(group_id, hour)`` index.
"""

from alembic import op

revision = "0013_group_hourly_cover"
down_revision = "0012_procrastinate"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_failure_group_hourly_group_id_hour",
        "failure_group_hourly",
        ["group_id", "hour"],
        postgresql_include=["occurrences"],
    )


def downgrade():
    op.drop_index("ix_failure_group_hourly_group_id_hour", table_name="failure_group_hourly")
