"""Ephemeral messages: shown to one person in one channel, kept apart from the channel's history."""

from __future__ import annotations

import copy
from typing import Any

from slack_approvals.sandbox.blocks import normalize_blocks
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.ids import parse_ts
from slack_approvals.sandbox.messages import bot_message, replace_content
from slack_approvals.sandbox.stores import ContentStore


class Ephemerals(ContentStore):
    """Ephemeral messages by (person, channel) and ts; every read returns a copy."""

    def _empty(self) -> None:
        self._by_viewer: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def post(
        self,
        channel_id: str,
        user_id: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        from_bot: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._changes.lock:
            ts = self._mint.next_ts(self._clock())
            shaped = normalize_blocks(blocks, self._mint) if blocks is not None else None
            if from_bot:
                message = bot_message(self._directory, ts, text, shaped, dict(extra or {}))
            else:
                # Slack's own notices ("only visible to you") come from Slackbot.
                message = {"user": "USLACKBOT", "type": "message", "ts": ts, "text": text}
                if shaped is not None:
                    message["blocks"] = shaped
            message["is_ephemeral"] = True
            self._by_viewer.setdefault((user_id, channel_id), {})[ts] = message
            self._changes.touch()
            return copy.deepcopy(message)

    def replace(
        self,
        user_id: str,
        channel_id: str,
        ts: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        with self._changes.lock:
            message = self._find(user_id, channel_id, ts)
            replace_content(message, text, blocks, self._mint)
            self._changes.touch()
            return copy.deepcopy(message)

    def delete(self, user_id: str, channel_id: str, ts: str) -> None:
        with self._changes.lock:
            self._find(user_id, channel_id, ts)
            del self._by_viewer[(user_id, channel_id)][ts]
            self._changes.touch()

    def _find(self, user_id: str, channel_id: str, ts: str) -> dict[str, Any]:
        try:
            return self._by_viewer[(user_id, channel_id)][ts]
        except KeyError:
            raise SlackError("message_not_found") from None

    def get(self, user_id: str, channel_id: str, ts: str) -> dict[str, Any]:
        with self._changes.lock:
            return copy.deepcopy(self._find(user_id, channel_id, ts))

    def shown_to(self, user_id: str, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages shown to one person, oldest first, each tagged with its `channel`."""
        with self._changes.lock:
            found: list[dict[str, Any]] = []
            for (owner, channel), by_ts in self._by_viewer.items():
                if owner != user_id or (channel_id is not None and channel != channel_id):
                    continue
                for message in by_ts.values():
                    found.append({**copy.deepcopy(message), "channel": channel})
            return sorted(found, key=lambda m: parse_ts(str(m["ts"])))
