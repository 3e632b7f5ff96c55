"""Slack's Socket Mode: the app opens a WebSocket and receives deliveries as envelopes on it.

`apps.connections.open` issues a one-time ticket inside a `ws://.../link/?ticket=...` URL; the app
connects there, gets a `hello`, and from then on every delivery is an envelope the app must
acknowledge with `{"envelope_id": ..., "payload": {...}}` within the delivery timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

EnvelopeType = Literal["interactive", "slash_commands", "events_api"]

# Slack closes a handshake for an unknown or used ticket; 1008 is "policy violation".
REFUSED = 1008


class SocketClosed(Exception):
    """The app's connection went away before it acknowledged the envelope."""


@dataclass
class _Connection:
    websocket: WebSocket
    loop: asyncio.AbstractEventLoop
    pending: dict[str, concurrent.futures.Future[dict[str, Any]]] = field(default_factory=dict)

    def fail_pending(self) -> None:
        for future in list(self.pending.values()):
            if not future.done():
                future.set_exception(SocketClosed())
        self.pending.clear()


class SocketModeHub:
    """Connections from the app. Deliveries go to the newest one, as Slack picks one of several."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: set[str] = set()
        self._connections: list[_Connection] = []

    # connection side ---------------------------------------------------------------------

    def issue_ticket(self) -> str:
        ticket = secrets.token_hex(16)
        with self._lock:
            self._tickets.add(ticket)
        return ticket

    def _take_ticket(self, ticket: str | None) -> bool:
        with self._lock:
            if ticket is None or ticket not in self._tickets:
                return False
            self._tickets.discard(ticket)
            return True

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    @property
    def connected(self) -> bool:
        return self.connection_count > 0

    async def serve(self, websocket: WebSocket, app_id: str) -> None:
        if not self._take_ticket(websocket.query_params.get("ticket")):
            await websocket.close(code=REFUSED)
            return
        await websocket.accept()
        connection = _Connection(websocket, asyncio.get_running_loop())
        with self._lock:
            self._connections.append(connection)
            count = len(self._connections)
        try:
            await websocket.send_text(json.dumps(hello(app_id, count)))
            while True:
                raw = await websocket.receive_text()
                self._acknowledge(connection, raw)
        except WebSocketDisconnect:
            pass
        finally:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            connection.fail_pending()

    @staticmethod
    def _acknowledge(connection: _Connection, raw: str) -> None:
        try:
            message = json.loads(raw)
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        future = connection.pending.pop(str(message.get("envelope_id")), None)
        if future is not None and not future.done():
            future.set_result(message)

    def close_all(self, timeout: float = 2.0) -> None:
        """Closes every connection from Slack's side, as when the app's link goes away."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            closing = asyncio.run_coroutine_threadsafe(connection.websocket.close(), connection.loop)
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError, OSError):
                closing.result(timeout)

    # delivery side (called from worker threads, never from the server's event loop) -------

    def deliver(
        self,
        envelope_type: EnvelopeType,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool,
        timeout: float,
    ) -> dict[str, Any]:
        """Sends one envelope and returns the app's ack message.

        Raises TimeoutError when no ack arrives in time, SocketClosed when no app is connected
        or its connection drops first.
        """
        with self._lock:
            if not self._connections:
                raise SocketClosed()
            connection = self._connections[-1]
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
            "payload": payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        connection.pending[envelope_id] = future
        sent = asyncio.run_coroutine_threadsafe(
            connection.websocket.send_text(json.dumps(envelope)), connection.loop
        )
        try:
            sent.result(timeout)
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError from None
        except (RuntimeError, OSError, WebSocketDisconnect) as exc:
            raise SocketClosed() from exc
        finally:
            connection.pending.pop(envelope_id, None)


def hello(app_id: str, num_connections: int) -> dict[str, Any]:
    return {
        "type": "hello",
        "num_connections": num_connections,
        "debug_info": {
            "host": "sandbox-applink",
            "build_number": 1,
            "approximate_connection_time": 18060,
        },
        "connection_info": {"app_id": app_id},
    }


def socket_mode_routes(hub: SocketModeHub, app_id: Callable[[], str]) -> list[BaseRoute]:
    async def link(websocket: WebSocket) -> None:
        await hub.serve(websocket, app_id())

    return [WebSocketRoute("/link/", link)]
