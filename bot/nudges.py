"""Reminders and escalation announcements: the bot's share of the scheduled actions.

    Nudger.run_due(kind)   claim what is due on the schedule, hold it in quiet hours, fire it
                           once (state.store.fire) and tell people: a reply in the request's
                           thread mentioning who has not voted, and a DM with the buttons

A vote from a DM counts like any other: the buttons carry only the request id, and the click
handler edits the request's own message (its channel and ts are stored with the request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from slack_approvals.state.closing import Closer
from slack_approvals.state.errors import RequestNotFound
from slack_approvals.state.models import ApprovalRequest
from slack_approvals.state.store import ApprovalStore

from .blocks import nudge_message, people_text
from .groups import GroupLookupFailed, GroupResolver
from .messenger import Messenger
from .text import mention

log = logging.getLogger(__name__)

REMIND, ESCALATE = "remind", "escalate"
CLAIM_LIMIT = 100
SEND_WORKERS = 8


def waiting_on(request: ApprovalRequest, people: Iterable[str], groups: GroupResolver) -> list[str]:
    """The users among `people` (user groups expanded to their members) who may still vote:
    not yet voted, and not the requester when they may not approve their own request."""
    voted = {v.user for v in request.votes}
    if not request.spec.allow_self_approval and request.spec.requester:
        voted.add(request.spec.requester)
    users: list[str] = []
    for who in people:
        if who.startswith("S"):
            try:
                members = sorted(groups.members(who))
            except GroupLookupFailed:
                log.warning("reminder for %s: user group %s could not be listed", request.id, who)
                continue
        else:
            members = [who]
        users += [u for u in members if u not in voted and u not in users]
    return users


def eligible_now(request: ApprovalRequest) -> list[str]:
    """Everyone the request names, with the escalation tiers announced so far."""
    return [*request.spec.approvers, *request.spec.approver_groups, *request.escalated_to]


@dataclass
class Nudger:
    store: ApprovalStore
    messenger: Messenger
    groups: GroupResolver
    closer: Closer
    # Quiet hours are judged by this clock; tests pass their own.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    workers: int = SEND_WORKERS

    def run_due(self, kind: str, limit: int = CLAIM_LIMIT) -> int:
        """Fire every due action of `kind` this bot claims, `limit` at a time until none is
        left due, so each goes out within one sweep interval; returns how many fired."""
        fired = 0
        # Most of a reminder is waiting on Slack: several go out at once.
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="nudge") as pool:
            while True:
                claimed = self.store.claim(kind, limit)
                fired += sum(pool.map(lambda request_id: self._fire_logged(kind, request_id),
                                      claimed))
                # A claimed entry moved a lease ahead (or was fired, held, removed): never
                # taken again by this loop.
                if len(claimed) < limit:
                    return fired

    def _fire_logged(self, kind: str, request_id: str) -> int:
        try:
            return self._fire(kind, request_id)
        except RequestNotFound:
            return 0
        except Exception:
            # One request's Slack trouble must not hold back the others'.
            log.exception("could not %s for %s", kind, request_id)
            return 0

    def run_for(self, request_id: str) -> int:
        """Fire the due actions of one request, unclaimed: `approvals request --wait` does
        this for its own request when no bot may be running. The request's state still says
        what is due, so a bot sweeping too never sends the same reminder again."""
        return self._fire(ESCALATE, request_id) + self._fire(REMIND, request_id)

    def _fire(self, kind: str, request_id: str) -> int:
        request = self.store.get(request_id)
        hours = request.spec.business_hours
        if request.decision is None and hours is not None:
            now = self.clock()
            if not hours.is_open(now):
                self.store.defer(kind, request_id, hours.next_open(now))
                return 0
        result = self.store.fire(kind, request_id)
        if not result.fired or result.request is None:
            return 0
        if kind == REMIND:
            self.remind(result.request)
        else:
            self.escalate(result.request, result.request.escalated_to[
                len(request.escalated_to):])
        return 1

    def remind(self, request: ApprovalRequest) -> None:
        users = waiting_on(request, eligible_now(request), self.groups)
        n, limit = request.reminders_sent, request.spec.remind_limit
        if users:
            text = (f":bell: Reminder {n} of {limit}: {people_text(users)}, this request is "
                    "waiting for your vote.")
        else:
            text = f":bell: Reminder {n} of {limit}: this request is still waiting for a decision."
        self._tell(request, text, users)

    def escalate(self, request: ApprovalRequest, reached: list[str]) -> None:
        # The message shows "escalated to …" from now on.
        self.closer.announce(request)
        users = waiting_on(request, reached, self.groups)
        text = (f":rotating_light: Escalated to {people_text(reached)}: you may now approve or "
                "reject this request.")
        self._tell(request, text, users)

    def _tell(self, request: ApprovalRequest, text: str, users: list[str]) -> None:
        if request.message_channel and request.message_ts:
            self.messenger.reply_in_thread(request, text)
        message = nudge_message(request, text)
        for user in users:
            try:
                self.messenger.direct_message(user, message)
            except SlackApiError as e:
                # One user who cannot be messaged (deactivated, blocked DMs) spares no one else.
                log.warning("could not DM %s about %s: %s", mention(user), request.id,
                            e.response.get("error"))
