"""The `approvals` command line: one entry point for the bot, the store and the flows."""

from __future__ import annotations

import sys

import typer

from state.private_server import ensure_private_server, stop_private_server

from .settings import Settings, SettingsError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Slack-button approvals for Prefect flows, backed by Redis.")
redis_app = typer.Typer(no_args_is_help=True, help="The private Redis used when REDIS_URL is unset.")
app.add_typer(redis_app, name="redis")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


@redis_app.command("start")
def redis_start() -> None:
    """Start (or find) the project folder's private Redis and print its URL."""
    settings = settings_or_exit()
    server = ensure_private_server(settings.approvals_data_dir / "redis")
    state = "started" if server.started_now else "already running"
    typer.echo(f"{server.url} ({state}, pid {server.pid}, {server.binary})")


@redis_app.command("stop")
def redis_stop() -> None:
    """Stop the private Redis; its AOF stays under the data folder for next time."""
    settings = settings_or_exit()
    stopped = stop_private_server(settings.approvals_data_dir / "redis")
    typer.echo("stopped" if stopped else "no private Redis was running")


def main() -> None:
    try:
        app()
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
