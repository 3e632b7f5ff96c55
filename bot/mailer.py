"""Mail to email approvers: one mail per approver with Approve and Reject links, sent by the bot.

    SmtpTarget.from_url(url)    smtp://user:pass@host:587 (STARTTLS required, but for a loopback
                                host or ?tls=none), smtps:// (TLS from the first byte)
    SmtpTransport.send(msg)     one SMTP session; raises MailFailed(final=..., server=...)
    compose(...)                the mail: a plain-text part and an HTML part (no images, no script)
    Mailer.run_due()            claim the due requests from schedule("mail") and send their mails
    Mailer.run(stop, interval)  the same on a thread of its own, so a slow mail server never
                                holds back the sweeper's deadlines, reminders and resumes

Only the bot sends mail, so the SMTP credentials live in the bot's process alone (not in every
flow run or CLI call that opens a request). Any number of bots may share one Redis: each mail
is taken for a lease (longer than the slowest send can take) by one script (state/lua/mail.lua)
before it is sent, and recorded as sent after, so each goes out once unless a bot dies between
SMTP's answer and that record.

An address is looked up in Slack before its first mail, so that a Slack user named by address
too votes once. Only Slack's "no such user" makes the address a voter of its own; any other
answer (a missing scope, a rate limit, Slack away) holds the mail back and tries again later.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import re
import secrets
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import jinja2
from redis.exceptions import RedisError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from slack_approvals.core.errors import ApprovalsError
from slack_approvals.state.errors import RequestNotFound
from slack_approvals.state.models import (
    EMAIL_PATTERN,
    USER_ID_PATTERN,
    ApprovalRequest,
    Outcome,
    email_voter,
)
from slack_approvals.state.store import ApprovalStore

from .links import link_url, new_token, token_hash

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
CLAIM_LIMIT = 100
# Tries within one claim (waits between them) for a busy or unreachable server; then the
# request is claimed again after a backoff.
SEND_TRIES = 3
SEND_PAUSES = (0.5, 2.0)
# Failures in a row double the wait before the next try, up to the cap: a server down for
# days costs a few tries an hour, not one a minute.
RETRY_FIRST = timedelta(seconds=60)
RETRY_CAP = timedelta(hours=1)
SEND_WORKERS = 8
SMTP_TIMEOUT = 20.0
# smtplib's timeout bounds each socket operation, and one session makes at most this many
# (connect, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA, the message, QUIT).
SMTP_STEPS = 10
# The lease on one address's mail outlasts the slowest send (every step of every try timing
# out, plus the pauses and a margin), so no second bot takes the mail while one still sends.
MAIL_LEASE = timedelta(seconds=SEND_TRIES * SMTP_STEPS * SMTP_TIMEOUT + sum(SEND_PAUSES) + 60)
LOOPBACK_NAMES = ("localhost",)


class MailFailed(ApprovalsError):
    """A mail was not accepted. `final`: the server refused it for good (no such mailbox);
    otherwise a later try may get through (server busy, down, unreachable). `server`: the
    trouble is the mail server's set-up (login refused, sender refused, no STARTTLS), not this
    recipient's: nothing is sent until a later try, and no recipient is given up on."""

    def __init__(self, message: str, *, final: bool, server: bool = False) -> None:
        super().__init__(message)
        self.final = final and not server
        self.server = server


