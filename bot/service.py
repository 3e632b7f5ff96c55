"""Runs the bot as a service: HTTP (uvicorn) or Socket Mode, stopping cleanly on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from starlette.applications import Starlette

from .deps import BotDeps
from .sweeper import Sweeper

log = logging.getLogger(__name__)


# Called once the listener has stopped, e.g. to cancel the flow runs this process holds.
StopHook = Callable[[], None]


def _drain(deps: BotDeps, sweeper: Sweeper, on_stop: StopHook | None) -> None:
    """After the listener stops: stop sweeping, run the stop hook, finish queued Slack edits."""
    sweeper.stop()
    if on_stop is not None:
        try:
            on_stop()
        except Exception:
            log.exception("stopping: the stop hook failed")
    deps.background.shutdown(wait=True)


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
               on_stop: StopHook | None = None) -> None:
    """On SIGTERM/SIGINT uvicorn stops accepting and lets in-flight requests finish; then the
    queued message edits run and the process exits 0."""
    config = uvicorn.Config(web_app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=10, access_log=False)
    sweeper.start()
    try:
        _GracefulServer(config).run()
    finally:
        _drain(deps, sweeper, on_stop)


def serve_socket_mode(app: App, app_token: str, deps: BotDeps, sweeper: Sweeper,
                      on_stop: StopHook | None = None) -> None:
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.warning("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    handler = SocketModeHandler(app, app_token)
    handler.connect()
    sweeper.start()
    try:
        stop.wait()
    finally:
        handler.close()
        _drain(deps, sweeper, on_stop)
