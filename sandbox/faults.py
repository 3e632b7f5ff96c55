"""Injected Web API failures (429 with Retry-After, 5xx, or an error Slack answers with 200 such
as missing_scope) so clients' retry and error handling can be tested."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

ANY_METHOD = "*"

_ERROR_FOR_STATUS = {429: "ratelimited", 500: "fatal_error", 503: "service_unavailable"}


@dataclass(frozen=True)
class Fault:
    method: str
    status: int
    retry_after: int | None
    error: str | None = None

    def body(self) -> dict[str, Any]:
        error = self.error or _ERROR_FOR_STATUS.get(self.status, "internal_error")
        return {"ok": False, "error": error}

    def headers(self) -> dict[str, str]:
        if self.status == 429:
            return {"Retry-After": str(self.retry_after if self.retry_after is not None else 1)}
        return {}


class FaultInjector:
    """Queues of pending faults per method; each queued fault answers exactly one call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[Fault]] = {}

    def inject(self, method: str, status: int, *, count: int = 1, retry_after: int | None = None,
               error: str | None = None) -> None:
        """`error`: the answer's error code; with it, status 200 is allowed, as Slack answers
        most errors (missing_scope, invalid_auth) with 200 and ok false."""
        if not (400 <= status <= 599 or (status == 200 and error)):
            raise ValueError(f"a fault needs an error status (or 200 with an error), got {status}")
        if error is not None and not error.replace("_", "").isalnum():
            raise ValueError(f"an error code is lower-case words joined by _, got {error!r}")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._pending.setdefault(method, []).extend(
                Fault(method, status, retry_after, error) for _ in range(count)
            )

    def take(self, method: str) -> Fault | None:
        with self._lock:
            for key in (method, ANY_METHOD):
                queue = self._pending.get(key)
                if queue:
                    return queue.pop(0)
            return None

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {m: len(q) for m, q in self._pending.items() if q}

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
