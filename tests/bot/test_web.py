"""The bot's HTTP endpoint before Bolt: size limit, signature first, malformed payloads refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import psutil
import pytest

from slack_approvals.bot.ids import APPROVE_ACTION
from tests.bot.fixtures import MAYA, SIGNING_SECRET, BotStack

MB = 1024 * 1024
CHUNK = b"x" * (64 * 1024)


def chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // len(CHUNK)):
        yield CHUNK


class PeakRss:
    """The highest RSS of this process (where the bot's server thread runs) while in the block."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / MB


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_50_mb_unsigned_body_is_refused_unread(bot: BotStack, declared: bool) -> None:
    total = 50 * MB
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if declared:
        headers["Content-Length"] = str(total)
    with PeakRss() as rss:
        started = time.monotonic()
        response = httpx.post(f"{bot.url}/slack/events", content=chunks(total), headers=headers,
                              timeout=30)
        elapsed = time.monotonic() - started
    assert response.status_code == 413
    assert elapsed < 10
    assert rss.growth_mb < 25, f"the bot's memory grew by {rss.growth_mb:.0f} MB"
    # The endpoint still answers afterwards.
    assert httpx.get(f"{bot.url}/healthz", timeout=5).status_code == 200


def test_a_body_just_under_the_limit_is_read_and_judged_by_its_signature(bot: BotStack) -> None:
    body = "payload=" + "x" * (MB - 100)
    assert bot.send_raw(body, {"Content-Type": "application/x-www-form-urlencoded"}).status_code == 401


@pytest.mark.parametrize("body", ["payload=%7Bnot json", "payload=%5B1%2C2%5D", "{", "\u00ff\u00fe"],
                         ids=["bad-json", "list", "truncated", "latin"])
def test_unsigned_malformed_bodies_get_401(bot: BotStack, body: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        response = bot.send_raw(body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 401
    assert not [r for r in caplog.records if r.exc_info]


def test_a_stale_signature_is_refused(bot: BotStack) -> None:
    body = "payload=" + quote(json.dumps({"type": "block_actions"}))
    old = int(time.time()) - 301
    assert bot.send_raw(body, bot.signed_headers(body, timestamp=old)).status_code == 401
    headers = bot.signed_headers(body)
    headers["X-Slack-Request-Timestamp"] = "soon"
    assert bot.send_raw(body, headers).status_code == 401


def _form(payload: object) -> str:
    return "payload=" + quote(json.dumps(payload))


MALFORMED_SIGNED = {
    "bad-json": "payload=%7Bnot json",
    "list": _form([1, 2]),
    "no-user": _form({"type": "block_actions", "actions": [{"action_id": "approve", "value": "x"}]}),
    "no-actions": _form({"type": "block_actions", "user": {"id": "U01MAYA"}}),
    "empty-actions": _form({"type": "block_actions", "user": {"id": "U01MAYA"}, "actions": []}),
    "user-not-object": _form({"type": "block_actions", "user": "U01MAYA",
                              "actions": [{"action_id": "approve"}]}),
    "view-without-view": _form({"type": "view_submission", "user": {"id": "U01MAYA"}}),
    "event-without-event": json.dumps({"type": "event_callback"}),
    "home-without-user": json.dumps({"type": "event_callback",
                                     "event": {"type": "app_home_opened"}}),
    "command-without-user": "command=%2Fapprovals&text=list&channel_id=C1",
    "no-type": _form({"user": {"id": "U01MAYA"}}),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_SIGNED))
def test_signed_malformed_payloads_get_400_and_one_log_line(
        bot: BotStack, name: str, caplog: pytest.LogCaptureFixture) -> None:
    body = MALFORMED_SIGNED[name]
    content_type = ("application/json" if body.startswith("{")
                    else "application/x-www-form-urlencoded")
    with caplog.at_level(logging.INFO):
        response = bot.send_raw(body, bot.signed_headers(body, content_type=content_type))
    assert response.status_code == 400
    refused = [r for r in caplog.records if "refused a signed request" in r.getMessage()]
    assert len(refused) == 1
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_signed_bytes_that_are_not_utf8_get_400(bot: BotStack) -> None:
    body = b"payload=\xff\xfe"
    ts = int(time.time())
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + body,
                                 hashlib.sha256).hexdigest()
    response = httpx.post(f"{bot.url}/slack/events", content=body, timeout=5, headers={
        "X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400


def test_a_real_click_still_goes_through(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA])
    assert bot.click(MAYA, request, APPROVE_ACTION).status == 200
    bot.wait_message(request, "*Approved* by")
