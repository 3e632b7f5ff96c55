"""Slack failing after retries: a stale message is edited again by the sweeper; a rate-limited
views.open never holds the Reject click past Slack's 3 s."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError

from slack_approvals.bot.ids import APPROVE_ACTION, REJECT_ACTION
from slack_approvals.state.keys import KeySpace
from tests.bot.fixtures import MAYA, BotStack


def stale_ids(bot: BotStack) -> set[str]:
    return set(bot.store.client.smembers(KeySpace().stale_messages()))


def test_a_message_whose_edit_failed_is_edited_by_the_next_sweep(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA])
    # One answer for the call and for each of the client's two 5xx retries.
    bot.sandbox.faults.inject("chat.update", 500, count=3)
    assert bot.click(MAYA, request, APPROVE_ACTION).status == 200
    bot.sandbox.wait_for(lambda: request.id in stale_ids(bot) or None, timeout=15,
                         what="the failed edit to be marked")
    assert bot.store.get(request.id).decision is not None
    assert "*Approved* by" not in bot.message_text(request)  # the buttons are still shown

    bot.sweeper.sweep_once()
    bot.wait_message(request, "*Approved* by")
    assert stale_ids(bot) == set()


def test_a_sweep_while_slack_still_fails_keeps_the_message_marked(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA])
    bot.sandbox.faults.inject("chat.update", 500, count=3)
    bot.click(MAYA, request, APPROVE_ACTION)
    bot.sandbox.wait_for(lambda: request.id in stale_ids(bot) or None, timeout=15,
                         what="the failed edit to be marked")
    bot.sandbox.faults.inject("chat.update", 503, count=3)
    bot.sweeper.sweep_once()
    assert stale_ids(bot) == {request.id}
    bot.sweeper.sweep_once()
    bot.wait_message(request, "*Approved* by")


def test_an_edit_that_can_never_succeed_is_not_retried_forever(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA])
    gone = request.model_copy(update={"message_ts": "1.000001"})  # a message Slack does not have
    with pytest.raises(SlackApiError) as caught:
        bot.deps.messenger.refresh(gone)
    assert caught.value.response["error"] == "message_not_found"
    assert stale_ids(bot) == set()


def test_reject_answers_within_slacks_budget_when_views_open_is_rate_limited(
        bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA])
    bot.sandbox.faults.inject("views.open", 429, retry_after=10)
    clicked = bot.click(MAYA, request, REJECT_ACTION)
    # The sandbox gives up on a delivery after 3 s, as Slack does.
    assert clicked.status == 200
    bot.wait_ephemeral(MAYA, "Please click Reject again")
    assert bot.sandbox.open_view(MAYA) is None
    assert bot.store.get(request.id).votes == []

    assert bot.click(MAYA, request, REJECT_ACTION).status == 200
    assert bot.sandbox.open_view(MAYA) is not None
