"""What every `approvals` subcommand module shares: exit codes, one-line errors, settings.

Kept apart from cli.py so the command modules (cli_requests, cli_flows) never import the
module that registers them."""

from __future__ import annotations

import typer

from .settings import Settings, SettingsError, load_settings

# 0/1/2 are decisions a shell script branches on; anything that went wrong is 3, never a
# code that could be read as a decision.
EXIT_APPROVED, EXIT_REJECTED, EXIT_TIMED_OUT, EXIT_ERROR = 0, 1, 2, 3


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print `error: message` on stderr; raise what it returns to exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as e:
        raise fail(str(e)) from e
