"""Socket Mode has no HTTP server for Slack, so `approvals bot` serves the approval page on
APPROVALS_WEB_PORT: the mailed link works there too, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from slack_approvals.approvals.serving import free_port
from slack_approvals.sandbox.config import DEFAULT_APP_TOKEN
from slack_approvals.state.models import Status
from tests.bot.fixtures import APPROVALS_CHANNEL, BOT_TOKEN, MAYA, BotStack
from tests.bot.mailbox import ANN, Mailbox, confirm, links, running_mailbox
from tests.bot.test_socket_mode import wait_connections
from tests.conftest import RedisServer


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running_mailbox() as box:
        yield box


def test_the_page_is_served_on_its_own_port(bot: BotStack, redis_server: RedisServer,
                                            mailbox: Mailbox, tmp_path: Path) -> None:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k != "SLACK_SIGNING_SECRET"},
           "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN, "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_API_URL": bot.sandbox.api_url, "REDIS_URL": redis_server.url,
           "APPROVALS_CHANNEL": APPROVALS_CHANNEL, "APPROVALS_SMTP_URL": mailbox.url,
           "APPROVALS_MAIL_FROM": "approvals@example.com", "APPROVALS_SWEEP_SECONDS": "0.2",
           "APPROVALS_PUBLIC_URL": f"http://127.0.0.1:{port}", "APPROVALS_WEB_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "bot", "--host", "127.0.0.1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_connections(bot, process, 1, timeout=60)
        request = bot.post(approvers=[MAYA], email_approvers=[ANN])
        (mail,) = mailbox.wait_for(ANN, timeout=30)
        approve = links(mail)["approve"]
        assert approve.startswith(f"http://127.0.0.1:{port}/approval/{request.id}/approve/")
        assert "Your approval was recorded" in confirm(approve).text
        assert bot.store.get(request.id).status is Status.APPROVED
        bot.wait_message(request, f"by {ANN}")
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
        assert process.returncode == 0, output
        with pytest.raises(httpx.ConnectError):
            httpx.get(approve, timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        bot.sandbox.close_socket_connections()
        wait_connections(bot, process, 0, timeout=10)


def test_a_page_port_already_taken_stops_the_bot_at_start(bot: BotStack, redis_server: RedisServer,
                                                          tmp_path: Path) -> None:
    """Two replicas on one machine with the same APPROVALS_WEB_PORT: the second says so and
    exits, instead of running on with every mailed link dead."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {**{k: v for k, v in os.environ.items() if k != "SLACK_SIGNING_SECRET"},
               "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN, "SLACK_BOT_TOKEN": BOT_TOKEN,
               "SLACK_API_URL": bot.sandbox.api_url, "REDIS_URL": redis_server.url,
               "APPROVALS_CHANNEL": APPROVALS_CHANNEL, "APPROVALS_SMTP_URL": "smtp://127.0.0.1:2525",
               "APPROVALS_MAIL_FROM": "approvals@example.com",
               "APPROVALS_PUBLIC_URL": f"http://127.0.0.1:{port}", "APPROVALS_WEB_PORT": str(port)}
        result = subprocess.run(
            [sys.executable, "-m", "slack_approvals", "bot", "--host", "127.0.0.1"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert (f"error: the approval page could not listen on 127.0.0.1:{port} "
            "(APPROVALS_WEB_PORT)") in result.stderr
