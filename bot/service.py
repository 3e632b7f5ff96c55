"""Runs the bot as a service: HTTP (uvicorn) or Socket Mode, stopping cleanly on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from starlette.applications import Starlette

from slack_approvals.core.errors import ApprovalsError

from .deps import BotDeps
from .metrics import BotMetrics, payload_kind
from .sweeper import Sweeper

log = logging.getLogger(__name__)


# Called once the listener has stopped, e.g. to cancel the flow runs this process holds.
StopHook = Callable[[], None]
PAGE_START_SECONDS = 10.0  # how long the approval page's server may take to listen


class PageUnavailable(ApprovalsError):
    """The approval page's server (Socket Mode) could not listen on its port."""


def _drain(deps: BotDeps, sweeper: Sweeper, on_stop: StopHook | None) -> None:
    """After the listener stops: stop sweeping, run the stop hook, finish queued Slack edits."""
    sweeper.stop()
    if on_stop is not None:
        try:
            on_stop()
        except Exception:
            log.exception("stopping: the stop hook failed")
    deps.background.shutdown(wait=True)


class _TimedSocketModeHandler(SocketModeHandler):
    """Times each envelope from its arrival to the ack sent back over the socket."""

    def __init__(self, app: App, app_token: str, metrics: BotMetrics) -> None:
        super().__init__(app, app_token)
        self.metrics = metrics

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        arrived = time.perf_counter()
        super().handle(client, req)
        self.metrics.acked(payload_kind(req.payload or {}), time.perf_counter() - arrived)


class _GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its shutdown, which would kill the process before the
    queued Slack edits are drained; here the signal only starts the shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_http(web_app: Starlette, deps: BotDeps, sweeper: Sweeper, host: str, port: int,
               on_stop: StopHook | None = None, trusted_proxies: str = "127.0.0.1") -> None:
    """On SIGTERM/SIGINT uvicorn stops accepting and lets in-flight requests finish; then the
    queued message edits run and the process exits 0. `trusted_proxies`: whose
    X-Forwarded-For names the client (APPROVALS_TRUSTED_PROXIES)."""
    # log_config=None: uvicorn's lines go through the handlers the process set up (JSON too),
    # not a text handler of uvicorn's own.
    config = uvicorn.Config(web_app, host=host, port=port, log_level="warning", log_config=None,
                            timeout_graceful_shutdown=10, access_log=False,
                            forwarded_allow_ips=trusted_proxies)
    sweeper.start()
    try:
        _GracefulServer(config).run()
    finally:
        _drain(deps, sweeper, on_stop)


def page_config(page: Starlette, host: str, port: int, trusted_proxies: str) -> uvicorn.Config:
    """The approval page's server in Socket Mode: its log lines through the process's handlers
    (JSON too), and X-Forwarded-For believed from the trusted proxies only."""
    return uvicorn.Config(page, host=host, port=port, log_level="warning", log_config=None,
                          access_log=False, forwarded_allow_ips=trusted_proxies)


def serve_socket_mode(app: App, app_token: str, deps: BotDeps, sweeper: Sweeper,
                      on_stop: StopHook | None = None, page: Starlette | None = None,
                      page_host: str = "0.0.0.0", page_port: int = 3000,
                      trusted_proxies: str = "127.0.0.1") -> None:
    """`page`: the web approval page, which Socket Mode has no HTTP server for: served on
    `page_port` in a thread of its own, stopped before the listener."""
    stop = threading.Event()
    page_server: uvicorn.Server | None = None
    page_thread: threading.Thread | None = None
    if page is not None:
        page_server = uvicorn.Server(page_config(page, page_host, page_port, trusted_proxies))
        page_thread = threading.Thread(target=page_server.run, name="approval-page", daemon=True)
        page_thread.start()
        # A page that cannot listen (the port taken, say by another replica) must stop the bot
        # at start: carrying on without it would leave every mailed link dead.
        deadline = time.monotonic() + PAGE_START_SECONDS
        while not page_server.started:
            if not page_thread.is_alive() or time.monotonic() > deadline:
                page_server.should_exit = True
                raise PageUnavailable(f"the approval page could not listen on {page_host}:"
                                      f"{page_port} (APPROVALS_WEB_PORT): is another process "
                                      "on that port?")
            time.sleep(0.02)

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.warning("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    handler = _TimedSocketModeHandler(app, app_token, deps.metrics)
    handler.connect()
    sweeper.start()
    try:
        stop.wait()
    finally:
        if page_server is not None and page_thread is not None:
            page_server.should_exit = True
            page_thread.join(timeout=15)
        handler.close()
        _drain(deps, sweeper, on_stop)
