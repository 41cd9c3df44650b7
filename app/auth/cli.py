"""``flask users ...`` and ``flask tokens ...``: accounts and worker tokens."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from app.errors import ServiceError
from app.models.access import Role
from app.cli_checks import checked_group, cli_actor
from app.services import access, worker_tokens

users_cli = checked_group("users", "Operator accounts.")
tokens_cli = checked_group("tokens", "Worker bearer tokens.")


def _fail(error: ServiceError) -> click.ClickException:
    reasons = "; ".join(f"{e['field']}: {e['detail']}" for e in error.errors)
    return click.ClickException(error.detail + (f" ({reasons})" if reasons else ""))


T = TypeVar("T")


def _call(service: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a service; its refusal (a :class:`ServiceError`) becomes a CLI error (exit 1)."""
    try:
        return service(*args, **kwargs)
    except ServiceError as exc:
        raise _fail(exc) from exc


def _read_password(from_stdin: bool, prompt: str) -> str:
    """One line of standard input (scripts), or a hidden prompt typed twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@users_cli.command("create")
@click.option("--username", required=True, help="User name for signing in (surrounding spaces and tabs are dropped).")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.VIEWER.value, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def create_user_command(username: str, role: str, password_stdin: bool) -> None:
    """Create an operator account (the first one: --role admin). Surrounding
    whitespace of the user name is dropped, as sign-in drops it."""
    password = _read_password(password_stdin, "Password")
    # Spaces and tabs only, as the help says: strip() also took U+001F or
    # U+2028 off an end and made another name than the one typed (a re-check).
    user = _call(access.create_user, username.strip(" \t"), password, role, actor=cli_actor())
    click.echo(f"created user {user.username} ({user.role})")


@users_cli.command("list")
def list_users_command() -> None:
    """List operator accounts (never their passwords)."""
    for user in access.list_users():
        click.echo(f"{user.username}\t{user.role}\t{'active' if user.active else 'disabled'}")


@users_cli.command("disable")
@click.argument("name")
def disable_user_command(name: str) -> None:
    """Disable the account NAME: it cannot sign in, and its open sessions end now."""
    _, changed = _call(access.set_user_active, name, False, actor=cli_actor())
    click.echo(f"disabled user {name}; their sessions have ended" if changed
               else f"user {name} was already disabled; nothing changed")


@users_cli.command("enable")
@click.argument("name")
def enable_user_command(name: str) -> None:
    """Enable the account NAME again (it signs in afresh)."""
    _, changed = _call(access.set_user_active, name, True, actor=cli_actor())
    click.echo(f"enabled user {name}" if changed else f"user {name} was already enabled; nothing changed")


@users_cli.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def set_password_command(name: str, password_stdin: bool) -> None:
    """Set a new password for NAME; every open session of the account ends."""
    _call(access.set_user_password, name, _read_password(password_stdin, "New password"), actor=cli_actor())
    click.echo(f"changed the password of {name}; their sessions have ended")


@tokens_cli.command("create")
@click.option("--name", required=True, help="What the token is for, e.g. the worker's host.")
def create_token_command(name: str) -> None:
    """Create a worker token and print it once (only its hash is stored)."""
    try:
        token, record = worker_tokens.create_worker_token(name, actor=cli_actor())
    except ServiceError as exc:
        raise _fail(exc) from exc
    click.echo(token)
    click.echo(f"created token {record.name} ({record.prefix}…); store it now: it cannot be shown again", err=True)


@tokens_cli.command("list")
def list_tokens_command() -> None:
    """List tokens: name, prefix, created, last used, revoked."""
    for record in worker_tokens.list_worker_tokens():
        state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}Z" if record.revoked_at else "active"
        used = f"{record.last_used_at:%Y-%m-%d %H:%M}Z" if record.last_used_at else "never"
        click.echo(f"{record.name}\t{record.prefix}…\tcreated {record.created_at:%Y-%m-%d %H:%M}Z\tused {used}\t{state}")


@tokens_cli.command("rotate")
@click.argument("name")
def rotate_token_command(name: str) -> None:
    """Give the token NAME a new secret and print it once; the old one stops working at once.

    The name stays (the audit log's actor); a revoked token is active again with the new secret.
    """
    try:
        token, record = worker_tokens.rotate_worker_token(name, actor=cli_actor())
    except ServiceError as exc:
        raise _fail(exc) from exc
    click.echo(token)
    click.echo(f"rotated token {record.name} (now {record.prefix}…); the old secret no longer works; store this "
               "one now: it cannot be shown again", err=True)


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_token_command(name: str) -> None:
    """Revoke the token called NAME; workers using it get 401 at once."""
    try:
        record, revoked_now = worker_tokens.revoke_worker_token(name, actor=cli_actor())
    except ServiceError as exc:
        raise _fail(exc) from exc
    click.echo(f"revoked token {name}" if revoked_now
               else f"token {name} was already revoked at {record.revoked_at:%Y-%m-%d %H:%M}Z; nothing changed")
