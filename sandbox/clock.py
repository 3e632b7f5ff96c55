"""Time sources: the wall clock by default, a manual clock for tests of expiry rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]


def wall_clock() -> float:
    return time.time()


class ManualClock:
    """A clock that only moves when told to, so expiry can be tested without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
