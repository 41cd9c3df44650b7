"""server-side sessions: revocable sign-ins with an idle time-out

Revision ID: 0007_server_sessions
Revises: 0006_idempotency_token_scope
Create Date: 2026-12-02

Browser sessions move from a signed cookie to the server_sessions table
(Flask-Session), so signing out ends that session for good and an idle one
expires. users.session_generation is part of the id each session keeps, so
disabling a user or changing the password ends all their sessions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_server_sessions"
down_revision = "0006_idempotency_token_scope"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "server_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_key", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_sessions")),
        sa.UniqueConstraint("session_key", name=op.f("uq_server_sessions_session_key")),
    )
    with op.batch_alter_table("server_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_server_sessions_expires_at", ["expires_at"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
    with op.batch_alter_table("server_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_server_sessions_expires_at")
    op.drop_table("server_sessions")
