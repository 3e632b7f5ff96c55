"""Slack Web API methods: arguments in, Slack-shaped response bodies out."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from slack_approvals.sandbox.blocks import MAX_MESSAGE_TEXT, require_valid_blocks, require_valid_view
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.workspace import Workspace

Args = dict[str, Any]
Method = Callable[[Workspace, Args], dict[str, Any]]

BLOCKS_ONLY_TEXT = "This content can't be displayed."


# argument helpers ---------------------------------------------------------------------


def _text_arg(args: Args, key: str) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    return str(value)


def _required(args: Args, key: str, error: str) -> str:
    value = _text_arg(args, key)
    if value is None:
        raise SlackError(error)
    return value


def _json_arg(args: Args, key: str, error: str) -> Any:
    """JSON bodies carry objects; form bodies carry the same objects JSON-encoded."""
    value = args.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise SlackError(error) from None
    return value


def _bool_arg(args: Args, key: str, default: bool = False) -> bool:
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes")


def _int_arg(args: Args, key: str, default: int) -> int:
    value = args.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SlackError("invalid_arguments") from None


def _page(items: list[Any], args: Args) -> tuple[list[Any], str]:
    """Cursor pagination the way Slack does it: an opaque cursor, empty when done."""
    limit = _int_arg(args, "limit", 0) or len(items) or 1
    cursor = _text_arg(args, "cursor")
    offset = 0
    if cursor is not None:
        try:
            kind, _, number = base64.b64decode(cursor).decode().partition(":")
            offset = int(number)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise SlackError("invalid_cursor") from None
        if kind != "offset" or offset < 0:
            raise SlackError("invalid_cursor")
    chunk = items[offset : offset + limit]
    more = offset + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else ""
    return chunk, next_cursor


def _message_content(args: Args, *, require_content: bool) -> tuple[str | None, Any, Args]:
    """Parses text, blocks, attachments and metadata the way chat.* methods share them."""
    text = _text_arg(args, "text")
    blocks = _json_arg(args, "blocks", "invalid_blocks_format")
    attachments = _json_arg(args, "attachments", "invalid_attachments")
    metadata = _json_arg(args, "metadata", "invalid_metadata_format")
    if require_content and text is None and not blocks and not attachments:
        raise SlackError("no_text")
    if text is not None and len(text) > MAX_MESSAGE_TEXT:
        raise SlackError("msg_too_long")
    if blocks is not None:
        require_valid_blocks(blocks)
    extra: Args = {}
    if attachments is not None:
        if not isinstance(attachments, list):
            raise SlackError("invalid_attachments")
        extra["attachments"] = attachments
    if metadata is not None:
        if not isinstance(metadata, dict) or "event_type" not in metadata:
            raise SlackError("invalid_metadata_format")
        extra["metadata"] = metadata
    return text, blocks, extra


# auth ------------------------------------------------------------------------------------


def auth_test(ws: Workspace, args: Args) -> dict[str, Any]:
    d = ws.directory
    return {
        "ok": True,
        "url": f"https://{d.team.domain}.slack.com/",
        "team": d.team.name,
        "user": d.bot.name,
        "team_id": d.team.id,
        "user_id": d.bot.user_id,
        "bot_id": d.bot.bot_id,
        "is_enterprise_install": False,
    }


# chat ------------------------------------------------------------------------------------


def chat_post_message(ws: Workspace, args: Args) -> dict[str, Any]:
    channel = ws.directory.channel(_required(args, "channel", "channel_not_found"))
    text, blocks, extra = _message_content(args, require_content=True)
    if text is None:
        text = BLOCKS_ONLY_TEXT if blocks else ""
    message = ws.messages.post(
        channel.id,
        text=text,
        blocks=blocks,
        thread_ts=_text_arg(args, "thread_ts"),
        extra=extra,
    )
    return {"ok": True, "channel": channel.id, "ts": message["ts"], "message": message}


def chat_update(ws: Workspace, args: Args) -> dict[str, Any]:
    channel = ws.directory.channel(_required(args, "channel", "channel_not_found"))
    ts = _required(args, "ts", "message_not_found")
    text, blocks, extra = _message_content(args, require_content=False)
    if text is None and blocks is None and not extra:
        raise SlackError("no_text")
    message = ws.messages.update(channel.id, ts, text=text, blocks=blocks, extra=extra)
    return {
        "ok": True,
        "channel": channel.id,
        "ts": ts,
        "text": message["text"],
        "message": message,
    }


def chat_post_ephemeral(ws: Workspace, args: Args) -> dict[str, Any]:
    channel = ws.directory.channel(_required(args, "channel", "channel_not_found"))
    user = ws.directory.user(_required(args, "user", "user_not_found"))
    text, blocks, extra = _message_content(args, require_content=True)
    if text is None:
        text = BLOCKS_ONLY_TEXT if blocks else ""
    message = ws.ephemerals.post(channel.id, user.id, text=text, blocks=blocks, extra=extra)
    return {"ok": True, "message_ts": message["ts"]}


def chat_delete(ws: Workspace, args: Args) -> dict[str, Any]:
    channel = ws.directory.channel(_required(args, "channel", "channel_not_found"))
    ts = _required(args, "ts", "message_not_found")
    ws.messages.delete(channel.id, ts)
    return {"ok": True, "channel": channel.id, "ts": ts}


# views ------------------------------------------------------------------------------------


def _view_arg(args: Args, *, kind: str) -> dict[str, Any]:
    view = _json_arg(args, "view", "invalid_arguments")
    if view is None:
        raise SlackError("invalid_arguments", messages=["missing required field: view [json-pointer:/view]"])
    require_valid_view(view)
    if not isinstance(view, dict) or view.get("type") != kind:
        raise SlackError("invalid_arguments", messages=[f"must be {kind} [json-pointer:/view/type]"])
    return view


def _trigger_arg(args: Args) -> str:
    trigger = _text_arg(args, "trigger_id") or _text_arg(args, "interactivity_pointer")
    if trigger is None:
        raise SlackError("invalid_arguments", messages=["missing required field: trigger_id"])
    return trigger


def views_open(ws: Workspace, args: Args) -> dict[str, Any]:
    view = _view_arg(args, kind="modal")
    user_id = ws.tokens.consume_trigger(_trigger_arg(args))
    return {"ok": True, "view": ws.views.open_modal(user_id, view)}


def views_push(ws: Workspace, args: Args) -> dict[str, Any]:
    view = _view_arg(args, kind="modal")
    user_id = ws.tokens.consume_trigger(_trigger_arg(args))
    return {"ok": True, "view": ws.views.push_modal(user_id, view)}


def views_update(ws: Workspace, args: Args) -> dict[str, Any]:
    view_id = _text_arg(args, "view_id")
    external_id = _text_arg(args, "external_id")
    if view_id is None and external_id is None:
        raise SlackError("invalid_arguments", messages=["view_id or external_id is required"])
    view = _json_arg(args, "view", "invalid_arguments")
    require_valid_view(view)
    updated = ws.views.update(view, view_id=view_id, external_id=external_id, hash=_text_arg(args, "hash"))
    return {"ok": True, "view": updated}


def views_publish(ws: Workspace, args: Args) -> dict[str, Any]:
    user_id = _required(args, "user_id", "user_not_found")
    view = _view_arg(args, kind="home")
    return {"ok": True, "view": ws.views.publish_home(user_id, view, hash=_text_arg(args, "hash"))}


# users and groups -----------------------------------------------------------------------


def users_info(ws: Workspace, args: Args) -> dict[str, Any]:
    user_id = _required(args, "user", "user_not_found")
    d = ws.directory
    if user_id == d.bot.user_id:
        return {"ok": True, "user": d.bot_user_json()}
    return {"ok": True, "user": d.user_json(d.user(user_id))}


def users_lookup_by_email(ws: Workspace, args: Args) -> dict[str, Any]:
    """As Slack answers it (scope users:read.email): the user whose profile has that address,
    compared ignoring case, or `users_not_found`."""
    email = _required(args, "email", "invalid_arguments").strip().casefold()
    d = ws.directory
    for user in d.users():
        if user.email and user.email.casefold() == email:
            return {"ok": True, "user": d.user_json(user)}
    raise SlackError("users_not_found")


def users_list(ws: Workspace, args: Args) -> dict[str, Any]:
    d = ws.directory
    members = [d.user_json(u) for u in d.users()] + [d.bot_user_json()]
    chunk, cursor = _page(members, args)
    return {
        "ok": True,
        "members": chunk,
        "cache_ts": int(ws.now()),
        "response_metadata": {"next_cursor": cursor},
    }


def usergroups_list(ws: Workspace, args: Args) -> dict[str, Any]:
    d = ws.directory
    include_users = _bool_arg(args, "include_users")
    return {
        "ok": True,
        "usergroups": [d.group_json(g, include_users=include_users) for g in d.groups()],
    }


def usergroups_users_list(ws: Workspace, args: Args) -> dict[str, Any]:
    group = ws.directory.group(_required(args, "usergroup", "no_such_subteam"))
    return {"ok": True, "users": list(group.users)}


# conversations ----------------------------------------------------------------------------


def conversations_info(ws: Workspace, args: Args) -> dict[str, Any]:
    d = ws.directory
    channel = d.channel(_required(args, "channel", "channel_not_found"))
    return {"ok": True, "channel": d.channel_json(channel)}


def conversations_list(ws: Workspace, args: Args) -> dict[str, Any]:
    d = ws.directory
    types = set((_text_arg(args, "types") or "public_channel").split(","))
    wanted = [c for c in d.channels() if ("private_channel" if c.is_private else "public_channel") in types]
    if "im" in types:
        wanted += [d.channel(u.id) for u in d.users()]
    chunk, cursor = _page([d.channel_json(c) for c in wanted], args)
    return {"ok": True, "channels": chunk, "response_metadata": {"next_cursor": cursor}}


def conversations_open(ws: Workspace, args: Args) -> dict[str, Any]:
    users = [u for u in (_text_arg(args, "users") or "").split(",") if u]
    if len(users) != 1:
        raise SlackError("not_enough_users" if not users else "method_not_supported_for_channel_type")
    d = ws.directory
    channel = d.channel(d.user(users[0]).id)
    body: dict[str, Any] = {"id": channel.id}
    if _bool_arg(args, "return_im"):
        body = d.channel_json(channel)
    return {"ok": True, "no_op": True, "already_open": True, "channel": body}


def conversations_history(ws: Workspace, args: Args) -> dict[str, Any]:
    channel = ws.directory.channel(_required(args, "channel", "channel_not_found"))
    newest_first = list(reversed(ws.messages.history(channel.id)))
    chunk, cursor = _page(newest_first, {**args, "limit": _int_arg(args, "limit", 100)})
    return {
        "ok": True,
        "messages": chunk,
        "has_more": bool(cursor),
        "pin_count": 0,
        "response_metadata": {"next_cursor": cursor},
    }


METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.delete": chat_delete,
    "views.open": views_open,
    "views.push": views_push,
    "views.update": views_update,
    "views.publish": views_publish,
    "users.info": users_info,
    "users.list": users_list,
    "users.lookupByEmail": users_lookup_by_email,
    "usergroups.list": usergroups_list,
    "usergroups.users.list": usergroups_users_list,
    "conversations.info": conversations_info,
    "conversations.list": conversations_list,
    "conversations.open": conversations_open,
    "conversations.history": conversations_history,
}
