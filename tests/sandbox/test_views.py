"""Modals and the Home tab: trigger_id rules, views.* methods, and submissions answered by the app."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from slack_approvals.sandbox import DriverError, ManualClock, SandboxServer
from tests.sandbox.receiver import Received, Receiver, Reply
from tests.sandbox.support import REASON_MODAL, api_error


def open_modal_on_slash(
    sb: SandboxServer, receiver: Receiver, client: WebClient, user: str
) -> dict[str, Any]:
    """Plays an app that opens the reason modal straight from a slash command."""
    opened: dict[str, Any] = {}

    def open_modal(request: Received) -> Reply:
        opened.update(client.views_open(trigger_id=request.form()["trigger_id"], view=REASON_MODAL)["view"])
        return Reply()

    receiver.responder = open_modal
    assert sb.slash(user, "C01APPROVALS", "/approvals", "reject req-1").ok
    receiver.responder = lambda _: Reply()
    return opened


def issue_trigger(sb: SandboxServer, receiver: Receiver, user: str) -> str:
    sb.slash(user, "C01APPROVALS", "/approvals", "")
    trigger: str = receiver.last().form()["trigger_id"]
    return trigger


def test_views_open_returns_the_view_and_shows_it(
    sb: SandboxServer, receiver: Receiver, client: WebClient
) -> None:
    view = open_modal_on_slash(sb, receiver, client, "U02FRANK")
    assert view["id"].startswith("V")
    assert (view["type"], view["callback_id"], view["root_view_id"], view["previous_view_id"]) == (
        "modal",
        "reject_reason",
        view["id"],
        None,
    )
    assert view["state"] == {"values": {}}
    assert view["app_id"] == "A0APPROVALS" and view["bot_id"] == "B0APPROVALS"
    assert view["hash"]
    assert sb.open_view("U02FRANK") == view
    assert sb.open_view("U01MAYA") is None


def test_trigger_ids_expire_after_three_seconds(
    sb: SandboxServer, receiver: Receiver, client: WebClient, clock: ManualClock
) -> None:
    trigger = issue_trigger(sb, receiver, "U02FRANK")
    clock.advance(3.01)
    body = api_error(lambda: client.views_open(trigger_id=trigger, view=REASON_MODAL))
    assert body["error"] == "expired_trigger_id"


def test_trigger_ids_work_once(sb: SandboxServer, receiver: Receiver, client: WebClient) -> None:
    trigger = issue_trigger(sb, receiver, "U02FRANK")
    assert client.views_open(trigger_id=trigger, view=REASON_MODAL)["ok"]
    assert api_error(lambda: client.views_open(trigger_id=trigger, view=REASON_MODAL))["error"] == (
        "exchanged_trigger_id"
    )
    made_up = api_error(lambda: client.views_open(trigger_id="123.456.abc", view=REASON_MODAL))
    assert made_up["error"] == "invalid_trigger_id"


def test_invalid_views_are_refused(sb: SandboxServer, receiver: Receiver, client: WebClient) -> None:
    trigger = issue_trigger(sb, receiver, "U02FRANK")
    long_title = {**REASON_MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    body = api_error(lambda: client.views_open(trigger_id=trigger, view=long_title))
    assert body["error"] == "invalid_arguments"
    assert "must be less than 25 characters [json-pointer:/view/title/text]" in body["errors"]
    # A refused view does not use up the trigger.
    assert client.views_open(trigger_id=trigger, view=REASON_MODAL)["ok"]


def test_submission_checks_lengths_before_sending(
    sb: SandboxServer, receiver: Receiver, client: WebClient
) -> None:
    view = open_modal_on_slash(sb, receiver, client, "U02FRANK")
    sent_before = len(receiver.requests)
    result = sb.submit_view("U02FRANK", view["id"], {"reason": "meh"})
    assert not result.delivered
    assert result.errors == {"reason": "Must be at least 5 characters (currently 3)."}
    assert sb.modal_errors("U02FRANK") == result.errors
    empty = sb.submit_view("U02FRANK", values={})
    assert empty.errors == {"reason": "Please complete this required field."}
    assert len(receiver.requests) == sent_before


def test_submission_answered_with_errors_keeps_the_modal_open(
    sb: SandboxServer, receiver: Receiver, client: WebClient
) -> None:
    view = open_modal_on_slash(sb, receiver, client, "U02FRANK")
    receiver.responder = lambda _: Reply(
        body=json.dumps({"response_action": "errors", "errors": {"reason": "Say which budget line"}})
    )
    result = sb.submit_view("U02FRANK", view["id"], {"reason_input": "Too expensive"})
    assert result.ok
    assert result.errors == {"reason": "Say which budget line"}
    still_open = sb.open_view("U02FRANK")
    assert still_open is not None and still_open["id"] == view["id"]
    assert sb.modal_errors("U02FRANK") == {"reason": "Say which budget line"}

    payload = receiver.last().payload()
    assert payload["type"] == "view_submission"
    assert payload["response_urls"] == []
    assert payload["view"]["private_metadata"] == json.dumps({"request": "req-1"})
    assert payload["view"]["state"]["values"] == {
        "reason": {"reason_input": {"type": "plain_text_input", "value": "Too expensive"}},
        "note": {"note_input": {"type": "plain_text_input", "value": None}},
    }

    receiver.responder = lambda _: Reply()
    closed = sb.submit_view("U02FRANK", view["id"], {"reason": {"reason_input": "Budget line 4 is spent"}})
    assert closed.ok and closed.errors == {}
    assert sb.open_view("U02FRANK") is None


def test_submission_update_push_and_clear(sb: SandboxServer, receiver: Receiver, client: WebClient) -> None:
    view = open_modal_on_slash(sb, receiver, client, "U01MAYA")
    thanks = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Thanks"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Recorded."}}],
    }
    receiver.responder = lambda _: Reply(body=json.dumps({"response_action": "update", "view": thanks}))
    sb.submit_view("U01MAYA", values={"reason": "Not this quarter"})
    updated = sb.open_view("U01MAYA")
    assert updated is not None and updated["id"] == view["id"]
    assert updated["title"]["text"] == "Thanks" and updated["hash"] != view["hash"]

    sb.close_view("U01MAYA")
    view = open_modal_on_slash(sb, receiver, client, "U01MAYA")
    receiver.responder = lambda _: Reply(body=json.dumps({"response_action": "push", "view": thanks}))
    sb.submit_view("U01MAYA", values={"reason": "Not this quarter"})
    pushed = sb.open_view("U01MAYA")
    assert pushed is not None
    assert (pushed["previous_view_id"], pushed["root_view_id"]) == (view["id"], view["id"])

    receiver.responder = lambda _: Reply(body=json.dumps({"response_action": "clear"}))
    with pytest.raises(DriverError, match="no submit"):
        sb.submit_view("U01MAYA")
    sb.close_view("U01MAYA")
    back = sb.open_view("U01MAYA")
    assert back is not None and back["id"] == view["id"]
    sb.submit_view("U01MAYA", values={"reason": "Not this quarter"})
    assert sb.open_view("U01MAYA") is None


def test_cancel_notifies_when_asked(sb: SandboxServer, receiver: Receiver, client: WebClient) -> None:
    view = open_modal_on_slash(sb, receiver, client, "U02FRANK")
    result = sb.close_view("U02FRANK")
    assert result.ok
    payload = receiver.last().payload()
    assert (payload["type"], payload["view"]["id"], payload["is_cleared"]) == (
        "view_closed",
        view["id"],
        False,
    )
    assert sb.open_view("U02FRANK") is None


def test_views_update_and_publish(sb: SandboxServer, receiver: Receiver, client: WebClient) -> None:
    view = open_modal_on_slash(sb, receiver, client, "U02FRANK")
    changed = {**REASON_MODAL, "title": {"type": "plain_text", "text": "Reject (2)"}}
    updated = client.views_update(view_id=view["id"], view=changed, hash=view["hash"])["view"]
    assert updated["title"]["text"] == "Reject (2)"
    stale = api_error(lambda: client.views_update(view_id=view["id"], view=changed, hash=view["hash"]))
    assert stale["error"] == "hash_conflict"
    assert api_error(lambda: client.views_update(view_id="V0NOPE", view=changed))["error"] == "not_found"

    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}]}
    first = client.views_publish(user_id="U05SARA", view=home)["view"]
    second = client.views_publish(user_id="U05SARA", view=home)["view"]
    assert first["id"] == second["id"] and first["type"] == "home"
    assert sb.home_view("U05SARA") == second
    with pytest.raises(SlackApiError):
        client.views_publish(user_id="U0NOBODY", view=home)
