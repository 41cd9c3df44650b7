"""earlier failures in the search: the text of a job's replaced failures (PostgreSQL only)

Revision ID: 0020_earlier_failure_search
Revises: 0019_job_group_rollups
Create Date: 2026-12-04

The search (`q`, docs/job-filters.md) finds a job by the text of any failure
it ever had, not only its current one: a job requeued after failing with
`Z99` is still found by `Z99` once it failed with something else, or
completed.

On PostgreSQL the job's current text is the stored generated column
`search_text` of 0008_job_search. This adds `earlier_search_text`: the
searchable text (`job_search_text` without the document id, lower-cased) of
every failure the job's error fields held before, newest first, joined by
U+001E (record separator, which no search term can hold, so a match never
spans two failures). The search is `search_text LIKE p OR
earlier_search_text LIKE p`; each column has its own trigram GIN index, so
a rare term is a `BitmapOr` of two index scans, and a common one still
walks the time index and stops after a page. The column is written by a
`BEFORE UPDATE OF error_message, error_details` row trigger, whose `WHEN`
calls it only when a failure's fields are replaced or cleared (a requeue,
one by one or in bulk, or a new failure over an old one). The recorder's
write on a job that had no failure does not call it. The text is cut at
EARLIER_TEXT_LIMIT characters, keeping the newest failures: a job requeued
hundreds of times is found by its recent failures only.

The existing rows are filled from `job_failures`: every failure of the job
whose text differs from the job's current one.

SQLite has no column: its search reads the job's `job_failures` rows
(a scan, as its whole search is), with the same results. Both are in
app.models.processing_job.POSTGRESQL_ONLY, which Alembic's comparison skips.
"""

from alembic import op

revision = "0020_earlier_failure_search"
down_revision = "0019_job_group_rollups"
branch_labels = None
depends_on = None

INDEX = "ix_processing_jobs_earlier_search_text"
#: Characters of earlier failures' text kept per job (newest first).
EARLIER_TEXT_LIMIT = 65536

KEEP_FUNCTION = rf"""
CREATE OR REPLACE FUNCTION keep_earlier_search_text() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- The failure being replaced goes first: the newest is kept when the text is cut.
  NEW.earlier_search_text := left(
    concat_ws(E'\x1e', lower(job_search_text(NULL, OLD.error_message, OLD.error_details)), OLD.earlier_search_text),
    {EARLIER_TEXT_LIMIT});
  RETURN NEW;
END
$$
"""

KEEP_TRIGGER = """
CREATE TRIGGER processing_jobs_keep_earlier_search_text
BEFORE UPDATE OF error_message, error_details ON processing_jobs
FOR EACH ROW
WHEN (OLD.error_message IS NOT NULL
      AND (NEW.error_message IS DISTINCT FROM OLD.error_message
           OR NEW.error_details IS DISTINCT FROM OLD.error_details))
EXECUTE FUNCTION keep_earlier_search_text()
"""

#: Each failure of a job whose text is not the job's current text, newest first.
BACKFILL = rf"""
UPDATE processing_jobs AS job
SET earlier_search_text = earlier.text
FROM (
  SELECT failure.job_id,
         left(string_agg(lower(job_search_text(NULL, failure.error_message, failure.error_details)), E'\x1e'
                         ORDER BY failure.recorded_at DESC), {EARLIER_TEXT_LIMIT}) AS text
  FROM job_failures AS failure
  JOIN processing_jobs AS current ON current.id = failure.job_id
  WHERE lower(job_search_text(NULL, failure.error_message, failure.error_details))
        IS DISTINCT FROM lower(job_search_text(NULL, current.error_message, current.error_details))
  GROUP BY failure.job_id
) AS earlier
WHERE job.id = earlier.job_id
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    # The fill reads every failure and the index every job: at a million
    # jobs each runs longer than the app's per-statement limit
    # (DB_STATEMENT_TIMEOUT_MS), which is meant for requests, not for this.
    op.execute("SET LOCAL statement_timeout = 0")
    op.execute("ALTER TABLE processing_jobs ADD COLUMN earlier_search_text text")
    op.execute(KEEP_FUNCTION)
    op.execute(KEEP_TRIGGER)
    op.execute(BACKFILL)
    op.execute(f"CREATE INDEX {INDEX} ON processing_jobs USING gin (earlier_search_text gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS processing_jobs_keep_earlier_search_text ON processing_jobs")
    op.execute("DROP FUNCTION IF EXISTS keep_earlier_search_text()")
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute("ALTER TABLE processing_jobs DROP COLUMN IF EXISTS earlier_search_text")
