"""Mail to email approvers: one mail per approver with Approve and Reject links, sent by the bot.

    SmtpTarget.from_url(url)    smtp://user:pass@host:587 (STARTTLS when offered), smtps:// (TLS)
    SmtpTransport.send(msg)     one SMTP session; raises MailFailed(final=...) on failure
    compose(...)                the mail: a plain-text part and an HTML part (no images, no script)
    Mailer.run_due()            claim the due requests from schedule("mail") and send their mails

Only the bot sends mail, so the SMTP credentials live in the bot's process alone (not in every
flow run or CLI call that opens a request). Any number of bots may share one Redis: each mail
is taken for a lease by one script (state/lua/mail.lua) before it is sent, and recorded as sent
after, so each goes out once unless a bot dies between SMTP's answer and that record.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import jinja2
from redis.exceptions import RedisError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from slack_approvals.core.errors import ApprovalsError
from slack_approvals.state.errors import RequestNotFound
from slack_approvals.state.models import EMAIL_PATTERN, USER_ID_PATTERN, ApprovalRequest, Outcome
from slack_approvals.state.store import ApprovalStore

from .links import link_url, new_token, token_hash

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
CLAIM_LIMIT = 100
# Tries within one claim (waits between them), then the request is claimed again later.
SEND_TRIES = 3
SEND_PAUSES = (0.5, 2.0)
RETRY_LATER = timedelta(seconds=60)
SEND_WORKERS = 8
SMTP_TIMEOUT = 20.0


class MailFailed(ApprovalsError):
    """A mail was not accepted. `final`: the server refused it for good (no such mailbox);
    otherwise a later try may get through (server busy, down, unreachable)."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        """Raises ValueError naming what is wrong, never echoing the password."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("must start with smtp:// (STARTTLS when offered) or smtps:// (TLS)")
        try:
            port = parts.port
        except ValueError as e:
            raise ValueError("has a port that is not a number") from e
        if not parts.hostname:
            raise ValueError("names no host (smtp://user:pass@host:587)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("takes no path or query (smtp://user:pass@host:587)")
        implicit = parts.scheme == "smtps"
        return cls(host=parts.hostname, port=port or (465 if implicit else 587),
                   implicit_tls=implicit,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None)


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand the message to the mail server; raise MailFailed when it is not accepted."""


@dataclass
class SmtpTransport:
    target: SmtpTarget
    # The TLS context checks the server's certificate; tests pass one trusting their own CA.
    tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context
    timeout: float = SMTP_TIMEOUT

    def _connect(self) -> smtplib.SMTP:
        if self.target.implicit_tls:
            return smtplib.SMTP_SSL(self.target.host, self.target.port, timeout=self.timeout,
                                    context=self.tls_context())
        return smtplib.SMTP(self.target.host, self.target.port, timeout=self.timeout)

    def send(self, message: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                smtp.ehlo()
                if not self.target.implicit_tls and smtp.has_extn("starttls"):
                    smtp.starttls(context=self.tls_context())
                    smtp.ehlo()
                if self.target.username is not None:
                    smtp.login(self.target.username, self.target.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            raise MailFailed(f"recipient refused ({', '.join(map(str, codes))})",
                             final=all(500 <= c < 600 for c in codes)) from e
        except smtplib.SMTPNotSupportedError as e:
            raise MailFailed("the SMTP server offers no login (AUTH) on this connection",
                             final=False) from e
        except smtplib.SMTPAuthenticationError as e:
            # The settings are wrong, not the mail: retried once someone mends them.
            raise MailFailed(f"SMTP login refused ({e.smtp_code})", final=False) from e
        except smtplib.SMTPResponseException as e:
            raise MailFailed(f"SMTP server answered {e.smtp_code}",
                             final=500 <= e.smtp_code < 600) from e
        except (smtplib.SMTPException, OSError) as e:  # disconnected, refused, timed out, TLS
            raise MailFailed(f"SMTP server unreachable ({type(e).__name__})", final=False) from e


_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                          autoescape=jinja2.select_autoescape(["html"]),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def templates() -> jinja2.Environment:
    """The bot's templates; `.html` ones escape every value."""
    return _env


def _one_line(text: str) -> str:
    """For a header: no line breaks or control characters, which could fold in new headers."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def compose(request: ApprovalRequest, address: str, sender: str, links: dict[Outcome, str],
            requester_name: str | None) -> EmailMessage:
    """Plain text first, HTML second: clients that show HTML pick it, others read the text."""
    spec = request.spec
    values = {"request": request, "spec": spec, "address": address, "requester": requester_name,
              "deadline": request.deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "approve_url": links[Outcome.APPROVE], "reject_url": links[Outcome.REJECT]}
    message = EmailMessage()
    message["Subject"] = _one_line(f"Approval requested: {spec.title}")[:200]
    message["From"] = sender
    message["To"] = address
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    # Mail robots should not answer an approval request (out-of-office, vacation).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(templates().get_template("mail.txt").render(values))
    message.add_alternative(templates().get_template("mail.html").render(values), subtype="html")
    return message


class Directory(Protocol):
    """What the mailer asks Slack about people."""

    def user_by_email(self, address: str) -> str | None:
        """The Slack user id of this address in the workspace, or None."""

    def name_of(self, user: str) -> str | None:
        """A person's name to show in the mail, or None."""


@dataclass
class SlackDirectory:
    """users.lookupByEmail (scope users:read.email) and users.info, through the bot's client."""

    client: WebClient

    def user_by_email(self, address: str) -> str | None:
        try:
            response = self.client.users_lookupByEmail(email=address)
        except SlackApiError as e:
            if e.response.get("error") == "users_not_found":
                return None
            raise
        user = (response.get("user") or {}).get("id")
        return user if isinstance(user, str) and _matches(USER_ID_PATTERN, user) else None

    def name_of(self, user: str) -> str | None:
        try:
            response = self.client.users_info(user=user)
        except (SlackApiError, OSError) as e:  # the id will do
            log.info("no name for %s: %s", user,
                     e.response.get("error") if isinstance(e, SlackApiError) else type(e).__name__)
            return None
        found = response.get("user") or {}
        profile = found.get("profile") or {}
        name = profile.get("real_name") or found.get("real_name") or found.get("name")
        return str(name) if name else None


def _matches(pattern: str, text: str) -> bool:
    return re.match(pattern, text) is not None


def check_sender(address: str) -> str:
    """APPROVALS_MAIL_FROM: `ann@example.com` or `Approvals <ann@example.com>`."""
    name, _, rest = address.rpartition("<")
    bare = rest.rstrip(">").strip() if rest.endswith(">") else address.strip()
    if not _matches(EMAIL_PATTERN, bare) or any(c in address for c in "\r\n"):
        raise ValueError("must be a mail address, e.g. approvals@example.com or "
                         "'Approvals <approvals@example.com>'")
    return formataddr((name.strip().strip('"'), bare)) if name.strip() else bare


@dataclass
class Mailer:
    store: ApprovalStore
    transport: Transport
    sender: str
    public_url: str
    directory: Directory
    pause: Callable[[float], None] = time.sleep
    workers: int = SEND_WORKERS

    def run_due(self, limit: int = CLAIM_LIMIT) -> int:
        """Send the mails of every request this bot claims, `workers` requests at a time (most
        of a mail is waiting on the mail server); returns how many went out."""
        sent = 0
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="mail") as pool:
            while True:
                claimed = self.store.claim("mail", limit)
                sent += sum(pool.map(self._send_logged, claimed))
                if len(claimed) < limit:
                    return sent

    def _send_logged(self, request_id: str) -> int:
        try:
            return self.send_for(request_id)
        except RequestNotFound:
            self.store.mail_next(request_id, None)
        except RedisError as e:
            log.warning("mail for %s: Redis failed (%s); the lease brings it back", request_id, e)
        except Exception:
            # One request's trouble (Slack, a template) must not hold back the others' mail;
            # its lease brings it back.
            log.exception("mail for %s failed", request_id)
        return 0

    def send_for(self, request_id: str) -> int:
        """Each email approver's mail not sent yet; the request is claimed again later while a
        mail is left that a retry may get through."""
        request = self.store.get(request_id)
        sent = 0
        again = False
        for address in request.spec.email_approvers:
            outcome = self._send_one(request, address)
            sent += outcome == "sent"
            again = again or outcome in ("busy", "retry")
        self.store.mail_next(request_id, datetime.now(UTC) + RETRY_LATER if again else None)
        return sent

    def _send_one(self, request: ApprovalRequest, address: str) -> str:
        slack_user = self._slack_user(address)
        tokens = {Outcome.APPROVE: new_token(), Outcome.REJECT: new_token()}
        status, _ = self.store.mail_begin(
            request.id, address, slack_user,
            (token_hash(tokens[Outcome.APPROVE]), token_hash(tokens[Outcome.REJECT])))
        if status != "go":
            return status
        links = {vote: link_url(self.public_url, request.id, vote, token)
                 for vote, token in tokens.items()}
        requester = request.spec.requester
        name = self.directory.name_of(requester) if requester else None
        message = compose(request, address, self.sender, links, name or requester)
        for attempt in range(SEND_TRIES):
            try:
                self.transport.send(message)
            except MailFailed as e:
                last_try = e.final or attempt == SEND_TRIES - 1
                if last_try:
                    log.warning("mail to an approver of %s failed: %s", request.id, e)
                    self.store.mail_end(request.id, address, str(e), final=e.final)
                    return "failed" if e.final else "retry"
                self.pause(SEND_PAUSES[min(attempt, len(SEND_PAUSES) - 1)])
                continue
            self.store.mail_end(request.id, address)
            log.info("mailed an approver of %s", request.id)
            return "sent"
        return "retry"  # pragma: no cover - the loop always returns

    def _slack_user(self, address: str) -> str | None:
        """The Slack user behind the address, so that person votes once by either path; Slack
        being away leaves the address a voter of its own rather than holding the mail."""
        try:
            return self.directory.user_by_email(address)
        except (SlackApiError, OSError) as e:
            log.warning("users.lookupByEmail failed (%s); the address votes as itself",
                        e.response.get("error") if isinstance(e, SlackApiError) else type(e).__name__)
            return None
