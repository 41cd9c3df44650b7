"""Flask CLI commands: ``flask worker run``, ``flask groups backfill|regroup``, ``flask bulk-worker``."""

from __future__ import annotations

import logging.config
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from app.config import ROOT
from app.observability.logs import logging_config
from app.cli_checks import checked_group

worker_cli = AppGroup("worker", help="Run the reference worker.")

#: Width of the status column of ``flask worker run``'s report (the longest status).
STATUS_WIDTH = len("Validation_Failed")


@worker_cli.command("run")
@click.option(
    "--corpus",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=ROOT / "demo" / "corpus",
    show_default=True,
    help="Folder of extracted-entity documents (*.json).",
)
@click.option("--api-url", default="http://127.0.0.1:5000", show_default=True, help="Server root URL.")
@click.option(
    "--token",
    envvar="WORKER_TOKEN",
    required=True,
    help="Worker bearer token from `flask tokens create` (or the WORKER_TOKEN environment variable).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Extra attempts per request after a connection error, a timeout or a 5xx answer.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Seconds before the first retry; doubled on each further retry (a Retry-After can lengthen it).",
)
def run_worker_command(corpus: Path, api_url: str, token: str, retries: int, backoff: float) -> None:
    """Validate each document in CORPUS and report it to the API at API_URL.

    Shows a progress bar on standard error while it works (only its label
    when that is not a terminal), then prints one line per document on
    standard output -- file, document id, job id, final status, then the number of
    entities stored or the error codes (never the document's text) -- and a
    summary line. Exits with status 1 when the API refuses a request or stays
    unreachable; the documents finished before are still listed.
    """
    import requests

    from app.worker.client import ApiError, WorkerApiClient
    from app.worker.runner import DocumentOutcome, corpus_documents, process_document

    def describe(outcome: DocumentOutcome, document_width: int) -> str:
        result = ", ".join(outcome.error_codes) if outcome.error_codes else f"{outcome.entity_count} entities"
        return (f"{outcome.file:{width}}  {outcome.document_id:{document_width}}  {outcome.job_id}  "
                f"{outcome.status:{STATUS_WIDTH}}  {result}")

    def echo_outcomes() -> None:
        # The stored document id beside the file name: it is what the
        # dashboard's search and filters know the document by.
        document_width = max((len(outcome.document_id) for outcome in outcomes), default=0)
        for outcome in outcomes:
            click.echo(describe(outcome, document_width))

    documents = corpus_documents(corpus)
    width = max((len(path.name) for path in documents), default=0)  # one column, however long the names
    outcomes: list[DocumentOutcome] = []
    client = WorkerApiClient(api_url, retries=retries, backoff=backoff, token=token)
    try:
        # The bar goes to stderr so that stdout carries only the report. The
        # per-document lines come after it: printed while it is drawn they
        # would be torn by its carriage returns on a terminal.
        with click.progressbar(
            documents,
            label=f"Processing {len(documents)} documents",
            item_show_func=lambda path: path.name if path is not None else None,
            show_pos=True,
            file=sys.stderr,
        ) as bar:
            for path in bar:
                outcomes.append(process_document(client, path))
    except ApiError as exc:
        echo_outcomes()
        raise click.ClickException(str(exc)) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        echo_outcomes()
        raise click.ClickException(f"cannot reach the API at {api_url}: is the server running?") from exc
    except requests.RequestException as exc:
        echo_outcomes()
        raise click.ClickException(f"request to the API at {api_url} failed: {exc}") from exc
    finally:
        client.session.close()
    echo_outcomes()
    failed = sum(1 for o in outcomes if o.status != "Completed")
    click.echo(f"{len(outcomes)} documents: {len(outcomes) - failed} completed, {failed} failed validation.")


groups_cli = checked_group(
    "groups",
    "Maintain failure groups (docs/failure-groups.md). Every subcommand first checks that the database "
    "exists and its schema is at this code's head, and otherwise stops with one line, creating nothing.",
)


def _run_backfill(version: int, batch_size: int) -> None:
    from app.services.failure_groups.backfill import BackfillResult, backfill_groups
    from app.services.failure_groups.fingerprint import UnknownGroupingVersionError

    def report(result: BackfillResult) -> None:
        click.echo(
            f"batch {result.batches}: {result.failures} failures grouped, "
            f"{result.occurrences} occurrences ({result.seconds:.1f} s)",
            err=True,
        )

    try:
        result = backfill_groups(version, batch_size=batch_size, progress=report)
    except UnknownGroupingVersionError as exc:
        raise click.BadParameter(str(exc), param_hint="--version") from None
    click.echo(
        f"grouping version {version}: {result.failures} failures grouped into {result.occurrences} occurrences "
        f"in {result.batches} batches, {result.seconds:.1f} s."
    )


