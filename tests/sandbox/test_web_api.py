"""The sandbox's Web API, driven through a real slack_sdk WebClient (and raw HTTP for the odd case)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from slack_sdk import WebClient

from slack_approvals.sandbox import SandboxServer
from tests.sandbox.conftest import BOT_TOKEN
from tests.sandbox.support import APPROVE_BLOCKS, api_error


def test_auth_test_names_the_bot_and_team(client: WebClient) -> None:
    body = client.auth_test().data
    assert body == {
        "ok": True,
        "url": "https://sandbox.slack.com/",
        "team": "Sandbox",
        "user": "approvals",
        "team_id": "T0SANDBOX",
        "user_id": "U0APPROVALSBOT",
        "bot_id": "B0APPROVALS",
        "is_enterprise_install": False,
    }


def test_post_message_returns_slacks_shape(client: WebClient, sb: SandboxServer) -> None:
    response = client.chat_postMessage(channel="C01APPROVALS", text="Laptop", blocks=APPROVE_BLOCKS)
    assert response["ok"] is True
    assert response["channel"] == "C01APPROVALS"
    message = response["message"]
    assert message["ts"] == response["ts"]
    assert message["type"] == "message"
    assert message["user"] == "U0APPROVALSBOT"
    assert message["bot_id"] == "B0APPROVALS"
    assert message["app_id"] == "A0APPROVALS"
    assert message["text"] == "Laptop"
    # Slack fills in block ids and text defaults; the app's own ids survive.
    assert all(block["block_id"] for block in message["blocks"])
    assert message["blocks"][2]["block_id"] == "decide"
    assert message["blocks"][0]["text"]["emoji"] is True
    assert message["blocks"][1]["text"]["verbatim"] is False
    assert sb.message("C01APPROVALS", response["ts"]) == message


def test_ts_strictly_increase_within_a_channel(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel="C01APPROVALS", text=str(i))["ts"] for i in range(5)]
    as_numbers = [tuple(int(p) for p in ts.split(".")) for ts in stamps]
    assert as_numbers == sorted(set(as_numbers))
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


def test_channel_names_and_user_ids_resolve(client: WebClient) -> None:
    assert client.chat_postMessage(channel="#finance", text="x")["channel"] == "C02FINANCE"
    # Posting to a person lands in their direct messages with the app.
    assert client.chat_postMessage(channel="U02FRANK", text="x")["channel"] == "D02FRANK"


def test_wrong_token_is_invalid_auth(sb: SandboxServer) -> None:
    bad = WebClient(token="xoxb-wrong", base_url=sb.api_url)
    assert api_error(bad.auth_test)["error"] == "invalid_auth"


def test_missing_token_is_not_authed(sb: SandboxServer) -> None:
    anonymous = WebClient(base_url=sb.api_url)
    assert api_error(anonymous.auth_test)["error"] == "not_authed"


def test_errors_are_http_200_with_ok_false(sb: SandboxServer) -> None:
    response = httpx.post(
        sb.api_url + "chat.postMessage",
        json={"channel": "C404", "text": "x"},
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
    )
    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": "channel_not_found"}


def test_form_and_query_arguments_work_like_json(sb: SandboxServer) -> None:
    form = httpx.post(
        sb.api_url + "chat.postMessage",
        data={"token": BOT_TOKEN, "channel": "C03ENG", "text": "form", "blocks": "[]"},
    ).json()
    assert form["ok"] is True
    query = httpx.get(sb.api_url + "users.info", params={"token": BOT_TOKEN, "user": "U03ERIN"})
    assert query.json()["user"]["name"] == "erin"


def test_fifty_one_blocks_are_invalid_blocks(client: WebClient) -> None:
    blocks = [{"type": "divider"} for _ in range(51)]
    body = api_error(lambda: client.chat_postMessage(channel="C01APPROVALS", text="x", blocks=blocks))
    assert body["error"] == "invalid_blocks"
    assert body["errors"] == ["no more than 50 items allowed [json-pointer:/blocks]"]
    assert body["response_metadata"]["messages"] == [
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    ]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}},
            "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}},
            "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            {"type": "header", "text": {"type": "mrkdwn", "text": "bold?"}},
            "must be a valid enum value [json-pointer:/blocks/0/text/type]",
        ),
        (
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": "f"} for _ in range(11)],
            },
            "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
        ),
        (
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "a",
                        "text": {"type": "plain_text", "text": "x" * 76},
                    }
                ],
            },
            "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
        ),
        (
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "a",
                        "value": "v" * 2001,
                        "text": {"type": "plain_text", "text": "ok"},
                    }
                ],
            },
            "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]",
        ),
        ({"type": "carousel"}, "failed to match all allowed schemas [json-pointer:/blocks/0]"),
        ({"type": "section"}, "must define either `text` or `fields` [json-pointer:/blocks/0]"),
    ],
)
def test_block_limits_are_enforced(client: WebClient, block: dict[str, Any], message: str) -> None:
    body = api_error(lambda: client.chat_postMessage(channel="C01APPROVALS", text="x", blocks=[block]))
    assert body["error"] == "invalid_blocks"
    assert message in body["errors"]


def test_unknown_channel_is_channel_not_found(client: WebClient) -> None:
    body = api_error(lambda: client.chat_postMessage(channel="C0NOPE", text="x"))
    assert body["error"] == "channel_not_found"


def test_message_needs_text_or_blocks_and_a_sane_length(client: WebClient, sb: SandboxServer) -> None:
    # Raw HTTP: slack_sdk itself warns before sending a message without text.
    empty = httpx.post(
        sb.api_url + "chat.postMessage",
        json={"channel": "C01APPROVALS"},
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
    )
    assert empty.json() == {"ok": False, "error": "no_text"}
    too_long = "x" * 40_001
    error = api_error(lambda: client.chat_postMessage(channel="C01APPROVALS", text=too_long))["error"]
    assert error == "msg_too_long"


def test_chat_update_edits_and_reports_missing_messages(client: WebClient, sb: SandboxServer) -> None:
    ts = client.chat_postMessage(channel="C01APPROVALS", text="pending", blocks=APPROVE_BLOCKS)["ts"]
    done = [{"type": "section", "text": {"type": "mrkdwn", "text": ":white_check_mark: Approved"}}]
    response = client.chat_update(channel="C01APPROVALS", ts=ts, text="approved", blocks=done)
    assert response["ts"] == ts
    assert response["text"] == "approved"
    stored = sb.message("C01APPROVALS", ts)
    assert stored["text"] == "approved"
    assert [b["type"] for b in stored["blocks"]] == ["section"]
    missing = api_error(lambda: client.chat_update(channel="C01APPROVALS", ts="1.000001", text="x"))
    assert missing["error"] == "message_not_found"


def test_chat_delete_removes_the_message(client: WebClient, sb: SandboxServer) -> None:
    ts = client.chat_postMessage(channel="C01APPROVALS", text="oops")["ts"]
    assert client.chat_delete(channel="C01APPROVALS", ts=ts)["ok"] is True
    assert sb.messages("C01APPROVALS") == []


def test_post_ephemeral_is_only_for_one_person(client: WebClient, sb: SandboxServer) -> None:
    response = client.chat_postEphemeral(channel="C01APPROVALS", user="U06REQ", text="Only you")
    assert response["ok"] is True and response["message_ts"]
    shown = sb.ephemerals("U06REQ")
    assert [(m["text"], m["channel"], m["ts"]) for m in shown] == [
        ("Only you", "C01APPROVALS", response["message_ts"])
    ]
    assert sb.ephemerals("U01MAYA") == []
    assert sb.messages("C01APPROVALS") == []
    unknown = api_error(lambda: client.chat_postEphemeral(channel="C01APPROVALS", user="U0NOBODY", text="x"))
    assert unknown["error"] == "user_not_found"


def test_users_info_and_list(client: WebClient) -> None:
    maya = client.users_info(user="U01MAYA")["user"]
    assert (maya["id"], maya["name"], maya["real_name"]) == ("U01MAYA", "maya", "Maya Manager")
    assert maya["profile"]["display_name"] == "maya"
    assert maya["is_bot"] is False
    assert api_error(lambda: client.users_info(user="U0NOBODY"))["error"] == "user_not_found"

    first = client.users_list(limit=4)
    cursor = first["response_metadata"]["next_cursor"]
    assert len(first["members"]) == 4 and cursor
    rest = client.users_list(limit=4, cursor=cursor)
    assert rest["response_metadata"]["next_cursor"] == ""
    names = [m["name"] for m in first["members"] + rest["members"]]
    assert names == ["maya", "frank", "erin", "oliver", "sara", "riley", "approvals"]


def test_usergroups(client: WebClient) -> None:
    groups = client.usergroups_list(include_users=True)["usergroups"]
    by_handle = {g["handle"]: g for g in groups}
    assert set(by_handle) == {"finance-approvers", "eng-leads", "sales-leads"}
    assert by_handle["finance-approvers"]["id"] == "S01FINANCE"
    assert by_handle["finance-approvers"]["users"] == ["U02FRANK", "U01MAYA"]
    assert by_handle["eng-leads"]["user_count"] == 2
    assert client.usergroups_users_list(usergroup="S02ENGLEADS")["users"] == ["U03ERIN", "U04OLIVER"]
    missing = api_error(lambda: client.usergroups_users_list(usergroup="S0NOPE"))
    assert missing["error"] == "no_such_subteam"


def test_conversations(client: WebClient) -> None:
    info = client.conversations_info(channel="C05DEPLOYS")["channel"]
    assert (info["id"], info["name"], info["is_channel"], info["is_member"]) == (
        "C05DEPLOYS",
        "deploys",
        True,
        True,
    )
    names = [c["name"] for c in client.conversations_list()["channels"]]
    assert names == ["approvals", "finance", "engineering", "sales", "deploys"]
    assert api_error(lambda: client.conversations_info(channel="C0NOPE"))["error"] == "channel_not_found"


def test_unknown_method(client: WebClient) -> None:
    body = api_error(lambda: client.api_call("chat.teleport"))
    assert body["error"] == "unknown_method"


def test_every_call_is_logged(client: WebClient, sb: SandboxServer) -> None:
    client.chat_postMessage(channel="C01APPROVALS", text="logged")
    api_error(lambda: client.chat_postMessage(channel="C0NOPE", text="x"))
    calls = sb.api_calls("chat.postMessage")
    assert [c.response["ok"] for c in calls] == [True, False]
    assert calls[0].args == {"channel": "C01APPROVALS", "text": "logged"}
    assert calls[1].response["error"] == "channel_not_found"
    assert all(c.status == 200 for c in calls)
