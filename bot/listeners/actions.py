"""Approve and Reject buttons, in channel messages, ephemeral lists and App Home."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import Ack, App
from slack_sdk.errors import SlackApiError

from slack_approvals.state.errors import InvalidRequest, RequestNotFound
from slack_approvals.state.models import DecideResult, DecideStatus, Outcome
from slack_approvals.state.plans import check_request_id

from ..blocks import reject_modal
from ..deps import BotDeps
from ..groups import GroupLookupFailed
from ..ids import APPROVE_ACTION, REJECT_ACTION
from ..refusals import MODAL_UNAVAILABLE_TEXT, STORE_UNAVAILABLE_TEXT, group_lookup_failed_text
from ..voting import Clicker, click_time, follow_up, record_vote, tell

log = logging.getLogger(__name__)


def clicker_of(body: dict[str, Any]) -> Clicker:
    container = body.get("container") or {}
    from_home = container.get("type") == "view"
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    return Clicker(user=body["user"]["id"], channel=channel, from_home=from_home)


def handle_approve(ack: Ack, body: dict[str, Any], deps: BotDeps) -> None:
    """Record first, then ack: a click Slack saw acknowledged is already durable in Redis."""
    request_id = str(body["actions"][0].get("value", ""))
    clicker = clicker_of(body)
    try:
        result = record_vote(deps, request_id, clicker.user, Outcome.APPROVE, None,
                             clicked_at=click_time(body))
    except GroupLookupFailed:
        ack()
        deps.background.submit(tell, deps, clicker, group_lookup_failed_text(request_id))
        return
    except RedisError as e:
        ack()  # Slack would send the click again; the clicker decides whether to retry
        store_unavailable(deps, clicker, request_id, e)
        return
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
    except RedisError as e:
        store_unavailable(deps, clicker, request_id, e)
        return
    try:
        groups = frozenset(deps.groups.groups_of(clicker.user, request.spec.all_groups))
    except GroupLookupFailed:
        deps.background.submit(tell, deps, clicker, group_lookup_failed_text(request_id))
        return
    refusal = request.refusal_for(clicker.user, Outcome.REJECT, groups)
    if refusal is not None:
        deps.background.submit(follow_up, deps, DecideResult(status=refusal, request=request),
                               request_id, clicker)
        return
    assert deps.quick_client is not None
    try:
        # Not the shared client: it would wait out a Retry-After past Slack's 3 s budget.
        deps.quick_client.views_open(trigger_id=body.get("trigger_id", ""),
                                     view=reject_modal(request, from_home=clicker.from_home))
    except (SlackApiError, OSError) as e:  # refused, rate-limited, timed out, unreachable
        log.warning("could not open the reject modal for %s: %s", request_id,
                    e.response.get("error") if isinstance(e, SlackApiError) else e)
        deps.background.submit(tell, deps, clicker, MODAL_UNAVAILABLE_TEXT)


def store_unavailable(deps: BotDeps, clicker: Clicker, request_id: str,
                      error: Exception) -> None:
    """Redis did not answer in time: say so to the clicker, log one line (no traceback)."""
    log.error("could not record a click on %s: Redis %s", request_id, type(error).__name__)
    deps.background.submit(tell, deps, clicker, STORE_UNAVAILABLE_TEXT)


def register(app: App, deps: BotDeps) -> None:
    @app.action(APPROVE_ACTION)
    def approve(ack: Ack, body: dict[str, Any]) -> None:
        handle_approve(ack, body, deps)

    @app.action(REJECT_ACTION)
    def reject(ack: Ack, body: dict[str, Any]) -> None:
        handle_reject(ack, body, deps)
