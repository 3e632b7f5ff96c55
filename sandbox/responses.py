"""Applies an app's reply (slash command answer or response_url post) to the workspace."""

from __future__ import annotations

import json
from typing import Any

from slack_approvals.sandbox.blocks import MAX_MESSAGE_TEXT, require_valid_blocks
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.records import ResponseUrl
from slack_approvals.sandbox.workspace import Workspace


def parse_reply(raw: str) -> dict[str, Any] | None:
    """An app may answer with JSON, with bare text (shown as-is), or with nothing at all."""
    stripped = raw.strip()
    if not stripped:
        return None
    try:
        body = json.loads(stripped)
    except json.JSONDecodeError:
        return {"text": raw}
    if isinstance(body, dict):
        return body
    return {"text": raw}


def _content(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    text = body.get("text")
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except json.JSONDecodeError:
            raise SlackError("invalid_blocks_format") from None
    if blocks is not None:
        require_valid_blocks(blocks)
    if not text and not blocks:
        raise SlackError("no_text")
    if text is not None and len(str(text)) > MAX_MESSAGE_TEXT:
        raise SlackError("msg_too_long")
    return (str(text) if text else ""), blocks


def apply_reply(
    ws: Workspace,
    target: ResponseUrl,
    body: dict[str, Any],
    *,
    echo_command: str | None = None,
) -> None:
    """Posts, replaces or deletes as the body asks; raises SlackError if Slack would refuse."""
    original = target.message_ts if target.kind == "message" else None
    if original is not None and body.get("delete_original"):
        if target.is_ephemeral:
            ws.ephemerals.delete(target.user_id, target.channel_id, original)
        else:
            ws.messages.delete(target.channel_id, original, require_bot=False)
        return
    text, blocks = _content(body)
    if original is not None and body.get("replace_original"):
        if target.is_ephemeral:
            ws.ephemerals.replace(target.user_id, target.channel_id, original, text=text, blocks=blocks)
        else:
            ws.messages.replace(target.channel_id, original, text=text, blocks=blocks)
        return
    if body.get("response_type") == "in_channel":
        if echo_command is not None:
            ws.messages.post(target.channel_id, text=echo_command, user_id=target.user_id)
        thread_ts = body.get("thread_ts")
        ws.messages.post(
            target.channel_id,
            text=text,
            blocks=blocks,
            thread_ts=str(thread_ts) if thread_ts else None,
        )
        return
    ws.ephemerals.post(target.channel_id, target.user_id, text=text, blocks=blocks)
