"""Parses `/approvals` text into a command, or a specific error with the usage line."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

USAGE = ("Usage: `/approvals help` · `list` · `status <id>` · `run <flow> [key=value ...]` · "
         "`cancel <id> [reason]`")
KEY_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


class CommandError(ValueError):
    """Shown to the caller as is, followed by the usage line."""


@dataclass(frozen=True)
class Command:
    name: str
    request_id: str | None = None
    flow: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


def parse_key_values(pairs: Iterable[str]) -> dict[str, str]:
    """Flow parameters as typed in `/approvals run` and `approvals run -p`: one rule for both."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not KEY_PATTERN.match(key):
            raise CommandError(f"`{pair}` is not a `key=value` pair (keys are lowercase words).")
        if key in params:
            raise CommandError(f"`{key}` is given twice.")
        params[key] = value
    return params


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
    if name == "run":
        if not args:
            return Command("run")  # lists the flows
        return Command("run", flow=args[0], params=parse_key_values(args[1:]))
    raise CommandError(f"`{name}` is not a subcommand.")
