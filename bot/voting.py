"""Recording a click and everything that follows it, shared by buttons in messages, App Home
and the reject modal."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from slack_approvals.state.errors import InvalidRequest
from slack_approvals.state.models import ApprovalRequest, DecideResult, DecideStatus, Outcome
from slack_approvals.state.plans import check_request_id

from .deps import BotDeps
from .home import publish_home
from .refusals import refusal_text
from .text import escape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clicker:
    user: str
    channel: str | None  # None when the click came from App Home or a modal
    from_home: bool = False


def click_time(body: Mapping[str, Any]) -> float | None:
    """When Slack saw the click (the action's `action_ts`, epoch seconds), if it says."""
    actions = body.get("actions")
    stamp = actions[0].get("action_ts") if isinstance(actions, list) and actions else None
    try:
        return float(stamp) if isinstance(stamp, str) else None
    except ValueError:
        return None


def record_vote(deps: BotDeps, request_id: str, user: str, vote: Outcome,
                reason: str | None, clicked_at: float | None = None) -> DecideResult:
    """The button's value only names the request; who may vote is judged from Redis.

    Slack's group membership is looked up only when the script refuses a user who is not
    named directly and the request names groups, so a named approver's click costs one
    script and one read. Raises GroupLookupFailed when Slack could not list the groups.
    `clicked_at` (click_time): a vote recorded is timed from it."""
    try:
        check_request_id(request_id)
    except InvalidRequest:
        return DecideResult(status=DecideStatus.UNKNOWN, request=None)
    result = deps.store.decide(request_id, user, vote, reason)
    request = result.request
    if (result.status is DecideStatus.NOT_ELIGIBLE and request is not None
            and request.spec.all_groups):
        groups = deps.groups.groups_of(user, request.spec.all_groups)
        if groups:
            result = deps.store.decide(request_id, user, vote, reason, groups=groups)
    if clicked_at is not None and result.status.accepted:
        deps.metrics.click_recorded(clicked_at)
    return result


def follow_up(deps: BotDeps, result: DecideResult, request_id: str, clicker: Clicker) -> None:
    """After the ack: edit the message, tell a refused clicker why, report a final decision."""
    try:
        if result.status is DecideStatus.SETTLED and result.request is not None:
            # The click closed a request a tier had already approved: show the decision, and
            # tell the clicker their vote was not recorded.
            deps.closer.announce(result.request)
            tell(deps, clicker, refusal_text(result.status, result.request, request_id))
            return
        if result.status.accepted and result.request is not None:
            deps.closer.announce(result.request)
            if clicker.from_home:
                publish_home(deps, clicker.user)
            if result.request.decision is not None:
                tell_if_run_gone(deps, clicker, result.request)
            return
        tell(deps, clicker, refusal_text(result.status, result.request, request_id))
        if result.status is DecideStatus.EXPIRED and result.request is not None:
            deps.closer.expire(request_id)
    except SlackApiError as e:
        # The vote is already safe in Redis; the next edit or the sweeper shows it.
        log.error("Slack refused the follow-up for %s: %s", request_id, e.response.get("error"))


def tell_if_run_gone(deps: BotDeps, clicker: Clicker, request: ApprovalRequest) -> None:
    """A decision is only worth something to a run still waiting at its gate. When Prefect says
    the run has ended (or is being cancelled) and its hooks did not close the request first
    (the server was restarting, say), the clicker learns that nothing will follow."""
    # A department's request was asked by a child run that ended on purpose; the run its
    # decision resumes (the suspended parent) is the one that counts.
    run_id = request.suspended_run or request.spec.flow_run_id
    if run_id is None or deps.launcher is None:
        return
    state = deps.launcher.run_gone(run_id)
    if state is not None:
        tell(deps, clicker, run_gone_text(request, run_id, state))


def run_gone_text(request: ApprovalRequest, flow_run_id: str, state: str) -> str:
    assert request.decision is not None
    return (f"Your vote on *{escape(request.spec.title)}* was recorded "
            f"({request.decision.status.value}), but the flow run that asked for it is gone: "
            f"`{escape(flow_run_id)}` is {escape(state)}. Your decision changes nothing.")


def tell(deps: BotDeps, clicker: Clicker, text: str) -> None:
    """An answer only the clicker sees: ephemeral in a channel, a notice on their App Home."""
    if clicker.channel and not clicker.from_home:
        deps.messenger.client.chat_postEphemeral(channel=clicker.channel, user=clicker.user,
                                                 text=text)
    else:
        publish_home(deps, clicker.user, notice=text)
