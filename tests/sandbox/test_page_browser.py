"""A smoke test of the page in headless Chromium: render, switch person, confirm, deliver, live edit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient

from slack_approvals.sandbox import SandboxServer
from tests.sandbox.receiver import Receiver
from tests.sandbox.support import APPROVE_BLOCKS, CONFIRMING_BLOCKS

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = "/tmp/sandbox.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
]


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 860})
        yield context.new_page()
        context.close()
        browser.close()


def test_click_with_confirm_reaches_the_app(
    page: Any, client: WebClient, sb: SandboxServer, receiver: Receiver
) -> None:
    from playwright.sync_api import expect

    client.chat_postMessage(channel="C05DEPLOYS", text="Laptop", blocks=APPROVE_BLOCKS)
    ts = client.chat_postMessage(channel="C05DEPLOYS", text="Deploy?", blocks=CONFIRMING_BLOCKS)["ts"]
    client.chat_postEphemeral(channel="C05DEPLOYS", user="U04OLIVER", text="Heads up: *you* are on call")

    page.goto(f"{sb.url}/?user=U01MAYA&channel=C05DEPLOYS")
    messages = page.get_by_test_id("message")
    expect(messages).to_have_count(2)
    expect(messages.nth(1)).to_contain_text("Deploy api to production?")
    expect(page.get_by_test_id("ephemeral")).to_have_count(0)

    page.get_by_test_id("user-switcher").select_option("U04OLIVER")
    expect(page.get_by_test_id("user-groups")).to_contain_text("@eng-leads")
    expect(page.get_by_test_id("ephemeral")).to_contain_text("Only visible to you")

    page.get_by_test_id("button-deploy").click()
    expect(page.get_by_test_id("confirm-dialog")).to_contain_text("This goes live.")
    page.get_by_test_id("confirm-ok").click()

    payload = receiver.last().payload()
    assert payload["user"]["id"] == "U04OLIVER"
    assert payload["actions"][0]["action_id"] == "deploy"
    assert payload["container"]["message_ts"] == ts

    # The app's edit shows up without a reload.
    done = [{"type": "section", "text": {"type": "mrkdwn", "text": ":rocket: Deployed by <@U04OLIVER>"}}]
    client.chat_update(channel="C05DEPLOYS", ts=ts, text="Deployed", blocks=done)
    expect(messages.nth(1)).to_contain_text("Deployed by @oliver")
    expect(page.get_by_test_id("delivery").first).to_contain_text("block_actions")
    page.screenshot(path=SCREENSHOT)
