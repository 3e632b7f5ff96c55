"""Posts and edits a request's Slack message; used by the bot, the flows and the CLI alike."""

from __future__ import annotations

import logging
import threading
import weakref

from slack_sdk import WebClient

from slack_approvals.state.models import ApprovalRequest
from slack_approvals.state.store import ApprovalStore

from .blocks import request_message

log = logging.getLogger(__name__)


class Messenger:
    def __init__(self, client: WebClient, store: ApprovalStore) -> None:
        self.client = client
        self.store = store
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary())
        self._locks_guard = threading.Lock()

    def _lock(self, request_id: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(request_id)
            if lock is None:
                lock = threading.Lock()
                self._locks[request_id] = lock
            return lock

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

    def refresh(self, request: ApprovalRequest) -> ApprovalRequest:
        """Edit the posted message to show the request as Redis has it now.

        Re-read under a per-request lock: two clicks at once would otherwise race their edits,
        and the older state could land last (buttons back on an approved request).
        """
        with self._lock(request.id):
            current = self.store.get(request.id)
            if current.message_channel and current.message_ts:
                self.client.chat_update(channel=current.message_channel, ts=current.message_ts,
                                        **request_message(current))
            return current