class LookupFailed(ApprovalsError):
    """Slack did not say who an address or user is (not "no such user": an error)."""


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # smtp:// without TLS: None allows it for a loopback host only (a relay on this machine);
    # True when the URL says ?tls=none; False never.
    plaintext: bool | None = None

    @property
    def plaintext_allowed(self) -> bool:
        if self.plaintext is None:
            return _is_loopback(self.host)
        return self.plaintext

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        """Raises ValueError naming what is wrong, never echoing the password."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("must start with smtp:// (STARTTLS) or smtps:// (TLS)")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        if not parts.hostname:
            raise ValueError("names no host (smtp://user:pass@host:587)")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("takes no path (smtp://user:pass@host:587)")
        query = parse_qs(parts.query, keep_blank_values=True)
        if parts.query and (set(query) != {"tls"} or query["tls"] != ["none"]):
            raise ValueError("takes no query but ?tls=none (plain text to a trusted relay)")
        implicit = parts.scheme == "smtps"
        if implicit and query:
            raise ValueError("?tls=none goes with smtp://, not smtps://")
        return cls(host=parts.hostname, port=port or (465 if implicit else 587),
                   implicit_tls=implicit,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None,
                   plaintext=True if query else None)


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
                if not self.target.implicit_tls:
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=self.tls_context())
                        smtp.ehlo()
                    elif not self.target.plaintext_allowed:
                        # Neither the password nor the links may cross the network in clear.
                        raise MailFailed("the SMTP server offers no STARTTLS: nothing sent (use "
                                         "smtps://, or ?tls=none for a trusted relay)",
                                         final=False, server=True)
                if self.target.username is not None:
                    smtp.login(self.target.username, self.target.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            raise MailFailed(f"recipient refused ({', '.join(map(str, codes))})",
                             final=all(500 <= c < 600 for c in codes)) from e
        except smtplib.SMTPSenderRefused as e:
            # The sender address (APPROVALS_MAIL_FROM) is wrong for every recipient alike.
            raise MailFailed(f"sender refused ({e.smtp_code})", final=False, server=True) from e
        except smtplib.SMTPNotSupportedError as e:
            raise MailFailed("the SMTP server offers no login (AUTH) on this connection",
                             final=False, server=True) from e
        except smtplib.SMTPAuthenticationError as e:
            # The settings are wrong, not the mail: one login per backoff, never a burst that
            # could lock the account.
            raise MailFailed(f"SMTP login refused ({e.smtp_code})", final=False, server=True) from e
        except smtplib.SMTPResponseException as e:
            raise MailFailed(f"SMTP server answered {e.smtp_code}",
                             final=500 <= e.smtp_code < 600) from e
        except (smtplib.SMTPException, OSError) as e:  # disconnected, refused, timed out, TLS
            raise MailFailed(f"SMTP server unreachable ({type(e).__name__})", final=False) from e


_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                          autoescape=jinja2.select_autoescape(["html"]),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _quoted(text: str) -> str:
    """Requester text in the plain-text part, every line behind "> ", so nothing it says can
    pass for the mail's own words or links."""
    return "\n".join("> " + line if line else ">" for line in str(text).splitlines() or [""])


_env.filters["quoted"] = _quoted


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
    host = urlsplit(links[Outcome.APPROVE]).netloc
    values = {"request": request, "spec": spec, "address": address, "requester": requester_name,
              "deadline": request.deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "approve_url": links[Outcome.APPROVE], "reject_url": links[Outcome.REJECT],
              "host": host}
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


@dataclass(frozen=True)
class Person:
    """What the mail needs of the requester: a name to show, and their own address, so that
    the self-approval rule knows it when the requester is named as an email approver too."""

    name: str | None
    address: str | None


class Directory(Protocol):
    """What the mailer asks Slack about people; LookupFailed when Slack gives no answer."""

    def user_by_email(self, address: str) -> str | None:
        """The Slack user id of this address in the workspace, or None when there is none."""

    def person(self, user: str) -> Person:
        """The user's name and address (each None when Slack has none)."""


def _slack_error(e: Exception) -> str:
    return str(e.response.get("error")) if isinstance(e, SlackApiError) else type(e).__name__


@dataclass
class SlackDirectory:
    """users.lookupByEmail and users.info (scopes users:read, users:read.email), through a
    client that retries rate limits and server errors."""

    client: WebClient

    def user_by_email(self, address: str) -> str | None:
        try:
            response = self.client.users_lookupByEmail(email=address)
        except (SlackApiError, OSError) as e:
            if isinstance(e, SlackApiError) and e.response.get("error") == "users_not_found":
                return None
            raise LookupFailed(f"users.lookupByEmail failed: {_slack_error(e)}") from e
        user = (response.get("user") or {}).get("id")
        if not (isinstance(user, str) and _matches(USER_ID_PATTERN, user)):
            raise LookupFailed("users.lookupByEmail answered without a user id")
        return user

    def person(self, user: str) -> Person:
        try:
            response = self.client.users_info(user=user)
        except (SlackApiError, OSError) as e:
            if isinstance(e, SlackApiError) and e.response.get("error") == "user_not_found":
                return Person(None, None)
            raise LookupFailed(f"users.info failed: {_slack_error(e)}") from e
        found = response.get("user") or {}
        profile = found.get("profile") or {}
        name = profile.get("real_name") or found.get("real_name") or found.get("name")
        address = profile.get("email")
        return Person(str(name) if name else None,
                      address.lower() if isinstance(address, str) and address else None)

    def name_of(self, user: str) -> str | None:
        """For the approval page: a name when Slack answers, else None (the id will do)."""
        try:
            return self.person(user).name
        except LookupFailed as e:
            log.info("no name for %s: %s", user, e)
            return None


