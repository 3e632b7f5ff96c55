"""A frozen Redis (SIGSTOP) hangs neither the bot nor the CLI, and records nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis

from slack_approvals.approvals.serving import ServerThread, free_port
from slack_approvals.bot.app import build_app
from slack_approvals.bot.client import make_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.ids import APPROVE_ACTION, REJECT_ACTION
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.sweeper import Sweeper
from slack_approvals.bot.web import build_web_app
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state.connection import connect, connect_waiter
from slack_approvals.state.models import Outcome, RequestSpec
from slack_approvals.state.store import ApprovalStore
from tests.bot.fixtures import (
    APPROVALS_CHANNEL,
    BOT_TOKEN,
    MAYA,
    RILEY,
    SIGNING_SECRET,
    BotStack,
    RecordingLauncher,
)
from tests.conftest import RedisServer, start_redis_server


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server of this module's own: freezing the session's would stall other tests."""
    server = start_redis_server(tmp_path_factory.mktemp("frozen-redis"))
    yield server
    server.process.send_signal(signal.SIGCONT)
    server.stop()


@contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


def production_store(url: str) -> ApprovalStore:
    """Built as approvals/wiring.py builds it: short command timeout, a waiter of its own."""
    return ApprovalStore(connect(url), retention=timedelta(days=1), waiter=connect_waiter(url))


@pytest.fixture
def frozen_bot(sandbox: SandboxServer, own_redis: RedisServer) -> Iterator[BotStack]:
    sandbox.reset()
    with redis.Redis.from_url(own_redis.url) as admin:
        admin.flushall()
    client = make_client(BOT_TOKEN, sandbox.api_url)
    store = production_store(own_redis.url)
    launcher = RecordingLauncher()
    deps = BotDeps(store=store, messenger=Messenger(client, store), groups=GroupResolver(client),
                   launcher=launcher)
    app = build_app(client=client, signing_secret=SIGNING_SECRET, deps=deps)
    with ServerThread(build_web_app(app, deps, signing_secret=SIGNING_SECRET)) as server:
        sandbox.set_request_url(f"{server.url}/slack/events")
        yield BotStack(sandbox=sandbox, store=store, deps=deps, sweeper=Sweeper(deps, 60),
                       launcher=launcher, url=server.url, decided=[])
    deps.background.shutdown(wait=True)


def test_healthz_answers_503_within_3_s_and_says_only_not_ok(frozen_bot: BotStack,
                                                           own_redis: RedisServer) -> None:
    assert httpx.get(f"{frozen_bot.url}/healthz", timeout=5).json() == {"ok": True}
    with frozen(own_redis):
        started = time.monotonic()
        response = httpx.get(f"{frozen_bot.url}/healthz", timeout=10)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 3
    assert response.json() == {"ok": False}
    assert str(own_redis.port) not in response.text and "127.0.0.1" not in response.text


def test_healthz_hides_an_unreachable_servers_address(sandbox: SandboxServer,
                                                      own_redis: RedisServer) -> None:
    client = make_client(BOT_TOKEN, sandbox.api_url)
    port = free_port()
    store = production_store(f"redis://127.0.0.1:{port}/0")
    deps = BotDeps(store=store, messenger=Messenger(client, store), groups=GroupResolver(client))
    app = build_app(client=client, signing_secret=SIGNING_SECRET, deps=deps)
    with ServerThread(build_web_app(app, deps, signing_secret=SIGNING_SECRET)) as server:
        response = httpx.get(f"{server.url}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.json() == {"ok": False}
    assert str(port) not in response.text


def test_a_click_while_redis_is_frozen_is_refused_and_never_counted_twice(
        frozen_bot: BotStack, own_redis: RedisServer) -> None:
    request = frozen_bot.post(approvers=[MAYA], quorum=1)
    with frozen(own_redis):
        clicked = frozen_bot.click(MAYA, request, APPROVE_ACTION)
        # Delivered and answered within the sandbox's 3 s, like Slack's budget.
        assert clicked.status == 200
        frozen_bot.wait_ephemeral(MAYA, "Could not record your vote", timeout=10)
        rejected = frozen_bot.click(MAYA, request, REJECT_ACTION)
        assert rejected.status == 200
    # Redis wakes: the timed-out script may run now, but only once, and a second click
    # cannot add a second vote.
    time.sleep(0.5)
    frozen_bot.click(MAYA, request, APPROVE_ACTION)
    current = frozen_bot.store.get(request.id)
    assert [v.user for v in current.votes] == [MAYA]
    votes = [e for e in frozen_bot.store.audit(request.id) if e.event == "vote"]
    assert len(votes) == 1
    frozen_bot.wait_message(request, "*Approved* by")


def test_a_timed_out_decide_is_not_retried(own_redis: RedisServer) -> None:
    """redis-py would resend on TimeoutError if the client retried; the script ran once."""
    store = production_store(own_redis.url)
    request = store.create(RequestSpec(title="t", channel=APPROVALS_CHANNEL, approvers=[MAYA],
                                       requester=RILEY))
    with frozen(own_redis):
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            store.decide(request.id, MAYA, Outcome.APPROVE)
        assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while not store.get(request.id).votes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(store.get(request.id).votes) <= 1
    assert len([e for e in store.audit(request.id) if e.event == "vote"]) <= 1
    again = store.decide(request.id, MAYA, Outcome.APPROVE)
    assert len(store.get(request.id).votes) == 1, again


def test_wait_outlasts_the_command_timeout(own_redis: RedisServer) -> None:
    store = production_store(own_redis.url)
    request = store.create(RequestSpec(title="t", channel=APPROVALS_CHANNEL, approvers=[MAYA],
                                       requester=RILEY))
    assert store.wait(request.id, 3.0) is None


def test_the_cli_gives_up_on_a_frozen_redis(own_redis: RedisServer, tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_URL": own_redis.url, "SLACK_BOT_TOKEN": BOT_TOKEN,
           "APPROVALS_CHANNEL": APPROVALS_CHANNEL}
    with frozen(own_redis):
        process = subprocess.Popen([sys.executable, "-m", "slack_approvals", "pending"],
                                   cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("approvals pending hung on a frozen Redis")
    assert process.returncode != 0, output
