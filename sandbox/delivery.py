"""Sends deliveries to the app, recording each.

Over HTTP: signed the way Slack signs them, posted to the request URL. When the app holds a
Socket Mode connection, Slack stops using the request URL; so does the sandbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any, NamedTuple, ParamSpec
from urllib.parse import urlencode

import httpx

from slack_approvals.sandbox.config import SandboxConfig
from slack_approvals.sandbox.records import Delivery, DeliveryKind, Transport
from slack_approvals.sandbox.socket_mode import EnvelopeType, SocketClosed, SocketModeHub
from slack_approvals.sandbox.traffic import Traffic

P = ParamSpec("P")

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"

ENVELOPE_TYPES: dict[DeliveryKind, EnvelopeType] = {
    "block_actions": "interactive",
    "view_submission": "interactive",
    "view_closed": "interactive",
    "slash_command": "slash_commands",
    "event_callback": "events_api",
}
# Only these may carry an answer in the ack (modal response_action, slash command reply).
ACCEPTS_RESPONSE_PAYLOAD: frozenset[DeliveryKind] = frozenset({"view_submission", "slash_command"})


def sign(signing_secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def describe_failure(delivery: Delivery, app_name: str) -> str:
    """The wording a person sees in Slack when the app did not answer properly."""
    if delivery.error == "timeout":
        return f"{app_name} didn't respond in time. Please try again."
    if delivery.error == "no_request_url":
        return f"{app_name} has no request URL configured, so nothing was sent."
    if delivery.error == "connection_failed":
        return f"Couldn't reach {app_name}. Please try again."
    return f"{app_name} responded with Status Code {delivery.status}."


class _Outcome(NamedTuple):
    """How one send ended, in the terms a delivery records whichever transport carried it."""

    status: int | None
    body: str
    error: str | None
    latency_ms: float = 0.0  # stays 0 when nothing was sent


def _timed(send: Callable[P, _Outcome], *args: P.args, **kwargs: P.kwargs) -> _Outcome:
    """Times the send alone: building and signing the request are not the app's time."""
    started = time.perf_counter()
    outcome = send(*args, **kwargs)
    return outcome._replace(latency_ms=(time.perf_counter() - started) * 1000)


class Deliverer:
    """Sends to the app. Signatures use wall-clock time because the app checks them against it."""

    def __init__(self, traffic: Traffic, config: SandboxConfig) -> None:
        self._traffic = traffic
        self._config = config
        self._client = httpx.Client(timeout=config.delivery_timeout)
        self.socket_mode = SocketModeHub()

    def close(self) -> None:
        self._client.close()

    def send_interaction(self, kind: DeliveryKind, user_id: str, payload: dict[str, Any]) -> Delivery:
        body = urlencode({"payload": json.dumps(payload)})
        return self._post(kind, user_id, payload, body, "application/x-www-form-urlencoded")

    def send_command(self, user_id: str, fields: dict[str, str]) -> Delivery:
        body = urlencode(fields)
        return self._post("slash_command", user_id, dict(fields), body, "application/x-www-form-urlencoded")

    def send_event(self, user_id: str, envelope: dict[str, Any]) -> Delivery:
        return self._post("event_callback", user_id, envelope, json.dumps(envelope), "application/json")

    def _post(
        self,
        kind: DeliveryKind,
        user_id: str,
        payload: dict[str, Any],
        body: str,
        content_type: str,
    ) -> Delivery:
        if self.socket_mode.connected:
            return self._record(
                kind, user_id, payload, "socket_mode", _timed(self._over_socket, kind, payload)
            )
        url = self._config.request_url
        if not url:
            return self._record(kind, user_id, payload, "http", _Outcome(None, "", "no_request_url"))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            "Accept": "application/json,*/*",
            "Accept-Encoding": "gzip,deflate",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(self._config.signing_secret, timestamp, body),
        }
        return self._record(kind, user_id, payload, "http", _timed(self._over_http, url, body, headers))

    def _record(
        self,
        kind: DeliveryKind,
        user_id: str,
        payload: dict[str, Any],
        transport: Transport,
        outcome: _Outcome,
    ) -> Delivery:
        return self._traffic.record_delivery(
            kind=kind,
            user_id=user_id,
            payload=payload,
            status=outcome.status,
            body=outcome.body,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            transport=transport,
        )

    def _over_http(self, url: str, body: str, headers: dict[str, str]) -> _Outcome:
        try:
            response = self._client.post(
                url, content=body.encode(), headers=headers, timeout=self._config.delivery_timeout
            )
        except httpx.TimeoutException:
            return _Outcome(None, "", "timeout")
        except httpx.TransportError as exc:
            return _Outcome(None, str(exc), "connection_failed")
        status = response.status_code
        return _Outcome(status, response.text, None if 200 <= status < 300 else f"http_{status}")

    def _over_socket(self, kind: DeliveryKind, payload: dict[str, Any]) -> _Outcome:
        """The ack's payload plays the part of an HTTP response body, so both paths share handling."""
        try:
            ack = self.socket_mode.deliver(
                ENVELOPE_TYPES[kind],
                payload,
                accepts_response_payload=kind in ACCEPTS_RESPONSE_PAYLOAD,
                timeout=self._config.delivery_timeout,
            )
        except TimeoutError:
            return _Outcome(None, "", "timeout")
        except SocketClosed:
            return _Outcome(None, "", "connection_failed")
        answer = ack.get("payload")
        return _Outcome(200, json.dumps(answer) if answer else "", None)
