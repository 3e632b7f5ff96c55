"""Reminders and escalation announcements: the bot's share of the scheduled actions.

    Nudger.run_due(kind)   claim what is due on the schedule, hold it in quiet hours, fire it
                           once (state.store.fire_many, in bulk) and tell people: a reply in
                           the request's thread mentioning who has not voted, and a DM with
                           the buttons; a post Slack surely did not take is owed and resent
    Nudger._unsettled      a tier that lowered the quorum to the approvals in closes the
                           request (through the Closer) when its escalation comes due, in
                           quiet hours too (a held announcement comes back by that tier's time)

A vote from a DM counts like any other: the buttons carry only the request id, and the click
handler edits the request's own message (its channel and ts are stored with the request).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.error import URLError

from slack_sdk.errors import SlackApiError

from slack_approvals.state.closing import Closer
from slack_approvals.state.models import ApprovalRequest, RequestSpec
from slack_approvals.state.plans import Fired, Owed
from slack_approvals.state.store import ApprovalStore

from .blocks import nudge_message, people_text
from .groups import GroupLookupFailed, GroupResolver
from .messenger import Messenger
from .text import mention

log = logging.getLogger(__name__)

REMIND, ESCALATE = "remind", "escalate"
CLAIM_LIMIT = 100
SEND_WORKERS = 8
# A reminder post Slack surely did not take is sent again, at most this many times.
MAX_RESENDS = 3
# `map` or a pool's: how the Slack calls of many requests are sent.
Mapper = Callable[[Callable[[Fired], int], Iterable[Fired]], Iterator[int]]


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
    # When owed posts go out again: the sweeper sets its interval (the next sweep).
    resend_after: timedelta = timedelta(seconds=5)

    def run_due(self, kind: str, limit: int = CLAIM_LIMIT, budget: timedelta | None = None) -> int:
        """Fire the due actions of `kind` this bot claims, `limit` at a time, until none is
        left due or `budget` (default: `resend_after`, one sweep interval) has passed; what is
        left goes out at the next sweep, so deadlines, edits and resumes never wait behind a
        long queue of reminders. Returns how many fired.

        Redis is asked in bulk: per claim of `limit`, one round trip reads the specs, one fires
        every script, one reschedules. The Slack calls of different requests go out `workers`
        at a time (most of a reminder is waiting on Slack); each request's own in order."""
        fired = 0
        stop_at = time.monotonic() + (self.resend_after if budget is None else budget).total_seconds()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="nudge") as pool:
            while True:
                claimed = self.store.claim(kind, limit)
                if claimed:
                    fired += self._fire(kind, claimed, pool.map)
                # A claimed entry moved a lease ahead (or was fired, held, removed): never
                # taken again by this loop.
                if len(claimed) < limit or time.monotonic() >= stop_at:
                    return fired

    def run_for(self, request_id: str) -> int:
        """Fire the due actions of one request, unclaimed: `approvals request --wait` does
        this for its own request when no bot may be running. The request's state still says
        what is due, so a bot sweeping too never sends the same reminder again."""
        return self._fire(ESCALATE, [request_id], map) + self._fire(REMIND, [request_id], map)

    def _fire(self, kind: str, request_ids: list[str], send: Mapper) -> int:
        """One claim's worth: each request stands alone, so a corrupt record or a failing
        script is logged and skipped, never taking its batch-mates down with it."""
        corrupt: dict[str, str] = {}
        specs = self.store.read_specs(request_ids, corrupt)
        for request_id, problem in corrupt.items():
            log.error("%s for %s skipped and taken off the schedule: %s", kind, request_id,
                      problem)
        # It would fail again at every claim.
        self.store.unschedule(kind, list(corrupt))
        if kind == ESCALATE:
            specs = self._unsettled(specs)
        now = self.clock()
        held: dict[str, datetime] = {}
        ready: dict[str, RequestSpec] = {}
        for request_id, spec in specs.items():
            hours = spec.business_hours
            if hours is not None and not hours.is_open(now):
                held[request_id] = hours.next_open(now)
            else:
                ready[request_id] = spec
        if kind == ESCALATE and held:
            held = self._until_next_settlement(held, {i: specs[i] for i in held})
        self.store.defer_many(kind, held)
        results = self.store.fire_many(kind, ready)
        for request_id, result in results.items():
            if result.error is not None:
                log.error("%s for %s: %s", kind, request_id, result.error)
        fired = [f for f in results.values() if f.fired]
        return sum(send(lambda f: self._tell_logged(kind, f), fired))

    def _unsettled(self, specs: dict[str, RequestSpec]) -> dict[str, RequestSpec]:
        """A tier that lowers the quorum to the approvals already counted approves the request
        at its time, through the one close path (the message shows it, the flow wakes, the
        audit says which tier). A decision, not an announcement: quiet hours do not hold it.
        One round trip for the whole claim (two when some settle); the rest are returned."""
        candidates = [i for i, spec in specs.items()
                      if any(tier.quorum is not None for tier in spec.escalate)]
        if not candidates:
            return specs
        errors: dict[str, str] = {}
        try:
            settled = {r.id for r in self.closer.settle_many(candidates, errors)}
        except Exception as e:
            # The announcements still go out; decide and the deadline settle it all the same.
            log.error("could not settle the escalations of %d requests: %s", len(candidates), e)
            return specs
        for request_id, problem in errors.items():
            log.error("escalation of %s: %s", request_id, problem)
        return {i: spec for i, spec in specs.items() if i not in settled}

    def _until_next_settlement(self, held: dict[str, datetime],
                               specs: dict[str, RequestSpec]) -> dict[str, datetime]:
        """Announcements held in quiet hours come back at the next open, or sooner when a
        quorum-setting tier comes first: its settlement is not held."""
        try:
            times = self.store.tier_times(specs)
        except Exception as e:
            log.warning("held escalations wait for the next open: tier times unread (%s)", e)
            return held
        return {i: min([until, *times.get(i, ())]) for i, until in held.items()}

    def _tell_logged(self, kind: str, fired: Fired) -> int:
        request = fired.request
        if request is None:
            return 0
        try:
            if kind == REMIND:
                owed = self.remind(request, fired.resend)
                if owed is not None:
                    self._owe(request, owed, fired.resend)
            else:
                reached = (list(fired.resend.to) if fired.resend is not None else
                           [p for tier in request.spec.escalate[fired.before:fired.count]
                            for p in tier.to])
                owed = self.escalate(request, reached, fired.resend)
                if owed is not None:
                    self._owe(request, replace(owed, to=tuple(reached)), fired.resend, ESCALATE)
        except Exception:
            # One request's Slack trouble must not hold back the others'.
            log.exception("could not %s for %s", kind, request.id)
            return 0
        return 1

    def _owe(self, request: ApprovalRequest, owed: Owed, resent: Owed | None,
             kind: str = REMIND) -> None:
        """Posts Slack surely did not take go out again on a later sweep, a few times at most."""
        tries = 1 if resent is None else resent.tries + 1
        if tries > MAX_RESENDS:
            log.warning("gave up reminding about %s after %d tries", request.id, tries)
            return
        self.store.owe(request, replace(owed, tries=tries), self.resend_after, kind)

    def remind(self, request: ApprovalRequest, only: Owed | None = None) -> Owed | None:
        """The reminder the request's state counts (or, `only`, those of its posts that were
        owed); returns the posts to send again, if any."""
        users = waiting_on(request, eligible_now(request), self.groups)
        n, limit = request.reminders_sent, request.spec.remind_limit
        if users:
            text = (f":bell: Reminder {n} of {limit}: {people_text(users)}, this request is "
                    "waiting for your vote.")
        else:
            text = f":bell: Reminder {n} of {limit}: this request is still waiting for a decision."
        if only is None:
            return self._tell(request, text, users)
        return self._tell(request, text, [u for u in users if u in only.users], only.thread)

    def escalate(self, request: ApprovalRequest, reached: list[str],
                 only: Owed | None = None) -> Owed | None:
        """Announce the tiers just reached (or, `only`, those of its posts that were owed);
        returns the posts to send again, if any."""
        if only is None:
            # The message shows "escalated to …" from now on.
            self.closer.announce(request)
        users = waiting_on(request, reached, self.groups)
        text = (f":rotating_light: Escalated to {people_text(reached)}: you may now approve or "
                "reject this request.")
        if only is None:
            return self._tell(request, text, users)
        return self._tell(request, text, [u for u in users if u in only.users], only.thread)

    def _tell(self, request: ApprovalRequest, text: str, users: list[str],
              thread: bool = True) -> Owed | None:
        """A reply in the request's thread and a DM to each of `users`; returns the posts
        Slack surely did not take, for the caller to send again (None: all went out)."""
        thread_owed = False
        if thread and request.message_channel and request.message_ts:
            try:
                self.messenger.reply_in_thread(request, text)
            except (SlackApiError, OSError) as e:
                # Maybe posted (a timeout, a 5xx): not sent again; the DMs still go out.
                thread_owed = surely_unsent(e)
                log.warning("the thread reply about %s failed%s: %s", request.id,
                            ", to be sent again" if thread_owed else "", e)
        message = nudge_message(request, text) if users else {}
        owed_users: list[str] = []
        for user in users:
            try:
                self.messenger.direct_message(user, message)
            except (SlackApiError, OSError) as e:
                # One user who cannot be messaged (deactivated, blocked DMs) spares no one.
                if surely_unsent(e):
                    owed_users.append(user)
                log.warning("could not DM %s about %s%s: %s", mention(user), request.id,
                            ", to be sent again" if surely_unsent(e) else "", e)
        if thread_owed or owed_users:
            return Owed(thread=thread_owed, users=tuple(owed_users))
        return None


def surely_unsent(error: Exception) -> bool:
    """Slack did not post the message: it said so (rate limited, after the client's own
    retries) or was never reached (refused connection, unknown host). A timeout or a 5xx may
    have posted it, so those are not sent again: a reminder never goes out twice."""
    if isinstance(error, SlackApiError):
        return (getattr(error.response, "status_code", 200) == 429
                or error.response.get("error") == "ratelimited")
    if isinstance(error, URLError):
        return isinstance(error.reason, ConnectionRefusedError | socket.gaierror)
    return isinstance(error, ConnectionRefusedError | socket.gaierror)
