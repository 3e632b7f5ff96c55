"""Signed `block_actions` requests, byte for byte what Slack sends when Approve is clicked."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.sandbox.delivery import sign

from .services import SIGNING_SECRET

APPROVER = "U01MAYA"
REQUESTER = "U06REQ"
CHANNEL = "C01APPROVALS"
TEAM = "T0BENCH01"


def approve_payload(request_id: str, user: str = APPROVER, channel: str = CHANNEL,
                    message_ts: str = "1700000000.000100") -> dict[str, Any]:
    """The fields Slack's payload carries for a button in a channel message."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "maya", "name": "maya", "team_id": TEAM},
        "api_app_id": "A0BENCH01",
        "token": "bench-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": f"1.{int(time.time())}.bench",
        "team": {"id": TEAM, "domain": "bench"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "approvals"},
        "state": {"values": {}},
        "response_url": "http://127.0.0.1:9/response/unused",
        "actions": [{"action_id": APPROVE_ACTION, "block_id": "decide", "type": "button",
                     "value": request_id, "style": "primary",
                     "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                     "action_ts": f"{time.time():.6f}"}],
    }


def approve_body(request_id: str, **fields: Any) -> str:
    return urlencode({"payload": json.dumps(approve_payload(request_id, **fields))})


def signed_headers(body: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's scheme: v0= + HMAC-SHA256(secret, "v0:{ts}:{body}"), checked within 300 s."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(SIGNING_SECRET, ts, body)}


def signed_click(request_id: str, **fields: Any) -> tuple[bytes, dict[str, str]]:
    body = approve_body(request_id, **fields)
    return body.encode(), signed_headers(body)
