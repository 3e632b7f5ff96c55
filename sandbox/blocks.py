"""Block Kit and message limits as Slack enforces them, and Slack's normalisation of blocks."""

from __future__ import annotations

import copy
from typing import Any, Literal

from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.ids import IdMint

Surface = Literal["message", "modal", "home"]

MAX_BLOCKS: dict[Surface, int] = {"message": 50, "modal": 100, "home": 100}
MAX_MESSAGE_TEXT = 40_000

BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)

SELECT_TYPES = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
    }
)

TEXT_INPUT_TYPES = frozenset(
    {"plain_text_input", "email_text_input", "url_text_input", "number_input", "rich_text_input"}
)

INTERACTIVE_TYPES = (
    frozenset(
        {
            "button",
            "checkboxes",
            "datepicker",
            "datetimepicker",
            "overflow",
            "radio_buttons",
            "timepicker",
            "workflow_button",
            "file_input",
            "feedback_buttons",
            "icon_button",
        }
    )
    | SELECT_TYPES
    | TEXT_INPUT_TYPES
)

ACTIONS_ELEMENT_TYPES = INTERACTIVE_TYPES - {"file_input", "feedback_buttons", "icon_button"}
ACCESSORY_TYPES = (ACTIONS_ELEMENT_TYPES | {"image"}) - TEXT_INPUT_TYPES
INPUT_ELEMENT_TYPES = (
    TEXT_INPUT_TYPES
    | SELECT_TYPES
    | {"checkboxes", "datepicker", "datetimepicker", "radio_buttons", "timepicker", "file_input"}
)


