"""The one path by which a request closes without a vote, and by which any decision is shown.

    MessageBoard        what closing needs of Slack: post a request, show it as it is now
    DecisionListener    told once of each final decision (the composition root emits events)
    RunResumer          resumes a flow run suspended on a decided request (state/resuming.py)
    Closer              timeout, cancel and the flow's own decision: close in Redis, edit the
                        message, report the decision; the bot, the flows and the CLI all use it
    fire_resume         one request's resume (or watch), now: the Closer fires it after a
                        decision, the resumer thread for every claimed entry
    resume_due          the resumer thread's pass: every claimed entry, time-boxed, the
                        watched runs read in one call

The board and the listener are ports filled from above (the bot's Messenger, a Prefect event
emitter), so this layer knows neither Slack nor Prefect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .keys import RESUME
from .models import ApprovalRequest, CloseResult, CloseStatus
from .resuming import (
    MISSING,
    MISSING_FOR,
    PASS_BUDGET,
    RACE_RETRY,
    RACE_WINDOW,
    UNREACHABLE_RETRY,
    WATCH_EVERY,
    ResumeOutcome,
    ResumePass,
    ResumeState,
    RunResumer,
)
from .store import ApprovalStore

log = logging.getLogger(__name__)


class MessageBoard(Protocol):
    """Posts and refreshes a request's message (the bot's Messenger is the real one)."""

    def post(self, request: ApprovalRequest) -> ApprovalRequest:
        """Post once; a request that already has a message gets it refreshed instead."""

    def refresh(self, request: ApprovalRequest) -> ApprovalRequest:
        """Show `request` in its message; a newer state already shown is never overwritten."""


# What it returns is ignored (an event emitter may return the event).
DecisionListener = Callable[[ApprovalRequest], object]


@dataclass(frozen=True)
class Closer:
    store: ApprovalStore
    board: MessageBoard
    on_decision: DecisionListener | None = None
    # Resumes a flow run suspended on a decided request (None: the bot's sweeper will).
    resumer: RunResumer | None = None

    def announce(self, request: ApprovalRequest) -> None:
        """Show the request as it now is and, when it is decided, report the decision.

        The decision is already safe in Redis; a message that could not be edited lags
        behind (and is logged) but never undoes or hides the decision."""
        # The resume first: the run waits on it, and Slack's retries can take half a minute.
        if request.decision is not None and request.suspended_run and self.resumer is not None:
            try:
                fire_resume(self, request.id)
            except Exception as e:  # it stays on the schedule; the sweeper tries again
                log.warning("could not resume the run of %s now: %s", request.id, e)
        try:
            self.board.refresh(request)
        except Exception as e:  # a Slack error of any kind: the edit is not the decision
            log.error("could not edit the message of %s: %s", request.id, e)
        if request.decision is not None and self.on_decision is not None:
            try:
                self.on_decision(request)
            except Exception:
                log.exception("could not report the decision of %s", request.id)

    def _announced(self, closed: CloseResult) -> CloseResult:
        if closed.status is CloseStatus.CLOSED_NOW and closed.request is not None:
            self.announce(closed.request)
        return closed

    def expire(self, request_id: str) -> CloseResult:
        """Apply the timeout outcome if the deadline has passed (NOT_DUE otherwise)."""
        return self._announced(self.store.expire(request_id))

    def expire_due(self, limit: int = 100) -> list[ApprovalRequest]:
        """Close every overdue request (the sweeper's job), each announced once."""
        closed = self.store.expire_due(limit)
        for request in closed:
            self.announce(request)
        return closed

    def cancel(self, request_id: str, user: str | None, reason: str | None = None,
               force: bool = False) -> CloseResult:
        """Cancel as `user` (only the requester may), or as the system with force=True."""
        return self._announced(self.store.cancel(request_id, user, reason, force))

    def resolve(self, request_id: str, approved: bool, by: str | None = None,
                reason: str | None = None) -> CloseResult:
        """A decision the flow makes itself (auto-approval), with its reason in the audit."""
        return self._announced(self.store.resolve(request_id, approved, by, reason))

    def settle_many(self, request_ids: list[str],
                    errors: dict[str, str] | None = None) -> list[ApprovalRequest]:
        """`settle` for the escalations a sweeper claimed at once; each closed one announced."""
        closed = self.store.settle_many(request_ids, errors)
        for request in closed:
            self.announce(request)
        return closed

    def settle(self, request_id: str) -> CloseResult:
        """Approve a request an escalation tier's lower quorum has settled (the sweeper's
        escalation does this, so the flow wakes without waiting for another vote)."""
        return self._announced(self.store.settle(request_id))


def _missing_long_enough(closer: Closer, request_id: str, found: ResumeState,
                         now: datetime) -> bool:
    """Whether the run's own server has said "no such run" for MISSING_FOR; only then is the
    run taken as gone. Another server's word is never enough."""
    resumer = closer.resumer
    assert resumer is not None
    if found.server != resumer.server:
        return False
    since = found.missing_since or closer.store.resume_missing(request_id, now)
    return now - since >= MISSING_FOR


def fire_resume(closer: Closer, request_id: str, now: datetime | None = None,
                seen: ResumePass | None = None, found: ResumeState | None = None) -> str:
    """Do what the request's `resume` entry asks now; returns a word for logs and tests:
    resumed, gone, retry, watched, closed, dropped. `seen` and `found` are what a pass
    already read (the orchestrator's answers, the request's state)."""
    resumer = closer.resumer
    if resumer is None:
        return "dropped"
    store = closer.store
    found = found or store.resume_state(request_id)
    if found is None or found.run is None:
        store.resume_later(request_id, None)
        return "dropped"
    now = now or found.now
    run_id = found.run
    seen = seen or ResumePass()
    if found.pending:
        ended: str | None = None
        answered = False
        if not seen.unreachable:
            try:
                ended = (seen.ended if seen.ended is not None
                         else resumer.ended([run_id])).get(run_id)
                answered = True
            except Exception as e:
                log.info("could not read flow run %s (request %s): %s", run_id, request_id, e)
                seen.unreachable = True
        if ended == MISSING and not _missing_long_enough(closer, request_id, found, now):
            ended = None
        elif answered and ended != MISSING and found.missing_since is not None:
            store.resume_found(request_id)
        if ended is None:
            store.resume_later(request_id, now + WATCH_EVERY)
            return "watched"
        log.warning("flow run %s of request %s is %s while suspended: closing the request",
                    run_id, request_id, ended)
        closer.cancel(request_id, None, f"the flow run {run_id} is {ended.lower()}", force=True)
        return "closed"
    if found.due is None:
        store.resume_later(request_id, None)  # resumed already
        return "dropped"
    if seen.unreachable:
        store.resume_later(request_id, now + UNREACHABLE_RETRY)
        return "retry"
    try:
        outcome = resumer.resume(run_id)
    except Exception as e:
        log.warning("could not resume flow run %s (request %s), trying again: %s", run_id,
                    request_id, e)
        seen.unreachable = True
        store.resume_later(request_id, now + UNREACHABLE_RETRY)
        return "retry"
    if outcome is ResumeOutcome.MISSING:
        if not _missing_long_enough(closer, request_id, found, now):
            store.resume_later(request_id, now + WATCH_EVERY)
            return "retry"
        log.info("flow run %s of request %s is unknown to its server for %s: nothing to resume",
                 run_id, request_id, MISSING_FOR)
        store.resumed(request_id)
        return "gone"
    if outcome is ResumeOutcome.NOT_SUSPENDED:
        if now - found.due < RACE_WINDOW:
            store.resume_later(request_id, now + RACE_RETRY)
            return "retry"
        log.info("flow run %s of request %s was not suspended for %s after the decision; "
                 "not resuming it", run_id, request_id, RACE_WINDOW)
        store.resumed(request_id)
        return "dropped"
    if outcome is ResumeOutcome.GONE:
        log.info("flow run %s of request %s has ended: nothing to resume", run_id, request_id)
    store.resumed(request_id)
    return outcome.value


def resume_due(closer: Closer, limit: int = 100,
               budget: timedelta = PASS_BUDGET) -> dict[str, str]:
    """One pass of the resumer thread: every due `resume` entry, claimed so one bot fires each.

    The runs being watched are read in one call; after the first failure to reach the
    orchestrator, and once `budget` is spent, the rest go back on the schedule unasked (a
    slow server costs one timeout per pass, not one per entry)."""
    done: dict[str, str] = {}
    resumer = closer.resumer
    if resumer is None:  # no orchestrator here: leave them to a bot that has one
        return done
    store = closer.store
    claimed = store.claim(RESUME, limit)
    if not claimed:
        return done
    seen = ResumePass()
    states = {request_id: store.resume_state(request_id) for request_id in claimed}
    watched = sorted({s.run for s in states.values() if s is not None and s.pending and s.run})
    if watched:
        try:
            seen.ended = resumer.ended(watched)
        except Exception as e:
            log.info("could not read the %d watched flow run(s): %s", len(watched), e)
            seen.unreachable = True
    deadline = seen.started + budget.total_seconds()
    for request_id in claimed:
        if time.monotonic() >= deadline:
            found = states[request_id]
            if found is not None:  # the next pass takes it first
                store.resume_later(request_id, found.now)
            done[request_id] = "later"
            continue
        try:
            done[request_id] = fire_resume(closer, request_id, seen=seen,
                                           found=states[request_id])
        except Exception:  # one request must not hold up the others; its lease brings it back
            log.exception("resuming the run of %s failed", request_id)
    return done
