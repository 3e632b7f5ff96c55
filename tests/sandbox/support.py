"""Shared test data for the sandbox's tests: Block Kit messages, a modal, and an error helper."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

APPROVE_BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "Laptop purchase"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Riley* asks for *£1,800*"}},
    {
        "type": "actions",
        "block_id": "decide",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "style": "primary",
                "value": "req-1",
            },
            {
                "type": "button",
                "action_id": "reject",
                "text": {"type": "plain_text", "text": "Reject"},
                "style": "danger",
                "value": "req-1",
            },
        ],
    },
]


CONFIRMING_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Deploy *api* to production?"}},
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "deploy",
                "text": {"type": "plain_text", "text": "Deploy"},
                "value": "api",
                "confirm": {
                    "title": {"type": "plain_text", "text": "Sure?"},
                    "text": {"type": "mrkdwn", "text": "This goes live."},
                    "confirm": {"type": "plain_text", "text": "Deploy"},
                    "deny": {"type": "plain_text", "text": "Stop"},
                },
            }
        ],
    },
]


REASON_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "reject_reason",
    "private_metadata": json.dumps({"request": "req-1"}),
    "title": {"type": "plain_text", "text": "Reject request"},
    "submit": {"type": "plain_text", "text": "Reject"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "notify_on_close": True,
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Why?"},
            "element": {
                "type": "plain_text_input",
                "action_id": "reason_input",
                "multiline": True,
                "min_length": 5,
                "max_length": 200,
            },
        },
        {
            "type": "input",
            "block_id": "note",
            "optional": True,
            "label": {"type": "plain_text", "text": "Note"},
            "element": {"type": "plain_text_input", "action_id": "note_input"},
        },
    ],
}


def api_error(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as caught:
        call()
    data: dict[str, Any] = caught.value.response.data
    return data
