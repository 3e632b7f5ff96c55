"""An email approver in Chromium: the link from the mail opens the approval page, which shows
whom it votes as and records nothing until its button is pressed; keyboard only, on a phone's
screen; reject needs a reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from slack_approvals.approvals.serving import ServerThread
from slack_approvals.bot.approval_page import ApprovalPages, page_app
from slack_approvals.bot.client import make_client
from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.bot.mailer import Mailer, SlackDirectory, SmtpTarget, SmtpTransport
from slack_approvals.state.models import Status
from tests.bot.fixtures import BOT_TOKEN, MAYA, BotStack
from tests.bot.mailbox import ANN, MailStack, mail_stack, running_mailbox

pytestmark = pytest.mark.browser


@pytest.fixture
def mail(bot: BotStack) -> Iterator[MailStack]:
    with running_mailbox() as box, mail_stack(bot, box) as stack:
        yield stack


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_approve_from_the_mail_by_keyboard_on_a_phone(phone: Any, mail: MailStack) -> None:
    request = mail.request(title="Renew the support contract")
    approve = mail.mail_links(request)["approve"]
    phone.goto(approve)
    assert phone.get_by_role("heading", name="Approve this request?").is_visible()
    assert ANN in phone.get_by_text("You vote as").inner_text()
    assert mail.bot.store.get(request.id).votes == []  # the page view recorded nothing
    # Nothing wider than the screen: no sideways scrolling on a phone.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    note = phone.get_by_label("A note for the requester (optional)")
    note.focus()
    note.type("fine by me")
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.textContent") == "Confirm: approve"
    phone.keyboard.press("Enter")
    phone.get_by_role("heading", name="Your approval was recorded").wait_for()
    stored = mail.bot.store.get(request.id)
    assert stored.status is Status.APPROVED and stored.votes[0].user == f"mailto:{ANN}"
    mail.bot.wait_message(stored, "Approved")


def test_reject_with_a_reason(page: Any, mail: MailStack) -> None:
    request = mail.request(title="Open the firewall port")
    page.goto(mail.mail_links(request)["reject"])
    reason = page.get_by_label("Why do you reject it? (required)")
    assert reason.get_attribute("required") is not None
    page.get_by_role("button", name="Confirm: reject").click()
    # The browser keeps an empty reason from being sent.
    assert page.get_by_role("heading", name="Reject this request?").is_visible()
    assert mail.bot.store.get(request.id).votes == []
    reason.fill("port 22 stays closed")
    page.get_by_role("button", name="Confirm: reject").click()
    page.get_by_role("heading", name="Your rejection was recorded").wait_for()
    decision = mail.bot.store.get(request.id).decision
    assert decision is not None and decision.reason == "port 22 stays closed"


def test_a_used_link_says_so(page: Any, mail: MailStack) -> None:
    request = mail.request(title="Rotate the keys")
    approve = mail.mail_links(request)["approve"]
    page.goto(approve)
    page.get_by_role("button", name="Confirm: approve").click()
    page.get_by_role("heading", name="Your approval was recorded").wait_for()
    page.go_back()
    page.reload()
    assert page.get_by_role("heading", name="This link has been used").is_visible()
    assert page.get_by_role("button").count() == 0
    assert len(mail.bot.store.get(request.id).votes) == 1




def test_from_the_sandbox_inbox_as_in_the_demo(page: Any, bot: BotStack) -> None:
    """The demo's path: the bot mails the sandbox's catcher, the newcomer opens the mail in the
    page's Inbox and its Approve link opens the approval page in a new tab."""
    directory = SlackDirectory(make_client(BOT_TOKEN, bot.sandbox.api_url))
    pages = ApprovalPages(bot.deps, secure_cookie=False, name_of=directory.name_of)
    target = SmtpTarget.from_url(bot.sandbox.smtp_url)
    with ServerThread(page_app(pages)) as server:
        mailer = Mailer(bot.store, SmtpTransport(target), "Approvals <approvals@sandbox.test>",
                        server.url, directory)
        request = bot.post(title="Ship the audit report", approvers=[MAYA],
                           email_approvers=["auditor@example.com"], quorum=2)
        bot.click(MAYA, request, APPROVE_ACTION)
        assert mailer.run_due() == 1
        bot.sandbox.wait_for_mail("auditor@example.com", subject="Ship the audit report")
        page.goto(f"{bot.sandbox.url}/?user={MAYA}&tab=inbox")
        page.get_by_test_id("mail-item").filter(has_text="Ship the audit report").first.click()
        with page.context.expect_page() as opened:
            page.frame_locator("[data-testid='mail-html']").get_by_role(
                "link", name="Approve").click()
        approval = opened.value
        approval.get_by_role("button", name="Confirm: approve").click()
        approval.get_by_role("heading", name="Your approval was recorded").wait_for()
        assert "The request is now approved." in approval.content()
    stored = bot.store.get(request.id)
    assert stored.status is Status.APPROVED
    assert [v.user for v in stored.votes] == [MAYA, "mailto:auditor@example.com"]
