"""Reads `/approvals` text into a Command, or a specific error shown with the usage line.

The listener that answers the command is bot/listeners/commands.py."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from slack_approvals.core.errors import ApprovalsError, BadInput
from slack_approvals.core.keyvalues import parse_key_values

USAGE = ("Usage: `/approvals help` · `list` · `status <id>` · `run <flow> [key=value ...]` · "
         "`policy <flow> [key=value ...]` · `cancel <id> [reason]`")


class CommandError(ApprovalsError, ValueError):
    """Shown to the caller as is, followed by the usage line."""


@dataclass(frozen=True)
class Command:
    name: str
    request_id: str | None = None
    flow: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


def parse_command(text: str) -> Command:
    try:
        words = shlex.split(text or "")
    except ValueError as e:
        raise CommandError(f"Could not read the command: {e}.") from e
    if not words:
        return Command("help")
    name, args = words[0].lower(), words[1:]
    if name in ("help", "list"):
        if args:
            raise CommandError(f"`{name}` takes no arguments.")
        return Command(name)
    if name in ("status", "cancel"):
        if not args:
            raise CommandError(f"`{name}` needs a request id, e.g. `/approvals {name} 3f9k2m7q8w1x0zab`.")
        if name == "status" and len(args) > 1:
            raise CommandError("`status` takes one request id.")
        reason = " ".join(args[1:]) or None
        return Command(name, request_id=args[0].lower(), reason=reason)
    if name == "policy":
        if not args:
            raise CommandError("`policy` needs a flow, e.g. `/approvals policy payment-approval "
                               "amount=50000`.")
        try:
            return Command("policy", flow=args[0], params=parse_key_values(args[1:]))
        except BadInput as e:
            raise CommandError(str(e)) from e
    if name == "run":
        if not args:
            return Command("run")  # lists the flows
        try:
            return Command("run", flow=args[0], params=parse_key_values(args[1:]))
        except BadInput as e:
            raise CommandError(str(e)) from e
    raise CommandError(f"`{name}` is not a subcommand.")