class _Checker:
    """Collects schema problems as Slack phrases them, each tagged with its JSON pointer."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def string(self, value: Any, pointer: str, max_len: int, *, min_len: int = 0) -> None:
        if not isinstance(value, str):
            self.fail("must be a string", pointer)
        elif len(value) > max_len:
            self.fail(f"must be less than {max_len + 1} characters", pointer)
        elif len(value) < min_len:
            self.fail(f"must be more than {min_len - 1} characters", pointer)

    def optional_string(self, obj: dict[str, Any], key: str, pointer: str, max_len: int) -> None:
        if key in obj:
            self.string(obj[key], f"{pointer}/{key}", max_len)

    def text(self, obj: Any, pointer: str, max_len: int, *, plain_only: bool = False) -> None:
        if not isinstance(obj, dict):
            self.fail("must be an object", pointer)
            return
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if obj.get("type") not in allowed:
            self.fail("must be a valid enum value", f"{pointer}/type")
        if "text" not in obj:
            self.fail("missing required field: text", pointer)
            return
        self.string(obj["text"], f"{pointer}/text", max_len, min_len=1)

    def optional_text(
        self, obj: dict[str, Any], key: str, pointer: str, max_len: int, *, plain_only: bool
    ) -> None:
        if key in obj:
            self.text(obj[key], f"{pointer}/{key}", max_len, plain_only=plain_only)

    def items(self, value: Any, pointer: str, *, max_items: int, min_items: int = 1) -> list[Any]:
        if not isinstance(value, list):
            self.fail("must be an array", pointer)
            return []
        if len(value) > max_items:
            self.fail(f"no more than {max_items} items allowed", pointer)
        elif len(value) < min_items:
            self.fail(f"must provide at least {min_items} items", pointer)
        return value


def _check_confirm(c: _Checker, confirm: Any, pointer: str) -> None:
    if not isinstance(confirm, dict):
        c.fail("must be an object", pointer)
        return
    for key, limit, plain in (("title", 100, True), ("text", 300, False)):
        if key not in confirm:
            c.fail(f"missing required field: {key}", pointer)
        else:
            c.text(confirm[key], f"{pointer}/{key}", limit, plain_only=plain)
    for key in ("confirm", "deny"):
        if key not in confirm:
            c.fail(f"missing required field: {key}", pointer)
        else:
            c.text(confirm[key], f"{pointer}/{key}", 30, plain_only=True)
    if "style" in confirm and confirm["style"] not in ("primary", "danger"):
        c.fail("must be a valid enum value", f"{pointer}/style")


def _check_option(c: _Checker, option: Any, pointer: str) -> None:
    if not isinstance(option, dict):
        c.fail("must be an object", pointer)
        return
    if "text" not in option:
        c.fail("missing required field: text", pointer)
    else:
        c.text(option["text"], f"{pointer}/text", 75)
    if "value" not in option:
        c.fail("missing required field: value", pointer)
    else:
        c.string(option["value"], f"{pointer}/value", 150)


def _check_element(c: _Checker, element: Any, pointer: str, allowed: frozenset[str]) -> None:
    if not isinstance(element, dict):
        c.fail("must be an object", pointer)
        return
    kind = element.get("type")
    if kind not in allowed:
        c.fail("must be a valid enum value", f"{pointer}/type")
        return
    c.optional_string(element, "action_id", pointer, 255)
    if "confirm" in element:
        _check_confirm(c, element["confirm"], f"{pointer}/confirm")
    if kind == "image":
        c.optional_string(element, "alt_text", pointer, 2000)
        if "image_url" not in element and "slack_file" not in element:
            c.fail("missing required field: image_url", pointer)
        return
    c.optional_text(element, "placeholder", pointer, 150, plain_only=True)
    if kind == "button":
        if "text" not in element:
            c.fail("missing required field: text", pointer)
        else:
            c.text(element["text"], f"{pointer}/text", 75, plain_only=True)
        c.optional_string(element, "value", pointer, 2000)
        c.optional_string(element, "url", pointer, 3000)
        if "style" in element and element["style"] not in ("primary", "danger"):
            c.fail("must be a valid enum value", f"{pointer}/style")
    elif kind == "plain_text_input":
        _check_text_input_lengths(c, element, pointer)
    elif kind in ("static_select", "multi_static_select", "radio_buttons", "checkboxes"):
        if "options" in element:
            limit = 10 if kind in ("radio_buttons", "checkboxes") else 100
            for i, option in enumerate(c.items(element["options"], f"{pointer}/options", max_items=limit)):
                _check_option(c, option, f"{pointer}/options/{i}")
        elif "option_groups" not in element:
            c.fail("missing required field: options", pointer)
    elif kind == "overflow":
        options = c.items(element.get("options"), f"{pointer}/options", max_items=5, min_items=1)
        for i, option in enumerate(options):
            _check_option(c, option, f"{pointer}/options/{i}")


def _check_text_input_lengths(c: _Checker, element: dict[str, Any], pointer: str) -> None:
    lo, hi = element.get("min_length"), element.get("max_length")
    if lo is not None and (not isinstance(lo, int) or not 0 <= lo <= 3000):
        c.fail("must be between 0 and 3000", f"{pointer}/min_length")
    if hi is not None and (not isinstance(hi, int) or not 1 <= hi <= 3000):
        c.fail("must be between 1 and 3000", f"{pointer}/max_length")
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        c.fail("min_length must be less than or equal to max_length", pointer)
    if "initial_value" in element:
        c.string(element["initial_value"], f"{pointer}/initial_value", 3000)


def _check_block(c: _Checker, block: Any, pointer: str, surface: Surface) -> None:
    if not isinstance(block, dict):
        c.fail("must be an object", pointer)
        return
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        c.fail("failed to match all allowed schemas", pointer)
        c.fail("must be a valid enum value", f"{pointer}/type")
        return
    c.optional_string(block, "block_id", pointer, 255)
    if kind == "header":
        if "text" not in block:
            c.fail("missing required field: text", pointer)
        else:
            c.text(block["text"], f"{pointer}/text", 150, plain_only=True)
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            c.fail("must define either `text` or `fields`", pointer)
        if "text" in block:
            c.text(block["text"], f"{pointer}/text", 3000)
        if "fields" in block:
            for i, f in enumerate(c.items(block["fields"], f"{pointer}/fields", max_items=10)):
                c.text(f, f"{pointer}/fields/{i}", 2000)
        if "accessory" in block:
            _check_element(c, block["accessory"], f"{pointer}/accessory", ACCESSORY_TYPES)
    elif kind == "context":
        for i, el in enumerate(c.items(block.get("elements"), f"{pointer}/elements", max_items=10)):
            if isinstance(el, dict) and el.get("type") == "image":
                _check_element(c, el, f"{pointer}/elements/{i}", frozenset({"image"}))
            else:
                c.text(el, f"{pointer}/elements/{i}", 3000)
    elif kind == "actions":
        elements = c.items(block.get("elements"), f"{pointer}/elements", max_items=25)
        for i, el in enumerate(elements):
            _check_element(c, el, f"{pointer}/elements/{i}", ACTIONS_ELEMENT_TYPES)
        _check_unique_action_ids(c, elements, f"{pointer}/elements")
    elif kind == "input":
        if "label" not in block:
            c.fail("missing required field: label", pointer)
        else:
            c.text(block["label"], f"{pointer}/label", 2000, plain_only=True)
        c.optional_text(block, "hint", pointer, 2000, plain_only=True)
        if "element" not in block:
            c.fail("missing required field: element", pointer)
        else:
            _check_element(c, block["element"], f"{pointer}/element", INPUT_ELEMENT_TYPES)
    elif kind == "image":
        c.optional_string(block, "alt_text", pointer, 2000)
        c.optional_text(block, "title", pointer, 2000, plain_only=True)
    elif kind == "markdown":
        c.string(block.get("text"), f"{pointer}/text", 12000, min_len=1)


def _check_unique_action_ids(c: _Checker, elements: list[Any], pointer: str) -> None:
    seen: set[str] = set()
    for i, el in enumerate(elements):
        if isinstance(el, dict) and isinstance(el.get("action_id"), str):
            if el["action_id"] in seen:
                c.fail(f"duplicate action_id: {el['action_id']}", f"{pointer}/{i}/action_id")
            seen.add(el["action_id"])


def _check_blocks(c: _Checker, blocks: Any, pointer: str, surface: Surface) -> None:
    items = c.items(blocks, pointer, max_items=MAX_BLOCKS[surface], min_items=0)
    seen: set[str] = set()
    for i, block in enumerate(items):
        _check_block(c, block, f"{pointer}/{i}", surface)
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if isinstance(block_id, str):
            if block_id in seen:
                c.fail(f"non-unique block_id: {block_id}", f"{pointer}/{i}/block_id")
            seen.add(block_id)


def block_errors(blocks: Any, surface: Surface = "message") -> list[str]:
    c = _Checker()
    _check_blocks(c, blocks, "/blocks", surface)
    return c.errors


def view_errors(view: Any) -> list[str]:
    c = _Checker()
    if not isinstance(view, dict):
        c.fail("must be an object", "/view")
        return c.errors
    kind = view.get("type")
    if kind not in ("modal", "home"):
        c.fail("must be a valid enum value", "/view/type")
        return c.errors
    if "blocks" not in view:
        c.fail("missing required field: blocks", "/view")
    else:
        _check_blocks(c, view["blocks"], "/view/blocks", kind)
    c.optional_string(view, "callback_id", "/view", 255)
    c.optional_string(view, "private_metadata", "/view", 3000)
    c.optional_string(view, "external_id", "/view", 255)
    if kind == "modal":
        if "title" not in view:
            c.fail("missing required field: title", "/view")
        else:
            c.text(view["title"], "/view/title", 24, plain_only=True)
        c.optional_text(view, "submit", "/view", 24, plain_only=True)
        c.optional_text(view, "close", "/view", 24, plain_only=True)
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and "submit" not in view:
            c.fail("must provide submit when input blocks are present", "/view")
    return c.errors


def require_valid_blocks(blocks: Any) -> None:
    if not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    errors = block_errors(blocks, "message")
    if errors:
        raise SlackError("invalid_blocks", messages=errors)


def require_valid_view(view: Any) -> None:
    errors = view_errors(view)
    if errors:
        raise SlackError("invalid_arguments", messages=errors)


def _normalize_text_objects(node: Any) -> None:
    # Slack echoes text objects back with its defaults filled in.
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "plain_text" and isinstance(node.get("text"), str):
            node.setdefault("emoji", True)
        elif kind == "mrkdwn" and isinstance(node.get("text"), str):
            node.setdefault("verbatim", False)
        for value in node.values():
            _normalize_text_objects(value)
    elif isinstance(node, list):
        for item in node:
            _normalize_text_objects(item)


def _give_action_id(element: Any, mint: IdMint) -> None:
    if isinstance(element, dict) and element.get("type") in INTERACTIVE_TYPES:
        element.setdefault("action_id", mint.action_id())


def normalize_blocks(blocks: list[Any], mint: IdMint) -> list[dict[str, Any]]:
    """Returns a copy with the block_ids, action_ids and text defaults Slack would add."""
    result: list[dict[str, Any]] = copy.deepcopy(blocks)
    for block in result:
        block.setdefault("block_id", mint.block_id())
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            _give_action_id(element, mint)
        _give_action_id(block.get("accessory"), mint)
        _give_action_id(block.get("element"), mint)
    _normalize_text_objects(result)
    return result


def iter_interactive(blocks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every clickable element with the block_id that holds it, in display order."""
    found: list[tuple[str, dict[str, Any]]] = []
    for block in blocks:
        block_id = str(block.get("block_id", ""))
        if block.get("type") == "actions":
            found.extend((block_id, el) for el in block.get("elements", []))
        elif block.get("type") == "section" and isinstance(block.get("accessory"), dict):
            found.append((block_id, block["accessory"]))
    return found
