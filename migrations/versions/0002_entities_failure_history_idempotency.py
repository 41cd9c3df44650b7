"""entities, failure history, idempotency records

Revision ID: 0002_entities_history_idem
Revises: 0001_processing_jobs
Create Date: 2026-11-29

Read after autogenerate: timestamp columns rendered as DateTime(timezone=True),
the JSONB variant without astext_type. Existing jobs get error_format NULL
(their details predate the normalized contract).

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0002_entities_history_idem'
down_revision = '0001_processing_jobs'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('idempotency_records',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=False),
    sa.Column('response_body', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_idempotency_records'))
    )
    op.create_table('extracted_entities',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('entity_type', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('code_system', sa.String(length=255), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('page', sa.Integer(), nullable=True),
    sa.Column('span_start', sa.Integer(), nullable=False),
    sa.Column('span_end', sa.Integer(), nullable=False),
    sa.Column('attributes', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("entity_type IN ('Condition', 'MedicationStatement', 'AllergyIntolerance', 'Observation', 'Procedure')", name=op.f('ck_extracted_entities_entity_type')),
    sa.CheckConstraint('confidence >= 0 AND confidence <= 1', name=op.f('ck_extracted_entities_confidence_range')),
    sa.CheckConstraint('span_start >= 0 AND span_end >= span_start', name=op.f('ck_extracted_entities_span_order')),
    sa.ForeignKeyConstraint(['job_id'], ['processing_jobs.id'], name=op.f('fk_extracted_entities_job_id_processing_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_extracted_entities')),
    sa.UniqueConstraint('job_id', 'position', name='uq_extracted_entities_job_id_position')
    )
    with op.batch_alter_table('extracted_entities', schema=None) as batch_op:
        batch_op.create_index('ix_extracted_entities_code_system_code', ['code_system', 'code'], unique=False)

    op.create_table('job_failures',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=False),
    sa.Column('error_details', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.Column('error_format', sa.String(length=32), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['processing_jobs.id'], name=op.f('fk_job_failures_job_id_processing_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_failures'))
    )
    with op.batch_alter_table('job_failures', schema=None) as batch_op:
        batch_op.create_index('ix_job_failures_job_id_recorded_at', ['job_id', 'recorded_at'], unique=False)

    with op.batch_alter_table('processing_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_format', sa.String(length=32), nullable=True))



def downgrade():
    with op.batch_alter_table('processing_jobs', schema=None) as batch_op:
        batch_op.drop_column('error_format')

    with op.batch_alter_table('job_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_job_failures_job_id_recorded_at')

    op.drop_table('job_failures')
    with op.batch_alter_table('extracted_entities', schema=None) as batch_op:
        batch_op.drop_index('ix_extracted_entities_code_system_code')

    op.drop_table('extracted_entities')
    op.drop_table('idempotency_records')
