"""A real Prefect flow waits at a gate with one Slack approver and one email approver at quorum
2: the Slack vote alone leaves it waiting, the mailed link confirmed on the web page resumes it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from prefect import flow

from slack_approvals.approvals.serving import ServerThread
from slack_approvals.bot.approval_page import ApprovalPages, page_app
from slack_approvals.bot.client import make_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.mailer import Mailer, SlackDirectory, SmtpTarget, SmtpTransport
from slack_approvals.bot.messenger import Messenger
from slack_approvals.flows.gates import approval_gate
from slack_approvals.sandbox.config import DEFAULT_BOT_TOKEN
from slack_approvals.state import Decision, Status
from tests.bot.mailbox import ANN, Mailbox, confirm, links, running_mailbox

from .support import MAYA, FlowEnv, run


@flow(name="pay-the-auditors")
async def pay_the_auditors() -> Decision:
    return await approval_gate("pay", "Pay the auditors", approvers=[MAYA], email_approvers=[ANN],
                               quorum=2)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running_mailbox() as box:
        yield box


def test_a_gate_counts_a_slack_and_an_email_vote(real_env: FlowEnv, mailbox: Mailbox) -> None:
    env = real_env
    client = make_client(DEFAULT_BOT_TOKEN, env.sb.api_url)
    deps = BotDeps(store=env.store, messenger=Messenger(client, env.store),
                   groups=GroupResolver(client))
    pages = ApprovalPages(deps, secure_cookie=False)
    stop = threading.Event()
    confirmed: list[int] = []

    with ServerThread(page_app(pages)) as server:
        mailer = Mailer(env.store, SmtpTransport(SmtpTarget(mailbox.host, mailbox.port, False)),
                        "approvals@example.com", server.url, SlackDirectory(client))

        def person_with_mail() -> None:
            """Maya votes in Slack at once; Ann's mail goes out, and she approves from it."""
            while not stop.is_set() and not mailbox.mails_to(ANN):
                mailer.run_due()
                stop.wait(0.05)
            if stop.is_set():
                return
            (mail,) = mailbox.mails_to(ANN)
            request_id = links(mail)["approve"].split("/")[-3]
            # Ann's approval comes second: the run is still waiting with Maya's alone.
            while not stop.is_set() and not env.store.get(request_id).votes:
                stop.wait(0.05)
            confirmed.append(confirm(links(mail)["approve"]).status_code)

        env.approvers.on("Pay the auditors", MAYA)
        thread = threading.Thread(target=person_with_mail, daemon=True)
        thread.start()
        try:
            decision = run(pay_the_auditors())
        finally:
            stop.set()
            thread.join(timeout=10)
        deps.background.shutdown(wait=True)

    assert confirmed == [200]
    assert (decision.status, decision.approved) == (Status.APPROVED, True)
    assert [v.user for v in decision.votes] == [MAYA, f"mailto:{ANN}"]
    assert decision.decided_by == f"mailto:{ANN}"
    events = env.audit_events(decision.request_id)
    # Maya may vote before or after the mail goes out; the rest is in order.
    assert events[:2] == ["created", "posted"] and events[-1] == "approved"
    assert sorted(events[2:-1]) == ["mailed", "vote", "vote"]