def _matches(pattern: str, text: str) -> bool:
    return re.match(pattern, text) is not None


def same_mailbox(a: str, b: str) -> bool:
    """Whether two addresses reach one mailbox as most servers deliver: case aside, and a
    +tag of the local part aside (jdoe+x@corp.com is jdoe@corp.com)."""
    def bare(address: str) -> str:
        local, _, domain = address.strip().lower().rpartition("@")
        return local.split("+", 1)[0] + "@" + domain
    return bare(a) == bare(b)


def check_sender(address: str) -> str:
    """APPROVALS_MAIL_FROM: `ann@example.com` or `Approvals <ann@example.com>`."""
    name, _, rest = address.rpartition("<")
    bare = rest.rstrip(">").strip() if rest.endswith(">") else address.strip()
    if not _matches(EMAIL_PATTERN, bare) or any(c in address for c in "\r\n"):
        raise ValueError("must be a mail address, e.g. approvals@example.com or "
                         "'Approvals <approvals@example.com>'")
    return formataddr((name.strip().strip('"'), bare)) if name.strip() else bare


def backoff(failures: int) -> timedelta:
    """The wait after `failures` in a row (1 or more): doubling from RETRY_FIRST to RETRY_CAP."""
    doublings: int = min(max(failures - 1, 0), 20)
    return min(RETRY_FIRST * (1 << doublings), RETRY_CAP)


@dataclass
class _Outcome:
    """One address's result: how it stands and, when it is to be tried again, after how long."""

    status: str
    wait: timedelta | None = None


