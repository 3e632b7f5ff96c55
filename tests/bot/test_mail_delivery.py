"""How the bot's mail holds up when things go wrong, on real parts (aiosmtpd on loopback, the
sandbox over HTTP, a real Redis): Slack not saying who an address is, a mail server that is
down, refuses the login or never answers, a flood of wrong links, and the page server's own
health."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from slack_approvals.approvals.serving import ServerThread, free_port
from slack_approvals.bot.approval_page import ApprovalPages, page_app
from slack_approvals.bot.client import make_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.bot.links import new_token
from slack_approvals.bot.mailer import (
    Mailer,
    SlackDirectory,
    SmtpTarget,
    SmtpTransport,
    compose,
)
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.service import page_config
from slack_approvals.bot.sweeper import Sweeper
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state.models import ApprovalRequest, Outcome
from slack_approvals.state.store import ApprovalStore
from tests.bot.fixtures import BOT_TOKEN, MAYA, BotStack
from tests.bot.mailbox import (
    ANN,
    Mailbox,
    MailStack,
    confirm,
    links,
    mail_stack,
    parts,
    running_mailbox,
)

MAYA_MAIL = "maya@sandbox.test"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running_mailbox() as box:
        yield box


@pytest.fixture
def mail(bot: BotStack, mailbox: Mailbox) -> Iterator[MailStack]:
    with mail_stack(bot, mailbox) as stack:
        yield stack


def fault(sandbox: SandboxServer, **spec: object) -> dict[str, int]:
    """Queue a Web API failure through the sandbox's HTTP control endpoint."""
    answer = httpx.post(sandbox.url + "/sandbox/faults", json=spec, timeout=10)
    assert answer.status_code == 200, answer.text
    pending: dict[str, int] = answer.json()["pending"]
    return pending


def pending_faults(sandbox: SandboxServer) -> dict[str, int]:
    found: dict[str, int] = httpx.get(sandbox.url + "/sandbox/faults", timeout=10).json()["pending"]
    return found


def next_try(store: ApprovalStore, request: ApprovalRequest) -> timedelta | None:
    """How long from now until the request's mails are claimed again (None: never)."""
    score = store.client.zscore(store.plans.keys.schedule("mail"), request.id)
    if score is None:
        return None
    return datetime.fromtimestamp(float(score) / 1000, tz=UTC) - datetime.now(UTC)


def failures(store: ApprovalStore, request: ApprovalRequest) -> list[str]:
    return [str(e.reason) for e in store.audit(request.id) if e.event == "mail_failed"]


@pytest.mark.parametrize("broken", [
    {"status": 200, "error": "missing_scope"},  # an app installed before users:read.email
    {"status": 429, "retry_after": 0, "count": 4},  # rate limited past the client's retries
])
def test_a_failed_lookup_holds_the_mail_until_slack_says_who_it_is(
        mail: MailStack, broken: dict[str, object]) -> None:
    request = mail.request(approvers=[MAYA, "U02FRANK"], email_approvers=[MAYA_MAIL], quorum=2)
    fault(mail.bot.sandbox, method="users.lookupByEmail", **broken)
    assert mail.mailer.run_due() == 0
    # Nothing went out: a mail now would make Maya a second voter by her own address.
    assert mail.mailbox.mails_to(MAYA_MAIL) == []
    stored = mail.bot.store.get(request.id)
    assert stored.aliases == {} and stored.mailed == frozenset()
    assert "users.lookupByEmail failed" in failures(mail.bot.store, request)[0]
    wait = next_try(mail.bot.store, request)
    assert wait is not None and wait > timedelta(seconds=50)

    # Slack answers again: the mail goes out, the address matched to Maya.
    assert mail.mailer.send_for(request.id) == 1
    assert mail.bot.store.get(request.id).aliases == {f"mailto:{MAYA_MAIL}": MAYA}
    approve = links(mail.mailbox.wait_for(MAYA_MAIL)[0])["approve"]
    mail.bot.click(MAYA, request, APPROVE_ACTION)
    mail.bot.wait_message(request, "1 of 2")
    again = httpx.get(approve, timeout=10)
    assert again.status_code == 409 and "You have voted already" in again.text
    assert [v.user for v in mail.bot.store.get(request.id).votes] == [MAYA]


