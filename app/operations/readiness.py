"""Is the database reachable, and is its schema the one this code expects?

Used by ``GET /readyz``, by ``flask check-ready`` and, before gunicorn
listens, by the ``on_starting`` hook in ``gunicorn.conf.py``. Nothing here
runs while the app is being created: that must work with the database down.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from app.config import ROOT, load_config
from app.web.errors import is_database_unavailable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = ROOT / "migrations"
#: A server that answered but refused the connection for a reason waiting
#: will not change: the FATAL message's pattern -> what it refused, in words
#: (the message itself names the role or database: never repeated). libpq
#: gives a refused connection no SQLSTATE, so its English text is matched.
REFUSALS = (
    (re.compile(r'FATAL:\s+database ".*" does not exist'), "the database does not exist"),
    (re.compile(r'FATAL:\s+role ".*" does not exist'), "the role does not exist"),
    (re.compile(r"FATAL:\s+password authentication failed"), "the password was not accepted"),
    (re.compile(r"FATAL:\s+no pg_hba\.conf entry"), "pg_hba.conf has no entry for this client"),
    (re.compile(r"FATAL:\s+permission denied for database"), "the role may not connect to the database"),
)


def refusal_of(exc: BaseException) -> str | None:
    """What the server refused, in words, when ``exc`` (SQLAlchemy's, or the
    driver's) is one of :data:`REFUSALS`; else ``None``."""
    text = str(getattr(exc, "orig", None) or exc)
    return next((words for pattern, words in REFUSALS if pattern.search(text)), None)


@functools.cache
def code_heads() -> tuple[str, ...]:
    """The Alembic head revision(s) of the migrations shipped with this code."""
    return tuple(sorted(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()))


@dataclass(frozen=True)
class Readiness:
    """What :func:`check_readiness` found.

    Attributes:
        reachable: a connection was made and a query answered.
        database_revisions: the revision(s) in ``alembic_version`` (empty when
            unreachable or never migrated).
        code_revisions: the head(s) the code expects.
    """

    reachable: bool
    database_revisions: tuple[str, ...] = ()
    code_revisions: tuple[str, ...] = ()
    #: When unreachable because the server answered with a refusal waiting
    #: will not change (:data:`REFUSALS`): what it refused, in words.
    refusal: str | None = None

    @property
    def schema_current(self) -> bool:
        """The database is at exactly the code's head(s)."""
        return self.reachable and self.database_revisions == self.code_revisions

    @property
    def ready(self) -> bool:
        """Reachable and at head: requests can be served."""
        return self.schema_current

    def describe(self) -> str:
        """One sentence for an operator (revision ids only; no URL, no error text)."""
        if not self.reachable:
            return f"database refused the connection: {self.refusal}" if self.refusal else "database unreachable"
        if self.schema_current:
            return f"ready: database schema at {', '.join(self.code_revisions)}"
        have = ", ".join(self.database_revisions) or "none (never migrated)"
        return (
            f"database schema is at {have} but this code needs {', '.join(self.code_revisions)}: "
            "run `flask --app wsgi db upgrade`"
        )


def missing_sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite database that does not exist yet (a connection
    would create it empty), else ``None`` (it exists, is in memory, or the
    database is not SQLite)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database)
    return None if path.exists() else path


def check_readiness(engine: Engine, *, log_unreachable: bool = True) -> Readiness:
    """Connect once, read ``alembic_version`` and compare it with the code's heads.

    Returns ``reachable=False`` instead of raising when the database cannot
    serve (see :func:`app.web.errors.is_database_unavailable`), and logs a
    warning then unless ``log_unreachable`` is false (a command that prints
    its own line); other errors propagate.
    """
    heads = code_heads()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        refusal = refusal_of(exc)
        if log_unreachable:
            log.warning("readiness: database unreachable (%s%s)", type(exc).__name__,
                        f": {refusal}" if refusal else "")
        return Readiness(reachable=False, code_revisions=heads, refusal=refusal)
    return Readiness(reachable=True, database_revisions=tuple(sorted(current)), code_revisions=heads)


def wait_until_ready(
    engine: Engine, wait_seconds: float, *, interval: float = 1.0, log_unreachable: bool = True
) -> Readiness:
    """:func:`check_readiness` until the database is reachable or ``wait_seconds`` pass.

    Waits only for reachability (a database still starting); a schema that
    is behind is returned at once, as waiting will not fix it.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        status = check_readiness(engine, log_unreachable=log_unreachable)
        # A refusal (wrong password, no such database) is returned at once:
        # it looked like a network problem after the whole wait (a trial).
        if status.reachable or status.refusal or time.monotonic() >= deadline:
            return status
        time.sleep(interval)


def check_startup(wait_seconds: float = 30.0) -> Readiness:
    """The production start-up check, without building the app.

    Reads the configuration from the environment (so a missing required
    setting fails here, with :class:`app.config.ConfigError`), connects with
    a one-off engine (no pool left behind to be inherited by forked
    workers) and checks the schema.
    """
    config = load_config()
    options = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
    for pool_option in ("pool_size", "max_overflow", "pool_timeout", "pool_pre_ping"):
        options.pop(pool_option, None)
    engine = sa.create_engine(config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool, **options)
    try:
        return wait_until_ready(engine, wait_seconds)
    finally:
        engine.dispose()
