"""The bot's Prometheus metrics: scraped from a real `approvals bot` on its metrics port (HTTP
and Socket Mode), after signed clicks through the sandbox, with Slack failing a method and
Redis stopped; and the metrics' parts on the in-process bot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError
from slack_sdk.errors import SlackApiError

from slack_approvals.approvals.serving import free_port
from slack_approvals.bot.client import make_client
from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.metrics import BotMetrics, payload_kind, pending_reader, slack_error_code
from slack_approvals.sandbox.config import DEFAULT_APP_TOKEN
from slack_approvals.state.keys import RESUME, KeySpace
from slack_approvals.state.models import ApprovalRequest, RequestSpec
from slack_approvals.state.store import ApprovalStore
from tests.bot.fixtures import (
    APPROVALS_CHANNEL,
    BOT_TOKEN,
    FRANK,
    MAYA,
    RILEY,
    SIGNING_SECRET,
    BotStack,
)
from tests.conftest import RedisServer, start_redis_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_scrape(port: int, ready: Callable[[Samples], bool], what: str,
                timeout: float = 20) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if ready(samples):
            return samples
        if time.monotonic() > deadline:
            pytest.fail(f"metrics never showed {what}: "
                        + ", ".join(f"{k[0]}{dict(k[1])}={v}" for k, v in sorted(samples.items())
                                    if k[0].startswith("approvals_")))
        time.sleep(0.05)


@dataclass
class Poster:
    """Creates and posts requests on the Redis the bot under test uses, as a gate would."""

    store: ApprovalStore
    messenger: Messenger

    def post(self) -> ApprovalRequest:
        spec = RequestSpec(title="Deploy api v2.3.1", channel=APPROVALS_CHANNEL,
                           approvers=[MAYA, FRANK], requester=RILEY)
        return self.messenger.post(self.store.create(spec))


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own: the test stops it."""
    server = start_redis_server(tmp_path / "redis")
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def poster(bot: BotStack, own_redis: RedisServer) -> Iterator[Poster]:
    client = own_redis.client()
    store = ApprovalStore(client, retention=timedelta(days=1))
    yield Poster(store, Messenger(make_client(BOT_TOKEN, bot.sandbox.api_url), store))
    client.close()


