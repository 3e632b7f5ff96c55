"""The in-memory Slack workspace: messages, ephemerals, views, triggers, response URLs and logs."""

from __future__ import annotations

import copy
import threading
from typing import Any

from slack_approvals.sandbox.blocks import normalize_blocks
from slack_approvals.sandbox.clock import Clock, wall_clock
from slack_approvals.sandbox.directory import Directory
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.ids import IdMint, parse_ts
from slack_approvals.sandbox.records import (
    ApiCall,
    Delivery,
    DeliveryKind,
    Notice,
    ResponseUrl,
    ResponseUrlKind,
    Transport,
    Trigger,
    ViewRecord,
)
from slack_approvals.sandbox.seed import Seed, default_seed

TRIGGER_TTL_SECONDS = 3.0
RESPONSE_URL_TTL_SECONDS = 30 * 60.0
RESPONSE_URL_MAX_USES = 5
MODAL_STACK_LIMIT = 3
VIEW_FIELDS = (
    "title",
    "submit",
    "close",
    "blocks",
    "private_metadata",
    "callback_id",
    "external_id",
    "clear_on_close",
    "notify_on_close",
    "submit_disabled",
)


def _ephemeral_key(user_id: str, channel_id: str) -> tuple[str, str]:
    return (user_id, channel_id)


