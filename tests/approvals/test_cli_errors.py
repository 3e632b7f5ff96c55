"""The CLI prints stored text literally, says every error in one line with exit 3, cancels a
request Slack would not post, and cancels requests by id."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from slack_approvals.approvals import cli_requests
from slack_approvals.approvals.cli import main
from slack_approvals.state.models import REQUEST_ID_PATTERN, RequestSpec, Status
from slack_approvals.state.plans import new_request_id
from tests.bot.fixtures import APPROVALS_CHANNEL, BOT_TOKEN, FRANK, MAYA, BotStack
from tests.conftest import RedisServer

EVIL_TITLE = "[/x] [bold red]loud[/bold red] [link=https://evil.example]click[/link] \x1b[31mred"
EVIL_REASON = "no [/x]\x1b]8;;https://evil.example\x07here\x1b]8;;\x07 \x1b[2J\u202eodd"


@dataclass
class Ran:
    code: int
    out: str
    err: str


Cli = Callable[..., Ran]


@pytest.fixture
def cli(bot: BotStack, redis_server: RedisServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Runs `approvals ...` in this process (as `python -m slack_approvals` would), against
    the sandbox Slack and the test Redis."""
    monkeypatch.chdir(tmp_path)
    for name, value in {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": bot.sandbox.api_url,
                        "REDIS_URL": redis_server.url, "APPROVALS_CHANNEL": APPROVALS_CHANNEL,
                        }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # Wide enough that no cell wraps; the module's console was sized when it was imported.
    monkeypatch.setattr(cli_requests, "console", Console(width=500))

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["approvals", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        captured = capsys.readouterr()
        code = exited.value.code
        return Ran(code if isinstance(code, int) else 0, captured.out, captured.err)

    return run


def one_line_error(ran: Ran) -> str:
    assert ran.code == 3, ran
    assert "Traceback" not in ran.err
    assert ran.err.startswith("error: ") and ran.err.count("\n") == 1, ran.err
    return ran.err


def test_stored_text_is_printed_literally(cli: Cli, bot: BotStack) -> None:
    request = bot.store.create(RequestSpec(title=EVIL_TITLE, channel=APPROVALS_CHANNEL,
                                           approvers=[MAYA], requester=FRANK))
    pending = cli("pending")
    bot.store.decide(request.id, MAYA, "reject", reason=EVIL_REASON)
    shown, audit = cli("show", request.id), cli("audit", request.id)
    for ran in (pending, shown, audit):
        assert ran.code == 0, ran
        assert "\x1b" not in ran.out and "\u202e" not in ran.out
        assert "[/x]" in ran.out
    for ran in (pending, shown):
        assert "[bold red]loud[/bold red] [link=https://evil.example]click[/link]" in ran.out
        assert "\\x1b[31mred" in ran.out
    for ran in (shown, audit):
        assert "\\x1b]8;;https://evil.example\\x07here" in ran.out
        assert "\\x1b[2J\\u202eodd" in ran.out


def test_request_prints_its_id_first(cli: Cli, bot: BotStack) -> None:
    ran = cli("request", "--title", "Rotate keys", "--approver", MAYA)
    assert ran.code == 0, ran
    first = ran.out.splitlines()[0].split()[0]
    assert REQUEST_ID_PATTERN.match(first)
    assert bot.store.get(first).message_ts is not None


@pytest.mark.parametrize(("args", "expected"), [
    (["pending", "--user", "bob"], "'bob' is not a Slack user id"),
    (["request", "--title", "T", "--approver", MAYA, "--timeout", "99999999999999999999d"],
     "far too long a duration"),
    (["request", "--title", "T", "--approver", MAYA, "--idempotency-key", ""], "idempotency_key"),
    (["request", "--title", "T", "--approver", MAYA, "--idempotency-key", "k" * 501],
     "idempotency_key"),
    (["cancel", "0000000000000000"], "no approval request"),
    (["cancel", "not-an-id"], "malformed request id"),
])
def test_bad_input_is_one_line_and_exit_3(cli: Cli, bot: BotStack, args: list[str],
                                          expected: str) -> None:
    assert expected in one_line_error(cli(*args))
    assert bot.sandbox.messages(APPROVALS_CHANNEL) == []


def test_unreachable_redis_is_one_line_and_exit_3(cli: Cli) -> None:
    for args in (["pending"], ["show", new_request_id()], ["cancel", new_request_id()]):
        assert "could not reach Redis" in one_line_error(
            cli(*args, env={"REDIS_URL": "redis://127.0.0.1:1/0"})), args


@pytest.mark.parametrize(("fault", "expected"), [
    ({"SLACK_BOT_TOKEN": "xoxb-revoked"}, "invalid_auth"),
    ({"APPROVALS_CHANNEL": "C09NOWHERE"}, "channel_not_found"),
    ({}, "HTTP 500"),
])
def test_a_request_slack_would_not_post_is_cancelled(cli: Cli, bot: BotStack, fault: dict[str, str],
                                                     expected: str) -> None:
    if not fault:
        bot.sandbox.faults.inject("chat.postMessage", status=500, count=10)
    err = one_line_error(cli("request", "--title", "Never shown", "--approver", MAYA, env=fault))
    bot.sandbox.faults.clear()
    assert expected in err
    request_id = re.findall(r"request ([0-9a-z]{16}) was cancelled", err)[0]
    request = bot.store.get(request_id)
    assert request.status is Status.CANCELLED and request.message_ts is None
    assert request.decision is not None and expected in str(request.decision.reason)
    assert expected in str(bot.store.audit(request_id)[-1].reason)
    assert bot.store.pending() == []


def test_cancel_closes_a_request_as_the_system(cli: Cli, bot: BotStack) -> None:
    request = bot.post(title="Drop the old table")
    ran = cli("cancel", request.id, "plans", "changed")
    assert ran.code == 0, ran
    assert ran.out.startswith(f"{request.id} cancelled")
    stored = bot.store.get(request.id)
    assert stored.status is Status.CANCELLED
    assert stored.decision is not None and stored.decision.reason == "plans changed"
    assert stored.decision.decided_by is None
    bot.wait_message(request, "*Cancelled* by")
    assert "plans changed" in bot.message_text(request)
    assert "already cancelled" in one_line_error(cli("cancel", request.id))


def test_pending_says_when_it_shows_only_the_first_n(cli: Cli, bot: BotStack,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_requests, "PENDING_SHOWN", 3)
    for _ in range(3):
        bot.store.create(RequestSpec(title="Waiting", channel=APPROVALS_CHANNEL, approvers=[MAYA]))
    assert "showing only the first" not in cli("pending").out
    bot.store.create(RequestSpec(title="One more", channel=APPROVALS_CHANNEL, approvers=[MAYA]))
    table = cli("pending")
    assert "showing only the first 3 pending requests" in table.out
    assert table.out.count("Waiting") == 3 and "One more" not in table.out
    as_json = cli("pending", "--json")
    assert "showing only the first 3" in as_json.err and as_json.code == 0
    assert "Waiting" in as_json.out
