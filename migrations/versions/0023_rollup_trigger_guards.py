"""occurrence rollup triggers: return at once when no row changes a count

Revision ID: 0023_rollup_trigger_guards
Revises: 0022_code_pair_rollups
Create Date: 2026-12-05

The statement-level triggers of ``failure_occurrences`` that keep the
group rollups (``job_group_rollups``, 0019; ``job_group_code_rollups``,
0022) run their grouped upsert on every statement, even when no row of the
transition tables counts: an inserted or deleted occurrence that is not
current, an update that leaves ``is_current``, the group and the job as
they were. The upsert's query references the transition tables, so
PL/pgSQL plans it again on each call, about 30-60 µs per trigger for
nothing. The recorder's re-failure on a group the job already fails on
now keeps the current occurrence current (it takes the new failure's
contents; app/services/failure_groups/write_statements.py), so on the hot
path every one of these triggers has nothing to count.

Each function gets a first line that returns when no row counts, checked
with a trivial query on the transition tables (the same condition the
upsert applies to its rows). The bodies are otherwise unchanged: the
upgrade inserts the line into each function's definition as the database
has it, and the downgrade takes it out again. SQLite's triggers are
row-level with a ``WHEN`` already; nothing changes there.
"""

from alembic import op

revision = "0023_rollup_trigger_guards"
down_revision = "0022_code_pair_rollups"
branch_labels = None
depends_on = None

_CHANGED = (
    "NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n USING (id)"
    " WHERE (o.is_current, o.group_id, o.job_id) IS DISTINCT FROM (n.is_current, n.group_id, n.job_id))"
)

#: Trigger function -> the condition under which none of its rows counts.
GUARDS = {
    "job_group_rollups_occurrence_insert": "NOT EXISTS (SELECT 1 FROM new_rows WHERE is_current)",
    "job_group_rollups_occurrence_delete": "NOT EXISTS (SELECT 1 FROM old_rows WHERE is_current)",
    "job_group_rollups_occurrence_update": _CHANGED,
    "job_group_code_rollups_occurrence_insert": "NOT EXISTS (SELECT 1 FROM new_rows WHERE is_current)",
    "job_group_code_rollups_occurrence_delete": "NOT EXISTS (SELECT 1 FROM old_rows WHERE is_current)",
    "job_group_code_rollups_occurrence_update": _CHANGED,
}

#: Where the line goes: right after the body's BEGIN, as pg_get_functiondef
#: prints a function the earlier migrations created.
_START = "AS $function$\nBEGIN\n"


def _guard_line(condition: str) -> str:
    return f"  IF {condition} THEN RETURN NULL; END IF;  -- 0023: no row counts\n"


def _rewrite(change) -> None:  # noqa: ANN001 (a function of (definition, name) -> definition)
    connection = op.get_bind()
    for name in GUARDS:
        definition = connection.exec_driver_sql(
            "SELECT pg_get_functiondef(%(name)s::regproc)", {"name": name}
        ).scalar_one()
        if _START not in definition:
            raise RuntimeError(f"{name}: unexpected definition, not changed")
        op.execute(change(definition, name))


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    _rewrite(lambda definition, name: definition.replace(_START, _START + _guard_line(GUARDS[name]), 1))


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    _rewrite(lambda definition, name: definition.replace(_guard_line(GUARDS[name]), "", 1))
