"""Operations commands: ``flask check-ready`` and ``flask jobs purge``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from app.cli_checks import checked_group, cli_actor, no_sqlite_file
from app.extensions import db
from app.models.types import utcnow
from app.services.access import note_in_audit_event, record_audit_event, set_audit_row_count


@click.command("check-ready")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to keep trying while the database is unreachable.",
)
@with_appcontext
def check_ready_command(wait: float) -> None:
    """Exit 0 when the database answers and its schema is at the code's head.

    Otherwise print what is wrong (never the database URL or an error text)
    and exit 1. Run it after `flask db upgrade` and before starting the server.
    """
    from app.operations.readiness import missing_sqlite_file, wait_until_ready

    missing = missing_sqlite_file(db.engine)
    if missing is not None:
        click.echo(no_sqlite_file(missing))
        raise SystemExit(1)
    status = wait_until_ready(db.engine, wait, log_unreachable=False)  # the command prints its own line
    db.engine.dispose()
    click.echo(status.describe())
    if not status.ready:
        raise SystemExit(1)


jobs_cli = checked_group("jobs", "Maintain processing jobs.")


@jobs_cli.command("purge")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Delete what finished more than AGE ago: a whole number and h, d or w (180d, 26w).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, None),
    default=None,
    help="Jobs per transaction (default 500, at most 5000).",
)
def purge_jobs_command(older_than: str, dry_run: bool, batch_size: int | None) -> None:
    """Delete finished jobs (Completed, Failed, Validation_Failed) older than AGE.

    With each job go its failure history and extracted entities; idempotency
    records older than AGE go too. Works in batches, each its own
    transaction. Prints the number of rows per table.
    """
    from app.services.retention import (
        DEFAULT_BATCH_SIZE,
        MAX_BATCH_SIZE,
        count_expired,
        parse_age,
        purge_finished_jobs,
    )

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if size > MAX_BATCH_SIZE:
        raise click.BadParameter(f"at most {MAX_BATCH_SIZE}", param_hint="--batch-size")
    try:
        cutoff = utcnow() - age
    except OverflowError:  # 999999w reaches back before year 1
        raise click.BadParameter(
            "reaches back before the calendar's first year", param_hint="--older-than"
        ) from None
    if dry_run:
        counts = count_expired(cutoff)
        verb = "would delete"
    else:
        # Audited before the first row goes, as every deletion of clinical
        # data is (an SRE trial found the purge left no trace); what it
        # deleted is added once it ends.
        event = record_audit_event(cli_actor(), "jobs.purge", {
            "older_than": older_than.strip(), "cutoff": cutoff.isoformat(timespec="seconds"), "batch_size": size})
        counts = purge_finished_jobs(cutoff, batch_size=size)
        note_in_audit_event(event, {"deleted": counts.as_dict()})
        set_audit_row_count(event, counts.processing_jobs)
        verb = "deleted"
    click.echo(f"cutoff: {cutoff.isoformat(timespec='seconds')} (older than {older_than.strip()})")
    for table, count in counts.as_dict().items():
        click.echo(f"{verb} {count} {table}")
    if not dry_run:
        click.echo(f"cleared the text of {counts.groups_redacted} failure_groups left with no failure")
        click.echo(f"took the sample message of {counts.groups_resampled} failure_groups from a failure they kept")


def register_operations_commands(app: Flask) -> None:
    """Attach ``check-ready`` and the ``jobs`` group to ``app``."""
    app.cli.add_command(check_ready_command)
    app.cli.add_command(jobs_cli)
