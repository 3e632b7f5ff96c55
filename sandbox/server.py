"""Runs the whole sandbox on a loopback port in a background thread, for tests and demos."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from slack_approvals.sandbox.app import create_app
from slack_approvals.sandbox.catcher import MAX_MAIL_BYTES, MailCatcher
from slack_approvals.sandbox.clock import Clock, wall_clock
from slack_approvals.sandbox.config import (
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_SIGNING_SECRET,
    DEFAULT_VERIFICATION_TOKEN,
    SandboxConfig,
)
from slack_approvals.sandbox.driver import Driver
from slack_approvals.sandbox.faults import FaultInjector
from slack_approvals.sandbox.seed import Seed, load_seed
from slack_approvals.sandbox.workspace import Workspace

START_TIMEOUT_SECONDS = 10.0


class SandboxServer(Driver):
    """A running sandbox: `with SandboxServer(...) as sb:` then use `sb.api_url` and driver methods."""

    def __init__(
        self,
        *,
        signing_secret: str = DEFAULT_SIGNING_SECRET,
        bot_token: str = DEFAULT_BOT_TOKEN,
        request_url: str | None = None,
        verification_token: str = DEFAULT_VERIFICATION_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: Seed | str | Path | None = None,
        clock: Clock = wall_clock,
        id_seed: int | None = None,
        delivery_timeout: float = 3.0,
        app_token: str = DEFAULT_APP_TOKEN,
        mail_port: int | None = 0,
        max_mail_bytes: int = MAX_MAIL_BYTES,
    ) -> None:
        """`mail_port` is the mail catcher's SMTP port (0: any free one; None: no catcher)."""
        config = SandboxConfig(
            signing_secret=signing_secret,
            bot_token=bot_token,
            request_url=request_url,
            verification_token=verification_token,
            delivery_timeout=delivery_timeout,
            app_token=app_token,
        )
        loaded = load_seed(seed) if isinstance(seed, str | Path) else seed
        super().__init__(Workspace(loaded, clock=clock, id_seed=id_seed), config)
        self.faults = FaultInjector()
        self._host = host
        self._port = port
        self._closing = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._catcher = (
            None
            if mail_port is None
            else MailCatcher(self.workspace.inbox, host=host, port=mail_port, max_bytes=max_mail_bytes)
        )

    @property
    def url(self) -> str:
        return self.config.base_url

    @property
    def api_url(self) -> str:
        """Base URL for `slack_sdk.WebClient(base_url=...)`; the trailing slash matters."""
        return f"{self.url}/api/"

    @property
    def smtp_url(self) -> str:
        """`smtp://127.0.0.1:<port>`: where the app sends mail so it shows in the page's Inbox."""
        if self.config.smtp_url is None:
            raise RuntimeError("the mail catcher is not running (start the sandbox with a mail_port)")
        return self.config.smtp_url

    @property
    def mail_port(self) -> int:
        """The mail catcher's SMTP port, once started."""
        if self._catcher is None or not self._catcher.running:
            raise RuntimeError("the mail catcher is not running (start the sandbox with a mail_port)")
        return self._catcher.port

    def set_request_url(self, url: str | None) -> None:
        self.config.request_url = url

    @property
    def socket_connections(self) -> int:
        """How many Socket Mode connections the app holds; while any is open, deliveries use them."""
        return self.deliverer.socket_mode.connection_count

    def close_socket_connections(self) -> None:
        """Drops the app's Socket Mode connections; deliveries go over HTTP again until it reconnects."""
        self.deliverer.socket_mode.close_all()

    def reset(self) -> None:
        """Clears messages, views, logs and pending faults between tests."""
        self.workspace.reset()
        self.faults.clear()

    def start(self) -> SandboxServer:
        if self._thread is not None:
            raise RuntimeError("the sandbox is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        port = sock.getsockname()[1]
        self.config.base_url = f"http://{self._host}:{port}"
        app = create_app(self, self.faults, self._closing)
        uv_config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        if self._catcher is not None:
            try:
                self.config.smtp_url = self._catcher.start().url
            except (OSError, RuntimeError):
                self.stop()
                raise
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._catcher is not None:
            self._catcher.stop()
        self.config.smtp_url = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        self.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
