"""procrastinate's tables and functions (PostgreSQL only): the job queue that
runs bulk actions in the background

Revision ID: 0012_procrastinate
Revises: 0011_entity_value
Create Date: 2026-12-03

The schema is procrastinate 3.10.0's own ``procrastinate/sql/schema.sql``,
copied beside this file (0012_procrastinate_schema.sql) so that this
revision stays what it was when a later pin brings a newer schema; a
procrastinate upgrade that changes the schema gets its own revision made
from procrastinate's ``sql/migrations``. SQLite has no job queue (bulk
actions run inline there): nothing to do.
"""
import re
from pathlib import Path

from alembic import op

# revision identifiers, used by Alembic.
revision = '0012_procrastinate'
down_revision = '0011_entity_value'
branch_labels = None
depends_on = None

SCHEMA = Path(__file__).with_name("0012_procrastinate_schema.sql")


def _driver_execute(sql: str) -> None:
    # On the driver's connection (inside Alembic's transaction): the schema is
    # many statements with PL/pgSQL bodies whose colons and percent signs must
    # not be read as bind parameters.
    op.get_bind().connection.driver_connection.execute(sql)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    _driver_execute(SCHEMA.read_text(encoding="utf-8"))


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = SCHEMA.read_text(encoding="utf-8")
    tables = re.findall(r"^CREATE TABLE (procrastinate_\w+)", schema, re.M)
    functions = sorted(set(re.findall(r"^CREATE (?:OR REPLACE )?FUNCTION (procrastinate_\w+)", schema, re.M)))
    types = re.findall(r"^CREATE TYPE (procrastinate_\w+)", schema, re.M)
    statements = [f"DROP TABLE IF EXISTS {', '.join(tables)} CASCADE"]
    statements += [f"DROP FUNCTION IF EXISTS {name} CASCADE" for name in functions]
    statements += [f"DROP TYPE IF EXISTS {name} CASCADE" for name in types]
    _driver_execute(";\n".join(statements))
