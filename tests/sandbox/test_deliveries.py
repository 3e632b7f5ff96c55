"""What the sandbox sends to the app: signed, Slack-shaped, and how the app's answers are shown."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from slack_approvals.sandbox import DriverError, SandboxServer
from tests.sandbox.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.sandbox.receiver import Received, Receiver, Reply
from tests.sandbox.support import APPROVE_BLOCKS, CONFIRMING_BLOCKS


def post_card(client: WebClient, channel: str = "C01APPROVALS") -> str:
    ts: str = client.chat_postMessage(channel=channel, text="Laptop", blocks=APPROVE_BLOCKS)["ts"]
    return ts


def is_signed(request: Received, secret: str = SIGNING_SECRET) -> bool:
    return SignatureVerifier(secret).is_valid_request(request.body, request.headers)


def test_block_actions_from_a_message_is_signed_and_shaped(
    client: WebClient, sb: SandboxServer, receiver: Receiver
) -> None:
    ts = post_card(client)
    result = sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    assert result.ok and result.status == 200

    request = receiver.last()
    assert is_signed(request)
    assert not is_signed(request, "another-secret")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["user-agent"].startswith("Slackbot 1.0")
    payload = request.payload()
    assert list(payload) == [
        "type",
        "user",
        "api_app_id",
        "token",
        "container",
        "trigger_id",
        "team",
        "enterprise",
        "is_enterprise_install",
        "channel",
        "message",
        "state",
        "response_url",
        "actions",
    ]
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": "U02FRANK", "username": "frank", "name": "frank", "team_id": "T0SANDBOX"}
    assert payload["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": "C01APPROVALS",
        "is_ephemeral": False,
    }
    assert payload["team"] == {"id": "T0SANDBOX", "domain": "sandbox"}
    assert payload["channel"] == {"id": "C01APPROVALS", "name": "approvals"}
    assert payload["message"] == sb.message("C01APPROVALS", ts)
    assert payload["state"] == {"values": {}}
    assert payload["response_url"].startswith(sb.url + "/response/")
    [action] = payload["actions"]
    assert {k: action[k] for k in ("action_id", "block_id", "value", "style", "type")} == {
        "action_id": "approve",
        "block_id": "decide",
        "value": "req-1",
        "style": "primary",
        "type": "button",
    }
    assert action["text"]["text"] == "Approve"
    assert float(action["action_ts"]) >= float(ts)
    [delivery] = sb.deliveries()
    assert (delivery.kind, delivery.status, delivery.user_id) == ("block_actions", 200, "U02FRANK")
    assert delivery.payload == payload


def test_a_confirm_button_delivers_like_any_other(
    client: WebClient, sb: SandboxServer, receiver: Receiver
) -> None:
    ts = client.chat_postMessage(channel="C05DEPLOYS", text="Deploy?", blocks=CONFIRMING_BLOCKS)["ts"]
    assert sb.click("U04OLIVER", "C05DEPLOYS", ts, "deploy").ok
    assert receiver.last().payload()["actions"][0]["value"] == "api"


def test_clicking_needs_a_real_button(client: WebClient, sb: SandboxServer) -> None:
    ts = post_card(client)
    with pytest.raises(DriverError, match="no element"):
        sb.click("U02FRANK", "C01APPROVALS", ts, "no_such_action")
    with pytest.raises(DriverError, match="no message"):
        sb.click("U02FRANK", "C01APPROVALS", "1.000001", "approve")
    with pytest.raises(DriverError, match="no user"):
        sb.click("U0NOBODY", "C01APPROVALS", ts, "approve")
    with pytest.raises(DriverError, match="cannot see"):
        sb.click("U02FRANK", "D01MAYA", ts, "approve")
    assert sb.deliveries() == []


def test_a_failing_app_shows_a_notice(client: WebClient, sb: SandboxServer, receiver: Receiver) -> None:
    receiver.responder = lambda _: Reply(status=500, body="boom")
    ts = post_card(client)
    result = sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    assert (result.ok, result.status, result.body) == (False, 500, "boom")
    assert [n.text for n in sb.notices("U02FRANK")] == ["Approvals responded with Status Code 500."]
    assert sb.notices("U01MAYA") == []


def test_a_slow_app_times_out(client: WebClient, sb: SandboxServer, receiver: Receiver) -> None:
    sb.config.delivery_timeout = 0.2
    receiver.responder = lambda _: Reply(delay=0.5)
    ts = post_card(client)
    result = sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    assert result.delivery is not None and result.delivery.error == "timeout"
    assert "didn't respond in time" in sb.notices("U02FRANK")[0].text


def test_response_url_replace_original_edits_the_message(
    client: WebClient, sb: SandboxServer, receiver: Receiver
) -> None:
    ts = post_card(client)
    sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    response_url = receiver.last().payload()["response_url"]
    done = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by <@U02FRANK>"}}]
    answer = httpx.post(response_url, json={"replace_original": True, "text": "Approved", "blocks": done})
    assert (answer.status_code, answer.text) == (200, "ok")
    message = sb.message("C01APPROVALS", ts)
    assert message["text"] == "Approved"
    assert message["blocks"][0]["text"]["text"] == "Approved by <@U02FRANK>"


def test_response_url_defaults_to_an_ephemeral_reply(
    client: WebClient, sb: SandboxServer, receiver: Receiver
) -> None:
    ts = post_card(client)
    sb.click("U02FRANK", "C01APPROVALS", ts, "reject")
    response_url = receiver.last().payload()["response_url"]
    assert httpx.post(response_url, json={"text": "You rejected it"}).text == "ok"
    assert [m["text"] for m in sb.ephemerals("U02FRANK", "C01APPROVALS")] == ["You rejected it"]
    assert len(sb.messages("C01APPROVALS")) == 1
    assert httpx.post(response_url, json={"delete_original": True}).text == "ok"
    assert sb.messages("C01APPROVALS") == []


def test_response_url_allows_five_uses_within_thirty_minutes(
    client: WebClient, sb: SandboxServer, receiver: Receiver, clock: Any
) -> None:
    ts = post_card(client)
    sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    first_url = receiver.last().payload()["response_url"]
    answers = [httpx.post(first_url, json={"text": f"note {i}"}) for i in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [404]
    assert answers[-1].text == "used_url"

    sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    second_url = receiver.last().payload()["response_url"]
    clock.advance(30 * 60 + 1)
    expired = httpx.post(second_url, json={"text": "late"})
    assert (expired.status_code, expired.text) == (404, "expired_url")


def test_slash_command_fields_and_in_channel_answer(sb: SandboxServer, receiver: Receiver) -> None:
    receiver.responder = lambda _: Reply(
        body=json.dumps({"response_type": "in_channel", "text": "3 open requests"})
    )
    result = sb.slash("U06REQ", "C01APPROVALS", "/approvals", "list")
    assert result.ok
    request = receiver.last()
    assert is_signed(request)
    fields = request.form()
    assert set(fields) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    assert (fields["command"], fields["text"], fields["user_id"], fields["user_name"]) == (
        "/approvals",
        "list",
        "U06REQ",
        "riley",
    )
    assert (fields["channel_id"], fields["channel_name"], fields["team_domain"]) == (
        "C01APPROVALS",
        "approvals",
        "sandbox",
    )
    assert [(m["user"], m["text"]) for m in sb.messages("C01APPROVALS")] == [
        ("U06REQ", "/approvals list"),
        ("U0APPROVALSBOT", "3 open requests"),
    ]


def test_slash_command_text_answer_is_ephemeral(sb: SandboxServer, receiver: Receiver) -> None:
    receiver.responder = lambda _: Reply(body="Nothing waiting for you", content_type="text/plain")
    sb.slash("U01MAYA", "C02FINANCE", "/approvals", "")
    assert [m["text"] for m in sb.ephemerals("U01MAYA", "C02FINANCE")] == ["Nothing waiting for you"]
    assert sb.messages("C02FINANCE") == []


def test_slash_command_later_reply_through_response_url(sb: SandboxServer, receiver: Receiver) -> None:
    sb.slash("U01MAYA", "C02FINANCE", "/approvals", "list")
    response_url = receiver.last().form()["response_url"]
    assert httpx.post(response_url, json={"text": "Here is your list"}).text == "ok"
    assert [m["text"] for m in sb.ephemerals("U01MAYA")] == ["Here is your list"]


def test_failed_slash_command_is_reported_by_slackbot(sb: SandboxServer, receiver: Receiver) -> None:
    receiver.responder = lambda _: Reply(status=404)
    sb.slash("U01MAYA", "C01APPROVALS", "/approvals", "list")
    [shown] = sb.ephemerals("U01MAYA", "C01APPROVALS")
    assert shown["user"] == "USLACKBOT"
    assert shown["text"] == '/approvals failed with the error "dispatch_failed"'


def test_app_home_opened_event(sb: SandboxServer, receiver: Receiver) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=sb.api_url)

    def publish(request: Received) -> Reply:
        event = request.payload()["event"]
        client.views_publish(
            user_id=event["user"],
            view={
                "type": "home",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": "Waiting on you: 1"}},
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "refresh",
                                "text": {"type": "plain_text", "text": "Refresh"},
                            }
                        ],
                    },
                ],
            },
        )
        return Reply()

    receiver.responder = publish
    assert sb.open_home("U03ERIN").ok
    request = receiver.last()
    assert is_signed(request)
    assert request.headers["content-type"] == "application/json"
    envelope = request.payload()
    assert envelope["type"] == "event_callback"
    assert envelope["event"] == {
        "type": "app_home_opened",
        "user": "U03ERIN",
        "channel": "D03ERIN",
        "tab": "home",
        "event_ts": envelope["event"]["event_ts"],
    }
    assert envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"][0]["user_id"] == "U0APPROVALSBOT"
    home = sb.home_view("U03ERIN")
    assert home is not None and home["type"] == "home"

    # The second opening carries the published view, as Slack does.
    receiver.responder = lambda _: Reply()
    sb.open_home("U03ERIN")
    assert receiver.last().payload()["event"]["view"]["id"] == home["id"]

    sb.click_home("U03ERIN", "refresh")
    payload = receiver.last().payload()
    assert payload["type"] == "block_actions"
    assert payload["container"] == {"type": "view", "view_id": home["id"]}
    assert payload["view"]["id"] == home["id"]
    assert "channel" not in payload and "message" not in payload and "response_url" not in payload


def test_no_request_url_records_and_notifies(client: WebClient, sb: SandboxServer) -> None:
    sb.set_request_url(None)
    ts = post_card(client)
    result = sb.click("U02FRANK", "C01APPROVALS", ts, "approve")
    assert result.delivery is not None and result.delivery.error == "no_request_url"
    assert sb.notices("U02FRANK")
