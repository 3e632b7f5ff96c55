"""Posts and edits a request's Slack message; used by the bot, the flows and the CLI alike."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from state.models import ApprovalRequest
from state.store import ApprovalStore

from .blocks import request_message

log = logging.getLogger(__name__)


class Messenger:
    def __init__(self, client: WebClient, store: ApprovalStore) -> None:
        self.client = client
        self.store = store

    def post(self, request: ApprovalRequest) -> ApprovalRequest:
        """Post once: a request that already has a message gets it refreshed instead.

        Idempotent across retries because the message's ts is stored with the request, and
        when two posters race the store keeps the first ts and the loser deletes its copy.
        """
        if request.message_ts:
            self.refresh(request)
            return request
        response = self.client.chat_postMessage(channel=request.spec.channel,
                                                **request_message(request))
        channel, ts = str(response["channel"]), str(response["ts"])
        if not self.store.attach_message(request.id, channel, ts):
            log.warning("request %s was posted twice at once; deleting %s", request.id, ts)
            self.client.chat_delete(channel=channel, ts=ts)
        current = self.store.get(request.id)
        if current.status != request.status or current.votes != request.votes:
            # A vote (or the deadline) arrived while we were posting: show it.
            self.refresh(current)
        return current

    def refresh(self, request: ApprovalRequest) -> None:
        """Edit the posted message to match the stored state (chat.update, no 30-minute limit)."""
        if not request.message_channel or not request.message_ts:
            return
        self.client.chat_update(channel=request.message_channel, ts=request.message_ts,
                                **request_message(request))

    def refresh_by_id(self, request_id: str) -> ApprovalRequest:
        request = self.store.get(request_id)
        self.refresh(request)
        return request
