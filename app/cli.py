"""Flask CLI commands: ``flask worker run``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from app.config import ROOT

worker_cli = AppGroup("worker", help="Run the reference worker.")


@worker_cli.command("run")
@click.option(
    "--corpus",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=ROOT / "demo" / "corpus",
    show_default=True,
    help="Folder of extracted-entity documents (*.json).",
)
@click.option("--api-url", default="http://127.0.0.1:5000", show_default=True, help="Server root URL.")
def run_worker_command(corpus: Path, api_url: str) -> None:
    """Validate each document in CORPUS and report it to the API at API_URL.

    Prints one line per document: file, job id, final status and error codes
    (never the document's text).
    """
    import requests

    from app.worker.client import ApiError, WorkerApiClient
    from app.worker.runner import DocumentOutcome, run_worker

    def show(outcome: DocumentOutcome) -> None:
        codes = ", ".join(outcome.error_codes)
        click.echo(f"{outcome.file:45} {outcome.job_id}  {outcome.status:18} {codes}")

    try:
        outcomes = run_worker(WorkerApiClient(api_url), corpus, on_outcome=show)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc
    except requests.ConnectionError as exc:
        raise click.ClickException(f"cannot reach the API at {api_url}: is the server running?") from exc
    failed = sum(1 for o in outcomes if o.status != "Completed")
    click.echo(f"{len(outcomes)} documents: {len(outcomes) - failed} completed, {failed} failed validation.")


def register_commands(app: Flask) -> None:
    """Attach the CLI groups to ``app``."""
    app.cli.add_command(worker_cli)