@dataclass
class Mailer:
    store: ApprovalStore
    transport: Transport
    sender: str
    public_url: str
    directory: Directory
    pause: Callable[[float], None] = time.sleep
    workers: int = SEND_WORKERS
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Set when the mail server itself is wrong (login, sender, TLS): no mail is tried before.
    server_trouble_until: datetime | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def run_due(self, limit: int = CLAIM_LIMIT) -> int:
        """Send the mails of every request this bot claims, `workers` requests at a time (most
        of a mail is waiting on the mail server); returns how many went out."""
        sent = 0
        while not self.stopping.is_set():
            claimed = self.store.claim("mail", limit, MAIL_LEASE)
            sent += sum(self._in_parallel(claimed))
            if len(claimed) < limit:
                break
        return sent

    def _in_parallel(self, request_ids: list[str]) -> list[int]:
        """Daemon threads rather than an executor's, whose threads the interpreter waits for
        at exit: on SIGTERM an unreachable mail server cannot hold the process."""
        todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for request_id in request_ids:
            todo.put(request_id)
        results: list[int] = []

        def work() -> None:
            while not self.stopping.is_set():
                try:
                    request_id = todo.get_nowait()
                except queue.Empty:
                    return
                results.append(self._send_logged(request_id))

        threads = [threading.Thread(target=work, name=f"mail-{n}", daemon=True)
                   for n in range(min(self.workers, len(request_ids)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def _send_logged(self, request_id: str) -> int:
        try:
            return self.send_for(request_id)
        except RequestNotFound:
            self.store.mail_next(request_id, None)
        except RedisError as e:
            log.warning("mail for %s: Redis failed (%s); the lease brings it back", request_id, e)
        except Exception:
            # One request's trouble (a template) must not hold back the others' mail; its
            # lease brings it back.
            log.exception("mail for %s failed", request_id)
        return 0

    def send_for(self, request_id: str) -> int:
        """Each email approver's mail not sent yet; the request is claimed again (after the
        shortest backoff among its addresses) while a mail is left that a retry may get
        through."""
        request = self.store.get(request_id)
        sent = 0
        waits: list[timedelta] = []
        requester: Person | None = None
        for address in request.spec.email_approvers:
            if address in request.mailed:
                continue
            if request.decision is not None or self.clock() >= request.deadline:
                break
            outcome = self._paused()
            if outcome is None:
                try:
                    if requester is None:
                        requester = self._requester(request)
                    outcome = self._send_one(request, address, requester)
                except LookupFailed as e:
                    # Sending now could make one person two voters: wait for Slack.
                    outcome = self._failed(request, address, str(e), "")
            sent += outcome.status == "sent"
            if outcome.wait is not None:
                waits.append(outcome.wait)
        self.store.mail_next(request_id, self.clock() + min(waits) if waits else None)
        return sent

    def _paused(self) -> _Outcome | None:
        until = self.server_trouble_until
        if until is not None and self.clock() < until:
            return _Outcome("paused", until - self.clock())
        return None

    def _requester(self, request: ApprovalRequest) -> Person:
        user = request.spec.requester
        return self.directory.person(user) if user else Person(None, None)

    def _slack_user(self, request: ApprovalRequest, address: str, requester: Person) -> str | None:
        """The Slack user behind the address, so that person votes once by either path, and
        the requester's own address (any case, any +tag) counts as the requester."""
        known = request.aliases.get(email_voter(address))
        if known is not None:
            return known
        user = self.directory.user_by_email(address)
        if user is None and requester.address and request.spec.requester \
                and same_mailbox(address, requester.address):
            return request.spec.requester
        return user

    def _failed(self, request: ApprovalRequest, address: str, reason: str, owner: str,
                final: bool = False) -> _Outcome:
        failures = self.store.mail_end(request.id, address, reason, final=final, owner=owner)
        if final:
            return _Outcome("failed")
        if failures is None:  # another bot holds this mail's lease now
            return _Outcome("busy", RETRY_FIRST)
        wait = backoff(failures)
        log.warning("mail to an approver of %s not sent (%s); trying again in %s",
                    request.id, reason, wait)
        return _Outcome("retry", wait)

    def _send_one(self, request: ApprovalRequest, address: str, requester: Person) -> _Outcome:
        slack_user = self._slack_user(request, address, requester)
        tokens = {Outcome.APPROVE: new_token(), Outcome.REJECT: new_token()}
        owner = secrets.token_hex(8)
        status, _ = self.store.mail_begin(
            request.id, address, slack_user,
            (token_hash(tokens[Outcome.APPROVE]), token_hash(tokens[Outcome.REJECT])),
            MAIL_LEASE, owner)
        if status == "busy":
            return _Outcome("busy", MAIL_LEASE)
        if status != "go":
            return _Outcome(status)
        links = {vote: link_url(self.public_url, request.id, vote, token)
                 for vote, token in tokens.items()}
        message = compose(request, address, self.sender, links,
                          requester.name or request.spec.requester)
        for attempt in range(SEND_TRIES):
            try:
                self.transport.send(message)
            except MailFailed as e:
                if e.server:
                    return self._server_trouble(request, address, str(e), owner)
                if e.final or attempt == SEND_TRIES - 1 or self.stopping.is_set():
                    log.warning("mail to an approver of %s failed: %s", request.id, e)
                    return self._failed(request, address, str(e), owner, final=e.final)
                self.pause(SEND_PAUSES[min(attempt, len(SEND_PAUSES) - 1)])
                continue
            self.store.mail_end(request.id, address, owner=owner)
            log.info("mailed an approver of %s", request.id)
            return _Outcome("sent")
        return _Outcome("retry", RETRY_FIRST)  # pragma: no cover - the loop always returns

    def _server_trouble(self, request: ApprovalRequest, address: str, reason: str,
                        owner: str) -> _Outcome:
        outcome = self._failed(request, address, reason, owner)
        wait = outcome.wait or RETRY_FIRST
        self.server_trouble_until = self.clock() + wait
        log.error("the mail server refuses this bot (%s): check APPROVALS_SMTP_URL and "
                  "APPROVALS_MAIL_FROM; no mail is sent for %s", reason, wait)
        return _Outcome("retry", wait)
