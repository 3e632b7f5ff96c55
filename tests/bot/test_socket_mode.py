"""`approvals bot` in Socket Mode against the sandbox: connect, a click, the edit, a clean SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.sandbox.config import DEFAULT_APP_TOKEN
from slack_approvals.state.models import Status
from tests.bot.fixtures import APPROVALS_CHANNEL, BOT_TOKEN, MAYA, BotStack
from tests.conftest import RedisServer


def wait_connections(bot: BotStack, process: subprocess.Popen[str], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while bot.sandbox.socket_connections != count:
        if time.monotonic() > deadline:
            output = ""
            if process.poll() is not None:
                output = process.communicate()[0][-2000:]
            pytest.fail(f"expected {count} Socket Mode connection(s), have "
                        f"{bot.sandbox.socket_connections}: {output}")
        time.sleep(0.05)


@pytest.fixture
def socket_bot(bot: BotStack, redis_server: RedisServer,
               tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    # No SLACK_SIGNING_SECRET: Socket Mode deliveries are not signed, so none is needed.
    env = {**{k: v for k, v in os.environ.items() if k != "SLACK_SIGNING_SECRET"},
           "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN, "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_API_URL": bot.sandbox.api_url,
           "REDIS_URL": redis_server.url, "APPROVALS_CHANNEL": APPROVALS_CHANNEL}
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "bot"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_connections(bot, process, 1, timeout=60)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        bot.sandbox.close_socket_connections()
        wait_connections(bot, process, 0, timeout=10)


def test_click_over_socket_mode_then_clean_sigterm(bot: BotStack,
                                                   socket_bot: subprocess.Popen[str]) -> None:
    request = bot.post(approvers=[MAYA])
    result = bot.click(MAYA, request, APPROVE_ACTION)
    assert result.ok
    assert result.delivery is not None
    assert result.delivery.transport == "socket_mode"
    bot.wait_message(request, "*Approved* by", timeout=10)
    assert bot.store.get(request.id).status is Status.APPROVED
    assert bot.decided == []  # the in-process HTTP bot saw nothing
    socket_bot.send_signal(signal.SIGTERM)
    output = socket_bot.communicate(timeout=20)[0]
    assert socket_bot.returncode == 0, output[-2000:]
    assert "approvals bot: Socket Mode" in output
    assert "Traceback" not in output
