"""Block Kit checks and normalisation, and modal state building, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from slack_approvals.sandbox.blocks import block_errors, normalize_blocks, view_errors
from slack_approvals.sandbox.ids import IdMint, format_ts, parse_ts
from slack_approvals.sandbox.view_state import UnknownInputError, build_state


def button(action_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": "Go"}, **extra}


def test_valid_message_blocks_pass() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Title"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "accessory": button("more")},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "small"}]},
        {"type": "divider"},
        {"type": "actions", "elements": [button("a"), button("b", style="danger")]},
    ]
    assert block_errors(blocks) == []


def test_limits_for_counts_ids_and_confirm_dialogs() -> None:
    context = {"type": "context", "elements": [{"type": "plain_text", "text": "c"}] * 11}
    actions = {"type": "actions", "elements": [button(f"b{i}") for i in range(26)]}
    long_id = {"type": "divider", "block_id": "x" * 256}
    confirm = {
        "type": "actions",
        "elements": [
            button(
                "c",
                confirm={
                    "title": {"type": "plain_text", "text": "t" * 101},
                    "text": {"type": "mrkdwn", "text": "x" * 301},
                    "confirm": {"type": "plain_text", "text": "ok"},
                    "deny": {"type": "plain_text", "text": "no"},
                },
            )
        ],
    }
    errors = block_errors([context, actions, long_id, confirm])
    assert errors == [
        "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
        "no more than 25 items allowed [json-pointer:/blocks/1/elements]",
        "must be less than 256 characters [json-pointer:/blocks/2/block_id]",
        "must be less than 101 characters [json-pointer:/blocks/3/elements/0/confirm/title/text]",
        "must be less than 301 characters [json-pointer:/blocks/3/elements/0/confirm/text/text]",
    ]


def test_duplicate_ids_are_refused() -> None:
    same_block = [{"type": "divider", "block_id": "d"}, {"type": "divider", "block_id": "d"}]
    assert block_errors(same_block) == ["non-unique block_id: d [json-pointer:/blocks/1/block_id]"]
    same_action = [{"type": "actions", "elements": [button("a"), button("a")]}]
    assert block_errors(same_action) == [
        "duplicate action_id: a [json-pointer:/blocks/0/elements/1/action_id]"
    ]


def test_modal_limits() -> None:
    label = {"type": "plain_text", "text": "L" * 2001}
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "T"},
        "blocks": [{"type": "input", "label": label, "element": {"type": "plain_text_input"}}],
    }
    assert view_errors(view) == [
        "must be less than 2001 characters [json-pointer:/view/blocks/0/label/text]",
        "must provide submit when input blocks are present [json-pointer:/view]",
    ]
    many = {"type": "home", "blocks": [{"type": "divider"}] * 101}
    assert view_errors(many) == ["no more than 100 items allowed [json-pointer:/view/blocks]"]


def test_normalisation_adds_ids_without_touching_the_input() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x"}}]}
    ]
    shaped = normalize_blocks(blocks, IdMint(1))
    assert "block_id" not in blocks[0]
    assert shaped[0]["block_id"] and shaped[0]["elements"][0]["action_id"]
    assert shaped[0]["elements"][0]["text"]["emoji"] is True


def test_ts_round_trip_and_order() -> None:
    mint = IdMint(1)
    first, second = mint.next_ts(1764115200.0001), mint.next_ts(1764115200.0001)
    assert first == "1764115200.000100"
    assert parse_ts(second) == parse_ts(first) + 1
    assert format_ts(parse_ts(second)) == second


def test_state_from_nested_or_flat_values() -> None:
    blocks = [
        {
            "type": "input",
            "block_id": "amount",
            "label": {"type": "plain_text", "text": "Amount"},
            "element": {
                "type": "number_input",
                "action_id": "n",
                "is_decimal_allowed": False,
                "max_value": "10",
            },
        },
        {
            "type": "input",
            "block_id": "dept",
            "label": {"type": "plain_text", "text": "Department"},
            "element": {
                "type": "static_select",
                "action_id": "s",
                "options": [{"text": {"type": "plain_text", "text": "Finance"}, "value": "fin"}],
            },
        },
    ]
    state, errors = build_state(blocks, {"amount": "4", "s": "fin"})
    assert errors == {}
    assert state["amount"] == {"n": {"type": "number_input", "value": "4"}}
    assert state["dept"]["s"]["selected_option"]["value"] == "fin"
    _, errors = build_state(blocks, {"amount": {"n": "12.5"}, "dept": {"s": "fin"}})
    assert errors == {"amount": "Please enter a whole number."}
    with pytest.raises(UnknownInputError):
        build_state(blocks, {"amount": "1", "dept": "no-such-option"})
    with pytest.raises(UnknownInputError):
        build_state(blocks, {"budget": "1"})
