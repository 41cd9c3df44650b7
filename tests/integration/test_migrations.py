"""The migration history: one head, and it agrees with the models on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from app import create_app
from app.config import ROOT
from app.extensions import db
from app.models.access import AuditEvent
from app.services.audit_log import names_job
from app.models.processing_job import POSTGRESQL_ONLY, is_schema_compared
from tests.conftest import BACKENDS



def _add_group() -> int:
    """A failure group written at an earlier revision: a Core insert names
    only the columns given or defaulted, which 0009's table has (the model
    has later ones, such as 0025's). Returns its id."""
    from app.models import FailureGroup

    return db.session.execute(sa.insert(FailureGroup.__table__).values(
        grouping_version=1, fingerprint="f" * 64, title="t", sample_message="m", severity="error",
    ).returning(FailureGroup.__table__.c.id)).scalar_one()

def test_history_has_a_single_head():
    script = ScriptDirectory(str(ROOT / "migrations"))
    assert len(script.get_heads()) == 1


def test_migrated_schema_matches_the_models(app_ctx):
    # The PostgreSQL-only search column and index are left out, as `flask db migrate` leaves them.
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": is_schema_compared}
        )
        assert compare_metadata(context, db.metadata) == []


def test_upgrade_downgrade_upgrade_from_empty(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        upgrade()
        assert "processing_jobs" in sa.inspect(db.engine).get_table_names()
        downgrade(revision="base")
        assert "processing_jobs" not in sa.inspect(db.engine).get_table_names()
        upgrade()
        assert "processing_jobs" in sa.inspect(db.engine).get_table_names()
        db.engine.dispose()


def test_error_details_is_jsonb_on_postgresql(app_ctx, backend):
    columns = {c["name"]: c for c in sa.inspect(db.engine).get_columns("processing_jobs")}
    type_name = type(columns["error_details"]["type"]).__name__
    assert type_name == ("JSONB" if backend == "postgresql" else "JSON")
    if backend == "postgresql":
        assert columns["created_at"]["type"].timezone is True


def test_the_search_column_and_index_exist_on_postgresql_only(app_ctx, backend):
    inspector = sa.inspect(db.engine)
    columns = {c["name"] for c in inspector.get_columns("processing_jobs")}
    indexes = {i["name"] for i in inspector.get_indexes("processing_jobs")}
    found = {("column", name) for name in columns} | {("index", name) for name in indexes}
    assert (POSTGRESQL_ONLY <= found) is (backend == "postgresql")
    assert not POSTGRESQL_ONLY & found or backend == "postgresql"


#: Tables of the failure groups (0009) and the bulk actions (0010).
GROUP_TABLES = {"failure_groups", "failure_group_counts", "failure_group_events", "failure_group_hourly",
                "failure_occurrences"}
BULK_TABLES = {"bulk_actions", "bulk_action_jobs"}


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, not migrated: a new SQLite file, or a new database
    on the test PostgreSQL server (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    url = sa.make_url(request.getfixturevalue("postgresql_url"))
    name = f"clinical_fresh_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def test_the_group_migrations_follow_the_search_one_and_go_down_cleanly(empty_database_url):
    script = ScriptDirectory(str(ROOT / "migrations"))
    assert script.get_revision("0009_failure_groups").down_revision == "0008_job_search"
    assert script.get_revision("0010_bulk_actions").down_revision == "0009_failure_groups"
    assert script.get_revision("0011_entity_value").down_revision == "0010_bulk_actions"
    assert script.get_revision("0012_procrastinate").down_revision == "0011_entity_value"
    assert script.get_revision("0013_group_hourly_cover").down_revision == "0012_procrastinate"
    assert script.get_revision("0014_job_history_links").down_revision == "0013_group_hourly_cover"
    assert script.get_revision("0015_job_rollups").down_revision == "0014_job_history_links"
    assert script.get_revision("0016_group_daily").down_revision == "0015_job_rollups"
    assert script.get_revision("0017_session_user_hint").down_revision == "0016_group_daily"
    assert script.get_revision("0018_document_prefix").down_revision == "0017_session_user_hint"
    assert script.get_revision("0019_job_group_rollups").down_revision == "0018_document_prefix"
    assert script.get_revision("0020_earlier_failure_search").down_revision == "0019_job_group_rollups"
    assert script.get_revision("0021_bulk_failure_seen").down_revision == "0020_earlier_failure_search"
    assert script.get_revision("0022_code_pair_rollups").down_revision == "0021_bulk_failure_seen"
    assert script.get_revision("0023_rollup_trigger_guards").down_revision == "0022_code_pair_rollups"
    assert script.get_revision("0024_partition_group_rollups").down_revision == "0023_rollup_trigger_guards"
    assert script.get_revision("0025_resolved_in_worker").down_revision == "0024_partition_group_rollups"
    assert script.get_revision("0026_code_rollup_weeks").down_revision == "0025_resolved_in_worker"
    assert script.get_revision("0027_sqlite_exact_buckets").down_revision == "0026_code_rollup_weeks"
    assert script.get_revision("0028_wide_jobs").down_revision == "0027_sqlite_exact_buckets"
    assert script.get_heads() == ["0028_wide_jobs"]
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True})
    with app.app_context():
        def tables() -> set[str]:
            return set(sa.inspect(db.engine).get_table_names())

        upgrade()
        assert GROUP_TABLES | BULK_TABLES <= tables()
        is_postgresql = db.engine.dialect.name == "postgresql"
        assert ("procrastinate_jobs" in tables()) is is_postgresql
        downgrade(revision="0011_entity_value")
        assert not {t for t in tables() if t.startswith("procrastinate_")}
        assert {"worker_name", "worker_version"} <= {
            c["name"] for c in sa.inspect(db.engine).get_columns("job_failures")}
        downgrade(revision="0009_failure_groups")
        assert GROUP_TABLES <= tables() and not BULK_TABLES & tables()
        downgrade(revision="0008_job_search")
        assert not (GROUP_TABLES | BULK_TABLES) & tables() and "processing_jobs" in tables()
        assert "worker_name" not in {c["name"] for c in sa.inspect(db.engine).get_columns("job_failures")}
        downgrade(revision="base")
        assert tables() <= {"alembic_version"}
        upgrade()
        assert GROUP_TABLES | BULK_TABLES <= tables()
        db.engine.dispose()