def start_bot(bot: BotStack, redis: RedisServer, tmp_path: Path, metrics_port: int,
              socket_mode: bool = False, **env: str) -> tuple[subprocess.Popen[str], int]:
    """`approvals bot` with its metrics on `metrics_port`; returns it and its Slack port."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("SLACK_APP_TOKEN", "PREFECT_API_URL")}
    environment.update({
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": bot.sandbox.api_url, "REDIS_URL": redis.url,
        "APPROVALS_CHANNEL": APPROVALS_CHANNEL, "APPROVALS_METRICS_PORT": str(metrics_port),
        "APPROVALS_METRICS_HOST": "127.0.0.1", "APPROVALS_SWEEP_SECONDS": "0.2", **env})
    if socket_mode:
        environment["SLACK_APP_TOKEN"] = DEFAULT_APP_TOKEN
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "bot", "--port", str(port), "--host", "127.0.0.1"],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1)
            if not socket_mode or bot.sandbox.socket_connections == 1:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"approvals bot did not start: {process.communicate()[0][-3000:]}")


def stop_bot(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output[-3000:]
    return output


def json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_http_bot_metrics_and_json_logs(bot: BotStack, own_redis: RedisServer, poster: Poster,
                                        tmp_path: Path) -> None:
    metrics_port = free_port()
    process, port = start_bot(bot, own_redis, tmp_path, metrics_port, APPROVALS_LOG_FORMAT="json")
    try:
        # The public Slack endpoint never serves the metrics.
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 404
        bot.sandbox.set_request_url(f"http://127.0.0.1:{port}/slack/events")
        first = poster.post()
        before = wait_scrape(metrics_port, lambda s: value(s, "approvals_pending_requests") == 1,
                             "one pending request")
        for outcome in ("approved", "rejected", "timed_out", "cancelled"):
            assert value(before, "approvals_decisions_total", outcome=outcome) == 0

        assert first.message_channel and first.message_ts
        assert bot.sandbox.click(MAYA, first.message_channel, first.message_ts,
                                 APPROVE_ACTION).status == 200
        after = wait_scrape(
            metrics_port,
            lambda s: value(s, "approvals_decisions_total", outcome="approved") == 1,
            "the approval")
        assert value(after, "approvals_pending_requests") == 0
        assert value(after, "approvals_click_to_record_seconds_count") == 1
        assert value(after, "approvals_ack_seconds_count", kind="block_actions") == 1
        # Both spans are real: above zero, and inside the largest bucket.
        assert 0 < (value(after, "approvals_ack_seconds_sum", kind="block_actions") or 0) < 10
        assert value(after, "approvals_click_to_record_seconds_bucket", le="10.0") == 1

        # Slack refuses every attempt (and retry) of the message edit that follows the click.
        second = poster.post()
        bot.sandbox.faults.inject("chat.update", 500, count=3)
        assert second.message_channel and second.message_ts
        bot.sandbox.click(MAYA, second.message_channel, second.message_ts, APPROVE_ACTION)
        wait_scrape(
            metrics_port, lambda s: value(s, "approvals_slack_api_errors_total",
                                          method="chat.update", error="fatal_error") == 1
            and value(s, "approvals_decisions_total", outcome="approved") == 2,
            "the refused chat.update and the second approval")

        # Redis goes away: the scrape still answers, without the gauge, and counts the error;
        # a click made meanwhile is counted under the store operation it broke.
        third = poster.post()
        own_redis.stop()
        down = wait_scrape(
            metrics_port, lambda s: (value(s, "approvals_redis_errors_total",
                                           operation="pending_count", kind="ConnectionError")
                                     or 0) >= 1, "the failed pending read")
        assert value(down, "approvals_pending_requests") is None
        assert third.message_channel and third.message_ts
        bot.sandbox.click(MAYA, third.message_channel, third.message_ts, APPROVE_ACTION)
        wait_scrape(metrics_port, lambda s: (value(s, "approvals_redis_errors_total",
                                                   operation="decide", kind="ConnectionError")
                                             or 0) >= 1, "the failed decide")
    finally:
        output = stop_bot(process) if process.poll() is None else process.communicate()[0]
    logged = json_lines(output)
    assert logged, output[-3000:]
    for line in logged:
        assert {"time", "level", "logger", "message"} <= set(line)
        assert isinstance(line["time"], str) and line["time"].endswith("Z")
    refused = [line for line in logged if line["logger"] == "slack_approvals.bot.listeners.actions"]
    assert refused and refused[0]["level"] == "ERROR"
    assert "could not record a click" in str(refused[0]["message"])
    # Every line that is not one of the command's own messages is JSON.
    others = [line for line in output.splitlines()
              if line.strip() and not line.startswith("{") and not line.startswith("approvals bot:")]
    assert others == []


def test_socket_mode_bot_serves_metrics(bot: BotStack, own_redis: RedisServer, poster: Poster,
                                        tmp_path: Path) -> None:
    metrics_port = free_port()
    process, _ = start_bot(bot, own_redis, tmp_path, metrics_port, socket_mode=True)
    try:
        request = poster.post()
        assert request.message_channel and request.message_ts
        result = bot.sandbox.click(MAYA, request.message_channel, request.message_ts,
                                   APPROVE_ACTION)
        assert result.delivery is not None and result.delivery.transport == "socket_mode"
        samples = wait_scrape(
            metrics_port,
            lambda s: value(s, "approvals_decisions_total", outcome="approved") == 1,
            "the approval over Socket Mode")
        assert value(samples, "approvals_ack_seconds_count", kind="block_actions") == 1
        assert value(samples, "approvals_click_to_record_seconds_count") == 1
        assert value(samples, "approvals_pending_requests") == 0
    finally:
        if process.poll() is None:
            stop_bot(process)
        bot.sandbox.close_socket_connections()


def test_metrics_port_must_not_be_the_slack_port(bot: BotStack, redis_server: RedisServer,
                                                 tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": bot.sandbox.api_url, "REDIS_URL": redis_server.url,
           "APPROVALS_METRICS_PORT": str(port)}
    env.pop("SLACK_APP_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "slack_approvals", "bot", "--port", str(port)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"error: APPROVALS_METRICS_PORT {port} is the bot's own --port: the metrics need a port "
        "of their own, never the public Slack endpoint"]


def test_in_socket_mode_the_metrics_port_must_not_be_the_web_port(
        bot: BotStack, redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN,
           "SLACK_API_URL": bot.sandbox.api_url, "REDIS_URL": redis_server.url,
           "APPROVALS_METRICS_PORT": str(port), "APPROVALS_WEB_PORT": str(port)}
    done = subprocess.run([sys.executable, "-m", "slack_approvals", "bot"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"error: APPROVALS_METRICS_PORT {port} is APPROVALS_WEB_PORT: the metrics need a port "
        "of their own, never the public approval page's"]


def test_metrics_listen_on_this_machine_unless_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    from slack_approvals.approvals.settings import Settings

    monkeypatch.delenv("APPROVALS_METRICS_HOST", raising=False)
    assert Settings(_env_file=None).approvals_metrics_host == "127.0.0.1"  # type: ignore[call-arg]
    monkeypatch.setenv("APPROVALS_METRICS_HOST", "0.0.0.0")
    assert Settings(_env_file=None).approvals_metrics_host == "0.0.0.0"  # type: ignore[call-arg]


# -- the parts, on the in-process bot -------------------------------------------------------


def registry_value(metrics: BotMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_in_process_bot_counts_click_ack_decision_and_slack_errors(bot: BotStack) -> None:
    metrics = bot.deps.metrics
    request = bot.post(approvers=[MAYA])
    bot.sandbox.faults.inject("chat.update", 500, count=3)
    assert bot.click(MAYA, request, APPROVE_ACTION).status == 200
    # The edit fails first, then the decision is reported: wait for both.
    bot.sandbox.wait_for(lambda: registry_value(metrics, "approvals_decisions_total",
                                                outcome="approved"), what="the decision counted")
    assert registry_value(metrics, "approvals_slack_api_errors_total", method="chat.update",
                          error="fatal_error") == 1
    assert registry_value(metrics, "approvals_click_to_record_seconds_count") == 1
    assert registry_value(metrics, "approvals_ack_seconds_count", kind="block_actions") == 1


def test_a_refused_vote_is_no_record(bot: BotStack) -> None:
    """A click the store refuses (not an approver) is acked but records nothing to time."""
    metrics = bot.deps.metrics
    request = bot.post(approvers=[MAYA])
    assert bot.click(FRANK, request, APPROVE_ACTION).status == 200
    bot.wait_ephemeral(FRANK, "not")
    assert registry_value(metrics, "approvals_click_to_record_seconds_count") == 0
    assert registry_value(metrics, "approvals_ack_seconds_count", kind="block_actions") == 1
    assert registry_value(metrics, "approvals_decisions_total", outcome="approved") == 0


def test_slack_errors_name_the_method_and_slacks_code(bot: BotStack) -> None:
    metrics = bot.deps.metrics
    with pytest.raises(SlackApiError):
        bot.deps.messenger.client.chat_postMessage(channel="C0NOSUCH", text="hello")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.registry.collect() for s in family.samples}
    counted = [key for key, count in samples.items()
               if key[0] == "approvals_slack_api_errors_total" and count == 1]
    assert len(counted) == 1
    assert dict(counted[0][1])["method"] == "chat.postMessage"
    assert dict(counted[0][1])["error"] not in ("", "http_200")


def test_scrape_survives_redis_errors_and_counts_them() -> None:
    metrics = BotMetrics(CollectorRegistry())
    answers: list[int | Exception] = [3, RedisConnectionError("refused"), 5]

    def read() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    metrics.watch_pending(read)
    assert registry_value(metrics, "approvals_pending_requests") == 3
    text = generate_latest(metrics.registry).decode()
    assert "approvals_pending_requests " not in text  # left out, not a stale number
    assert registry_value(metrics, "approvals_redis_errors_total", operation="pending_count",
                          kind="ConnectionError") == 1
    assert registry_value(metrics, "approvals_pending_requests") == 5


def test_the_store_reports_each_redis_error_with_its_operation() -> None:
    store = ApprovalStore(redis.Redis(port=free_port(), socket_connect_timeout=1),
                          retention=timedelta(days=1))
    metrics = BotMetrics(CollectorRegistry())
    store.on_redis_error = metrics.redis_error
    with pytest.raises(RedisConnectionError):
        store.get("abcdefgh12345678")
    with pytest.raises(RedisConnectionError):
        store.ping()
    for operation in ("get", "ping"):
        assert registry_value(metrics, "approvals_redis_errors_total", operation=operation,
                              kind="ConnectionError") == 1


def test_pending_reader_counts_the_pending_index(bot: BotStack) -> None:
    bot.post()
    bot.post()
    read = pending_reader(bot.store.client, KeySpace().pending_index())
    assert read() == 2


def test_resumes_are_counted_and_suspended_runs_read_from_the_resume_schedule(
        bot: BotStack) -> None:
    metrics = BotMetrics(CollectorRegistry())
    metrics.run_resumed()
    metrics.run_resumed()
    assert registry_value(metrics, "approvals_runs_resumed_total") == 2
    # Two gates suspended their runs: each left its run's entry on the resume schedule.
    watch_at = datetime.now(UTC) + timedelta(minutes=1)
    for run in ("run-one", "run-two"):
        assert bot.store.suspend(bot.post().id, run, watch_at) is not None
    metrics.watch_suspended(pending_reader(bot.store.client, KeySpace().schedule(RESUME)))
    assert registry_value(metrics, "approvals_runs_suspended") == 2


def test_each_registry_stands_alone() -> None:
    """Two bots in one process (or two tests) never share counts."""
    one, two = BotMetrics(CollectorRegistry()), BotMetrics(CollectorRegistry())
    one.slack_error("chat.update", OSError("down"))
    assert registry_value(one, "approvals_slack_api_errors_total", method="chat.update",
                          error="OSError") == 1
    assert registry_value(two, "approvals_slack_api_errors_total", method="chat.update",
                          error="OSError") is None


@pytest.mark.parametrize(("body", "kind"), [
    ({"type": "block_actions"}, "block_actions"),
    ({"type": "view_submission"}, "view_submission"),
    ({"command": "/approvals", "text": "list"}, "slash_command"),
    ({"type": "event_callback", "event": {"type": "app_home_opened"}}, "event"),
    ({"type": "url_verification"}, "other"),
    ({}, "other"),
])
def test_payload_kind(body: dict[str, object], kind: str) -> None:
    assert payload_kind(body) == kind


def test_slack_error_code_of_a_call_that_got_no_answer() -> None:
    assert slack_error_code(TimeoutError("timed out")) == "TimeoutError"
