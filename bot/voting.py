"""Recording a click and everything that follows it, shared by buttons in messages, App Home
and the reject modal."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError

from slack_approvals.state.errors import InvalidRequest, RequestNotFound
from slack_approvals.state.models import ApprovalRequest, CloseStatus, DecideResult, DecideStatus, Outcome
from slack_approvals.state.plans import check_request_id

from .blocks import home_view
from .deps import BotDeps
from .refusals import refusal_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clicker:
    user: str
    channel: str | None  # None when the click came from App Home or a modal
    from_home: bool = False


def record_vote(deps: BotDeps, request_id: str, user: str, vote: Outcome,
                reason: str | None) -> DecideResult:
    """The button's value only names the request; who may vote is judged from Redis."""
    try:
        check_request_id(request_id)
        request = deps.store.get(request_id)
    except (InvalidRequest, RequestNotFound):
        return DecideResult(status=DecideStatus.UNKNOWN, request=None)
    groups = deps.groups.groups_of(user, request.spec.approver_groups)
    return deps.store.decide(request_id, user, vote, reason, groups=groups)


def follow_up(deps: BotDeps, result: DecideResult, request_id: str, clicker: Clicker) -> None:
    """After the ack: edit the message, tell a refused clicker why, report a final decision."""
    try:
        if result.status.accepted and result.request is not None:
            deps.messenger.refresh(result.request)
            report_decision(deps, result.request)
            if clicker.from_home:
                publish_home(deps, clicker.user)
            return
        tell(deps, clicker, refusal_text(result.status, result.request, request_id))
        if result.status is DecideStatus.EXPIRED and result.request is not None:
            closed = deps.store.expire(request_id)
            if closed.request is not None and closed.status is CloseStatus.CLOSED_NOW:
                deps.messenger.refresh(closed.request)
                report_decision(deps, closed.request)
    except SlackApiError as e:
        # The vote is already safe in Redis; the next edit or the sweeper shows it.
        log.error("Slack refused the follow-up for %s: %s", request_id, e.response.get("error"))


def report_decision(deps: BotDeps, request: ApprovalRequest) -> None:
    """Every final decision the bot records is reported once (e.g. as a Prefect event)."""
    if request.decision is not None and deps.on_decision is not None:
        deps.on_decision(request)


def tell(deps: BotDeps, clicker: Clicker, text: str) -> None:
    """An answer only the clicker sees: ephemeral in a channel, a notice on their App Home."""
    if clicker.channel and not clicker.from_home:
        deps.messenger.client.chat_postEphemeral(channel=clicker.channel, user=clicker.user,
                                                 text=text)
    else:
        publish_home(deps, clicker.user, notice=text)


def decidable_by(deps: BotDeps, user: str) -> list[ApprovalRequest]:
    """Pending requests naming `user` (directly or by group) that they could vote on now.

    Requests open to anyone are left out: they are decided where they were posted, and
    listing them to everyone would show a private channel's request outside it."""
    pending_all = [r for r in deps.store.pending(limit=200) if not r.spec.open_to_anyone]
    candidate_groups = {g for r in pending_all for g in r.spec.approver_groups}
    groups = frozenset(deps.groups.groups_of(user, candidate_groups))
    return [r for r in pending_all if r.may_decide(user, groups)]


def publish_home(deps: BotDeps, user: str, notice: str | None = None) -> None:
    view = home_view(user, decidable_by(deps, user), deps.store.recent(user, limit=20),
                     notice=notice)
    deps.messenger.client.views_publish(user_id=user, view=view)
