"""entity value: an extracted entity's measured value as a FHIR Quantity

Revision ID: 0011_entity_value
Revises: 0010_bulk_actions
Create Date: 2026-12-03

extracted_entities.value holds {"value", "unit", "system"?, "code"?} (FHIR
Quantity) for an observation's result or a medication's dose; NULL when the
worker sent none (and for every entity stored before).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011_entity_value"
down_revision = "0010_bulk_actions"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("extracted_entities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "value",
                sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql"),
                nullable=True,
            )
        )


def downgrade():
    with op.batch_alter_table("extracted_entities", schema=None) as batch_op:
        batch_op.drop_column("value")
