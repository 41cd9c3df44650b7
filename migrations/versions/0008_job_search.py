"""job search: a job's searchable text and its trigram index (PostgreSQL only)

Revision ID: 0008_job_search
Revises: 0007_server_sessions
Create Date: 2026-12-03

The console's one search box (`q`) finds a job by an id prefix, its
document id or any text of its failure: the error message and, in each
error item, the message, code, pointer and the entity's type and code.

On PostgreSQL that text is the stored generated column
processing_jobs.search_text = lower(job_search_text(document_id,
error_message, error_details)), job_search_text being an IMMUTABLE SQL
function defined here (its fields: see
app.services.processing_jobs.filter_sql.SEARCHED_ITEM_FIELDS), with a GIN
index using pg_trgm's gin_trgm_ops, which serves `LIKE '%...%'`. The search
is `search_text LIKE lower(pattern)`, which is what ILIKE does in a UTF-8
database. Stored, not an expression index: the index is lossy, so every
candidate row is rechecked, and at 100,000 jobs (docs/benchmarks.md,
"Search") computing the text cost ~25 us a row, ILIKE on the stored text
2-3 us and LIKE on the stored lower-cased text under 1 us. Adding the
column rewrites the table once.

pg_trgm ships with PostgreSQL's own packages (Debian's postgresql-NN
includes it) and is a trusted extension since PostgreSQL 13, so the
database owner may create it.

The column and the index are not in the models (SQLite has neither): they
are in app.models.processing_job.POSTGRESQL_ONLY, which Alembic's
comparison skips. On SQLite nothing is created: the search scans
(json_each), with the same results. The downgrade leaves the extension
installed (other objects may use it).
"""

from alembic import op

revision = "0008_job_search"
down_revision = "0007_server_sessions"
branch_labels = None
depends_on = None

SEARCH_INDEX = "ix_processing_jobs_search_text"

#: Fields are joined with U+001F (unit separator), which no search term can
#: hold (every query parameter with a C0 control is refused, app/request_input.py),
#: so a match never spans two fields.
SEARCH_TEXT_FUNCTION = r"""
CREATE OR REPLACE FUNCTION job_search_text(document_id text, error_message text, error_details jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT concat_ws(E'\x1f', document_id, error_message, (
    SELECT string_agg(concat_ws(E'\x1f',
             CASE WHEN jsonb_typeof(item -> 'message') = 'string' THEN item ->> 'message' END,
             CASE WHEN jsonb_typeof(item -> 'code') = 'string' THEN item ->> 'code' END,
             CASE WHEN jsonb_typeof(item -> 'pointer') = 'string' THEN item ->> 'pointer' END,
             CASE WHEN jsonb_typeof(item -> 'entity' -> 'type') = 'string' THEN item -> 'entity' ->> 'type' END,
             CASE WHEN jsonb_typeof(item -> 'entity' -> 'code') = 'string' THEN item -> 'entity' ->> 'code' END
           ), E'\x1f')
    FROM jsonb_array_elements(
      CASE
        WHEN jsonb_typeof(error_details) = 'array' THEN error_details
        WHEN jsonb_typeof(error_details) = 'object' AND jsonb_typeof(error_details -> 'errors') = 'array'
          THEN error_details -> 'errors'
        ELSE '[]'::jsonb
      END) AS item
    WHERE jsonb_typeof(item) = 'object'))
$$
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(SEARCH_TEXT_FUNCTION)
    op.execute(
        "ALTER TABLE processing_jobs ADD COLUMN search_text text "
        "GENERATED ALWAYS AS (lower(job_search_text(document_id, error_message, error_details))) STORED"
    )
    op.execute(f"CREATE INDEX {SEARCH_INDEX} ON processing_jobs USING gin (search_text gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {SEARCH_INDEX}")
    op.execute("ALTER TABLE processing_jobs DROP COLUMN IF EXISTS search_text")
    op.execute("DROP FUNCTION IF EXISTS job_search_text(text, text, jsonb)")
