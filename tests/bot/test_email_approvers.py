"""Approvers outside Slack, end to end on real parts: the bot's mailer sends to an SMTP server
on loopback, the link opens the web approval page over HTTP, and only its own POST votes, with
the same follow-up as a click (the Slack message in the sandbox is edited)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.bot.links import token_hash
from slack_approvals.state.models import Status
from tests.bot.fixtures import MAYA, RILEY, BotStack
from tests.bot.mailbox import (
    ANN,
    Mailbox,
    MailStack,
    confirm,
    csrf_of,
    links,
    mail_stack,
    parts,
    running_mailbox,
)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running_mailbox() as box:
        yield box


@pytest.fixture
def mail(bot: BotStack, mailbox: Mailbox) -> Iterator[MailStack]:
    with mail_stack(bot, mailbox) as stack:
        yield stack


def test_the_mail_has_both_parts_and_both_links(mail: MailStack) -> None:
    request = mail.request(facts=[{"label": "Amount", "value": "12,500 EUR"}],
                           summary="Quarterly licence <renewal> & support")
    assert mail.mailer.run_due() == 1
    (message,) = mail.mailbox.wait_for(ANN)
    assert message["Subject"] == "Approval requested: Deploy api v2.3.1"
    assert message["From"] == "Approvals <approvals@example.com>"
    text, html = parts(message)
    for body in (text, html):
        assert "Riley Requester" in body and "12,500 EUR" in body and request.id in body
    assert "Quarterly licence <renewal> & support" in text
    # The HTML part escapes what people typed and carries no image or script.
    assert "Quarterly licence &lt;renewal&gt; &amp; support" in html
    assert not re.search(r"<(img|script)\b", html, re.I)
    found = links(message)
    assert "/approve/" in found["approve"] and "/reject/" in found["reject"]
    assert found["approve"] in html and found["reject"] in html
    assert [e.event for e in mail.bot.store.audit(request.id)][-1] == "mailed"
    # Sent once: a later sweep sends nothing again.
    assert mail.mailer.run_due() == 0
    assert len(mail.mailbox.mails_to(ANN)) == 1


def test_opening_the_link_changes_nothing(mail: MailStack) -> None:
    request = mail.request()
    approve = mail.mail_links(request)["approve"]
    for _ in range(3):  # a scanner, a preview, the person
        shown = httpx.get(approve, timeout=10)
        assert shown.status_code == 200
        assert "Approve this request?" in shown.text and f"You vote as <strong>{ANN}" in shown.text
    assert shown.headers["referrer-policy"] == "no-referrer"
    assert shown.headers["cache-control"] == "no-store"
    assert mail.bot.store.get(request.id).votes == []


def test_confirming_records_the_vote_and_edits_the_slack_message(mail: MailStack) -> None:
    request = mail.request(quorum=1)
    approve = mail.mail_links(request)["approve"]
    with httpx.Client(timeout=10) as http:
        csrf = csrf_of(http.get(approve).text)
        done = http.post(approve, data={"csrf": csrf, "reason": ""})
        assert done.status_code == 200 and "Your approval was recorded" in done.text
        # The same form sent again (a double click, the back button) changes nothing.
        twice = http.post(approve, data={"csrf": csrf, "reason": ""})
        assert twice.status_code == 409 and "This link has been used" in twice.text
    stored = mail.bot.store.get(request.id)
    assert stored.status is Status.APPROVED and stored.decision is not None
    assert stored.decision.decided_by == f"mailto:{ANN}"
    assert f"{ANN} (by mail)" in mail.bot.message_text(request)  # whom the message waits for
    # Edited as after a click: decided by the address, shown as typed (no Slack mention).
    shown = mail.bot.wait_message(request, f"by {ANN}")
    assert f"<@mailto:{ANN}>" not in shown
    assert mail.bot.decided and mail.bot.decided[-1].id == request.id

    again = httpx.get(approve, timeout=10)
    assert again.status_code == 409 and "This link has been used" in again.text
    assert len(mail.bot.store.get(request.id).votes) == 1


def test_reject_needs_a_reason(mail: MailStack) -> None:
    request = mail.request()
    reject = mail.mail_links(request)["reject"]
    with httpx.Client(timeout=10) as http:
        empty = confirm(reject, reason="  ", client=http)
        assert empty.status_code == 400 and "Say why you reject it." in empty.text
        assert mail.bot.store.get(request.id).votes == []
        done = http.post(reject, data={"csrf": csrf_of(empty.text), "reason": "not this quarter"})
    assert "Your rejection was recorded" in done.text
    decision = mail.bot.store.get(request.id).decision
    assert decision is not None and decision.reason == "not this quarter"


def test_a_post_without_the_pages_csrf_token_is_refused(mail: MailStack) -> None:
    request = mail.request()
    approve = mail.mail_links(request)["approve"]
    with httpx.Client(timeout=10) as http:
        refused = confirm(approve, csrf="forged-token", client=http)
        assert refused.status_code == 403 and "Please confirm again" in refused.text
    # No cookie at all (a cross-site form post) is refused too.
    bare = httpx.post(approve, data={"csrf": "x", "reason": ""}, timeout=10)
    assert bare.status_code == 403
    assert mail.bot.store.get(request.id).votes == []


def test_tampered_links_are_refused_and_rate_limited(mail: MailStack) -> None:
    request = mail.request()
    found = mail.mail_links(request)
    approve = found["approve"]
    swapped = approve.replace("/approve/", "/reject/")
    cut = approve[:-5]
    other = approve[:-1] + ("A" if approve[-1] != "A" else "B")
    for url in (swapped, other):
        page = httpx.get(url, timeout=10)
        assert page.status_code == 404 and "This link is not valid" in page.text
        assert "Traceback" not in page.text
    assert httpx.get(cut, timeout=10).status_code == 404
    assert httpx.post(other, data={"csrf": "x"}, timeout=10).status_code == 404
    # Five wrong tokens from this address (the fixture's limit): past it, wrong ones are refused
    # for the count, but a valid link always opens (a proxy or an office's NAT shares one
    # address among many people).
    for _ in range(2):
        httpx.get(other, timeout=10)
    limited = httpx.get(other, timeout=10)
    assert limited.status_code == 429 and "Too many wrong links" in limited.text
    assert httpx.get(cut, timeout=10).status_code == 429
    assert httpx.get(approve, timeout=10).status_code == 200
    assert confirm(approve).status_code == 200
    assert [v.user for v in mail.bot.store.get(request.id).votes] == [f"mailto:{ANN}"]


def test_closed_and_expired_requests_say_so(mail: MailStack) -> None:
    request = mail.request()
    approve = mail.mail_links(request)["approve"]
    with httpx.Client(timeout=10) as http:
        shown = http.get(approve)
        mail.bot.deps.closer.cancel(request.id, None, "no longer needed", force=True)
        late = http.post(approve, data={"csrf": csrf_of(shown.text), "reason": ""})
    assert late.status_code == 409 and "This request is closed" in late.text
    assert "This request is closed" in httpx.get(approve, timeout=10).text

    short = mail.request(title="Short one", timeout=timedelta(seconds=1))
    approve = mail.mail_links(short)["approve"]
    time.sleep(1.1)
    expired = httpx.get(approve, timeout=10)
    assert expired.status_code == 410 and "This request has expired" in expired.text


def test_an_address_of_a_slack_user_votes_as_that_user(mail: MailStack) -> None:
    # maya@sandbox.test is Maya's address in the sandbox workspace (users.lookupByEmail).
    request = mail.request(approvers=[MAYA, "U02FRANK"], email_approvers=["maya@sandbox.test"],
                           quorum=2)
    approve = mail.mail_links(request, "maya@sandbox.test")["approve"]
    with httpx.Client(timeout=10) as http:
        shown = http.get(approve)
        assert "which is Maya Manager in Slack" in shown.text
        mail.bot.click(MAYA, request, APPROVE_ACTION)
        mail.bot.wait_message(request, "1 of 2")
        # The page opened before her click still posts: the vote script refuses it.
        second = http.post(approve, data={"csrf": csrf_of(shown.text), "reason": ""})
    assert second.status_code == 409 and "You have voted already" in second.text
    # Opened now, the link says so at once.
    again = httpx.get(approve, timeout=10)
    assert again.status_code == 409 and "You have voted already" in again.text
    assert [v.user for v in mail.bot.store.get(request.id).votes] == [MAYA]


def test_the_requesters_address_may_not_approve(mail: MailStack) -> None:
    request = mail.request(email_approvers=["riley@sandbox.test"])
    approve = mail.mail_links(request, "riley@sandbox.test")["approve"]
    refused = confirm(approve)
    assert "You cannot approve your own request" in refused.text
    assert mail.bot.store.get(request.id).spec.requester == RILEY
    assert mail.bot.store.get(request.id).votes == []


def test_a_busy_mail_server_is_tried_again_and_a_refusal_is_final(mail: MailStack) -> None:
    mail.mailbox.handler.refusals = ["421 4.3.2 try again later"]
    request = mail.request()
    assert mail.mailer.run_due() == 1
    assert mail.mailbox.handler.attempts == 2 and len(mail.mailbox.mails_to(ANN)) == 1

    mail.mailbox.handler.refusals = ["550 5.1.1 no such user"]
    refused = mail.request(title="Refused one", email_approvers=["bob@example.com"])
    assert mail.mailer.run_due() == 0
    failed = [e for e in mail.bot.store.audit(refused.id) if e.event == "mail_failed"]
    assert len(failed) == 1 and failed[0].model_extra["final"] is True  # type: ignore[index]
    assert mail.mailer.run_due() == 0 and mail.mailbox.handler.attempts == 3
    assert request.id != refused.id


def test_a_link_confirmed_after_a_tier_lowered_the_quorum_shows_the_decision(
        mail: MailStack) -> None:
    """Maya's approval met the quorum of 1 that the tier brought at 1 s: confirming the mailed
    link then closes the request approved (as any vote would), says the vote was not recorded,
    leaves the link unused and edits the Slack message as a click does."""
    request = mail.request(quorum=2, escalate=[{"after": timedelta(seconds=1),
                                                "to": [RILEY], "quorum": 1}])
    approve = mail.mail_links(request)["approve"]
    mail.bot.click(MAYA, request, APPROVE_ACTION)
    mail.bot.wait_message(request, "1 of 2")
    time.sleep(1.2)  # past the tier's time, before any sweep announces it
    done = confirm(approve)
    assert done.status_code == 409 and "This request is already approved" in done.text
    stored = mail.bot.store.get(request.id)
    assert stored.status is Status.APPROVED
    assert [v.user for v in stored.votes] == [MAYA]
    record = mail.bot.store.link(request.id, token_hash(approve.rstrip("/").rsplit("/", 1)[-1]))
    assert record is not None and not record.get("used_by")
    mail.bot.wait_message(request, "Approved")
