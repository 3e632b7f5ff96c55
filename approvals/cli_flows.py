"""`approvals run` and `approvals serve`: the registered flows from the command line."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds the flow commands to the `approvals` CLI."""
