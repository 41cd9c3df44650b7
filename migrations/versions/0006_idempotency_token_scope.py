"""idempotency keys scoped to the worker token; a key is claimed before its answer

Revision ID: 0006_idempotency_token_scope
Revises: 0005_access_control
Create Date: 2026-12-02

Written by hand. idempotency_records gets token_id (the worker token that
sent the key, foreign key to worker_tokens) and its primary key becomes
(token_id, key): two tokens no longer share one key space. The answer columns
become nullable: a request now inserts its row first, to claim the key, and
writes the answer before its transaction commits (a committed row always has
one).

Answers stored before this revision belong to no token, so they are deleted:
a retry that spans the upgrade is evaluated afresh, as after the retention
purge (docs/operations.md). The downgrade deletes them too, because keys of
different tokens may collide once token_id is gone. Batch mode, so SQLite
(which cannot change a primary key in place) copies the table.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_idempotency_token_scope"
down_revision = "0005_access_control"
branch_labels = None
depends_on = None

RESPONSE_BODY_TYPE = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)


def upgrade():
    op.execute(sa.text("DELETE FROM idempotency_records"))
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_constraint("pk_idempotency_records", type_="primary")
        batch_op.add_column(sa.Column("token_id", sa.Uuid(), nullable=False))
        batch_op.alter_column("response_status", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("response_body", existing_type=RESPONSE_BODY_TYPE, nullable=True)
        batch_op.create_primary_key("pk_idempotency_records", ["token_id", "key"])
        batch_op.create_foreign_key(
            op.f("fk_idempotency_records_token_id_worker_tokens"),
            "worker_tokens",
            ["token_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade():
    op.execute(sa.text("DELETE FROM idempotency_records"))
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_idempotency_records_token_id_worker_tokens"), type_="foreignkey")
        batch_op.drop_constraint("pk_idempotency_records", type_="primary")
        batch_op.drop_column("token_id")
        batch_op.alter_column("response_status", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("response_body", existing_type=RESPONSE_BODY_TYPE, nullable=False)
        batch_op.create_primary_key("pk_idempotency_records", ["key"])
