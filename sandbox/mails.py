"""The Inbox: mails the catcher received, parsed with the stdlib `email` package and kept bounded.

It shares the workspace's lock and version, so the page's live stream and `Driver.wait_for`
see a new mail the same way they see a new Slack message.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections import deque
from dataclasses import dataclass
from email.headerregistry import AddressHeader
from email.message import EmailMessage, MIMEPart
from html.parser import HTMLParser
from typing import Any

from slack_approvals.sandbox.changes import Changes
from slack_approvals.sandbox.clock import Clock

MAILS_KEPT = 200
# A URL in plain text ends at whitespace or at characters that close the sentence around it.
_TEXT_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]}"


class _Links(HTMLParser):
    """Collects `href`s of `<a>` elements; the parser decodes entities such as `&amp;`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href and href.strip():
                self.hrefs.append(href.strip())


def _links_in(text: str, html: str) -> tuple[str, ...]:
    """Links of the HTML part first (what a reader clicks), then any only the text part has."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    found = [h for h in parser.hrefs if h.lower().startswith(("http://", "https://"))]
    found += [m.group(0).rstrip(_TRAILING) for m in _TEXT_URL.finditer(text)]
    return tuple(dict.fromkeys(found))


def _content(part: MIMEPart | None) -> str:
    """A part's text in its declared charset; an unknown or lying charset still shows, replaced."""
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError, UnicodeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    # SMTP carries CRLF line ends; the page and tests want the text as written.
    return content.replace("\r\n", "\n") if isinstance(content, str) else ""


def _utf8(value: object) -> str:
    """A header as text. Raw UTF-8 headers (SMTPUTF8 mail) reach the parser as bytes it escapes as
    surrogates; turned back into bytes, they decode as the UTF-8 they are."""
    return str(value).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _addresses(message: EmailMessage, name: str) -> tuple[str, ...]:
    header = message.get(name)
    if header is None:
        return ()
    if isinstance(header, AddressHeader):
        return tuple(_utf8(a) for a in header.addresses)
    return (_utf8(header),)


def _date(message: EmailMessage) -> str | None:
    """The Date header as ISO 8601 when it parses, else as written; None without one."""
    header = message.get("date")
    if header is None:
        return None
    when = getattr(header, "datetime", None)
    return when.isoformat() if when is not None else _utf8(header)


@dataclass(frozen=True)
class Mail:
    """One received mail: the envelope as the SMTP client gave it, and the parsed headers and parts."""

    id: int
    received_at: float
    envelope_from: str
    envelope_to: tuple[str, ...]
    from_: tuple[str, ...]
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: str | None
    message_id: str | None
    text: str
    html: str
    links: tuple[str, ...]
    raw: bytes

    @property
    def size(self) -> int:
        return len(self.raw)

    def is_to(self, address: str) -> bool:
        """Whether `address` was a recipient; the envelope counts, so Bcc does too (case-insensitive)."""
        wanted = address.strip().lower()
        return any(r.lower() == wanted for r in self.envelope_to)

    def link(self, containing: str) -> str:
        """The one link whose URL contains `containing` (say "approve"); several or none is an error."""
        found = [u for u in self.links if containing in u]
        if len(found) != 1:
            raise ValueError(
                f"mail {self.id} ({self.subject!r}) has {len(found)} links containing {containing!r}: "
                f"{list(self.links)}"
            )
        return found[0]

    def summary_json(self) -> dict[str, Any]:
        """What a list of mails shows: no bodies, so a full Inbox stays small."""
        return {
            "id": self.id,
            "received_at": self.received_at,
            "from": list(self.from_) or [self.envelope_from],
            "to": list(self.to),
            "subject": self.subject,
            "date": self.date,
            "has_html": bool(self.html),
            "has_text": bool(self.text),
            "size": self.size,
            "preview": " ".join(self.text.split())[:140],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary_json(),
            "envelope_from": self.envelope_from,
            "envelope_to": list(self.envelope_to),
            "cc": list(self.cc),
            "message_id": self.message_id,
            "text": self.text,
            "html": self.html,
            "links": list(self.links),
        }


def parse_mail(
    mail_id: int, raw: bytes, envelope_from: str, envelope_to: list[str], received_at: float
) -> Mail:
    """Parses a received message; headers come decoded (RFC 2047 words and raw UTF-8 alike)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # what policy.default builds
    text = _content(message.get_body(preferencelist=("plain",)))
    html = _content(message.get_body(preferencelist=("html",)))
    subject = message.get("subject")
    message_id = message.get("message-id")
    return Mail(
        id=mail_id,
        received_at=received_at,
        envelope_from=envelope_from,
        envelope_to=tuple(envelope_to),
        from_=_addresses(message, "from"),
        to=_addresses(message, "to"),
        cc=_addresses(message, "cc"),
        subject=_utf8(subject) if subject is not None else "",
        date=_date(message),
        message_id=_utf8(message_id).strip() if message_id is not None else None,
        text=text,
        html=html,
        links=_links_in(text, html),
        raw=raw,
    )


class Inbox:
    """The last `limit` mails in the order they arrived; ids keep growing across clears."""

    def __init__(self, changes: Changes, clock: Clock, limit: int = MAILS_KEPT) -> None:
        if limit < 1:
            raise ValueError(f"an inbox keeps at least one mail, not {limit}")
        self._changes = changes
        self._clock = clock
        self.limit = limit
        self._mails: deque[Mail] = deque(maxlen=limit)
        self._next_id = 1

    def receive(self, raw: bytes, envelope_from: str, envelope_to: list[str]) -> Mail:
        with self._changes.lock:
            mail_id, now = self._next_id, self._clock()
            self._next_id += 1
        # Parsed outside the lock: a large mail must not stall the Web API and the page meanwhile.
        mail = parse_mail(mail_id, raw, envelope_from, envelope_to, now)
        with self._changes.lock:
            self._mails.append(mail)
            self._changes.touch()
            return mail

    def mails(self, to: str | None = None) -> list[Mail]:
        with self._changes.lock:
            return [m for m in self._mails if to is None or m.is_to(to)]

    def get(self, mail_id: int) -> Mail | None:
        with self._changes.lock:
            return next((m for m in self._mails if m.id == mail_id), None)

    def clear(self) -> None:
        with self._changes.lock:
            self._mails.clear()
            self._changes.touch()
