"""The one lock over all workspace state, and the version that moves whenever that state does.

The stores (messages, views, logs...) share it so a reset clears them together, and so live page
updates and `Driver.wait_for` can wait on a single counter instead of watching each store.
"""

from __future__ import annotations

import threading


class Changes:
    """A re-entrant lock, a version bumped on every mutation, and serial numbers for log entries."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._version = 0
        self._serial = 0

    @property
    def version(self) -> int:
        with self.lock:
            return self._version

    def touch(self) -> None:
        """Records a mutation and wakes waiters; the caller holds `lock`."""
        self._version += 1
        self._changed.notify_all()

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Blocks until the version moves past `since` or the timeout runs out."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != since, timeout=timeout)
            return self._version

    def next_serial(self) -> int:
        """Deliveries and notices take their ids from this one sequence; the caller holds `lock`."""
        self._serial += 1
        return self._serial

    def restart_serials(self) -> None:
        self._serial = 0
