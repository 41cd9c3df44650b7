"""What every maintenance command checks first: that the database exists
and its schema is at this code's head (``flask check-ready``'s check), so a
command pointed at the wrong database stops with one line instead of a
traceback, and creates no empty SQLite file.

Used by the ``flask groups``, ``users``, ``tokens`` and ``jobs`` groups
(:func:`checked_group`) and by ``flask check-ready``; :func:`cli_actor`
names who ran a command in the audit log.
"""

from __future__ import annotations

import functools
import getpass
import os

import click
from flask.cli import AppGroup, with_appcontext

from app.extensions import db


def no_sqlite_file(path: object) -> str:
    """The one line that names a SQLite database file that does not exist."""
    return (f"no SQLite database at {path}: set DATABASE_URL to the app's database (make demo's is "
            f"sqlite:///<project>/instance/demo.sqlite3), or create it with `flask --app wsgi db upgrade`")


def require_current_schema() -> None:
    """Stop a command with one line (exit 1) unless the configured database
    exists and its schema is at the code's head (what `flask check-ready`
    checks).

    A SQLite file that does not exist is named and left uncreated (a
    connection would create an empty one). Other databases are described
    without their URL (it may hold a password).

    Raises:
        click.ClickException: the database is missing, unreachable or not
            migrated to head.
    """
    from app.operations.readiness import check_readiness, missing_sqlite_file

    missing = missing_sqlite_file(db.engine)
    if missing is not None:
        raise click.ClickException(no_sqlite_file(missing))
    # The exception's line says it: no log line beside it.
    status = check_readiness(db.engine, log_unreachable=False)
    if not status.ready:
        raise click.ClickException(status.describe())


class _CheckedGroup(AppGroup):
    """An :class:`~flask.cli.AppGroup` whose subcommands run
    :func:`require_current_schema` first. The check wraps each subcommand's
    callback, not the group's: click runs a group's callback before it reads
    the subcommand's options, so ``flask users create --help`` stopped at
    "no SQLite database" (a trial)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        callback = cmd.callback
        if callback is not None:
            check = with_appcontext(require_current_schema)

            @functools.wraps(callback)
            def checked(*args: object, **kwargs: object) -> object:
                check()
                return callback(*args, **kwargs)

            cmd.callback = checked
        super().add_command(cmd, name)


def checked_group(name: str, help: str) -> AppGroup:  # noqa: A002 (click's own name)
    """A ``flask`` command group whose every subcommand first runs
    :func:`require_current_schema` (``--help`` at any level does not)."""
    return _CheckedGroup(name, help=help)


def cli_actor() -> str:
    """The audit actor of an account command: ``cli:<OS user>``, and the user
    sudo ran it for (``cli:root (sudo by alice)``); ``cli`` alone when the OS
    names no user. An SRE trial found every such row said only ``cli``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a container)
        return "cli"
    by = os.environ.get("SUDO_USER")
    return f"cli:{user}" + (f" (sudo by {by})" if by and by != user else "")
