"""SIGTERM stops `approvals bot` in bounded time while an in-process flow run is waiting, and
the run's request is cancelled with a reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from slack_approvals.approvals.serving import free_port
from slack_approvals.state.models import Status
from tests.bot.fixtures import APPROVALS_CHANNEL, BOT_TOKEN, MAYA, RILEY, SIGNING_SECRET, BotStack
from tests.conftest import RedisServer

STOP_BOUND_SECONDS = 45  # the launcher waits at most ~20 s for its runs; generous for a busy CI


@pytest.mark.timeout(300)
def test_sigterm_with_a_waiting_in_process_run(bot: BotStack, redis_server: RedisServer,
                                              tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": bot.sandbox.api_url, "REDIS_URL": redis_server.url,
           "APPROVALS_CHANNEL": APPROVALS_CHANNEL, "APPROVALS_DEFAULT_APPROVERS": MAYA,
           "APPROVALS_DATA_DIR": str(tmp_path / "data"), "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    for name in ("SLACK_APP_TOKEN", "PREFECT_API_URL"):
        env.pop(name, None)  # HTTP mode, flows in process on Prefect's temporary server
    # A file, not a pipe: a child the bot leaves behind would hold a pipe open.
    log_path = tmp_path / "bot.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "bot", "--port", str(port), "--host", "127.0.0.1"],
        cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)

    def output() -> str:
        return log_path.read_text()[-3000:]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("the bot did not start")
                time.sleep(0.1)
        bot.sandbox.set_request_url(f"{url}/slack/events")
        answer = bot.sandbox.slash(RILEY, APPROVALS_CHANNEL, "/approvals",
                                   "run simple-approval title=Stop")
        assert answer.status == 200, (answer.body, output())

        def posted() -> str | None:
            waiting = [r for r in bot.store.pending(limit=100) if r.message_ts]
            return waiting[0].id if waiting else None
        try:
            request_id = bot.sandbox.wait_for(posted, timeout=90,
                                              what="the in-process run to post its request")
        except Exception:
            pytest.fail(f"no request was posted: {answer.body}\n{output()}")

        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            process.wait(timeout=STOP_BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"the bot did not stop within {STOP_BOUND_SECONDS} s:\n{output()}")
        assert process.returncode == 0, output()
        assert time.monotonic() - started < STOP_BOUND_SECONDS

        request = bot.store.get(request_id)
        assert request.status is Status.CANCELLED, output()
        cancels = [e for e in bot.store.audit(request_id) if e.event == "cancelled"]
        assert cancels and "bot stopped" in str(cancels[0].model_dump()), cancels
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log_file.close()
