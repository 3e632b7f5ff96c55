"""The mail catcher: an SMTP server on loopback that accepts every mail into the Inbox.

It runs its own asyncio loop in a thread (aiosmtpd), beside the sandbox's HTTP server, so mail
sent by the app shows in the page without a mail server. Any AUTH is accepted and no STARTTLS
is offered, so a client configured for a real server (`smtp://user:pass@host:port`) works here.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import weakref
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from slack_approvals.sandbox.mails import Inbox

# Approval mails are a few KB; a larger one is refused with an SMTP 552, as real servers do. The
# bound also bounds the Inbox: 200 mails at the limit hold about 50 MiB (measured).
MAX_MAIL_BYTES = 256 * 1024
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
SERVER_NAME = "sandbox.localhost"  # the greeting's name; a fixed one spares a DNS lookup per connection


class _Handler:
    """aiosmtpd calls `handle_DATA` once a mail's data is complete."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        mail = self._inbox.receive(
            raw if isinstance(raw, bytes) else raw.encode(),
            envelope.mail_from or "",
            list(envelope.rcpt_tos),
        )
        return f"250 Message accepted as mail {mail.id}"


class _Smtp(SMTP):
    """aiosmtpd writes a multi-line reply (EHLO's) line by line; with Nagle's algorithm on, each
    reply then waits for the client's delayed ACK: 45 ms per EHLO here, 0.3 ms without."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def _anyone(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    """A catcher has no accounts: every login succeeds."""
    return AuthResult(success=True)


class MailCatcher:
    """`MailCatcher(inbox, port=0).start()`; `port` is the one bound, printed and handed to the app."""

    def __init__(
        self, inbox: Inbox, *, host: str = "127.0.0.1", port: int = 0, max_bytes: int = MAX_MAIL_BYTES
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"the mail port must be between 0 and 65535, not {port}")
        if max_bytes < 1:
            raise ValueError(f"the mail size limit must be positive, not {max_bytes}")
        self.inbox = inbox
        self.host = host
        self.port = port  # the one bound, once started
        self._wanted_port = port  # what each start asks for again (0: any free one)
        self.max_bytes = max_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def url(self) -> str:
        """What an app's SMTP setting should say; valid once started."""
        return f"smtp://{self.host}:{self.port}"

    def _smtp(self) -> SMTP:
        smtp = _Smtp(
            _Handler(self.inbox),
            data_size_limit=self.max_bytes,
            enable_SMTPUTF8=True,
            hostname=SERVER_NAME,
            ident="Slack sandbox mail catcher",
            authenticator=_anyone,
            auth_require_tls=False,
            loop=self._loop,
        )
        self._sessions.add(smtp)
        return smtp

    def start(self) -> MailCatcher:
        if self._thread is not None:
            raise RuntimeError("the mail catcher is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._wanted_port))
        except OSError as exc:
            sock.close()
            where = f"{self.host}:{self._wanted_port}"
            raise OSError(f"the mail catcher cannot listen on {where}: {exc}") from exc
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                server = loop.run_until_complete(loop.create_server(self._smtp, sock=sock))
            except BaseException as exc:  # handed to start(), which raises it in the caller's thread
                failed.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                self._shut(loop, server)

        self._loop = loop
        self._thread = threading.Thread(target=run, name="sandbox-mail", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS) or failed:
            self._thread = None
            sock.close()
            raise RuntimeError("the mail catcher did not start") from (failed[0] if failed else None)
        return self

    def _shut(self, loop: asyncio.AbstractEventLoop, server: asyncio.Server) -> None:
        """Stops listening, hangs up on clients mid-session, and lets their handlers end."""
        server.close()
        for smtp in list(self._sessions):
            if smtp.transport is not None:
                smtp.transport.close()
        loop.run_until_complete(server.wait_closed())
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        self._thread = None
        self._loop = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