def test_a_mail_sent_is_not_looked_up_again(mail: MailStack) -> None:
    request = mail.request()
    assert mail.mailer.run_due() == 1
    fault(mail.bot.sandbox, method="users.lookupByEmail", status=200, error="missing_scope")
    assert mail.mailer.send_for(request.id) == 0
    # The fault is still queued: no lookup was made for a mail already sent.
    assert pending_faults(mail.bot.sandbox) == {"users.lookupByEmail": 1}
    assert failures(mail.bot.store, request) == []


def test_the_requesters_tagged_address_counts_as_the_requester(mail: MailStack) -> None:
    # Slack knows riley@sandbox.test, not the +tag form; both reach the requester's mailbox.
    request = mail.request(email_approvers=["Riley+Ops@sandbox.test"])
    approve = mail.mail_links(request, "riley+ops@sandbox.test")["approve"]
    refused = confirm(approve)
    assert "You cannot approve your own request" in refused.text
    assert mail.bot.store.get(request.id).votes == []


def test_failed_sends_back_off_and_are_audited_once(mail: MailStack) -> None:
    mail.mailbox.handler.refusals = ["421 4.3.2 try again later"] * 9
    request = mail.request()
    waits = []
    for _ in range(3):
        assert mail.mailer.send_for(request.id) == 0
        wait = next_try(mail.bot.store, request)
        assert wait is not None
        waits.append(wait)
    assert mail.mailbox.handler.attempts == 9
    # 60 s, then 120 s, then 240 s: doubling, each a little less for the time the test took.
    assert [round(w.total_seconds() / 10) * 10 for w in waits] == [60, 120, 240]
    assert failures(mail.bot.store, request) == ["SMTP server answered 421"]
    assert mail.bot.store.get(request.id).mailed == frozenset()


class RefusingLogin:
    """A mail server whose password the bot has wrong."""

    def __init__(self) -> None:
        self.logins = 0
        self.mails = 0

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: object) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins += 1
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mails += 1
        return "250 OK"


def test_a_wrong_password_pauses_all_mail_and_gives_up_on_no_one(
        bot: BotStack, caplog: pytest.LogCaptureFixture) -> None:
    server = RefusingLogin()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port, authenticator=server,
                            auth_require_tls=False)
    controller.start()
    try:
        mailer = Mailer(bot.store, SmtpTransport(SmtpTarget("127.0.0.1", port, False, "bot",
                                                            "wrong")),
                        "approvals@example.com", "http://127.0.0.1:9",
                        SlackDirectory(make_client(BOT_TOKEN, bot.sandbox.api_url)),
                        pause=lambda _: None, workers=1)
        requests = [bot.post(title=f"Deploy {n}", approvers=[MAYA],
                             email_approvers=[ANN, "bob@example.com"]) for n in range(2)]
        with caplog.at_level(logging.ERROR, logger="slack_approvals.bot.mailer"):
            assert mailer.run_due() == 0
    finally:
        controller.stop()
    # One login in all (smtplib tries each of the two mechanisms offered), not three per
    # address: a locked account helps no one.
    assert server.logins == 2 and server.mails == 0
    assert any("refuses this bot" in r.getMessage() for r in caplog.records)
    for request in requests:
        assert bot.store.get(request.id).mailed == frozenset()  # no one given up on
        wait = next_try(bot.store, request)
        assert wait is not None and wait > timedelta(seconds=50)


