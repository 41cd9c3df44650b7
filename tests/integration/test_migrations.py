"""The migration history: one head, and it agrees with the models on both backends."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from app import create_app
from app.config import ROOT
from app.extensions import db
from app.models.processing_job import POSTGRESQL_ONLY, is_schema_compared


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