def test_the_daily_rollup_migration_sums_the_closed_days_hours(empty_database_url):
    from datetime import timedelta

    from app.models import FailureGroupDaily, FailureGroupDailyState, FailureGroupHourly
    from app.models.types import utcnow
    from app.services.failure_groups.daily import closed_through, day_of

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True})
    with app.app_context():
        upgrade(revision="0015_job_rollups")
        group_id = _add_group()  # 0015's columns
        now = utcnow()
        three_days_ago = day_of(now) - timedelta(days=3)
        for hour, shard, count in [(three_days_ago, 0, 2), (three_days_ago + timedelta(hours=5), 3, 5),
                                   (three_days_ago + timedelta(days=1), 1, 7), (now.replace(minute=0, second=0,
                                                                                             microsecond=0), 0, 9)]:
            db.session.add(FailureGroupHourly(group_id=group_id, hour=hour, shard=shard, occurrences=count))
        db.session.commit()
        db.session.rollback()  # no snapshot from before the upgrade
        upgrade()
        through = db.session.scalar(sa.select(FailureGroupDailyState.rolled_through))
        assert through in {closed_through(now), closed_through(utcnow())}
        rows = dict(db.session.execute(sa.select(FailureGroupDaily.day, FailureGroupDaily.occurrences)
                                       .where(FailureGroupDaily.group_id == group_id)).all())
        assert rows == {three_days_ago: 7, three_days_ago + timedelta(days=1): 7}
        db.session.rollback()
        downgrade(revision="0015_job_rollups")
        assert "failure_group_daily" not in sa.inspect(db.engine).get_table_names()
        db.engine.dispose()


def test_the_sparklines_index_holds_the_count_on_postgresql(app_ctx, backend):
    # /groups reads 14 days of hourly rollups from this index alone (docs/benchmarks.md).
    indexes = {i["name"]: i for i in sa.inspect(db.engine).get_indexes("failure_group_hourly")}
    index = indexes["ix_failure_group_hourly_group_id_hour"]
    assert index["column_names"][:2] == ["group_id", "hour"]
    if backend == "postgresql":
        assert index["dialect_options"]["postgresql_include"] == ["occurrences"]


def test_a_jobs_history_reads_are_indexed(app_ctx, backend):
    # bulk_action_jobs by job (both backends); the audit rows' job_ids by GIN on PostgreSQL.
    indexes = {i["name"]: i for i in sa.inspect(db.engine).get_indexes("bulk_action_jobs")}
    assert indexes["ix_bulk_action_jobs_job_id"]["column_names"] == ["job_id"]
    if backend != "postgresql":
        return
    statement = sa.select(AuditEvent.id).where(names_job(uuid.uuid4()))
    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in connection.execute(sa.text(f"EXPLAIN {compiled}")))
    assert "ix_audit_events_job_ids" in plan, plan


