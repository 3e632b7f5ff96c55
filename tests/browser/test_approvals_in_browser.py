"""A person in the sandbox page approves, is refused, rejects with a reason, runs a command."""

from __future__ import annotations

from typing import Any

import pytest

from slack_approvals.state.models import Status
from tests.bot.fixtures import APPROVALS_CHANNEL, ERIN, FRANK, MAYA, BotStack

pytestmark = pytest.mark.browser


def open_as(page: Any, bot: BotStack, user: str, channel: str = APPROVALS_CHANNEL) -> None:
    page.goto(f"{bot.sandbox.url}/?user={user}&channel={channel}")
    page.get_by_test_id("messages").wait_for()


def request_card(page: Any, title: str) -> Any:
    return page.get_by_test_id("message").filter(has_text=title).last


def test_approver_confirms_and_sees_the_message_edited(page: Any, bot: BotStack) -> None:
    request = bot.post(title="Deploy checkout v5", approvers=[MAYA])
    open_as(page, bot, MAYA)
    card = request_card(page, "Deploy checkout v5")
    card.get_by_test_id("button-approval.approve").click()
    page.get_by_test_id("confirm-dialog").wait_for()
    page.get_by_test_id("confirm-ok").click()
    card.get_by_text("Approved", exact=False).first.wait_for()
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"button-approval.approve\"]')")
    assert bot.store.get(request.id).status is Status.APPROVED


def test_non_approver_sees_an_ephemeral_refusal(page: Any, bot: BotStack) -> None:
    request = bot.post(title="Pay invoice 1234", approvers=[FRANK])
    open_as(page, bot, ERIN)
    request_card(page, "Pay invoice 1234").get_by_test_id("button-approval.approve").click()
    page.get_by_test_id("confirm-ok").click()
    refusal = page.get_by_test_id("ephemeral").filter(has_text="not one of the approvers")
    refusal.wait_for()
    assert "Only visible to you" in refusal.inner_text()
    assert bot.store.get(request.id).votes == []


def test_reject_with_blank_then_real_reason(page: Any, bot: BotStack) -> None:
    request = bot.post(title="Drop table legacy_orders", approvers=[FRANK])
    open_as(page, bot, FRANK)
    request_card(page, "Drop table legacy_orders").get_by_test_id("button-approval.reject").click()
    modal = page.get_by_test_id("modal")
    modal.wait_for()
    modal.get_by_test_id("modal-input").fill("   ")
    modal.get_by_test_id("modal-submit").click()
    modal.get_by_test_id("modal-error").wait_for()
    assert "reason" in modal.get_by_test_id("modal-error").inner_text().lower()
    assert bot.store.get(request.id).status is Status.PENDING
    modal.get_by_test_id("modal-input").fill("Still referenced by billing reports")
    modal.get_by_test_id("modal-submit").click()
    modal.wait_for(state="detached")
    request_card(page, "Drop table legacy_orders").get_by_text(
        "Still referenced by billing reports").wait_for()
    assert bot.store.get(request.id).status is Status.REJECTED


def test_slash_command_box_runs_a_flow(page: Any, bot: BotStack) -> None:
    open_as(page, bot, MAYA)
    page.get_by_test_id("slash-input").fill("/approvals run deploy-approval version=v9.9.9")
    page.get_by_test_id("slash-send").click()
    page.get_by_test_id("ephemeral").filter(has_text="run-1").wait_for()
    assert bot.launcher.launched == [("deploy-approval", {"version": "v9.9.9"}, MAYA)]
