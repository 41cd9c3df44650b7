"""failure groups: groups, occurrences, sharded counters, hourly rollups, timeline

Revision ID: 0009_failure_groups
Revises: 0008_job_search
Create Date: 2026-12-03

Read after autogenerate: timestamps rendered as DateTime(timezone=True), the
JSONB variant without astext_type. job_failures gains the optional worker
name and version of the report. Existing failures get no groups here (a
migration must not hold locks for as long as that takes): run
`flask groups backfill` afterwards; it works in short batches.
docs/failure-groups.md describes the tables.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0009_failure_groups'
down_revision = '0008_job_search'
branch_labels = None
depends_on = None

#: PostgreSQL only, left out of the models (app.models.processing_job.POSTGRESQL_ONLY_INDEXES).
TITLE_INDEX = "ix_failure_groups_title_trgm"


def upgrade():
    op.create_table('failure_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grouping_version', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=True),
    sa.Column('pointer_pattern', sa.String(length=1000), nullable=True),
    sa.Column('entity_type', sa.String(length=100), nullable=True),
    sa.Column('sample_message', sa.Text(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('substate', sa.String(length=16), nullable=True),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_in_version', sa.String(length=100), nullable=True),
    sa.Column('ignore_mode', sa.String(length=32), nullable=True),
    sa.Column('ignored_by', sa.String(length=200), nullable=True),
    sa.Column('ignored_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ignore_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ignore_until_occurrences', sa.Integer(), nullable=True),
    sa.Column('ignore_base_occurrences', sa.BigInteger(), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("ignore_mode IS NULL OR ignore_mode IN ('forever', 'until_date', 'until_occurrences')", name=op.f('ck_failure_groups_ignore_mode')),
    sa.CheckConstraint("severity IN ('information', 'warning', 'error', 'fatal')", name=op.f('ck_failure_groups_severity')),
    sa.CheckConstraint("state IN ('unresolved', 'resolved', 'ignored')", name=op.f('ck_failure_groups_state')),
    sa.CheckConstraint("substate IS NULL OR substate IN ('new', 'ongoing', 'regressed')", name=op.f('ck_failure_groups_substate')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_failure_groups')),
    sa.UniqueConstraint('grouping_version', 'fingerprint', name='uq_failure_groups_version_fingerprint')
    )
    with op.batch_alter_table('failure_groups', schema=None) as batch_op:
        batch_op.create_index('ix_failure_groups_version_code', ['grouping_version', 'code'], unique=False)
        batch_op.create_index('ix_failure_groups_version_first_seen', ['grouping_version', 'first_seen', 'id'], unique=False)
        batch_op.create_index('ix_failure_groups_version_last_seen', ['grouping_version', 'last_seen', 'id'], unique=False)
        batch_op.create_index('ix_failure_groups_version_state_last_seen', ['grouping_version', 'state', 'last_seen', 'id'], unique=False)

    op.create_table('failure_group_counts',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('job_type', sa.String(length=64), nullable=False),
    sa.Column('worker_version', sa.String(length=100), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('occurrences', sa.BigInteger(), nullable=False),
    sa.Column('jobs', sa.BigInteger(), nullable=False),
    sa.Column('current_jobs', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['failure_groups.id'], name=op.f('fk_failure_group_counts_group_id_failure_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'job_type', 'worker_version', 'shard', name=op.f('pk_failure_group_counts'))
    )
    op.create_table('failure_group_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('from_substate', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('to_substate', sa.String(length=16), nullable=True),
    sa.Column('details', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['failure_groups.id'], name=op.f('fk_failure_group_events_group_id_failure_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_failure_group_events'))
    )
    with op.batch_alter_table('failure_group_events', schema=None) as batch_op:
        batch_op.create_index('ix_failure_group_events_group_id_at', ['group_id', 'at', 'id'], unique=False)

    op.create_table('failure_group_hourly',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('occurrences', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['failure_groups.id'], name=op.f('fk_failure_group_hourly_group_id_failure_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'hour', 'shard', name=op.f('pk_failure_group_hourly'))
    )
    with op.batch_alter_table('failure_group_hourly', schema=None) as batch_op:
        batch_op.create_index('ix_failure_group_hourly_hour', ['hour'], unique=False)

    op.create_table('failure_occurrences',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('failure_id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('job_type', sa.String(length=64), nullable=False),
    sa.Column('worker_name', sa.String(length=100), nullable=True),
    sa.Column('worker_version', sa.String(length=100), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('item_positions', sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql'), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.CheckConstraint("severity IN ('information', 'warning', 'error', 'fatal')", name=op.f('ck_failure_occurrences_severity')),
    sa.ForeignKeyConstraint(['failure_id'], ['job_failures.id'], name=op.f('fk_failure_occurrences_failure_id_job_failures'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['failure_groups.id'], name=op.f('fk_failure_occurrences_group_id_failure_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['processing_jobs.id'], name=op.f('fk_failure_occurrences_job_id_processing_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_failure_occurrences')),
    sa.UniqueConstraint('failure_id', 'group_id', name='uq_failure_occurrences_failure_id_group_id')
    )
    with op.batch_alter_table('failure_occurrences', schema=None) as batch_op:
        batch_op.create_index('ix_failure_occurrences_current_group_id_job_id', ['group_id', 'job_id'], unique=False, postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current'))
        batch_op.create_index('ix_failure_occurrences_current_job_id', ['job_id'], unique=False, postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current'))
        batch_op.create_index('ix_failure_occurrences_group_id_job_id', ['group_id', 'job_id'], unique=False)
        batch_op.create_index('ix_failure_occurrences_group_id_occurred_at', ['group_id', 'occurred_at', 'id'], unique=False)

    with op.batch_alter_table('job_failures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_name', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('worker_version', sa.String(length=100), nullable=True))

    if op.get_bind().dialect.name == "postgresql":
        # The header search finds groups by title (case-insensitive substring,
        # `lower(title) LIKE lower(pattern)`): a trigram index serves it, as
        # 0008's serves the jobs' text. SQLite scans, with the same results.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(f"CREATE INDEX {TITLE_INDEX} ON failure_groups USING gin (lower(title) gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX {TITLE_INDEX}")
    with op.batch_alter_table('job_failures', schema=None) as batch_op:
        batch_op.drop_column('worker_version')
        batch_op.drop_column('worker_name')

    with op.batch_alter_table('failure_occurrences', schema=None) as batch_op:
        batch_op.drop_index('ix_failure_occurrences_group_id_occurred_at')
        batch_op.drop_index('ix_failure_occurrences_group_id_job_id')
        batch_op.drop_index('ix_failure_occurrences_current_job_id', postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current'))
        batch_op.drop_index('ix_failure_occurrences_current_group_id_job_id', postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current'))

    op.drop_table('failure_occurrences')
    with op.batch_alter_table('failure_group_hourly', schema=None) as batch_op:
        batch_op.drop_index('ix_failure_group_hourly_hour')

    op.drop_table('failure_group_hourly')
    with op.batch_alter_table('failure_group_events', schema=None) as batch_op:
        batch_op.drop_index('ix_failure_group_events_group_id_at')

    op.drop_table('failure_group_events')
    op.drop_table('failure_group_counts')
    with op.batch_alter_table('failure_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_failure_groups_version_state_last_seen')
        batch_op.drop_index('ix_failure_groups_version_last_seen')
        batch_op.drop_index('ix_failure_groups_version_first_seen')
        batch_op.drop_index('ix_failure_groups_version_code')

    op.drop_table('failure_groups')
