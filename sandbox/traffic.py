"""The log of traffic between the sandbox and the app: Web API calls in, deliveries out.

Tests and the page's traffic panel read it to see what the app asked for and what it was sent.
"""

from __future__ import annotations

import copy
from typing import Any

from slack_approvals.sandbox.changes import Changes
from slack_approvals.sandbox.clock import Clock
from slack_approvals.sandbox.records import ApiCall, Delivery, DeliveryKind, Transport


class Traffic:
    """Entries in the order they happened; API calls do not move the version, deliveries do."""

    def __init__(self, changes: Changes, clock: Clock) -> None:
        self._changes = changes
        self._clock = clock
        self._api_calls: list[ApiCall] = []
        self._deliveries: list[Delivery] = []

    def clear(self) -> None:
        with self._changes.lock:
            self._api_calls = []
            self._deliveries = []

    def log_api_call(self, method: str, args: dict[str, Any], response: dict[str, Any], status: int) -> None:
        with self._changes.lock:
            self._api_calls.append(
                ApiCall(method, copy.deepcopy(args), copy.deepcopy(response), status, self._clock())
            )

    def api_calls(self, method: str | None = None) -> list[ApiCall]:
        with self._changes.lock:
            return [c for c in self._api_calls if method is None or c.method == method]

    def record_delivery(
        self,
        *,
        kind: DeliveryKind,
        user_id: str,
        payload: dict[str, Any],
        status: int | None,
        body: str,
        latency_ms: float,
        error: str | None,
        transport: Transport = "http",
    ) -> Delivery:
        with self._changes.lock:
            delivery = Delivery(
                id=self._changes.next_serial(),
                kind=kind,
                user_id=user_id,
                payload=copy.deepcopy(payload),
                status=status,
                body=body,
                latency_ms=latency_ms,
                error=error,
                time=self._clock(),
                transport=transport,
            )
            self._deliveries.append(delivery)
            self._changes.touch()
            return delivery

    def deliveries(self, kind: DeliveryKind | None = None) -> list[Delivery]:
        with self._changes.lock:
            return [d for d in self._deliveries if kind is None or d.kind == kind]