def test_the_trigger_guard_migration_adds_one_line_to_each_function_and_takes_it_out_again(empty_database_url):
    """0023 puts a first line into six rollup trigger functions of
    ``failure_occurrences`` on PostgreSQL (return when no row counts); its
    downgrade gives back the exact definitions. SQLite's triggers stay as
    they are."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "guards", ROOT / "migrations" / "versions" / "0023_rollup_trigger_guards.py")
    guards = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guards)
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True})
    with app.app_context():
        is_postgresql = db.engine.dialect.name == "postgresql"

        def definitions() -> dict[str, str]:
            with db.engine.connect() as connection:
                if not is_postgresql:
                    return dict(connection.exec_driver_sql(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").all())
                return {name: connection.exec_driver_sql(
                    f"SELECT pg_get_functiondef('{name}'::regproc)").scalar_one() for name in guards.GUARDS}

        upgrade(revision="0022_code_pair_rollups")
        before = definitions()
        upgrade(revision="0023_rollup_trigger_guards")
        after = definitions()
        if is_postgresql:
            assert len(after) == 6
            for name, definition in after.items():
                added = set(definition.splitlines()) - set(before[name].splitlines())
                assert added == {guards._guard_line(guards.GUARDS[name]).rstrip("\n")}, name  # noqa: SLF001
        else:
            assert after == before and after
        downgrade(revision="0022_code_pair_rollups")
        assert definitions() == before
        db.engine.dispose()


def test_the_group_rollups_are_partitioned_by_grain_on_postgresql_keeping_every_count(empty_database_url):
    """0024 rebuilds the three rollups of 0019 and 0022 as one partition
    per grain on PostgreSQL, copying the rows that count (a row at 0 adds
    nothing to a sum); its downgrade rebuilds them unpartitioned with the
    same rows. SQLite keeps its tables as they are, rows at 0 included."""
    from app.models.job_rollup import JobCodePairRollup, JobGroupCodeRollup, JobGroupRollup

    tables = (JobGroupRollup, JobCodePairRollup, JobGroupCodeRollup)
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True})
    with app.app_context():
        is_postgresql = db.engine.dialect.name == "postgresql"
        upgrade(revision="0023_rollup_trigger_guards")
        group_id = _add_group()  # 0023's columns
        key = {"created_bucket": 0, "finished_bucket": 0, "status": "Validation_Failed", "job_type": "entity_extraction",
               "acknowledged": False}
        code = {"code": "schema.required", "has_error": True, "has_warning": False}
        for grain, shard, jobs in [(0, 0, 3), (0, 5, 2), (1, 0, 4), (2, 7, 1), (2, 1, 0)]:
            rows = {**key, "grain": grain, "shard": shard, "jobs": jobs}
            db.session.add(JobGroupRollup(group_id=group_id, **rows))
            db.session.add(JobGroupCodeRollup(group_id=group_id, **rows, **code))
            db.session.add(JobCodePairRollup(filter_code="range.low", **rows, **code))
        db.session.commit()

        def stored() -> dict[str, set[tuple]]:
            with db.engine.connect() as connection:
                return {model.__tablename__: set(connection.execute(sa.select(model.__table__)).all())
                        for model in tables}

        def partitions(table: str) -> dict[str, str]:
            with db.engine.connect() as connection:
                return dict(connection.exec_driver_sql(
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i"
                    " JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass", (table,)).all())

        before = stored()
        assert all(len(rows) == 5 for rows in before.values())
        db.session.rollback()
        upgrade()
        counting = {name: {row for row in rows if row.jobs != 0} for name, rows in before.items()}
        assert stored() == (counting if is_postgresql else before)
        if is_postgresql:
            for model in tables:
                name = model.__tablename__
                assert partitions(name) == {f"{name}_all": "FOR VALUES IN ('0')", f"{name}_day": "FOR VALUES IN ('1')",
                                            f"{name}_hour": "FOR VALUES IN ('2')"}
                with db.engine.connect() as connection:
                    assert connection.exec_driver_sql(f"SELECT count(*) FROM ONLY {name}_all").scalar_one() == 2
        downgrade(revision="0023_rollup_trigger_guards")
        assert stored() == (counting if is_postgresql else before)
        if is_postgresql:
            assert all(partitions(model.__tablename__) == {} for model in tables)
            with db.engine.connect() as connection:
                assert connection.exec_driver_sql(
                    "SELECT relkind FROM pg_class WHERE relname = 'job_group_code_rollups'").scalar_one() == "r"
        db.engine.dispose()


def test_the_rollup_partitions_left_out_of_the_comparison_are_the_ones_the_migrations_make(app_ctx, backend):
    """``ROLLUP_PARTITIONS`` (derived from each rollup model's grains) names
    every partition of a rollup table on PostgreSQL, and nothing else."""
    from app.models.job_rollup import ROLLUP_MODELS, ROLLUP_PARTITIONS

    assert "job_code_rollups_week" in ROLLUP_PARTITIONS and "job_count_rollups_week" not in ROLLUP_PARTITIONS
    if backend != "postgresql":  # plain tables, no partitions
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {model.__tablename__ for model in ROLLUP_MODELS} <= tables and not ROLLUP_PARTITIONS & tables
        return
    partitions = set(db.session.execute(sa.text(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " JOIN pg_class AS p ON p.oid = i.inhparent WHERE p.relname = ANY(:tables)"),
        {"tables": [model.__tablename__ for model in ROLLUP_MODELS]}).scalars())
    assert partitions == ROLLUP_PARTITIONS
