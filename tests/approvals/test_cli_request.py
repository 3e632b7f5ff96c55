"""`approvals request --wait` gates a shell step on a decision made by a signed click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slack_approvals.bot.ids import APPROVE_ACTION, REASON_BLOCK, REJECT_ACTION
from tests.bot.fixtures import APPROVALS_CHANNEL, BOT_TOKEN, FRANK, MAYA, BotStack
from tests.conftest import RedisServer


def start_request(bot: BotStack, redis_server: RedisServer, tmp_path: Path,
                  *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": bot.sandbox.api_url,
           "REDIS_URL": redis_server.url, "APPROVALS_CHANNEL": APPROVALS_CHANNEL,
           "APPROVALS_WAIT_SLICE_SECONDS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "request",
         "--title", "Run the migration", "--approver", MAYA, "--approver", FRANK,
         "--fact", "database=orders", "--wait", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def posted_ts(bot: BotStack) -> str:
    message = bot.sandbox.wait_for(
        lambda: next((m for m in bot.sandbox.messages(APPROVALS_CHANNEL)
                      if "Run the migration" in str(m.get("blocks"))), None),
        timeout=20, what="the CLI's request message")
    return str(message["ts"])


def test_wait_exits_0_on_approve(bot: BotStack, redis_server: RedisServer, tmp_path: Path) -> None:
    process = start_request(bot, redis_server, tmp_path)
    ts = posted_ts(bot)
    bot.sandbox.click(MAYA, APPROVALS_CHANNEL, ts, APPROVE_ACTION)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"approved by {MAYA}" in out


def test_wait_exits_1_on_reject(bot: BotStack, redis_server: RedisServer, tmp_path: Path) -> None:
    process = start_request(bot, redis_server, tmp_path)
    ts = posted_ts(bot)
    bot.sandbox.click(FRANK, APPROVALS_CHANNEL, ts, REJECT_ACTION)
    bot.sandbox.wait_for(lambda: bot.sandbox.open_view(FRANK), what="reject modal")
    bot.sandbox.submit_view(FRANK, values={REASON_BLOCK: "not during peak hours"})
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1, err
    assert "rejected" in out
    assert "not during peak hours" in out


def test_wait_exits_2_on_timeout(bot: BotStack, redis_server: RedisServer, tmp_path: Path) -> None:
    process = start_request(bot, redis_server, tmp_path, "--timeout", "2s")
    posted_ts(bot)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2, err
    assert "timed_out" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--quorum", "0"], "quorum"),
    (["--timeout", "soon"], "is not a duration"),
    (["--fact", "no-equals"], "expected label=value"),
    (["--approver", "maya"], "approvers"),
])
def test_bad_arguments_fail_with_one_line(bot: BotStack, redis_server: RedisServer,
                                          tmp_path: Path, args: list[str], message: str) -> None:
    process = start_request(bot, redis_server, tmp_path, *args)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 3  # an error, never a code that reads as a decision
    assert err.startswith("error: ")
    assert message in err
    assert bot.sandbox.messages(APPROVALS_CHANNEL) == []
