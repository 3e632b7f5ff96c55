"""Channel and DM history: messages posted, threaded, edited, replaced and deleted.

Also shapes a message from the bot the way Slack stores it, which ephemeral messages share.
"""

from __future__ import annotations

import copy
from typing import Any

from slack_approvals.sandbox.blocks import normalize_blocks
from slack_approvals.sandbox.directory import Directory
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.ids import IdMint
from slack_approvals.sandbox.stores import ContentStore


def bot_message(
    directory: Directory,
    ts: str,
    text: str,
    blocks: list[dict[str, Any]] | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    bot = directory.bot
    message: dict[str, Any] = {
        "user": bot.user_id,
        "type": "message",
        "ts": ts,
        "bot_id": bot.bot_id,
        "app_id": bot.app_id,
        "text": text,
        "team": directory.team.id,
        "bot_profile": directory.bot_profile(),
    }
    if blocks is not None:
        message["blocks"] = blocks
    message.update(extra)
    return message


def replace_content(
    message: dict[str, Any], text: str, blocks: list[dict[str, Any]] | None, mint: IdMint
) -> None:
    """Swaps text and blocks; a message left without blocks loses the ones it had."""
    message["text"] = text
    if blocks is None:
        message.pop("blocks", None)
    else:
        message["blocks"] = normalize_blocks(blocks, mint)


def _note_reply(parent: dict[str, Any], reply: dict[str, Any]) -> None:
    parent["thread_ts"] = parent["ts"]
    parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
    users = parent.setdefault("reply_users", [])
    if reply["user"] not in users:
        users.append(reply["user"])
    parent["reply_users_count"] = len(users)
    parent["latest_reply"] = reply["ts"]


class Messages(ContentStore):
    """Messages by channel id and ts; every read returns a copy."""

    def _empty(self) -> None:
        self._by_channel: dict[str, dict[str, dict[str, Any]]] = {}

    def post(
        self,
        channel_id: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        user_id: str | None = None,
        thread_ts: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Stores a message from the bot, or from `user_id` when given; returns a copy."""
        with self._changes.lock:
            channel = self._by_channel.setdefault(channel_id, {})
            if thread_ts is not None and thread_ts not in channel:
                raise SlackError("thread_not_found")
            ts = self._mint.next_ts(self._clock())
            shaped = normalize_blocks(blocks, self._mint) if blocks is not None else None
            fields = dict(extra or {})
            if thread_ts is not None:
                fields["thread_ts"] = thread_ts
            if user_id is None:
                message = bot_message(self._directory, ts, text, shaped, fields)
            else:
                message = {"user": user_id, "type": "message", "ts": ts, "text": text}
                message["team"] = self._directory.team.id
                if shaped is not None:
                    message["blocks"] = shaped
                message.update(fields)
            channel[ts] = message
            if thread_ts is not None:
                _note_reply(channel[thread_ts], message)
            self._changes.touch()
            return copy.deepcopy(message)

    def update(
        self,
        channel_id: str,
        ts: str,
        *,
        text: str | None,
        blocks: list[dict[str, Any]] | None,
        extra: dict[str, Any] | None = None,
        require_bot: bool = True,
    ) -> dict[str, Any]:
        with self._changes.lock:
            message = self._find(channel_id, ts)
            if require_bot and message.get("bot_id") != self._directory.bot.bot_id:
                raise SlackError("cant_update_message")
            if text is not None:
                message["text"] = text
            if blocks is not None:
                message["blocks"] = normalize_blocks(blocks, self._mint)
            message.update(extra or {})
            message["edited"] = {
                "user": self._directory.bot.user_id,
                "ts": self._mint.next_ts(self._clock()),
            }
            self._changes.touch()
            return copy.deepcopy(message)

    def replace(
        self, channel_id: str, ts: str, *, text: str, blocks: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """Swaps a message's whole content, as a `replace_original` response does."""
        with self._changes.lock:
            message = self._find(channel_id, ts)
            replace_content(message, text, blocks, self._mint)
            message.pop("attachments", None)
            self._changes.touch()
            return copy.deepcopy(message)

    def delete(self, channel_id: str, ts: str, *, require_bot: bool = True) -> None:
        with self._changes.lock:
            message = self._find(channel_id, ts)
            if require_bot and message.get("bot_id") != self._directory.bot.bot_id:
                raise SlackError("cant_delete_message")
            del self._by_channel[channel_id][ts]
            self._changes.touch()

    def _find(self, channel_id: str, ts: str) -> dict[str, Any]:
        try:
            return self._by_channel[channel_id][ts]
        except KeyError:
            raise SlackError("message_not_found") from None

    def get(self, channel_id: str, ts: str) -> dict[str, Any]:
        with self._changes.lock:
            return copy.deepcopy(self._find(channel_id, ts))

    def history(self, channel_id: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Messages oldest first; `limit` keeps only the newest ones."""
        with self._changes.lock:
            stored = list(self._by_channel.get(channel_id, {}).values())
            if limit is not None:
                stored = stored[-limit:]
            return copy.deepcopy(stored)
