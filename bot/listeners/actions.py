"""Approve and Reject buttons, in channel messages, ephemeral lists and App Home."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from slack_approvals.state.errors import InvalidRequest, RequestNotFound
from slack_approvals.state.models import DecideResult, DecideStatus, Outcome
from slack_approvals.state.plans import check_request_id

from ..blocks import reject_modal
from ..deps import BotDeps
from ..ids import APPROVE_ACTION, REJECT_ACTION
from ..voting import Clicker, follow_up, record_vote


def clicker_of(body: dict[str, Any]) -> Clicker:
    container = body.get("container") or {}
    from_home = container.get("type") == "view"
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    return Clicker(user=body["user"]["id"], channel=channel, from_home=from_home)


def handle_approve(ack: Ack, body: dict[str, Any], deps: BotDeps) -> None:
    """Record first, then ack: a click Slack saw acknowledged is already durable in Redis."""
    request_id = str(body["actions"][0].get("value", ""))
    clicker = clicker_of(body)
    result = record_vote(deps, request_id, clicker.user, Outcome.APPROVE, None)
    ack()
    deps.background.submit(follow_up, deps, result, request_id, clicker)


def handle_reject(ack: Ack, body: dict[str, Any], deps: BotDeps) -> None:
    """Open the reason modal at once (trigger_id lives 3 s), unless the vote would be refused."""
    ack()
    request_id = str(body["actions"][0].get("value", ""))
    clicker = clicker_of(body)
    try:
        check_request_id(request_id)
        request = deps.store.get(request_id)
    except (InvalidRequest, RequestNotFound):
        unknown = DecideResult(status=DecideStatus.UNKNOWN, request=None)
        deps.background.submit(follow_up, deps, unknown, request_id, clicker)
        return
    groups = frozenset(deps.groups.groups_of(clicker.user, request.spec.approver_groups))
    refusal = request.refusal_for(clicker.user, Outcome.REJECT, groups)
    if refusal is not None:
        deps.background.submit(follow_up, deps, DecideResult(status=refusal, request=request),
                               request_id, clicker)
        return
    deps.messenger.client.views_open(trigger_id=body["trigger_id"],
                                     view=reject_modal(request, from_home=clicker.from_home))


def register(app: App, deps: BotDeps) -> None:
    @app.action(APPROVE_ACTION)
    def approve(ack: Ack, body: dict[str, Any]) -> None:
        handle_approve(ack, body, deps)

    @app.action(REJECT_ACTION)
    def reject(ack: Ack, body: dict[str, Any]) -> None:
        handle_reject(ack, body, deps)
