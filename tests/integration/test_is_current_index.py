"""``failure_occurrences.is_current`` as a condition (app/models/types.py,
``IndexedFlag``) renders bare on both databases and under any alias, so the
planners match it to the partial indexes' predicate ``WHERE is_current``:
PostgreSQL's plan reads those indexes (even from an alias), SQLite's reads
the one led by ``job_id``, and both give the same rows."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import FailureGroup, FailureOccurrence
from app.registry import get_failure_recorder
from app.services.failure_groups import group_details
from app.services.processing_jobs.lifecycle import create_job, requeue_job

ITEM = {"code": "unit.not_ucum", "severity": "error", "message": "not UCUM", "pointer": "/entities/0/value/unit"}
BY_GROUP = "ix_failure_occurrences_current_group_id_job_id"
BY_JOB = "ix_failure_occurrences_current_job_id"
#: Occurrences no longer current added on PostgreSQL (see _add_past_occurrences).
PAST_OCCURRENCES = 5_000


def _failing_jobs() -> tuple[int, set, set]:
    """Three jobs failing on one group, one of them requeued since:
    ``(group id, current job ids, every job id)``."""
    recorder = get_failure_recorder()
    jobs = [create_job(f"doc-{i}").id for i in range(3)]
    for job in jobs:
        recorder.record_validation_failure(job, "failed", {"errors": [ITEM]})
    requeue_job(jobs[2])
    group_id = db.session.scalar(sa.select(FailureGroup.id))
    if db.engine.dialect.name == "postgresql":
        _add_past_occurrences(group_id, PAST_OCCURRENCES)
    return group_id, set(jobs[:2]), set(jobs)


def _add_past_occurrences(group_id: int, count: int) -> None:
    """``count`` more jobs whose failure on the group is no longer current,
    then fresh statistics: the shape where the partial indexes pay (few
    current occurrences among many), so the planner's choice shows."""
    statements = [
        """CREATE TEMP TABLE past_seed ON COMMIT DROP AS
           SELECT gen_random_uuid() AS job_id, gen_random_uuid() AS failure_id, n FROM generate_series(1, :count) AS n""",
        """INSERT INTO processing_jobs (id, document_id, job_type, status, created_at, updated_at)
           SELECT job_id, 'past-' || n, 'entity_extraction', 'Pending', now(), now() FROM past_seed""",
        """INSERT INTO job_failures (id, job_id, status, error_message, recorded_at)
           SELECT failure_id, job_id, 'Validation_Failed', 'failed', now() FROM past_seed""",
        """INSERT INTO failure_occurrences (group_id, failure_id, job_id, occurred_at, job_type, severity, item_count,
                                            item_positions, is_current)
           SELECT :group_id, failure_id, job_id, now(), 'entity_extraction', 'error', 1, '[]', false FROM past_seed""",
    ]
    for statement in statements:
        db.session.execute(sa.text(statement), {"count": count, "group_id": group_id})
    db.session.commit()
    db.session.execute(sa.text("ANALYZE failure_occurrences"))
    db.session.commit()


def _plan(statement: sa.Executable) -> str:
    """The database's plan of ``statement`` (not run), as one text; on
    PostgreSQL with sequential scans priced out, so a usable index is used."""
    compiled = statement.compile(dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True})
    connection = db.session.connection()
    if db.engine.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.exec_driver_sql(f"EXPLAIN {compiled.string}", compiled.params)
    else:
        # The plan does not depend on the values; sqlite3 binds no UUID.
        params = tuple(str(compiled.params[name]) for name in compiled.positiontup)
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", params)
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


def test_a_condition_on_is_current_renders_the_bare_column_under_any_name():
    aliased = sa.orm.aliased(FailureOccurrence, name="occ")
    table = FailureOccurrence.__table__
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        assert str(sa.select(aliased.id).where(aliased.is_current).compile(dialect=dialect)).endswith(
            "WHERE occ.is_current")
        assert str(sa.select(table.c.id).where(table.c.is_current).compile(dialect=dialect)).endswith(
            "WHERE failure_occurrences.is_current")
        assert str(sa.select(FailureOccurrence.id).where(FailureOccurrence.is_current, FailureOccurrence.id == 1)
                   .compile(dialect=dialect)).split("WHERE ")[1].startswith("failure_occurrences.is_current AND ")
    # Other boolean conditions, and "not current", keep SQLAlchemy's rendering.
    assert str(sa.select(table.c.id).where(~table.c.is_current).compile(dialect=sqlite.dialect())).endswith(
        "WHERE failure_occurrences.is_current = 0")
    assert str(sa.select(table.c.id).where(table.c.is_current.is_(True)).compile(dialect=postgresql.dialect())).endswith(
        "WHERE failure_occurrences.is_current IS true")


def test_the_jobs_failing_on_a_group_come_from_the_partial_index(app_ctx, backend):
    group_id, current, _ = _failing_jobs()
    aliased = sa.orm.aliased(FailureOccurrence)
    statements = {
        "model": group_details.current_job_ids(group_id),
        "alias": sa.select(aliased.job_id).where(aliased.group_id == group_id, aliased.is_current),
    }
    for name, statement in statements.items():
        assert set(db.session.scalars(statement)) == current, name
        plan = _plan(statement)
        if backend == "postgresql":
            assert BY_GROUP in plan, (name, plan)
        else:
            assert "USING" in plan and "INDEX" in plan, (name, plan)
        db.session.rollback()


def test_ending_a_jobs_current_occurrences_reads_the_partial_index(app_ctx):
    _, current, jobs = _failing_jobs()
    table = FailureOccurrence.__table__
    aliased = sa.orm.aliased(FailureOccurrence)
    selects = {
        "table": sa.select(table.c.id).where(table.c.job_id.in_(sorted(jobs)), table.c.is_current),
        "alias": sa.select(aliased.id).where(aliased.job_id.in_(sorted(jobs)), aliased.is_current),
    }
    for name, statement in selects.items():
        assert len(db.session.scalars(statement).all()) == len(current), name
        db.session.rollback()
    update = (sa.update(table).where(table.c.job_id.in_(sorted(jobs)), table.c.is_current)
              .values(is_current=sa.false()))
    for name, statement in {**selects, "update": update}.items():
        # On SQLite too: the only index led by job_id is the partial one,
        # which SQLite reads only when the WHERE holds its term "is_current"
        # (not "is_current = 1").
        plan = _plan(statement)
        assert BY_JOB in plan, (name, plan)
        db.session.rollback()
