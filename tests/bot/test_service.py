"""`approvals bot` as a service: health check, a signed click, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from slack_approvals.approvals.serving import free_port
from slack_approvals.bot.ids import APPROVE_ACTION
from tests.bot.fixtures import APPROVALS_CHANNEL, BOT_TOKEN, MAYA, SIGNING_SECRET, BotStack
from tests.conftest import RedisServer


def start_bot(bot: BotStack, redis_url: str, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": bot.sandbox.api_url, "REDIS_URL": redis_url,
           "APPROVALS_CHANNEL": APPROVALS_CHANNEL}
    env.pop("SLACK_APP_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "bot", "--port", str(port),
         "--host", "127.0.0.1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"approvals bot did not start: {process.communicate()[0][-2000:]}")


@pytest.fixture
def service(bot: BotStack, redis_server: RedisServer,
            tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process, url = start_bot(bot, redis_server.url, tmp_path)
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait()


def test_health_click_and_clean_sigterm(bot: BotStack,
                                        service: tuple[subprocess.Popen[str], str]) -> None:
    process, url = service
    assert httpx.get(f"{url}/healthz").json() == {"ok": True}
    bot.sandbox.set_request_url(f"{url}/slack/events")
    request = bot.post(approvers=[MAYA])
    assert bot.click(MAYA, request, APPROVE_ACTION).status == 200
    bot.wait_message(request, "*Approved* by")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=1)


def test_health_is_503_when_redis_does_not_answer(bot: BotStack, tmp_path: Path) -> None:
    process, url = start_bot(bot, f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    try:
        response = httpx.get(f"{url}/healthz", timeout=10)
        assert response.status_code == 503
        assert response.json()["ok"] is False
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
