"""The one path by which a request closes without a vote, and by which any decision is shown.

    MessageBoard        what closing needs of Slack: post a request, show it as it is now
    DecisionListener    told once of each final decision (the composition root emits events)
    RunResumer          resumes a flow run suspended on a decided request (state/resuming.py)
    Closer              timeout, cancel and the flow's own decision: close in Redis, edit the
                        message, report the decision; the bot, the flows and the CLI all use it

The board and the listener are ports filled from above (the bot's Messenger, a Prefect event
emitter), so this layer knows neither Slack nor Prefect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .models import ApprovalRequest, CloseResult, CloseStatus
from .resuming import RunResumer, fire_resume
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
