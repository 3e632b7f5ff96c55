"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, and can be told to
answer the next DATA commands with an error, as a busy or refusing mail server would."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from slack_approvals.approvals.serving import ServerThread
from slack_approvals.bot.approval_page import ApprovalPages, page_app
from slack_approvals.bot.client import make_client
from slack_approvals.bot.mailer import Mailer, SlackDirectory, SmtpTarget, SmtpTransport
from slack_approvals.state.models import ApprovalRequest
from tests.bot.fixtures import BOT_TOKEN, MAYA, BotStack
from tests.conftest import free_port

ANN = "ann@example.com"

LINK = re.compile(r"https?://[^\s\"<>]+/approval/[a-z0-9]{16}/(approve|reject)/[A-Za-z0-9_-]{43}")


@dataclass
class Handler:
    received: list[EmailMessage] = field(default_factory=list)
    # Answers for the next DATA commands, e.g. "421 try later" or "550 no such user".
    refusals: list[str] = field(default_factory=list)
    attempts: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.arrived:
            self.attempts += 1
            if self.refusals:
                return self.refusals.pop(0)
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(message)
            self.arrived.notify_all()
        return "250 OK"


@dataclass
class Mailbox:
    handler: Handler
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.handler.received if address in str(m["To"])]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15) -> list[EmailMessage]:
        end = time.monotonic() + timeout
        with self.handler.arrived:
            while len(self.mails_to(address)) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail to {address} within {timeout} s")
                self.handler.arrived.wait(left)
        return self.mails_to(address)


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())  # type: ignore[attr-defined]


def links(message: EmailMessage) -> dict[str, str]:
    """The approve and reject links of a mail, as its plain-text part gives them."""
    text, _ = parts(message)
    found = {match.group(1): match.group(0) for match in LINK.finditer(text)}
    assert set(found) == {"approve", "reject"}, text
    return found


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def confirm(url: str, reason: str = "", csrf: str | None = None,
            client: httpx.Client | None = None) -> httpx.Response:
    """Open the link and press the page's button, as a person with a browser would."""
    own = client is None
    http = client or httpx.Client(timeout=10)
    try:
        shown = http.get(url)
        token = csrf if csrf is not None else csrf_of(shown.text)
        return http.post(url, data={"csrf": token, "reason": reason})
    finally:
        if own:
            http.close()


@contextmanager
def running_mailbox() -> Iterator[Mailbox]:
    """Each test module that needs one makes it a fixture of its own."""
    handler = Handler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Mailbox(handler, "127.0.0.1", port)
    finally:
        controller.stop()


@dataclass
class MailStack:
    """The bot's mailer and approval page (served alone, as in Socket Mode) over the bot
    fixture's store, Slack client and follow-up path."""

    bot: BotStack
    mailbox: Mailbox
    mailer: Mailer
    page_url: str

    def request(self, **fields: object) -> ApprovalRequest:
        return self.bot.post(**{"approvers": [MAYA], "email_approvers": [ANN], **fields})

    def mail_links(self, request: ApprovalRequest, address: str = ANN) -> dict[str, str]:
        self.mailer.run_due()
        mails = [m for m in self.mailbox.wait_for(address)
                 if request.spec.title in str(m["Subject"])]
        return links(mails[-1])


@contextmanager
def mail_stack(bot: BotStack, mailbox: Mailbox, miss_limit: int = 5) -> Iterator[MailStack]:
    directory = SlackDirectory(make_client(BOT_TOKEN, bot.sandbox.api_url))
    pages = ApprovalPages(bot.deps, secure_cookie=False, name_of=directory.name_of,
                          miss_limit=miss_limit)
    with ServerThread(page_app(pages)) as server:
        mailer = Mailer(bot.store, SmtpTransport(SmtpTarget(mailbox.host, mailbox.port, False)),
                        "Approvals <approvals@example.com>", server.url, directory,
                        pause=lambda _: None)
        yield MailStack(bot, mailbox, mailer, server.url)
