"""failure_group_daily: occurrences per group and closed UTC day

Revision ID: 0016_group_daily
Revises: 0015_job_rollups
Create Date: 2026-12-03

The /groups page's 14-day sparklines summed up to 16 counter shards per hour
of failure_group_hourly (about 85,000 rows for 50 groups at 1,000,000 jobs).
A closed day is now one row per group (app/services/failure_groups/daily.py):
``failure_group_daily``, and ``failure_group_daily_state`` (one row) saying
up to which UTC midnight the days are in it. Both are filled here from the
existing hourly rows, up to the last closed day (a day is closed an hour
after its end), one ``INSERT ... SELECT`` per day.
"""

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

from app.models.types import UTCDateTime

revision = "0016_group_daily"
down_revision = "0015_job_rollups"
branch_labels = None
depends_on = None

#: app.services.failure_groups.daily.CLOSE_AFTER, copied: a migration keeps
#: the rule it was written with.
CLOSE_AFTER = timedelta(hours=1)


def upgrade():
    daily = op.create_table(
        "failure_group_daily",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("day", UTCDateTime(), nullable=False),
        sa.Column("occurrences", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["failure_groups.id"], name="fk_failure_group_daily_group_id_failure_groups",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "day", name="pk_failure_group_daily"),
    )
    state = op.create_table(
        "failure_group_daily_state",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("rolled_through", UTCDateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_failure_group_daily_state_one_row"),
        sa.PrimaryKeyConstraint("id", name="pk_failure_group_daily_state"),
    )
    hourly = sa.table(
        "failure_group_hourly",
        sa.column("group_id", sa.Integer()),
        sa.column("hour", UTCDateTime()),
        sa.column("occurrences", sa.BigInteger()),
    )
    bind = op.get_bind()
    now = datetime.now(timezone.utc) - CLOSE_AFTER
    through = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first = bind.scalar(sa.select(sa.func.min(hourly.c.hour)))
    day = through if first is None else min(first.replace(hour=0, minute=0, second=0, microsecond=0), through)
    while day < through:
        bind.execute(
            sa.insert(daily).from_select(
                ["group_id", "day", "occurrences"],
                sa.select(hourly.c.group_id, sa.literal(day, UTCDateTime()), sa.func.sum(hourly.c.occurrences))
                .where(hourly.c.hour >= day, hourly.c.hour < day + timedelta(days=1))
                .group_by(hourly.c.group_id),
            )
        )
        day += timedelta(days=1)
    bind.execute(sa.insert(state).values(id=1, rolled_through=through))


def downgrade():
    op.drop_table("failure_group_daily_state")
    op.drop_table("failure_group_daily")
