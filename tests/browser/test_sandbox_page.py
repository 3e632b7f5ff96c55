"""The sandbox page as a newcomer uses it: a long channel, a quoted reason, App Home."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient

from slack_approvals.bot.ids import REASON_BLOCK, REJECT_ACTION
from slack_approvals.state.models import Outcome
from tests.bot.fixtures import APPROVALS_CHANNEL, BOT_TOKEN, FRANK, MAYA, BotStack

pytestmark = pytest.mark.browser


def open_as(page: Any, bot: BotStack, user: str, channel: str = APPROVALS_CHANNEL) -> None:
    page.goto(f"{bot.sandbox.url}/?user={user}&channel={channel}")
    page.get_by_test_id("messages").wait_for()


def test_a_long_channel_scrolls_its_messages_and_keeps_the_composer(page: Any,
                                                                    bot: BotStack) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=bot.sandbox.api_url)
    for n in range(40):
        client.chat_postMessage(channel=APPROVALS_CHANNEL, text=f"Status line {n}")
    open_as(page, bot, MAYA)
    page.get_by_test_id("message").filter(has_text="Status line 39").wait_for()
    height = page.viewport_size["height"]
    composer = page.get_by_test_id("slash-input").bounding_box()
    assert composer is not None and composer["y"] + composer["height"] <= height
    assert page.evaluate("document.scrollingElement.scrollHeight") <= height  # the page itself
    messages = page.get_by_test_id("messages")
    assert messages.evaluate("el => el.scrollHeight > el.clientHeight")  # the list scrolls


def test_a_reject_reason_is_shown_as_a_quote(page: Any, bot: BotStack) -> None:
    request = bot.post(title="Drop table legacy_orders", approvers=[FRANK])
    bot.click(FRANK, request, REJECT_ACTION)
    bot.sandbox.wait_for(lambda: bot.sandbox.open_view(FRANK), timeout=5, what="the modal")
    bot.sandbox.submit_view(FRANK, values={REASON_BLOCK: "Still referenced\nby billing"})
    bot.wait_message(request, "Still referenced")
    open_as(page, bot, FRANK)
    card = page.get_by_test_id("message").filter(has_text="Drop table legacy_orders").last
    quote = card.locator("blockquote")
    quote.first.wait_for()
    assert "Still referenced" in quote.all_inner_texts()[0]
    assert ">" not in card.inner_text()


def test_the_page_asks_for_nothing_that_is_missing(page: Any, bot: BotStack) -> None:
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    open_as(page, bot, MAYA)
    page.wait_for_load_state("networkidle")
    assert missing == []  # a favicon included
    assert page.locator("link[rel=icon]").count() == 1


def test_approving_a_decided_request_from_app_home_tells_why(page: Any, bot: BotStack) -> None:
    from playwright.sync_api import expect

    for n in range(12):  # a long Home: the stale request is far down the list
        bot.post(title=f"Routine change {n}", approvers=[MAYA])
    request = bot.post(title="Rotate the signing keys", approvers=[MAYA, FRANK])
    page.goto(f"{bot.sandbox.url}/?user={MAYA}&tab=home")
    home = page.get_by_test_id("home")
    card = home.get_by_text("Rotate the signing keys").first
    card.wait_for()
    bot.store.decide(request.id, FRANK, Outcome.APPROVE)  # meanwhile, in the channel
    home.get_by_test_id("button-approval.approve").last.click()  # scrolls down to it
    if page.get_by_test_id("confirm-ok").count():
        page.get_by_test_id("confirm-ok").click()
    feedback = page.get_by_text("was already approved", exact=False).first
    feedback.wait_for()
    expect(feedback).to_be_in_viewport()  # not published above where the person is looking
