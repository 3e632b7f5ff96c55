"""Trigger ids and response URLs: the short-lived, limited-use handles Slack hands an app with an
interaction, and the expiry and reuse rules Slack enforces on them.
"""

from __future__ import annotations

import copy

from slack_approvals.sandbox.changes import Changes
from slack_approvals.sandbox.clock import Clock
from slack_approvals.sandbox.errors import SlackError, lookup
from slack_approvals.sandbox.ids import IdMint
from slack_approvals.sandbox.records import ResponseUrl, ResponseUrlKind, Trigger

TRIGGER_TTL_SECONDS = 3.0
RESPONSE_URL_TTL_SECONDS = 30 * 60.0
RESPONSE_URL_MAX_USES = 5


class Tokens:
    """Issuing and redeeming them changes nothing a person sees, so it does not move the version."""

    def __init__(self, changes: Changes, mint: IdMint, clock: Clock) -> None:
        self._changes = changes
        self._mint = mint
        self._clock = clock
        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}

    def clear(self) -> None:
        with self._changes.lock:
            self._triggers = {}
            self._response_urls = {}

    def issue_trigger(self, user_id: str) -> str:
        with self._changes.lock:
            trigger_id = self._mint.trigger_id(self._clock())
            self._triggers[trigger_id] = Trigger(trigger_id, user_id, self._clock())
            return trigger_id

    def consume_trigger(self, trigger_id: str) -> str:
        """Exchanges a trigger for the person it belongs to; each trigger works once, for 3 s."""
        with self._changes.lock:
            trigger = lookup(self._triggers, trigger_id, "invalid_trigger_id")
            if trigger.used:
                raise SlackError("exchanged_trigger_id")
            if self._clock() - trigger.issued_at > TRIGGER_TTL_SECONDS:
                raise SlackError("expired_trigger_id")
            trigger.used = True
            return trigger.user_id

    def issue_response_url(
        self,
        kind: ResponseUrlKind,
        user_id: str,
        channel_id: str,
        *,
        message_ts: str | None = None,
        is_ephemeral: bool = False,
    ) -> str:
        """Returns the URL's token; `SandboxConfig.response_url` turns it into the URL."""
        with self._changes.lock:
            token = self._mint.url_token()
            self._response_urls[token] = ResponseUrl(
                token, kind, user_id, channel_id, self._clock(), message_ts, is_ephemeral
            )
            return token

    def use_response_url(self, token: str) -> ResponseUrl:
        """Counts one use; Slack allows five uses within thirty minutes."""
        with self._changes.lock:
            record = lookup(self._response_urls, token, "invalid_token")
            if self._clock() - record.issued_at > RESPONSE_URL_TTL_SECONDS:
                raise SlackError("expired_url")
            if record.uses >= RESPONSE_URL_MAX_USES:
                raise SlackError("used_url")
            record.uses += 1
            return copy.copy(record)
