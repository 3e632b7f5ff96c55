"""What a request to the bot's HTTP endpoint must be before Bolt sees it: small, signed by
Slack, and shaped like the payloads the listeners read (so a bad one is a 400, never a 500).

    MAX_BODY_BYTES          Slack's payloads are far smaller; anything bigger is refused unread
    signed(...)             Slack's v0 HMAC over the raw body, timestamp within 5 minutes
    payload_problem(...)    why a signed body is not a payload the listeners can read, or None
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from slack_bolt.request.internals import parse_body

MAX_BODY_BYTES = 1024 * 1024
# Slack's advice: a request older (or newer) than this may be a replay.
MAX_CLOCK_SKEW_SECONDS = 300


def signed(secret: str, body: bytes, headers: Mapping[str, str], now: float | None = None) -> bool:
    """Slack's v0 scheme on the raw bytes, before anything is decoded or parsed."""
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not timestamp.isascii() or not timestamp.isdigit() or not signature.isascii():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def _user_id(payload: Mapping[str, Any]) -> bool:
    user = payload.get("user")
    return isinstance(user, dict) and isinstance(user.get("id"), str)


def _shape_problem(payload: dict[str, Any]) -> str | None:
    kind = payload.get("type")
    if kind == "block_actions":
        actions = payload.get("actions")
        if not _user_id(payload):
            return "block_actions without user.id"
        if not (isinstance(actions, list) and actions
                and all(isinstance(a, dict) and isinstance(a.get("action_id"), str)
                        for a in actions)):
            return "block_actions without actions"
        if not isinstance(payload.get("trigger_id", ""), str):
            return "block_actions with a trigger_id that is not text"
        for part in ("container", "channel", "view"):
            if payload.get(part) is not None and not isinstance(payload[part], dict):
                return f"block_actions with a {part} that is not an object"
        return None
    if kind in ("view_submission", "view_closed"):
        if not _user_id(payload):
            return f"{kind} without user.id"
        if not isinstance(payload.get("view"), dict):
            return f"{kind} without a view"
        return None
    if kind == "event_callback":
        event = payload.get("event")
        if not (isinstance(event, dict) and isinstance(event.get("type"), str)):
            return "event_callback without an event"
        if event["type"] == "app_home_opened" and not isinstance(event.get("user"), str):
            return "app_home_opened without a user"
        return None
    if kind == "url_verification":
        return None if isinstance(payload.get("challenge"), str) else "url_verification without challenge"
    if "command" in payload:
        missing = [k for k in ("command", "user_id", "channel_id") if not payload.get(k)]
        return f"slash command without {', '.join(missing)}" if missing else None
    if kind is None and "ssl_check" not in payload:
        return "no payload type"
    return None  # a kind no listener handles: Bolt answers it without reading it


def payload_problem(body: bytes, content_type: str | None) -> str | None:
    """Parsed the way Bolt parses it, so both agree on what the payload is."""
    try:
        text = body.decode("utf-8")
        payload = parse_body(text, (content_type or "").split(";")[0].strip() or None)
    except (UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        return f"unreadable body ({type(e).__name__})"
    if not isinstance(payload, dict):
        return "payload is not an object"
    return _shape_problem(payload)

