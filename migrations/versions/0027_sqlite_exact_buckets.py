"""SQLite rollup triggers: bucket a time by its whole seconds, not its rounded milliseconds

Revision ID: 0027_sqlite_exact_buckets
Revises: 0026_code_rollup_weeks
Create Date: 2026-12-06

SQLite's ``strftime('%s', t)`` parses ``t``'s fraction and rounds it to
milliseconds before it counts seconds: ``2026-01-01 00:59:59.999700`` gives
``01:00:00``. Every SQLite rollup trigger (0015, 0019, 0022, 0026) numbered
its hour, day and week buckets that way, so a job created or finished in
the last half millisecond of an hour was counted in the next hour's, day's
and week's rows, while the job list, the partial hours of a summary and
PostgreSQL's triggers (``floor(epoch / 3600)`` on the exact time) place it
in its own. A time in the last half millisecond of 9999-12-31 gave NULL.

Each trigger is re-created as the database has it with ``t`` cut to its
first 19 characters (``YYYY-MM-DD HH:MM:SS``, the form SQLAlchemy stores)
inside ``strftime('%s', …)``: whole seconds, which is exact for every
bucket. The rows already counted at the rounded bucket are moved by the
triggers themselves, so every rollup (and any written later) stays exact:

1. With the old triggers, each job whose rounded hour differs from its
   exact one has that time set to its whole second (``…:59:59.000000``,
   which both ways place in the exact hour): the update triggers move the
   job's counts from the rounded buckets to the exact ones.
2. The triggers are re-created.
3. The times are set back: the new triggers see the same buckets before
   and after, so nothing moves again.

Such jobs are few (about one in 7 million per hour boundary crossed); the
search for them reads every job once. The downgrade does the reverse
(each time to the next whole second under the new triggers, then back
under the old). Nothing changes on PostgreSQL.
"""

import re

from alembic import op

revision = "0027_sqlite_exact_buckets"
down_revision = "0026_code_rollup_weeks"
branch_labels = None
depends_on = None

TIMES = ("created_at", "completed_at")
#: Where the saved times wait between steps 1 and 3 (this connection only).
_SAVED = "exact_bucket_times"

_ROUNDED = re.compile(r"strftime\('%s', (\w+\.\w+)\)")
_EXACT = re.compile(r"strftime\('%s', substr\((\w+\.\w+), 1, 19\)\)")


def _hour(column: str, exact: bool) -> str:
    moment = f"substr({column}, 1, 19)" if exact else column
    return f"CAST(strftime('%s', {moment}) AS INTEGER) / 3600"


def _moved(column: str) -> str:
    # Hours only: every day and week boundary is an hour boundary.
    return f"{_hour(column, False)} IS NOT {_hour(column, True)}"


def _rewrite_triggers(pattern: re.Pattern[str], replacement: str) -> None:
    """Re-create every trigger whose SQL holds ``pattern``, in creation order."""
    connection = op.get_bind()
    triggers = connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid").all()
    rewritten = [(name, pattern.sub(replacement, sql)) for name, sql in triggers if pattern.search(sql)]
    if not rewritten:
        raise RuntimeError(f"no SQLite trigger holds {pattern.pattern!r}: the database is not at "
                           f"{down_revision} or {revision}")
    for name, _ in rewritten:
        op.execute(f"DROP TRIGGER {name}")
    for _, sql in rewritten:
        op.execute(sql)


def _move_through_triggers(step_aside: str, pattern: re.Pattern[str], replacement: str) -> None:
    """Steps 1-3 above; ``step_aside`` turns a time column into where it waits."""
    which = " OR ".join(_moved(column) for column in TIMES)
    op.execute(f"CREATE TEMP TABLE {_SAVED} AS SELECT id, {', '.join(TIMES)} FROM processing_jobs WHERE {which}")
    op.execute(
        "UPDATE processing_jobs SET "
        + ", ".join(f"{c} = CASE WHEN {_moved(c)} THEN {step_aside.format(c)} ELSE {c} END" for c in TIMES)
        + f" WHERE id IN (SELECT id FROM {_SAVED})")
    _rewrite_triggers(pattern, replacement)
    op.execute(
        "UPDATE processing_jobs SET "
        + ", ".join(f"{c} = (SELECT s.{c} FROM {_SAVED} AS s WHERE s.id = processing_jobs.id)" for c in TIMES)
        + f" WHERE id IN (SELECT id FROM {_SAVED})")
    op.execute(f"DROP TABLE {_SAVED}")


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    # The whole second: the old triggers round it to itself, in the exact hour.
    _move_through_triggers("substr({0}, 1, 19) || '.000000'", _ROUNDED, r"strftime('%s', substr(\1, 1, 19))")


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    # The next whole second: the new triggers place it in the hour the old ones round to.
    _move_through_triggers("strftime('%Y-%m-%d %H:%M:%S', substr({0}, 1, 19), '+1 second') || '.000000'",
                           _EXACT, r"strftime('%s', \1)")
