"""Socket Mode: `apps.connections.open`, the hello, envelopes and acks, with slack_sdk as the app.

slack_sdk's built-in SocketModeClient (the one Bolt's SocketModeHandler uses) is the client here,
so the sandbox is checked against the library real apps run, not against itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from slack_approvals.sandbox import SandboxServer
from slack_approvals.sandbox.config import DEFAULT_APP_TOKEN
from tests.sandbox.conftest import BOT_TOKEN
from tests.sandbox.receiver import Receiver
from tests.sandbox.support import APPROVE_BLOCKS, REASON_MODAL, api_error
from tests.sandbox.test_bolt_roundtrip import build_app

Answer = Callable[[SocketModeRequest], dict[str, Any] | None]


@dataclass
class SocketApp:
    """A Socket Mode app: records what arrives and acks with whatever `answer` returns."""

    client: SocketModeClient
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[SocketModeRequest] = field(default_factory=list)
    answer: Answer | None = lambda _: None
    hello: threading.Event = field(default_factory=threading.Event)

    def on_message(self, client: BaseSocketModeClient, message: dict[str, Any], raw: str | None) -> None:
        self.messages.append(message)
        if message.get("type") == "hello":
            self.hello.set()

    def on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        self.requests.append(request)
        if self.answer is None:
            return
        payload = self.answer(request)
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=payload))


def wait_disconnected(sb: SandboxServer) -> None:
    deadline = time.monotonic() + 5
    while sb.socket_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sb.socket_connections == 0


@pytest.fixture
def app(sb: SandboxServer) -> Iterator[SocketApp]:
    client = SocketModeClient(
        app_token=DEFAULT_APP_TOKEN,
        web_client=WebClient(base_url=sb.api_url),
        auto_reconnect_enabled=False,
    )
    socket_app = SocketApp(client)
    client.message_listeners.append(socket_app.on_message)
    client.socket_mode_request_listeners.append(socket_app.on_request)
    client.connect()
    assert socket_app.hello.wait(5), "no hello"
    yield socket_app
    # The client's own close waits out a 3 s socket read; closing from the server's side is quick.
    sb.close_socket_connections()
    client.close()
    wait_disconnected(sb)


def post(client: WebClient) -> str:
    ts: str = client.chat_postMessage(channel="C01APPROVALS", text="Laptop", blocks=APPROVE_BLOCKS)["ts"]
    return ts


# apps.connections.open -------------------------------------------------------------------


def test_connections_open_hands_out_a_ws_url_with_a_ticket(sb: SandboxServer) -> None:
    response = WebClient(base_url=sb.api_url).apps_connections_open(app_token=DEFAULT_APP_TOKEN)
    url = urlparse(response["url"])
    assert (url.scheme, url.netloc, url.path) == ("ws", urlparse(sb.url).netloc, "/link/")
    query = parse_qs(url.query)
    assert query["ticket"][0]
    assert query["app_id"] == [sb.workspace.directory.bot.app_id]


def test_connections_open_refuses_other_tokens(sb: SandboxServer) -> None:
    web = WebClient(base_url=sb.api_url)
    def error(token: str) -> str:
        return str(api_error(lambda: web.apps_connections_open(app_token=token))["error"])

    assert error(BOT_TOKEN) == "not_allowed_token_type"
    assert error("xapp-wrong") == "invalid_auth"
    no_header = httpx.post(f"{sb.api_url}apps.connections.open", data={"token": DEFAULT_APP_TOKEN}).json()
    assert no_header == {"ok": False, "error": "not_authed"}


def test_app_token_is_not_a_bot_token(sb: SandboxServer) -> None:
    web = WebClient(token=DEFAULT_APP_TOKEN, base_url=sb.api_url)
    assert api_error(lambda: web.chat_postMessage(channel="C01APPROVALS", text="hi"))["error"] == (
        "not_allowed_token_type"
    )


def test_a_ticket_works_once(sb: SandboxServer) -> None:
    url = WebClient(base_url=sb.api_url).apps_connections_open(app_token=DEFAULT_APP_TOKEN)["url"]
    handshake = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    bogus = url.replace("ws://", "http://").split("ticket=")[0] + "ticket=made-up"
    assert httpx.get(bogus, headers=handshake).status_code == 403
    client = SocketModeClient(DEFAULT_APP_TOKEN, web_client=WebClient(base_url=sb.api_url),
                              auto_reconnect_enabled=False)
    try:
        client.wss_uri = url
        client.connect()
        assert client.is_connected()
        assert httpx.get(url.replace("ws://", "http://"), headers=handshake).status_code == 403
    finally:
        sb.close_socket_connections()
        client.close()
    wait_disconnected(sb)


# the connection ---------------------------------------------------------------------------


def test_hello_comes_first(app: SocketApp, sb: SandboxServer) -> None:
    hello = app.messages[0]
    assert hello["type"] == "hello"
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": sb.workspace.directory.bot.app_id}
    assert set(hello["debug_info"]) >= {"host", "approximate_connection_time"}
    assert sb.socket_connections == 1


def test_click_arrives_as_interactive_envelope_not_over_http(
    app: SocketApp, sb: SandboxServer, client: WebClient, receiver: Receiver
) -> None:
    ts = post(client)
    result = sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    assert result.ok
    assert receiver.requests == []
    envelope = next(m for m in app.messages if m.get("envelope_id"))
    assert set(envelope) == {
        "envelope_id", "type", "accepts_response_payload", "payload", "retry_attempt", "retry_reason"
    }
    assert envelope["type"] == "interactive"
    assert envelope["accepts_response_payload"] is False
    assert (envelope["retry_attempt"], envelope["retry_reason"]) == (0, "")
    payload = envelope["payload"]
    assert payload["type"] == "block_actions"
    assert payload["actions"][0]["action_id"] == "approve"
    assert payload["container"]["message_ts"] == ts
    delivery = result.delivery
    assert delivery is not None
    assert (delivery.transport, delivery.status, delivery.error) == ("socket_mode", 200, None)
    assert delivery.body == ""
    assert delivery.payload == payload


def test_unacknowledged_envelope_times_out(app: SocketApp, sb: SandboxServer, client: WebClient) -> None:
    app.answer = None
    sb.config.delivery_timeout = 0.3
    result = sb.click("U02FRANK", "C01APPROVALS", post(client), "approve")
    assert result.delivery is not None
    assert (result.delivery.error, result.delivery.status) == ("timeout", None)
    assert [n.text for n in sb.notices("U02FRANK")] == ["Approvals didn't respond in time. Please try again."]


def test_slash_command_answer_rides_on_the_ack(app: SocketApp, sb: SandboxServer) -> None:
    app.answer = lambda req: {"text": f"Nothing waiting for <@{req.payload['user_id']}>"}
    assert sb.slash("U06REQ", "C01APPROVALS", "/approvals", "list").ok
    request = app.requests[-1]
    assert (request.type, request.accepts_response_payload) == ("slash_commands", True)
    assert request.payload["command"] == "/approvals"
    assert request.payload["text"] == "list"
    assert [m["text"] for m in sb.ephemerals("U06REQ")] == ["Nothing waiting for <@U06REQ>"]


def test_view_submission_errors_ride_on_the_ack(app: SocketApp, sb: SandboxServer, client: WebClient) -> None:
    def answer(req: SocketModeRequest) -> dict[str, Any] | None:
        if req.payload["type"] == "block_actions":
            client.views_open(trigger_id=req.payload["trigger_id"], view=REASON_MODAL)
        if req.payload["type"] == "view_submission":
            return {"response_action": "errors", "errors": {"reason": "Name the budget line"}}
        return None

    app.answer = answer
    assert sb.click("U01MAYA", "C01APPROVALS", post(client), "reject").ok
    assert sb.open_view("U01MAYA") is not None
    result = sb.submit_view("U01MAYA", values={"reason": "too dear"})
    assert result.errors == {"reason": "Name the budget line"}
    assert app.requests[-1].accepts_response_payload is True
    assert sb.open_view("U01MAYA") is not None
    app.answer = lambda _: None
    assert sb.submit_view("U01MAYA", values={"reason": "over budget line 4"}).ok
    assert sb.open_view("U01MAYA") is None


def test_events_arrive_as_events_api(app: SocketApp, sb: SandboxServer) -> None:
    assert sb.open_home("U05SARA").ok
    request = app.requests[-1]
    assert (request.type, request.accepts_response_payload) == ("events_api", False)
    assert request.payload["type"] == "event_callback"
    assert request.payload["event"]["type"] == "app_home_opened"


def test_http_again_once_the_app_disconnects(
    app: SocketApp, sb: SandboxServer, client: WebClient, receiver: Receiver
) -> None:
    app.client.close()
    wait_disconnected(sb)
    result = sb.click("U02FRANK", "C01APPROVALS", post(client), "approve")
    assert result.delivery is not None
    assert result.delivery.transport == "http"
    assert len(receiver.requests) == 1


def test_dropped_connection_fails_the_waiting_delivery(
    app: SocketApp, sb: SandboxServer, client: WebClient
) -> None:
    def drop(_: SocketModeRequest) -> None:
        sb.close_socket_connections()

    app.answer = drop
    result = sb.click("U02FRANK", "C01APPROVALS", post(client), "approve")
    assert result.delivery is not None
    assert (result.delivery.transport, result.delivery.error) == ("socket_mode", "connection_failed")
    assert [n.text for n in sb.notices("U02FRANK")] == ["Couldn't reach Approvals. Please try again."]


# a real Bolt app over Socket Mode -----------------------------------------------------------


@pytest.fixture
def bolt_socket(sb: SandboxServer) -> Iterator[App]:
    bolt = build_app(WebClient(token=BOT_TOKEN, base_url=sb.api_url))
    handler = SocketModeHandler(bolt, DEFAULT_APP_TOKEN)
    handler.client.auto_reconnect_enabled = False
    handler.connect()  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + 5
    while not sb.socket_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    yield bolt
    sb.close_socket_connections()
    handler.close()  # type: ignore[no-untyped-call]
    wait_disconnected(sb)


def test_bolt_handler_round_trip(bolt_socket: App, sb: SandboxServer, client: WebClient) -> None:
    ts = post(client)
    assert sb.click("U02FRANK", "C01APPROVALS", ts, "approve").ok
    sb.wait_for(lambda: sb.message("C01APPROVALS", ts)["text"] == "Approved by <@U02FRANK>", what="the edit")
    assert sb.click("U01MAYA", "C01APPROVALS", post(client), "reject").ok
    sb.wait_for(lambda: sb.open_view("U01MAYA"), what="the modal")
    assert sb.submit_view("U01MAYA", values={"reason": "too dear"}).errors == {
        "reason": "Name the budget line"
    }
    assert sb.submit_view("U01MAYA", values={"reason": "over budget line 4"}).ok
    assert sb.open_view("U01MAYA") is None
    assert sb.slash("U06REQ", "C01APPROVALS", "/approvals").ok
    assert [m["text"] for m in sb.ephemerals("U06REQ")] == ["Nothing waiting for <@U06REQ>"]
    assert {d.transport for d in sb.deliveries()} == {"socket_mode"}
