"""Runs an ASGI app under uvicorn on a background thread: the demo's and the tests' bot."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from slack_approvals.state.private_server import free_port

__all__ = ["ServerThread", "free_port"]


class ServerThread:
    """`with ServerThread(app) as server:` serves on `server.url` until the block ends."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port()
        # log_config=None: its lines go through the process's own handlers (JSON too).
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                log_config=None, access_log=False, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}",
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
