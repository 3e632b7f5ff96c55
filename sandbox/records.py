"""Plain records kept by the workspace: views, triggers, response URLs, logs and notices."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

DeliveryKind = Literal["block_actions", "view_submission", "view_closed", "slash_command", "event_callback"]
ResponseUrlKind = Literal["command", "message"]
Transport = Literal["http", "socket_mode"]


@dataclass
class ViewRecord:
    """A modal or App Home view as Slack keeps it; `spec` is what the app sent, normalised."""

    id: str
    user_id: str
    type: Literal["modal", "home"]
    spec: dict[str, Any]
    hash: str
    root_view_id: str
    previous_view_id: str | None = None
    state_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self, team_id: str, app_id: str, bot_id: str) -> dict[str, Any]:
        spec = self.spec
        return {
            "id": self.id,
            "team_id": team_id,
            "type": self.type,
            "blocks": copy.deepcopy(spec.get("blocks", [])),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "state": {"values": copy.deepcopy(self.state_values)},
            "hash": self.hash,
            "title": copy.deepcopy(spec.get("title")),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": copy.deepcopy(spec.get("close")),
            "submit": copy.deepcopy(spec.get("submit")),
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id,
            "app_id": app_id,
            "external_id": spec.get("external_id", ""),
            "app_installed_team_id": team_id,
            "bot_id": bot_id,
        }


@dataclass
class Trigger:
    id: str
    user_id: str
    issued_at: float
    used: bool = False


@dataclass
class ResponseUrl:
    token: str
    kind: ResponseUrlKind
    user_id: str
    channel_id: str
    issued_at: float
    message_ts: str | None = None
    is_ephemeral: bool = False
    uses: int = 0


@dataclass(frozen=True)
class ApiCall:
    method: str
    args: dict[str, Any]
    response: dict[str, Any]
    status: int
    time: float


@dataclass(frozen=True)
class Delivery:
    """One request the sandbox sent to the app, and what came back.

    Over Socket Mode an ack counts as status 200 and `body` is the ack's payload as JSON.
    """

    id: int
    kind: DeliveryKind
    user_id: str
    payload: dict[str, Any]
    status: int | None
    body: str
    latency_ms: float
    error: str | None
    time: float
    transport: Transport = "http"

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "user_id": self.user_id,
            "payload": self.payload,
            "status": self.status,
            "body": self.body,
            "latency_ms": round(self.latency_ms, 2),
            "error": self.error,
            "ok": self.ok,
            "time": self.time,
            "transport": self.transport,
        }


@dataclass(frozen=True)
class Notice:
    """A line Slack would show a person when something about the app went wrong."""

    id: int
    user_id: str
    channel_id: str | None
    text: str
    time: float
