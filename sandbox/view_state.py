"""Turns what a person typed into a modal into Slack's `view.state.values`, checking it first.

Slack's client enforces required fields, min/max length and number ranges before it sends
anything, so the app never sees a submission that breaks them; the sandbox does the same.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

InputValue = str | list[str] | None
Values = Mapping[str, InputValue | Mapping[str, InputValue]]

REQUIRED_MESSAGE = "Please complete this required field."

_VALUE_TYPES = frozenset({"plain_text_input", "email_text_input", "url_text_input", "number_input"})
_SINGLE_OPTION_TYPES = frozenset({"static_select", "external_select", "radio_buttons"})
_MULTI_OPTION_TYPES = frozenset({"checkboxes", "multi_static_select", "multi_external_select"})
_SINGLE_PICK_FIELDS = {
    "users_select": ("selected_user", "initial_user"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "channels_select": ("selected_channel", "initial_channel"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
}
_MULTI_PICK_FIELDS = {
    "multi_users_select": ("selected_users", "initial_users"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
}


class UnknownInputError(ValueError):
    """The caller named an input or option the view does not have."""


def input_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if b.get("type") == "input" and isinstance(b.get("element"), dict)]


def _lookup(values: Values, block_id: str, action_id: str) -> tuple[bool, InputValue]:
    """Values may be nested `{block_id: {action_id: v}}` or flat, keyed by block or action id."""
    for key in (block_id, action_id):
        if key not in values:
            continue
        found = values[key]
        if isinstance(found, Mapping):
            if action_id in found:
                return True, found[action_id]
            continue
        return True, found
    return False, None


def _all_options(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = list(element.get("options", []))
    for group in element.get("option_groups", []):
        options.extend(group.get("options", []))
    return options


def _option(element: dict[str, Any], value: str) -> dict[str, Any]:
    for option in _all_options(element):
        if option.get("value") == value:
            return copy.deepcopy(option)
    raise UnknownInputError(f"{element.get('action_id')} has no option with value {value!r}")


def _as_list(value: InputValue) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _state_entry(element: dict[str, Any], provided: bool, value: InputValue) -> dict[str, Any]:
    kind = str(element["type"])
    entry: dict[str, Any] = {"type": kind}
    if kind in _VALUE_TYPES or kind == "rich_text_input":
        text = value if provided else element.get("initial_value")
        text = None if text in (None, "") else str(text)
        if kind == "rich_text_input":
            entry["rich_text_value"] = {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [{"type": "text", "text": text}] if text else [],
                    }
                ],
            }
        else:
            entry["value"] = text
    elif kind in _SINGLE_OPTION_TYPES:
        if provided:
            entry["selected_option"] = _option(element, str(value)) if value else None
        else:
            entry["selected_option"] = copy.deepcopy(element.get("initial_option"))
    elif kind in _MULTI_OPTION_TYPES:
        if provided:
            entry["selected_options"] = [_option(element, v) for v in _as_list(value)]
        else:
            entry["selected_options"] = copy.deepcopy(element.get("initial_options", []))
    elif kind in _SINGLE_PICK_FIELDS:
        field, initial = _SINGLE_PICK_FIELDS[kind]
        entry[field] = (value or None) if provided else element.get(initial)
    elif kind in _MULTI_PICK_FIELDS:
        field, initial = _MULTI_PICK_FIELDS[kind]
        entry[field] = _as_list(value) if provided else list(element.get(initial, []))
    else:
        entry["value"] = value if provided else None
    return entry


def _is_empty(entry: dict[str, Any]) -> bool:
    for key, item in entry.items():
        if key == "type":
            continue
        if key == "rich_text_value":
            return not item["elements"][0]["elements"]
        return item in (None, "", [])
    return True


def _check_entry(element: dict[str, Any], entry: dict[str, Any]) -> str | None:
    kind = element["type"]
    value = entry.get("value")
    if not isinstance(value, str):
        return None
    if kind == "plain_text_input":
        lo, hi = element.get("min_length"), element.get("max_length")
        if isinstance(lo, int) and len(value) < lo:
            return f"Must be at least {lo} characters (currently {len(value)})."
        if isinstance(hi, int) and len(value) > hi:
            return f"Must be {hi} characters or fewer (currently {len(value)})."
    elif kind == "number_input":
        try:
            number = Decimal(value)
        except InvalidOperation:
            return "Please enter a number."
        if not element.get("is_decimal_allowed", False) and number != number.to_integral():
            return "Please enter a whole number."
        lo_v, hi_v = element.get("min_value"), element.get("max_value")
        if lo_v is not None and number < Decimal(str(lo_v)):
            return f"Please enter a number of at least {lo_v}."
        if hi_v is not None and number > Decimal(str(hi_v)):
            return f"Please enter a number no greater than {hi_v}."
    elif kind == "email_text_input" and ("@" not in value or value.startswith("@")):
        return "Please enter a valid email address."
    elif kind == "url_text_input" and not value.startswith(("http://", "https://")):
        return "Please enter a valid URL."
    return None


def build_state(
    blocks: list[dict[str, Any]], values: Values
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Returns (state values, client-side errors keyed by block_id)."""
    state: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    known: set[str] = set()
    for block in input_blocks(blocks):
        block_id = str(block["block_id"])
        element = block["element"]
        action_id = str(element["action_id"])
        known.update((block_id, action_id))
        provided, value = _lookup(values, block_id, action_id)
        entry = _state_entry(element, provided, value)
        state[block_id] = {action_id: entry}
        if _is_empty(entry):
            if not block.get("optional", False):
                errors[block_id] = REQUIRED_MESSAGE
            continue
        problem = _check_entry(element, entry)
        if problem is not None:
            errors[block_id] = problem
    unknown = sorted(set(values) - known)
    if unknown:
        raise UnknownInputError(f"the view has no inputs named {unknown}")
    return state, errors
