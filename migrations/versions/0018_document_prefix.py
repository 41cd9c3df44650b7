"""An index for the document-id prefix filter (``document_id_prefix``).

``document_id LIKE 'prefix%'`` (``text_starts_with``,
app/services/processing_jobs/filter_sql.py) is served by a btree with
``text_pattern_ops`` whatever the database's collation: a range scan of
the ids starting with the prefix. PostgreSQL only; SQLite scans (the same
results: both compare characters, case-sensitively).

Revision ID: 0018_document_prefix
Revises: 0017_session_user_hint
"""

from alembic import op

revision = "0018_document_prefix"
down_revision = "0017_session_user_hint"
branch_labels = None
depends_on = None

INDEX = "ix_processing_jobs_document_id_pattern"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX {INDEX} ON processing_jobs (document_id text_pattern_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