def test_the_sweep_leaves_mail_to_a_daemon_thread_of_its_own(mail: MailStack) -> None:
    sweeper = Sweeper(mail.bot.deps, 0.05, mailer=mail.mailer)
    mail.request()
    sweeper.sweep_once()
    assert mail.mailbox.mails_to(ANN) == []  # the sweep itself sends nothing
    sweeper.start()
    try:
        mail.mailbox.wait_for(ANN)
        (thread,) = [t for t in threading.enumerate() if t.name == "approvals-mailer"]
        assert thread.daemon
    finally:
        sweeper.stop()
    assert not thread.is_alive()


def test_a_silent_mail_server_holds_no_thread_the_process_waits_for(mail: MailStack) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections wait in the backlog: no greeting ever comes
    mailer = Mailer(mail.bot.store, SmtpTransport(SmtpTarget(*silent.getsockname(), False),
                                                  timeout=60),
                    "approvals@example.com", mail.page_url, mail.mailer.directory,
                    pause=lambda _: None)
    mail.request()
    runner = threading.Thread(target=mailer.run_due, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 15
        senders: list[threading.Thread] = []
        while not senders and time.monotonic() < deadline:
            senders = [t for t in threading.enumerate() if t.name.startswith("mail")]
            time.sleep(0.02)
        assert senders, "no sending thread started"
        # Daemon threads only: on SIGTERM the process exits whatever the mail server does.
        assert all(t.daemon for t in senders)
    finally:
        mailer.stopping.set()
        silent.close()
        runner.join(timeout=60)
    assert not runner.is_alive()


def test_the_text_part_puts_the_real_links_first_and_quotes_the_requester(
        mail: MailStack) -> None:
    request = mail.request(summary="Approve here instead:\nhttps://evil.example/approve/now",
                           facts=[{"label": "Pay to", "value": "https://evil.example/x"}])
    own = {vote: f"https://approvals.example.com/approval/{request.id}/{vote.value}/{new_token()}"
           for vote in Outcome}
    text, html = parts(compose(request, ANN, "approvals@example.com", own, "Riley"))
    assert text.index(own[Outcome.APPROVE]) < text.index(own[Outcome.REJECT]) < text.index("evil")
    assert "approvals.example.com" in text.split("evil")[0]
    for line in text.splitlines():
        if "evil" in line or "Approve here" in line:
            assert line.startswith("> "), line
    assert "approvals.example.com" in html


def test_a_valid_link_opens_behind_a_proxy_whatever_others_sent(bot: BotStack) -> None:
    """X-Forwarded-For names the client only when the proxy is trusted."""
    pages = ApprovalPages(bot.deps, secure_cookie=False, miss_limit=2)
    wrong = f"/approval/{'a' * 16}/approve/{'A' * 43}"
    for trusted, separate in (("127.0.0.1", True), ("10.0.0.1", False)):
        bot.store.client.flushdb()
        port = free_port()
        server = uvicorn.Server(page_config(page_app(pages), "127.0.0.1", port, trusted))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.01)
            base = f"http://127.0.0.1:{port}"
            for _ in range(3):
                last = httpx.get(base + wrong, headers={"X-Forwarded-For": "203.0.113.7"})
            assert last.status_code == 429
            other = httpx.get(base + wrong, headers={"X-Forwarded-For": "203.0.113.8"})
            # Trusted: the other client is counted apart; untrusted: the header is ignored.
            assert other.status_code == (404 if separate else 429)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def test_the_page_servers_health_follows_redis(sandbox: SandboxServer) -> None:
    client = make_client(BOT_TOKEN, sandbox.api_url)
    store = ApprovalStore(redis.Redis(port=free_port(), socket_timeout=1))
    deps = BotDeps(store=store, messenger=Messenger(client, store), groups=GroupResolver(client))
    with ServerThread(page_app(ApprovalPages(deps))) as server:
        response = httpx.get(f"{server.url}/healthz", timeout=10)
    assert response.status_code == 503 and response.json() == {"ok": False}
    # Its log lines go through the process's handlers (APPROVALS_LOG_FORMAT=json too).
    assert page_config(page_app(ApprovalPages(deps)), "127.0.0.1", 1, "127.0.0.1").log_config is None

