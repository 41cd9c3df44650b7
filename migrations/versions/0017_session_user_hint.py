"""server_sessions.user_id: the signed-in user, read with the session

Revision ID: 0017_session_user_hint
Revises: 0016_group_daily
Create Date: 2026-12-03

Every dashboard request read its session row and then its user row: two
round trips before the view's own work. The session row now names its
user (a hint kept from the session's data when the row is written), so one
statement reads both (app/auth/sessions.py). Existing rows get it the next
time they are written (at most a minute later for a session in use).
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_session_user_hint"
down_revision = "0016_group_daily"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("server_sessions") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("server_sessions") as batch:
        batch.drop_column("user_id")
