"""Injected 429s and 5xx answers, and that slack_sdk's retry handlers get through them."""

from __future__ import annotations

import time

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from slack_approvals.sandbox import SandboxServer
from tests.sandbox.conftest import BOT_TOKEN


def test_rate_limit_is_honoured_by_the_retry_handler(sb: SandboxServer) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=sb.api_url)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    answer = httpx.post(
        sb.url + "/sandbox/faults",
        json={"method": "chat.postMessage", "status": 429, "retry_after": 1, "count": 1},
    )
    assert answer.json() == {"ok": True, "pending": {"chat.postMessage": 1}}

    started = time.monotonic()
    response = client.chat_postMessage(channel="C01APPROVALS", text="after a pause")
    assert response["ok"] is True
    assert time.monotonic() - started >= 1.0
    calls = sb.api_calls("chat.postMessage")
    assert [(c.status, c.response.get("error")) for c in calls] == [(429, "ratelimited"), (200, None)]
    assert [m["text"] for m in sb.messages("C01APPROVALS")] == ["after a pause"]


def test_rate_limit_answer_carries_retry_after(sb: SandboxServer) -> None:
    sb.faults.inject("chat.update", 429, retry_after=7)
    answer = httpx.post(
        sb.api_url + "chat.update",
        json={"channel": "C01APPROVALS", "ts": "1.000001", "text": "x"},
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
    )
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "7")
    assert answer.json() == {"ok": False, "error": "ratelimited"}


def test_without_a_retry_handler_the_client_sees_the_429(sb: SandboxServer) -> None:
    sb.faults.inject("chat.postMessage", 429, retry_after=1)
    client = WebClient(token=BOT_TOKEN, base_url=sb.api_url)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C01APPROVALS", text="x")
    assert caught.value.response.status_code == 429


def test_server_errors_are_retried(sb: SandboxServer) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=sb.api_url)
    client.retry_handlers.append(
        ServerErrorRetryHandler(
            max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.05)
        )
    )
    sb.faults.inject("users.info", 503, count=2)
    assert client.users_info(user="U01MAYA")["user"]["name"] == "maya"
    assert [c.status for c in sb.api_calls("users.info")] == [503, 503, 200]


def test_faults_can_be_listed_and_cleared(sb: SandboxServer) -> None:
    sb.faults.inject("*", 500, count=3)
    assert httpx.get(sb.url + "/sandbox/faults").json()["pending"] == {"*": 3}
    assert httpx.delete(sb.url + "/sandbox/faults").json()["pending"] == {}
    bad = httpx.post(sb.url + "/sandbox/faults", json={"method": "chat.postMessage", "status": 200})
    assert bad.status_code == 400
