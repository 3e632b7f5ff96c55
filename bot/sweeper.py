"""Closes overdue requests with their timeout outcome, through the one close path, and edits
again the messages whose last edit failed."""

from __future__ import annotations

import logging
import threading

from redis.exceptions import RedisError

from .deps import BotDeps

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, deps: BotDeps, interval: float) -> None:
        self.deps = deps
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="approvals-sweeper", daemon=True)

    def sweep_once(self) -> int:
        """Closes what is overdue (returns how many), then re-edits stale messages."""
        closed = len(self.deps.closer.expire_due())
        self.deps.messenger.refresh_stale()
        return closed

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except RedisError as e:
                # Redis may be restarting; the next sweep tries again.
                log.warning("sweep failed: %s", e)
            except Exception:
                # Whatever went wrong with one request must not stop every later sweep.
                log.exception("sweep failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