_BATCH_SIZE = click.option(
    "--batch-size",
    type=click.IntRange(1, 5_000),
    default=500,
    show_default=True,
    help="Failures per transaction (each batch locks only its jobs' rows).",
)


@groups_cli.command("backfill")
@_BATCH_SIZE
def backfill_groups_command(batch_size: int) -> None:
    """Group every recorded failure not yet in a group (current grouping version).

    Batches of short transactions: safe while workers record failures, and
    safe to stop and run again (it carries on). Prints a line per batch on
    standard error and a summary on standard output.
    """
    from app.services.failure_groups.fingerprint import GROUPING_VERSION

    _run_backfill(GROUPING_VERSION, batch_size)


@groups_cli.command("regroup")
@click.option("--version", "version", type=int, required=True, help="The grouping version to compute.")
@_BATCH_SIZE
def regroup_command(version: int, batch_size: int) -> None:
    """Group the stored failures under grouping VERSION (as backfill does).

    The groups of other versions stay as they are: a new version never
    silently reshuffles old groups. Run it after a release raises the
    grouping version, to bring older failures into the new groups.
    """
    _run_backfill(version, batch_size)


@groups_cli.command("roll-up-days")
def roll_up_days_command() -> None:
    """Sum the closed UTC days' hourly occurrences into the daily rollup,
    then fold the summary rollups' past shards and the groups' counter
    shards into one row per key.

    On PostgreSQL the bulk worker runs it daily (a periodic task); run this
    where no worker runs (SQLite), after a first deploy, or from cron. The
    pages never do it: they read days not rolled up from the hours, and sum
    whatever shards there are.
    """
    from app.models.types import utcnow
    from app.services.failure_groups.daily import roll_up_closed_days
    from app.services.rollup_compaction import compact_counters, compact_rollups

    now = utcnow()
    click.echo(f"{roll_up_closed_days(now)} day(s) rolled up.")
    folded = compact_rollups(now)
    click.echo(f"Summary rollups: {folded.buckets} set(s) of rows folded (past days and hours, all-time ranges), "
               f"{folded.rows_before} rows to {folded.rows_after}; {_left(folded.skipped)}.")
    counters = compact_counters()
    click.echo(f"Group counters: {counters.buckets} range(s) of groups folded, {counters.rows_before} rows to "
               f"{counters.rows_after}; {_left(counters.skipped)}.")


def _left(skipped: list) -> str:
    """What a fold left for its next run, and why when it left any."""
    return f"{len(skipped)} left for the next run" + (" (a writer held a row)" if skipped else "")


@click.command("bulk-worker")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Bulk actions run at once.")
@click.option("--stalled-after", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds without a heartbeat after which another worker's action is taken over.")
@click.option("--heartbeat", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds between this worker's heartbeats.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Jobs changed per transaction (default 1,000).")
@click.option("--once", is_flag=True, help="Stop when the queue is empty instead of waiting for more.")
@with_appcontext
def bulk_worker_command(concurrency: int, stalled_after: float, heartbeat: float, batch_size: int | None,
                        once: bool) -> None:
    """Run the worker that carries out confirmed group and filter bulk
    actions (procrastinate, on the PostgreSQL database of DATABASE_URL)."""
    from flask import current_app

    from app.services import bulk_queue

    if not current_app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        raise click.UsageError("the bulk worker needs PostgreSQL (on SQLite bulk actions run in the request)")
    if batch_size is not None:
        current_app.config["BULK_ACTION_BATCH_SIZE"] = batch_size
    # The server's log format: JSON lines, an exception by its type and
    # frames, never its text or SQL parameters (a trial found tracebacks).
    logging.config.dictConfig(logging_config(current_app.config["LOG_LEVEL"]))
    bulk_queue.run_worker(current_app._get_current_object(), concurrency=concurrency,
                          stalled_after=stalled_after, heartbeat=heartbeat, wait=not once)


def register_commands(app: Flask) -> None:
    """Attach the CLI groups to ``app``."""
    app.cli.add_command(worker_cli)
    app.cli.add_command(bulk_worker_command)
    app.cli.add_command(groups_cli)
