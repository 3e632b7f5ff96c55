"""The reject modal: a reason is required, and a refusal is shown inside the modal."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import Ack, App

from slack_approvals.state.models import MAX_REASON, DecideStatus, Outcome

from ..blocks import parse_modal_metadata
from ..deps import BotDeps
from ..groups import GroupLookupFailed
from ..ids import REASON_BLOCK, REASON_INPUT, REJECT_MODAL
from ..refusals import STORE_UNAVAILABLE_TEXT, group_lookup_failed_text, refusal_text
from ..voting import Clicker, follow_up, record_vote

log = logging.getLogger(__name__)


def handle_reject_submission(ack: Ack, body: dict[str, Any], view: dict[str, Any],
                             deps: BotDeps) -> None:
    values = view.get("state", {}).get("values", {})
    reason = str((values.get(REASON_BLOCK, {}).get(REASON_INPUT, {}) or {}).get("value") or "")
    reason = reason.strip()
    if not reason:
        ack(response_action="errors", errors={REASON_BLOCK: "Please give a reason for rejecting."})
        return
    if len(reason) > MAX_REASON:
        ack(response_action="errors",
            errors={REASON_BLOCK: f"At most {MAX_REASON} characters, please ({len(reason)} now)."})
        return
    request_id, from_home = parse_modal_metadata(str(view.get("private_metadata", "")))
    user = body["user"]["id"]
    try:
        result = record_vote(deps, request_id, user, Outcome.REJECT, reason)
    except GroupLookupFailed:
        ack(response_action="errors", errors={REASON_BLOCK: group_lookup_failed_text(request_id)})
        return
    except RedisError as e:
        log.error("could not record a rejection of %s: Redis %s", request_id, type(e).__name__)
        ack(response_action="errors", errors={REASON_BLOCK: STORE_UNAVAILABLE_TEXT})
        return
    if not result.status.accepted:
        # Someone else may have decided while the modal was open: say so where the user looks.
        ack(response_action="errors",
            errors={REASON_BLOCK: refusal_text(result.status, result.request, request_id)})
        if result.status is DecideStatus.SETTLED and result.request is not None:
            # This submission closed it (a tier had approved it): the message shows so.
            deps.background.submit(deps.closer.announce, result.request)
        return
    ack()
    channel = result.request.message_channel if result.request else None
    deps.background.submit(follow_up, deps, result, request_id,
                           Clicker(user=user, channel=channel, from_home=from_home))


def register(app: App, deps: BotDeps) -> None:
    @app.view(REJECT_MODAL)
    def reject_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        handle_reject_submission(ack, body, view, deps)
