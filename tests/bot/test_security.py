"""Forged, unsigned, stale and tampered requests get 401 and change nothing."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.state.models import Status
from tests.bot.fixtures import ERIN, MAYA, BotStack, sign


def click_body(bot: BotStack, user: str, request_id: str) -> str:
    """A block_actions body as the sandbox delivered it for a real click, re-targeted."""
    request = bot.post(approvers=[MAYA])
    bot.click(ERIN, request, APPROVE_ACTION)  # refused: gives us a genuine delivery to copy
    payload: dict[str, Any] = json.loads(json.dumps(bot.sandbox.deliveries("block_actions")[-1].payload))
    payload["user"]["id"] = user
    payload["actions"][0]["value"] = request_id
    return urlencode({"payload": json.dumps(payload)})


def test_genuine_signature_is_accepted(bot: BotStack) -> None:
    target = bot.post(approvers=[MAYA])
    body = click_body(bot, MAYA, target.id)
    assert bot.send_raw(body, bot.signed_headers(body)).status_code == 200
    assert bot.store.get(target.id).status is Status.APPROVED


def test_bad_requests_are_refused_with_401_and_change_nothing(bot: BotStack) -> None:
    target = bot.post(approvers=[MAYA])
    body = click_body(bot, MAYA, target.id)
    now = int(time.time())
    wrong_secret = {"X-Slack-Request-Timestamp": str(now),
                    "X-Slack-Signature": sign(body, now, secret="0" * 32),
                    "Content-Type": "application/x-www-form-urlencoded"}
    missing = {"Content-Type": "application/x-www-form-urlencoded"}
    stale_ts = now - 6 * 60
    stale = bot.signed_headers(body, timestamp=stale_ts)
    # A captured, correctly signed request replayed with a changed body.
    tampered_body = body.replace(MAYA, ERIN)
    tampered = bot.signed_headers(body)
    for name, (send_body, headers) in {
        "wrong signature": (body, wrong_secret),
        "missing signature": (body, missing),
        "timestamp 6 minutes old": (body, stale),
        "tampered body": (tampered_body, tampered),
    }.items():
        response = bot.send_raw(send_body, headers)
        assert response.status_code == 401, name
    assert bot.store.get(target.id).votes == []
    assert bot.store.get(target.id).status is Status.PENDING


def test_replayed_genuine_click_counts_once(bot: BotStack) -> None:
    target = bot.post(approvers=[MAYA, ERIN], quorum=2)
    body = click_body(bot, MAYA, target.id)
    headers = bot.signed_headers(body)
    assert bot.send_raw(body, headers).status_code == 200
    assert bot.send_raw(body, headers).status_code == 200
    assert [v.user for v in bot.store.get(target.id).votes] == [MAYA]
