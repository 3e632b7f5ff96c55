"""What every `approvals` subcommand module shares: exit codes, one-line errors, settings.

Kept apart from cli.py so the command modules (cli_requests, cli_flows) never import the
module that registers them."""

from __future__ import annotations

import re

import typer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from slack_sdk.errors import SlackApiError

from slack_approvals.core.errors import ApprovalsError

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


# Escape sequences, other C0/C1 controls, bidi overrides and line separators: stored text
# could otherwise recolour, rewrite or reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                     "\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """Stored text as typed, with control characters shown as `\\x1b`-style escapes (tabs and
    line breaks stay). Print it as plain text, never as Rich markup."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def slack_refusal(error: SlackApiError) -> str:
    """Slack's error code and, when it is not 200, the HTTP status (`fatal_error (HTTP 500)`)."""
    response = error.response
    code = response.get("error") if isinstance(response.data, dict) else None
    status = "" if response.status_code == 200 else f"HTTP {response.status_code}"
    return " ".join(part for part in (str(code or ""), f"({status})" if code and status
                                      else status) if part) or "unknown error"


def one_line(error: BaseException) -> str | None:
    """What went wrong, in one line a person can act on; None for a bug (it keeps its
    traceback)."""
    if isinstance(error, ApprovalsError):
        return str(error)
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return f"could not reach Redis: {error}"
    if isinstance(error, RedisError):
        return f"Redis refused a command: {error}"
    if isinstance(error, SlackApiError):
        return f"Slack refused the call: {slack_refusal(error)}"
    if isinstance(error, OSError):  # Slack unreachable (urllib), a file that cannot be read
        return f"{type(error).__name__}: {error}"
    return None
