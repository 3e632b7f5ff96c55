"""Posts and edits Slack messages for requests; the MessageBoard that bot, flows and CLI share."""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from typing import Any

from redis.exceptions import RedisError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from slack_approvals.state.errors import RequestNotFound
from slack_approvals.state.models import ApprovalRequest
from slack_approvals.state.store import ApprovalStore

from .blocks import request_message
from .client import make_post_once_client

log = logging.getLogger(__name__)

SHOWN_REMEMBERED = 10_000  # requests whose last shown revision is kept, newest first
DM_CHANNELS_REMEMBERED = 10_000  # users whose DM channel id is kept, newest first
# Answers to a post in a remembered DM channel that say it is no longer the user's DM.
STALE_DM = frozenset({"channel_not_found", "is_archived", "not_in_channel"})
# Slack's answers that say "not now" rather than "never": the edit is worth trying again.
PASSING_ERRORS = frozenset({"ratelimited", "fatal_error", "internal_error", "service_unavailable",
                            "request_timeout"})


def passing(error: Exception) -> bool:
    """A failure a later edit may get past (rate limit, 5xx, network), unlike a deleted
    message or a channel the bot left, which no retry mends."""
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 200)
        return (status == 429 or status >= 500
                or error.response.get("error") in PASSING_ERRORS)
    return isinstance(error, OSError)  # timeouts, refused connections, DNS


class Messenger:
    """Fills `state.closing.MessageBoard` (and the flows' roll-up board) with a WebClient."""

    def __init__(self, client: WebClient, store: ApprovalStore) -> None:
        self.client = client
        # Reminder and escalation posts: never retried after Slack may have posted them.
        self.poster = make_post_once_client(client)
        self.store = store
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary())
        self._guard = threading.Lock()
        self._shown: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
        self._dm_channels: OrderedDict[str, str] = OrderedDict()

    def _lock(self, request_id: str) -> threading.Lock:
        with self._guard:
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
            return self.refresh(request)
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
        """Edit the posted message to show `request`, as the caller just read it from Redis.

        Edits of one request go out one at a time, and one older than what was already shown
        is dropped: two clicks at once could otherwise land their edits in the wrong order
        (buttons back on an approved request). Nothing is re-read from Redis."""
        with self._lock(request.id):
            with self._guard:
                shown = self._shown.get(request.id)
            if shown is not None and request.revision < shown:
                return request
            if request.message_channel and request.message_ts:
                try:
                    self.client.chat_update(channel=request.message_channel,
                                            ts=request.message_ts, **request_message(request))
                except Exception as e:
                    if passing(e):
                        self._mark_stale(request.id)
                    raise
            with self._guard:
                self._shown[request.id] = request.revision
                self._shown.move_to_end(request.id)
                while len(self._shown) > SHOWN_REMEMBERED:
                    self._shown.popitem(last=False)
            return request

    def _mark_stale(self, request_id: str) -> None:
        try:
            self.store.mark_stale(request_id)
        except RedisError as e:  # Redis away too: the message stays stale, as it would anyway
            log.error("could not mark the message of %s for a later edit: %s", request_id, e)

    def refresh_stale(self, limit: int = 100) -> int:
        """Edit again the messages whose last edit failed (the sweeper calls this); returns
        how many now show their request. One that fails again is marked again."""
        shown = 0
        for request_id in self.store.take_stale(limit):
            try:
                self.refresh(self.store.get(request_id))
            except RequestNotFound:
                continue  # past its retention: nothing left to show
            except Exception as e:
                log.warning("the message of %s is still not edited: %s", request_id, e)
                continue
            shown += 1
        return shown

    def reply_in_thread(self, request: ApprovalRequest, text: str) -> None:
        """A reply in the thread of the request's message."""
        if not (request.message_channel and request.message_ts):
            raise ValueError(f"request {request.id} has no message to reply to")
        self.poster.chat_postMessage(channel=request.message_channel, thread_ts=request.message_ts,
                                     text=text)

    def direct_message(self, user: str, message: dict[str, Any]) -> tuple[str, str]:
        """A message to one user in their DM with the bot (`im:write`). Slack opens the same
        DM channel for a user every time, so its id is remembered: a reminder burst costs one
        call a DM, not two. A post the remembered channel refuses opens it again."""
        with self._guard:
            channel = self._dm_channels.get(user)
        if channel is not None:
            try:
                return self._post_once(channel, message)
            except SlackApiError as e:
                if e.response.get("error") not in STALE_DM:
                    raise
        opened = self.client.conversations_open(users=user)
        channel = str(opened["channel"]["id"])
        with self._guard:
            self._dm_channels[user] = channel
            self._dm_channels.move_to_end(user)
            while len(self._dm_channels) > DM_CHANNELS_REMEMBERED:
                self._dm_channels.popitem(last=False)
        return self._post_once(channel, message)

    def _post_once(self, channel: str, message: dict[str, Any]) -> tuple[str, str]:
        response = self.poster.chat_postMessage(channel=channel, **message)
        return str(response["channel"]), str(response["ts"])

    def post_message(self, channel: str, message: dict[str, Any]) -> tuple[str, str]:
        """A message that is not a request's (the department roll-up): its channel id and ts."""
        response = self.client.chat_postMessage(channel=channel, **message)
        return str(response["channel"]), str(response["ts"])

    def update_message(self, channel: str, ts: str, message: dict[str, Any]) -> None:
        self.client.chat_update(channel=channel, ts=ts, **message)
