"""The sandbox page's Inbox in headless Chromium: a mail sent over SMTP shows live, opens, its link works."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from slack_approvals.sandbox import SandboxServer

pytestmark = pytest.mark.browser

ZOE = "zoe@example.com"


@pytest.fixture(scope="module")
def _sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(_sandbox: SandboxServer) -> SandboxServer:
    _sandbox.reset()
    return _sandbox


def send(sandbox: SandboxServer, subject: str, *, html: str | None = None, text: str = "Hello\n") -> None:
    message = EmailMessage()
    message["From"] = "Approvals <approvals@example.com>"
    message["To"] = f"Zoë Åberg <{ZOE}>"
    message["Subject"] = subject
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    with smtplib.SMTP("127.0.0.1", sandbox.mail_port, timeout=10) as client:
        client.send_message(message)


def approval_html(sandbox: SandboxServer) -> str:
    # The link leads to a real page (the sandbox's own), so following it can be checked end to end.
    return (f'<h1>Laptop purchase</h1><p id="status">untouched</p>'
            f'<p><a href="{sandbox.url}/?user=U01MAYA&amp;channel=C05DEPLOYS">Approve</a></p>'
            "<script>document.getElementById('status').textContent = 'scripted'</script>")


def test_a_mail_shows_up_live_opens_and_its_link_opens_in_a_new_tab(
    page: Any, sandbox: SandboxServer
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{sandbox.url}/?user=U01MAYA&channel=C05DEPLOYS")
    expect(page.get_by_test_id("connection")).to_have_text("live")
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    send(sandbox, "Approval needed: laptop £1,800", html=approval_html(sandbox),
         text=f"Approve: {sandbox.url}/?user=U01MAYA\n")
    badge = page.get_by_test_id("inbox-new")
    expect(badge).to_have_text("1")  # noticed while looking at a channel
    page.get_by_test_id("nav-inbox").click()
    expect(badge).to_be_hidden()
    item = page.get_by_test_id("mail-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Approval needed: laptop £1,800")
    expect(item).to_contain_text("Approvals <approvals@example.com>")
    assert page.url.endswith("tab=inbox")

    send(sandbox, "A second one")  # while the Inbox is open
    expect(item).to_have_count(2)
    expect(item.first).to_contain_text("A second one")  # newest first
    assert page.evaluate("window.loadedOnce") is True

    item.nth(1).click()
    expect(page.get_by_test_id("mail-subject")).to_have_text("Approval needed: laptop £1,800")
    expect(page.get_by_test_id("mail-reader")).to_contain_text("Zoë Åberg <zoe@example.com>")
    frame_element = page.get_by_test_id("mail-html")
    assert frame_element.get_attribute("sandbox") == "allow-popups allow-popups-to-escape-sandbox"
    frame = page.frame_locator("[data-testid='mail-html']")
    expect(frame.locator("#status")).to_have_text("untouched")  # the mail's script never ran

    with page.context.expect_page() as opened:
        frame.get_by_role("link", name="Approve").click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url == f"{sandbox.url}/?user=U01MAYA&channel=C05DEPLOYS"
    expect(tab.get_by_test_id("connection")).to_have_text("live")  # not sandboxed: its scripts run
    assert page.url.endswith(f"tab=inbox&mail={sandbox.mails()[0].id}")  # the Inbox stayed put
    tab.close()

    page.get_by_test_id("mail-view-text").click()
    expect(page.get_by_test_id("mail-view-text")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("mail-view-html")).to_have_attribute("aria-pressed", "false")
    expect(frame_element).to_be_hidden()
    text = page.get_by_test_id("mail-text")
    expect(text).to_contain_text("Approve:")
    expect(text.get_by_role("link")).to_have_attribute("href", f"{sandbox.url}/?user=U01MAYA")


def test_the_inbox_works_from_the_keyboard(page: Any, sandbox: SandboxServer) -> None:
    from playwright.sync_api import expect

    send(sandbox, "Keyboard mail", text="Nothing to click\n")
    page.goto(f"{sandbox.url}/?user=U01MAYA&tab=inbox")
    item = page.get_by_test_id("mail-item")
    expect(item).to_have_count(1)
    item.focus()
    page.keyboard.press("Enter")
    subject = page.get_by_test_id("mail-subject")
    expect(subject).to_have_text("Keyboard mail")
    expect(subject).to_be_focused()  # reading goes on where the mail is
    expect(page.get_by_test_id("mail-view-html")).to_have_count(0)  # no HTML part: the text shows
    expect(page.get_by_test_id("mail-text")).to_have_text("Nothing to click\n")
    expect(page.get_by_role("article", name="Keyboard mail")).to_be_visible()
    expect(page.get_by_role("list", name="Mails, newest first")).to_be_visible()

    page.get_by_test_id("inbox-clear").click()
    expect(item).to_have_count(0)
    expect(page.get_by_test_id("mail-reader")).to_contain_text("no longer in the Inbox")
    assert sandbox.mails() == []


def test_the_inbox_reads_on_a_phone(browser: Any, sandbox: SandboxServer) -> None:
    from playwright.sync_api import expect

    send(sandbox, "A rather long subject line that must wrap on a narrow phone screen, not overflow it",
         html=approval_html(sandbox))
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{sandbox.url}/?user=U01MAYA&tab=inbox")
        item = page.get_by_test_id("mail-item")
        item.tap()
        reader = page.get_by_test_id("mail-reader")
        expect(page.get_by_test_id("mail-subject")).to_be_visible()
        expect(item).to_be_hidden()  # one pane at a time
        width = page.evaluate("window.innerWidth")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width
        box = page.get_by_test_id("mail-html").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        frame = page.frame_locator("[data-testid='mail-html']")
        expect(frame.get_by_role("link", name="Approve")).to_be_visible()
        reader.get_by_test_id("mail-back").tap()
        expect(item).to_be_visible()
        expect(reader).to_be_hidden()
    finally:
        context.close()
