"""A real Bolt app behind the receiver: its signature checks pass and its answers land in Slack.

Bolt is a client of the protocol here, not part of the sandbox; it catches payload shapes that
only a real consumer would trip over.
"""

from __future__ import annotations

from typing import Any

import pytest
from slack_bolt import Ack, App, BoltRequest, Respond
from slack_sdk import WebClient

from slack_approvals.sandbox import SandboxServer
from tests.sandbox.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.sandbox.receiver import Received, Receiver, Reply
from tests.sandbox.support import APPROVE_BLOCKS, REASON_MODAL


def build_app(client: WebClient) -> App:
    app = App(client=client, signing_secret=SIGNING_SECRET)

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        respond(replace_original=True, text=f"Approved by <@{body['user']['id']}>")

    @app.action("reject")
    def reject(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=REASON_MODAL)

    @app.view("reject_reason")
    def reason(ack: Ack, view: dict[str, Any]) -> None:
        text = view["state"]["values"]["reason"]["reason_input"]["value"]
        if "budget" not in text:
            ack(response_action="errors", errors={"reason": "Name the budget line"})
        else:
            ack()

    @app.command("/approvals")
    def command(ack: Ack, command: dict[str, Any]) -> None:
        ack(f"Nothing waiting for <@{command['user_id']}>")

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(
            user_id=event["user"],
            view={
                "type": "home",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Home"}}],
            },
        )

    return app


@pytest.fixture
def bolt(sb: SandboxServer, receiver: Receiver) -> App:
    app = build_app(WebClient(token=BOT_TOKEN, base_url=sb.api_url))

    def dispatch(request: Received) -> Reply:
        response = app.dispatch(BoltRequest(body=request.text, headers=dict(request.headers.items())))
        content_type = response.headers.get("content-type", ["text/plain"])[0]
        return Reply(status=response.status, body=response.body, content_type=content_type)

    receiver.responder = dispatch
    return app


def test_button_then_respond_replaces_the_message(bolt: App, client: WebClient, sb: SandboxServer) -> None:
    ts = client.chat_postMessage(channel="C01APPROVALS", text="Laptop", blocks=APPROVE_BLOCKS)["ts"]
    assert sb.click("U02FRANK", "C01APPROVALS", ts, "approve").status == 200
    sb.wait_for(lambda: sb.message("C01APPROVALS", ts)["text"] == "Approved by <@U02FRANK>", what="the edit")


def test_modal_errors_then_close(bolt: App, client: WebClient, sb: SandboxServer) -> None:
    ts = client.chat_postMessage(channel="C01APPROVALS", text="Laptop", blocks=APPROVE_BLOCKS)["ts"]
    assert sb.click("U01MAYA", "C01APPROVALS", ts, "reject").ok
    sb.wait_for(lambda: sb.open_view("U01MAYA"), what="the modal")
    assert sb.submit_view("U01MAYA", values={"reason": "too dear"}).errors == {
        "reason": "Name the budget line"
    }
    assert sb.open_view("U01MAYA") is not None
    assert sb.submit_view("U01MAYA", values={"reason": "over budget line 4"}).ok
    assert sb.open_view("U01MAYA") is None


def test_command_ack_text_is_ephemeral(bolt: App, sb: SandboxServer) -> None:
    assert sb.slash("U06REQ", "C01APPROVALS", "/approvals", "list").ok
    assert [m["text"] for m in sb.ephemerals("U06REQ")] == ["Nothing waiting for <@U06REQ>"]


def test_home_opened_publishes(bolt: App, sb: SandboxServer) -> None:
    assert sb.open_home("U05SARA").ok
    sb.wait_for(lambda: sb.home_view("U05SARA"), what="the Home tab")


def test_bad_signature_is_refused_by_bolt(bolt: App, client: WebClient, sb: SandboxServer) -> None:
    sb.config.signing_secret = "not-the-apps-secret"
    ts = client.chat_postMessage(channel="C01APPROVALS", text="Laptop", blocks=APPROVE_BLOCKS)["ts"]
    result = sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    assert result.status == 401
    assert sb.notices("U02FRANK")[0].text == "Approvals responded with Status Code 401."
