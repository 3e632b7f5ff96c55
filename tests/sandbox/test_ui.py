"""The page's endpoints: the state snapshot, live change events, and actions through the driver."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from slack_sdk import WebClient

from slack_approvals.sandbox import SandboxServer
from tests.sandbox.receiver import Receiver
from tests.sandbox.support import APPROVE_BLOCKS


def state(sb: SandboxServer, user: str, channel: str = "C01APPROVALS") -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(sb.url + "/ui/state", params={"user": user, "channel": channel}).json()
    return body


def test_page_is_served(sb: SandboxServer) -> None:
    page = httpx.get(sb.url + "/")
    assert page.status_code == 200
    assert 'data-testid="user-switcher"' in page.text
    for asset in ("app.js", "blocks.js", "mrkdwn.js", "style.css"):
        assert httpx.get(f"{sb.url}/static/{asset}").status_code == 200


def test_snapshot_shows_one_persons_view(client: WebClient, sb: SandboxServer) -> None:
    client.chat_postMessage(channel="C01APPROVALS", text="for everyone")
    client.chat_postEphemeral(channel="C01APPROVALS", user="U02FRANK", text="for frank")
    frank = state(sb, "U02FRANK")
    assert frank["user"] == "U02FRANK"
    assert [m["text"] for m in frank["messages"]] == ["for everyone"]
    assert [m["text"] for m in frank["ephemerals"]] == ["for frank"]
    assert state(sb, "U01MAYA")["ephemerals"] == []
    users = {u["id"]: u for u in frank["users"]}
    assert users["U01MAYA"]["groups"] == ["finance-approvers"]
    channel_ids = [c["id"] for c in frank["channels"]]
    assert channel_ids[-1] == "D02FRANK" and "D01MAYA" not in channel_ids
    # Unknown people and channels fall back to defaults rather than failing the page.
    fallback = state(sb, "nobody", "C0NOPE")
    assert (fallback["user"], fallback["channel"]) == ("U01MAYA", "C01APPROVALS")


def test_ui_click_goes_through_the_driver(client: WebClient, sb: SandboxServer, receiver: Receiver) -> None:
    ts = client.chat_postMessage(channel="C01APPROVALS", text="card", blocks=APPROVE_BLOCKS)["ts"]
    answer = httpx.post(
        sb.url + "/ui/click",
        json={"user_id": "U01MAYA", "channel_id": "C01APPROVALS", "message_ts": ts, "action_id": "reject"},
    ).json()
    assert answer["ok"] is True and answer["delivery"]["status"] == 200
    assert receiver.last().payload()["actions"][0]["action_id"] == "reject"
    missing = httpx.post(sb.url + "/ui/click", json={"user_id": "U01MAYA"})
    assert missing.status_code == 400 and "missing" in missing.json()["error"]


def test_ui_slash_runs_commands_and_plain_text_is_a_message(sb: SandboxServer, receiver: Receiver) -> None:
    httpx.post(
        sb.url + "/ui/slash",
        json={"user_id": "U06REQ", "channel_id": "C01APPROVALS", "text": "/approvals list mine"},
    )
    fields = receiver.last().form()
    assert (fields["command"], fields["text"]) == ("/approvals", "list mine")
    httpx.post(
        sb.url + "/ui/slash", json={"user_id": "U06REQ", "channel_id": "C01APPROVALS", "text": "hello"}
    )
    assert [(m["user"], m["text"]) for m in sb.messages("C01APPROVALS")] == [("U06REQ", "hello")]


def test_stream_reports_an_edit(client: WebClient, sb: SandboxServer) -> None:
    ts = client.chat_postMessage(channel="C01APPROVALS", text="pending")["ts"]
    versions: list[int] = []
    got_first, got_edit = threading.Event(), threading.Event()

    def listen() -> None:
        with httpx.stream("GET", sb.url + "/ui/stream", timeout=5) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    versions.append(json.loads(line[5:])["version"])
                    (got_edit if got_first.is_set() else got_first).set()
                    if got_edit.is_set():
                        return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert got_first.wait(5)
    client.chat_update(channel="C01APPROVALS", ts=ts, text="approved")
    assert got_edit.wait(5)
    reader.join(5)
    assert versions[1] > versions[0]
    assert [m["text"] for m in state(sb, "U01MAYA")["messages"]] == ["approved"]


def test_wait_for_sees_a_later_edit(client: WebClient, sb: SandboxServer) -> None:
    ts = client.chat_postMessage(channel="C01APPROVALS", text="pending")["ts"]
    timer = threading.Timer(0.1, lambda: client.chat_update(channel="C01APPROVALS", ts=ts, text="done"))
    timer.start()
    seen = sb.wait_for(lambda: sb.message("C01APPROVALS", ts)["text"] == "done", timeout=3, what="the edit")
    assert seen is True
    timer.join()
