"""bulk actions: a frozen selection of jobs and the progress of acting on it

Revision ID: 0010_bulk_actions
Revises: 0009_failure_groups
Create Date: 2026-12-03

Read after autogenerate. app/models/bulk_action.py describes the tables.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0010_bulk_actions'
down_revision = '0009_failure_groups'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bulk_actions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('query', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('next_position', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('audit_event_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('progressed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("action IN ('requeue', 'acknowledge')", name=op.f('ck_bulk_actions_action')),
    sa.CheckConstraint("state IN ('pending', 'running', 'paused', 'done', 'failed')", name=op.f('ck_bulk_actions_state')),
    sa.ForeignKeyConstraint(['group_id'], ['failure_groups.id'], name=op.f('fk_bulk_actions_group_id_failure_groups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_actions'))
    )
    op.create_table('bulk_action_jobs',
    sa.Column('bulk_action_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], name=op.f('fk_bulk_action_jobs_bulk_action_id_bulk_actions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('bulk_action_id', 'position', name=op.f('pk_bulk_action_jobs'))
    )


def downgrade():
    op.drop_table('bulk_action_jobs')
    op.drop_table('bulk_actions')
