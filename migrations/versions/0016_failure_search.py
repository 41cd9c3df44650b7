"""The search finds jobs by the text of their earlier failures.

A requeue clears a job's error message and details (and so its
``search_text``, migration 0008), but ``job_failures`` keeps every failure.
This gives each failure the same stored, lower-cased search text
(``job_failures.search_text``: the message and the error items' message,
code, pointer, entity type and code, through 0008's ``job_search_text``,
without a document id) and a trigram GIN index on it, which
``failure_text_matches`` (app/services/processing_jobs/filter_sql.py) reads.

A stored column rather than an index on the expression, for the reason
0008 gives (docs/benchmarks.md, "An expression index was not enough"): a
trigram index is lossy, and each candidate's recheck would recompute the
text from the JSON (about 25 us a row). Adding the column rewrites
``job_failures`` once, under its lock. Each recorded failure computes the
text and updates the index (GIN's pending list batches that). SQLite:
nothing (the search scans); the column is left out of the model, as 0008's.

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
        "ALTER TABLE job_failures ADD COLUMN search_text text GENERATED ALWAYS AS "
        "(lower(job_search_text(NULL::text, error_message, error_details))) STORED"
    )
    op.execute(f"CREATE INDEX {INDEX} ON job_failures USING gin (search_text gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute("ALTER TABLE job_failures DROP COLUMN IF EXISTS search_text")
