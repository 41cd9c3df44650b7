"""The search finds jobs by the text of their earlier failures.

A requeue clears a job's error message and details (and so its
``search_text``, migration 0008), but ``job_failures`` keeps every failure.
This adds a trigram GIN index over the same text of each failure (the
message and the error items' message, code, pointer, entity type and code,
through 0008's ``job_search_text``, without a document id):
``lower(job_search_text(NULL::text, error_message, error_details))``, which
``failure_text_matches`` (app/services/processing_jobs/filter_sql.py)
spells the same way so that PostgreSQL serves it from the index.

An expression index, not a stored column: the table is not rewritten, and
the model (shared with SQLite) is unchanged. Each recorded failure updates
it (GIN's pending list batches that). SQLite: nothing (the search scans).

Revision ID: 0016_failure_search
Revises: 0015_job_rollups
"""

from alembic import op

revision = "0016_failure_search"
down_revision = "0015_job_rollups"
branch_labels = None
depends_on = None

INDEX = "ix_job_failures_search_text"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE INDEX {INDEX} ON job_failures "
        "USING gin (lower(job_search_text(NULL::text, error_message, error_details)) gin_trgm_ops)"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