class Workspace:
    """All mutable sandbox state behind one re-entrant lock.

    Every mutation bumps `version` and wakes waiters, which is what live page updates
    and `wait_for_change` hang off.
    """

    def __init__(
        self,
        seed: Seed | None = None,
        *,
        clock: Clock = wall_clock,
        id_seed: int | None = None,
    ) -> None:
        self.directory = Directory(seed or default_seed())
        self.clock = clock
        self.mint = IdMint(id_seed)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._clear_state()

    def _clear_state(self) -> None:
        self._messages: dict[str, dict[str, dict[str, Any]]] = {}
        self._ephemerals: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._views: dict[str, ViewRecord] = {}
        self._modal_stacks: dict[str, list[str]] = {}
        self._home_views: dict[str, str] = {}
        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._api_calls: list[ApiCall] = []
        self._deliveries: list[Delivery] = []
        self._notices: list[Notice] = []
        self._serial = 0

    def _touch(self) -> None:
        self._version += 1
        self._changed.notify_all()

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Blocks until the version moves past `since` or the timeout runs out."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != since, timeout=timeout)
            return self._version

    def reset(self) -> None:
        """Forgets every message, view and log entry; the directory stays."""
        with self._lock:
            self._clear_state()
            self._touch()

    def now(self) -> float:
        return self.clock()

    # messages -------------------------------------------------------------------

    def _bot_message(
        self,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        bot = self.directory.bot
        message: dict[str, Any] = {
            "user": bot.user_id,
            "type": "message",
            "ts": ts,
            "bot_id": bot.bot_id,
            "app_id": bot.app_id,
            "text": text,
            "team": self.directory.team.id,
            "bot_profile": self.directory.bot_profile(),
        }
        if blocks is not None:
            message["blocks"] = blocks
        message.update(extra)
        return message

    def post_message(
        self,
        channel_id: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        user_id: str | None = None,
        thread_ts: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Stores a message from the bot, or from `user_id` when given; returns a copy."""
        with self._lock:
            channel = self._messages.setdefault(channel_id, {})
            if thread_ts is not None and thread_ts not in channel:
                raise SlackError("thread_not_found")
            ts = self.mint.next_ts(self.now())
            shaped = normalize_blocks(blocks, self.mint) if blocks is not None else None
            fields = dict(extra or {})
            if thread_ts is not None:
                fields["thread_ts"] = thread_ts
            if user_id is None:
                message = self._bot_message(ts, text, shaped, fields)
            else:
                message = {"user": user_id, "type": "message", "ts": ts, "text": text}
                message["team"] = self.directory.team.id
                if shaped is not None:
                    message["blocks"] = shaped
                message.update(fields)
            channel[ts] = message
            if thread_ts is not None:
                self._note_reply(channel[thread_ts], message)
            self._touch()
            return copy.deepcopy(message)

    @staticmethod
    def _note_reply(parent: dict[str, Any], reply: dict[str, Any]) -> None:
        parent["thread_ts"] = parent["ts"]
        parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
        users = parent.setdefault("reply_users", [])
        if reply["user"] not in users:
            users.append(reply["user"])
        parent["reply_users_count"] = len(users)
        parent["latest_reply"] = reply["ts"]

    def update_message(
        self,
        channel_id: str,
        ts: str,
        *,
        text: str | None,
        blocks: list[dict[str, Any]] | None,
        extra: dict[str, Any] | None = None,
        require_bot: bool = True,
    ) -> dict[str, Any]:
        with self._lock:
            message = self._find_message(channel_id, ts)
            if require_bot and message.get("bot_id") != self.directory.bot.bot_id:
                raise SlackError("cant_update_message")
            if text is not None:
                message["text"] = text
            if blocks is not None:
                message["blocks"] = normalize_blocks(blocks, self.mint)
            message.update(extra or {})
            message["edited"] = {
                "user": self.directory.bot.user_id,
                "ts": self.mint.next_ts(self.now()),
            }
            self._touch()
            return copy.deepcopy(message)

    def replace_message(
        self, channel_id: str, ts: str, *, text: str, blocks: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """Swaps a message's whole content, as a `replace_original` response does."""
        with self._lock:
            message = self._find_message(channel_id, ts)
            message["text"] = text
            if blocks is None:
                message.pop("blocks", None)
            else:
                message["blocks"] = normalize_blocks(blocks, self.mint)
            message.pop("attachments", None)
            self._touch()
            return copy.deepcopy(message)

    def delete_message(self, channel_id: str, ts: str, *, require_bot: bool = True) -> None:
        with self._lock:
            message = self._find_message(channel_id, ts)
            if require_bot and message.get("bot_id") != self.directory.bot.bot_id:
                raise SlackError("cant_delete_message")
            del self._messages[channel_id][ts]
            self._touch()

    def _find_message(self, channel_id: str, ts: str) -> dict[str, Any]:
        try:
            return self._messages[channel_id][ts]
        except KeyError:
            raise SlackError("message_not_found") from None

    def message(self, channel_id: str, ts: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find_message(channel_id, ts))

    def messages(self, channel_id: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Messages oldest first; `limit` keeps only the newest ones."""
        with self._lock:
            stored = list(self._messages.get(channel_id, {}).values())
            if limit is not None:
                stored = stored[-limit:]
            return copy.deepcopy(stored)

    # ephemeral messages -----------------------------------------------------------

    def post_ephemeral(
        self,
        channel_id: str,
        user_id: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        from_bot: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            ts = self.mint.next_ts(self.now())
            shaped = normalize_blocks(blocks, self.mint) if blocks is not None else None
            if from_bot:
                message = self._bot_message(ts, text, shaped, dict(extra or {}))
            else:
                # Slack's own notices ("only visible to you") come from Slackbot.
                message = {"user": "USLACKBOT", "type": "message", "ts": ts, "text": text}
                if shaped is not None:
                    message["blocks"] = shaped
            message["is_ephemeral"] = True
            self._ephemerals.setdefault(_ephemeral_key(user_id, channel_id), {})[ts] = message
            self._touch()
            return copy.deepcopy(message)

    def replace_ephemeral(
        self,
        user_id: str,
        channel_id: str,
        ts: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        with self._lock:
            message = self._find_ephemeral(user_id, channel_id, ts)
            message["text"] = text
            if blocks is not None:
                message["blocks"] = normalize_blocks(blocks, self.mint)
            else:
                message.pop("blocks", None)
            self._touch()
            return copy.deepcopy(message)

    def delete_ephemeral(self, user_id: str, channel_id: str, ts: str) -> None:
        with self._lock:
            self._find_ephemeral(user_id, channel_id, ts)
            del self._ephemerals[_ephemeral_key(user_id, channel_id)][ts]
            self._touch()

    def _find_ephemeral(self, user_id: str, channel_id: str, ts: str) -> dict[str, Any]:
        try:
            return self._ephemerals[_ephemeral_key(user_id, channel_id)][ts]
        except KeyError:
            raise SlackError("message_not_found") from None

    def ephemeral(self, user_id: str, channel_id: str, ts: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find_ephemeral(user_id, channel_id, ts))

    def ephemerals(self, user_id: str, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages shown to one person, each tagged with its `channel`."""
        with self._lock:
            found: list[dict[str, Any]] = []
            for (owner, channel), by_ts in self._ephemerals.items():
                if owner != user_id or (channel_id is not None and channel != channel_id):
                    continue
                for message in by_ts.values():
                    found.append({**copy.deepcopy(message), "channel": channel})
            return sorted(found, key=lambda m: parse_ts(str(m["ts"])))

    # views ------------------------------------------------------------------------

    def _view_spec(self, view: dict[str, Any]) -> dict[str, Any]:
        spec = {k: copy.deepcopy(view[k]) for k in VIEW_FIELDS if k in view}
        spec["blocks"] = normalize_blocks(view.get("blocks", []), self.mint)
        for key in ("title", "submit", "close"):
            if isinstance(spec.get(key), dict):
                spec[key].setdefault("emoji", True)
        return spec

    def _check_external_id(self, view: dict[str, Any], replacing: str | None) -> None:
        external_id = view.get("external_id")
        if not external_id:
            return
        for record in self._views.values():
            if record.id != replacing and record.spec.get("external_id") == external_id:
                raise SlackError("duplicate_external_id")

    def _new_view(
        self,
        user_id: str,
        view: dict[str, Any],
        *,
        root_view_id: str | None = None,
        previous_view_id: str | None = None,
    ) -> ViewRecord:
        self._check_external_id(view, None)
        view_id = self.mint.view_id()
        record = ViewRecord(
            id=view_id,
            user_id=user_id,
            type="home" if view.get("type") == "home" else "modal",
            spec=self._view_spec(view),
            hash=self.mint.view_hash(self.now()),
            root_view_id=root_view_id or view_id,
            previous_view_id=previous_view_id,
        )
        self._views[view_id] = record
        return record

    def open_modal(self, user_id: str, view: dict[str, Any]) -> dict[str, Any]:
        """Starts a new modal stack for the person, replacing any modal they had open."""
        with self._lock:
            for old in self._modal_stacks.pop(user_id, []):
                self._views.pop(old, None)
            record = self._new_view(user_id, view)
            self._modal_stacks[user_id] = [record.id]
            self._touch()
            return self._view_json(record)

    def push_modal(self, user_id: str, view: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            stack = self._modal_stacks.get(user_id, [])
            if not stack:
                raise SlackError("not_found")
            if len(stack) >= MODAL_STACK_LIMIT:
                raise SlackError("push_limit_reached")
            record = self._new_view(user_id, view, root_view_id=stack[0], previous_view_id=stack[-1])
            stack.append(record.id)
            self._touch()
            return self._view_json(record)

    def update_view(
        self,
        view: dict[str, Any],
        *,
        view_id: str | None = None,
        external_id: str | None = None,
        hash: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            record = self._find_view(view_id=view_id, external_id=external_id)
            if hash and hash != record.hash:
                raise SlackError("hash_conflict")
            if (view.get("type") == "home") != (record.type == "home"):
                raise SlackError(
                    "invalid_arguments", messages=["view type cannot change [json-pointer:/view/type]"]
                )
            self._check_external_id(view, record.id)
            record.spec = self._view_spec(view)
            record.hash = self.mint.view_hash(self.now())
            record.errors = {}
            self._touch()
            return self._view_json(record)

    def publish_home(self, user_id: str, view: dict[str, Any], *, hash: str | None = None) -> dict[str, Any]:
        with self._lock:
            self.directory.user(user_id)
            existing = self._home_views.get(user_id)
            if existing is not None:
                record = self._views[existing]
                if hash and hash != record.hash:
                    raise SlackError("hash_conflict")
                self._check_external_id(view, record.id)
                record.spec = self._view_spec(view)
                record.hash = self.mint.view_hash(self.now())
            else:
                record = self._new_view(user_id, view)
                self._home_views[user_id] = record.id
            self._touch()
            return self._view_json(record)

    def _find_view(self, *, view_id: str | None, external_id: str | None) -> ViewRecord:
        if view_id:
            record = self._views.get(view_id)
        else:
            record = next(
                (v for v in self._views.values() if external_id and v.spec.get("external_id") == external_id),
                None,
            )
        if record is None:
            raise SlackError("not_found")
        return record

    def _view_json(self, record: ViewRecord) -> dict[str, Any]:
        bot = self.directory.bot
        return record.to_json(self.directory.team.id, bot.app_id, bot.bot_id)

    def view(self, view_id: str) -> dict[str, Any]:
        with self._lock:
            return self._view_json(self._find_view(view_id=view_id, external_id=None))

    def view_record(self, view_id: str) -> ViewRecord:
        """A copy of the full record, including validation errors the page shows."""
        with self._lock:
            return copy.deepcopy(self._find_view(view_id=view_id, external_id=None))

    def modal_stack(self, user_id: str) -> list[str]:
        with self._lock:
            return list(self._modal_stacks.get(user_id, []))

    def top_modal(self, user_id: str) -> ViewRecord | None:
        with self._lock:
            stack = self._modal_stacks.get(user_id)
            return copy.deepcopy(self._views[stack[-1]]) if stack else None

    def home_view(self, user_id: str) -> ViewRecord | None:
        with self._lock:
            view_id = self._home_views.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def set_view_state(self, view_id: str, values: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            self._find_view(view_id=view_id, external_id=None).state_values = copy.deepcopy(values)
            self._touch()

    def set_view_errors(self, view_id: str, errors: dict[str, str]) -> None:
        with self._lock:
            self._find_view(view_id=view_id, external_id=None).errors = dict(errors)
            self._touch()

    def close_modal(self, user_id: str, view_id: str, *, everything: bool = False) -> list[str]:
        """Closes `view_id` (and all views above it, or the whole stack); returns closed ids."""
        with self._lock:
            stack = self._modal_stacks.get(user_id, [])
            if view_id not in stack:
                raise SlackError("not_found")
            cut = 0 if everything else stack.index(view_id)
            closed = stack[cut:]
            del stack[cut:]
            if not stack:
                self._modal_stacks.pop(user_id, None)
            for closed_id in closed:
                self._views.pop(closed_id, None)
            self._touch()
            return closed

    # triggers and response URLs -------------------------------------------------------

    def issue_trigger(self, user_id: str) -> str:
        with self._lock:
            trigger_id = self.mint.trigger_id(self.now())
            self._triggers[trigger_id] = Trigger(trigger_id, user_id, self.now())
            return trigger_id

    def consume_trigger(self, trigger_id: str) -> str:
        """Exchanges a trigger for the person it belongs to; each trigger works once, for 3 s."""
        with self._lock:
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                raise SlackError("invalid_trigger_id")
            if trigger.used:
                raise SlackError("exchanged_trigger_id")
            if self.now() - trigger.issued_at > TRIGGER_TTL_SECONDS:
                raise SlackError("expired_trigger_id")
            trigger.used = True
            return trigger.user_id

    def issue_response_url(
        self,
        kind: ResponseUrlKind,
        user_id: str,
        channel_id: str,
        *,
        message_ts: str | None = None,
        is_ephemeral: bool = False,
    ) -> str:
        with self._lock:
            token = self.mint.url_token()
            self._response_urls[token] = ResponseUrl(
                token, kind, user_id, channel_id, self.now(), message_ts, is_ephemeral
            )
            return token

    def use_response_url(self, token: str) -> ResponseUrl:
        """Counts one use; Slack allows five uses within thirty minutes."""
        with self._lock:
            record = self._response_urls.get(token)
            if record is None:
                raise SlackError("invalid_token")
            if self.now() - record.issued_at > RESPONSE_URL_TTL_SECONDS:
                raise SlackError("expired_url")
            if record.uses >= RESPONSE_URL_MAX_USES:
                raise SlackError("used_url")
            record.uses += 1
            return copy.copy(record)

    # logs and notices ----------------------------------------------------------------

    def log_api_call(self, method: str, args: dict[str, Any], response: dict[str, Any], status: int) -> None:
        with self._lock:
            self._api_calls.append(
                ApiCall(method, copy.deepcopy(args), copy.deepcopy(response), status, self.now())
            )

    def api_calls(self, method: str | None = None) -> list[ApiCall]:
        with self._lock:
            return [c for c in self._api_calls if method is None or c.method == method]

    def record_delivery(
        self,
        *,
        kind: DeliveryKind,
        user_id: str,
        payload: dict[str, Any],
        status: int | None,
        body: str,
        latency_ms: float,
        error: str | None,
        transport: Transport = "http",
    ) -> Delivery:
        with self._lock:
            delivery = Delivery(
                id=self._next_serial(),
                kind=kind,
                user_id=user_id,
                payload=copy.deepcopy(payload),
                status=status,
                body=body,
                latency_ms=latency_ms,
                error=error,
                time=self.now(),
                transport=transport,
            )
            self._deliveries.append(delivery)
            self._touch()
            return delivery

    def deliveries(self, kind: DeliveryKind | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self._deliveries if kind is None or d.kind == kind]

    def add_notice(self, user_id: str, text: str, channel_id: str | None = None) -> Notice:
        with self._lock:
            notice = Notice(self._next_serial(), user_id, channel_id, text, self.now())
            self._notices.append(notice)
            self._touch()
            return notice

    def notices(self, user_id: str) -> list[Notice]:
        with self._lock:
            return [n for n in self._notices if n.user_id == user_id]

    def dismiss_notice(self, notice_id: int) -> None:
        with self._lock:
            self._notices = [n for n in self._notices if n.id != notice_id]
            self._touch()
