"""Acts as people in the workspace (click, submit, slash commands) and answers queries.

Tests and the web page go through this one class, so both exercise the same path to the app.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from slack_approvals.sandbox.blocks import iter_interactive, require_valid_view
from slack_approvals.sandbox.config import SandboxConfig
from slack_approvals.sandbox.delivery import Deliverer, describe_failure
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.mails import Mail
from slack_approvals.sandbox.payloads import Payloads, action_json
from slack_approvals.sandbox.records import ApiCall, Delivery, DeliveryKind, Notice, ResponseUrl, ViewRecord
from slack_approvals.sandbox.responses import apply_reply, parse_reply
from slack_approvals.sandbox.view_state import UnknownInputError, Values, build_state
from slack_approvals.sandbox.workspace import Workspace

T = TypeVar("T")

CONNECTION_TROUBLE = "We had some trouble connecting. Try again?"


class DriverError(Exception):
    """Something a person could not do in Slack: no such message, button, view or user."""


@dataclass(frozen=True)
class ActionResult:
    """What happened when a person acted: the delivery (if one was sent) and modal errors."""

    kind: DeliveryKind
    delivery: Delivery | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def delivered(self) -> bool:
        return self.delivery is not None

    @property
    def ok(self) -> bool:
        return self.delivery is not None and self.delivery.ok

    @property
    def status(self) -> int | None:
        return self.delivery.status if self.delivery else None

    @property
    def body(self) -> str:
        return self.delivery.body if self.delivery else ""

    def json(self) -> Any:
        return json.loads(self.body)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "delivered": self.delivered,
            "ok": self.ok,
            "delivery": self.delivery.to_json() if self.delivery else None,
            "errors": self.errors,
        }


def _element_matches(element: dict[str, Any], action_id: str, value: str | None) -> bool:
    return element.get("action_id") == action_id and (value is None or element.get("value") == value)


def _find_element(
    blocks: list[dict[str, Any]], action_id: str, block_id: str | None, value: str | None
) -> tuple[str, dict[str, Any]]:
    found = [
        (bid, el)
        for bid, el in iter_interactive(blocks)
        if (block_id is None or bid == block_id) and _element_matches(el, action_id, value)
    ]
    if not found:
        raise DriverError(f"no element with action_id {action_id!r} (block_id={block_id!r}, value={value!r})")
    if len(found) > 1:
        raise DriverError(f"action_id {action_id!r} matches {len(found)} elements; pass block_id or value")
    bid, element = found[0]
    if element.get("type") != "button":
        raise DriverError(f"{action_id!r} is a {element.get('type')}, not a button")
    return bid, element


def _message_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = list(message.get("blocks", []))
    for attachment in message.get("attachments", []):
        if isinstance(attachment, dict):
            blocks.extend(attachment.get("blocks", []))
    return blocks


class Driver:
    """People's side of Slack: every action builds the payload Slack would and delivers it."""

    def __init__(
        self,
        workspace: Workspace,
        config: SandboxConfig,
        deliverer: Deliverer | None = None,
    ) -> None:
        self.workspace = workspace
        self.config = config
        self.deliverer = deliverer or Deliverer(workspace.traffic, config)
        self._payloads = Payloads(workspace.directory, config)

    def close(self) -> None:
        self.deliverer.close()

    # checks ------------------------------------------------------------------------

    def _person(self, user_id: str) -> None:
        if not self.workspace.directory.has_user(user_id):
            raise DriverError(f"no user {user_id!r}")

    def _channel_for(self, user_id: str, channel_id: str) -> str:
        self._person(user_id)
        try:
            channel = self.workspace.directory.channel(channel_id)
        except SlackError:
            raise DriverError(f"no channel {channel_id!r}") from None
        owner = self.workspace.directory.im_owner(channel.id)
        if owner is not None and owner != user_id:
            raise DriverError(f"{user_id} cannot see {channel.id}")
        return channel.id

    def _notice_if_failed(self, delivery: Delivery, channel_id: str | None) -> None:
        if not delivery.ok:
            name = self.workspace.directory.bot.display_name
            self.workspace.notices.add(delivery.user_id, describe_failure(delivery, name), channel_id)

    def _action(self, block_id: str, element: dict[str, Any]) -> dict[str, Any]:
        """Each click's action carries a fresh ts, as Slack stamps it."""
        ws = self.workspace
        return action_json(block_id, element, ws.mint.next_ts(ws.now()))

    def _send_click(self, user_id: str, payload: dict[str, Any], channel_id: str | None) -> ActionResult:
        """A click the app fails is noticed where the button was: in the channel, or in no channel."""
        delivery = self.deliverer.send_interaction("block_actions", user_id, payload)
        self._notice_if_failed(delivery, channel_id)
        return ActionResult("block_actions", delivery)

    # actions -------------------------------------------------------------------------

    def click(
        self,
        user_id: str,
        channel_id: str,
        message_ts: str,
        action_id: str,
        *,
        block_id: str | None = None,
        value: str | None = None,
    ) -> ActionResult:
        """Clicks a button in a channel message (or in one of the person's ephemerals)."""
        channel_id = self._channel_for(user_id, channel_id)
        ws = self.workspace
        try:
            message, is_ephemeral = ws.messages.get(channel_id, message_ts), False
        except SlackError:
            try:
                message, is_ephemeral = ws.ephemerals.get(user_id, channel_id, message_ts), True
            except SlackError:
                raise DriverError(f"no message {message_ts} in {channel_id}") from None
        bid, element = _find_element(_message_blocks(message), action_id, block_id, value)
        token = ws.tokens.issue_response_url(
            "message", user_id, channel_id, message_ts=message_ts, is_ephemeral=is_ephemeral
        )
        payload = self._payloads.message_block_actions(
            user_id=user_id,
            channel_id=channel_id,
            message=message,
            is_ephemeral=is_ephemeral,
            action=self._action(bid, element),
            trigger_id=ws.tokens.issue_trigger(user_id),
            response_url=self.config.response_url(token),
        )
        return self._send_click(user_id, payload, channel_id)

    def click_view(
        self,
        user_id: str,
        view_id: str,
        action_id: str,
        *,
        block_id: str | None = None,
        value: str | None = None,
    ) -> ActionResult:
        """Clicks a button in the person's open modal or App Home."""
        self._person(user_id)
        ws = self.workspace
        try:
            record = ws.views.record(view_id)
        except SlackError:
            raise DriverError(f"no view {view_id!r}") from None
        top = ws.views.top_modal(user_id)
        if record.user_id != user_id or (record.type == "modal" and (top is None or top.id != view_id)):
            raise DriverError(f"{user_id} is not looking at view {view_id}")
        bid, element = _find_element(record.spec.get("blocks", []), action_id, block_id, value)
        payload = self._payloads.view_block_actions(
            user_id=user_id,
            view=ws.views.get(view_id),
            action=self._action(bid, element),
            trigger_id=ws.tokens.issue_trigger(user_id),
        )
        return self._send_click(user_id, payload, None)

    def click_home(
        self,
        user_id: str,
        action_id: str,
        *,
        block_id: str | None = None,
        value: str | None = None,
    ) -> ActionResult:
        home = self.workspace.views.home(user_id)
        if home is None:
            raise DriverError(f"no Home tab has been published for {user_id}")
        return self.click_view(user_id, home.id, action_id, block_id=block_id, value=value)

    def _top_modal(self, user_id: str, view_id: str | None) -> ViewRecord:
        self._person(user_id)
        record = self.workspace.views.top_modal(user_id)
        if record is None:
            raise DriverError(f"{user_id} has no modal open")
        if view_id is not None and view_id != record.id:
            raise DriverError(f"view {view_id} is not the modal {user_id} is looking at")
        return record

    def submit_view(
        self, user_id: str, view_id: str | None = None, values: Values | None = None
    ) -> ActionResult:
        """Fills the top modal's inputs and presses Submit.

        `values` is `{block_id: {action_id: value}}` or flat `{block_id_or_action_id: value}`;
        inputs left out keep their initial values.
        """
        ws = self.workspace
        record = self._top_modal(user_id, view_id)
        if not record.spec.get("submit"):
            raise DriverError(f"view {record.id} has no submit button")
        try:
            state, errors = build_state(record.spec.get("blocks", []), values or {})
        except UnknownInputError as exc:
            raise DriverError(str(exc)) from None
        ws.views.set_state(record.id, state)
        ws.views.set_errors(record.id, errors)
        if errors:
            return ActionResult("view_submission", None, errors)
        payload = self._payloads.view_submission(
            user_id=user_id, view=ws.views.get(record.id), trigger_id=ws.tokens.issue_trigger(user_id)
        )
        delivery = self.deliverer.send_interaction("view_submission", user_id, payload)
        if not delivery.ok:
            ws.notices.add(user_id, CONNECTION_TROUBLE)
            return ActionResult("view_submission", delivery)
        return ActionResult(
            "view_submission", delivery, self._apply_submission_reply(user_id, record.id, delivery.body)
        )

    def _apply_submission_reply(self, user_id: str, view_id: str, raw: str) -> dict[str, str]:
        ws = self.workspace
        if view_id not in ws.views.modal_stack(user_id):
            # The app already closed or replaced the stack while handling the submission.
            return {}
        if not raw.strip():
            ws.views.close_modal(user_id, view_id)
            return {}
        try:
            reply = json.loads(raw)
        except json.JSONDecodeError:
            ws.notices.add(user_id, CONNECTION_TROUBLE)
            return {}
        action = reply.get("response_action") if isinstance(reply, dict) else None
        try:
            if action is None:
                ws.views.close_modal(user_id, view_id)
            elif action == "errors":
                errors = reply.get("errors")
                if not isinstance(errors, dict) or not errors:
                    raise SlackError("invalid_response_action_errors")
                shown = {str(k): str(v) for k, v in errors.items()}
                ws.views.set_errors(view_id, shown)
                return shown
            elif action == "update":
                require_valid_view(reply.get("view"))
                ws.views.update(reply["view"], view_id=view_id)
            elif action == "push":
                require_valid_view(reply.get("view"))
                ws.views.push_modal(user_id, reply["view"])
            elif action == "clear":
                ws.views.close_modal(user_id, view_id, everything=True)
            else:
                raise SlackError("invalid_response_action")
        except SlackError as exc:
            ws.notices.add(user_id, f"{CONNECTION_TROUBLE} ({exc.code})")
        return {}

    def close_view(self, user_id: str, view_id: str | None = None) -> ActionResult:
        """Presses Cancel on the top modal; tells the app if the view asked for `notify_on_close`."""
        ws = self.workspace
        record = self._top_modal(user_id, view_id)
        cleared = bool(record.spec.get("clear_on_close"))
        closing = ws.views.get(record.id)
        ws.views.close_modal(user_id, record.id, everything=cleared)
        if not record.spec.get("notify_on_close"):
            return ActionResult("view_closed", None)
        payload = self._payloads.view_closed(user_id=user_id, view=closing, is_cleared=cleared)
        delivery = self.deliverer.send_interaction("view_closed", user_id, payload)
        return ActionResult("view_closed", delivery)

    def slash(self, user_id: str, channel_id: str, command: str, text: str = "") -> ActionResult:
        """Runs a slash command; the app's answer shows as Slack would show it."""
        if not command.startswith("/") or " " in command:
            raise DriverError(f"not a slash command: {command!r}")
        channel_id = self._channel_for(user_id, channel_id)
        ws = self.workspace
        token = ws.tokens.issue_response_url("command", user_id, channel_id)
        fields = self._payloads.slash_command(
            user_id=user_id,
            channel_id=channel_id,
            command=command,
            text=text,
            trigger_id=ws.tokens.issue_trigger(user_id),
            response_url=self.config.response_url(token),
        )
        delivery = self.deliverer.send_command(user_id, fields)
        if not delivery.ok:
            code = "operation_timeout" if delivery.error == "timeout" else "dispatch_failed"
            self._slackbot_says(user_id, channel_id, f'{command} failed with the error "{code}"')
            return ActionResult("slash_command", delivery)
        reply = parse_reply(delivery.body)
        if reply is not None:
            target = ResponseUrl(token, "command", user_id, channel_id, ws.now())
            try:
                apply_reply(ws, target, reply, echo_command=f"{command} {text}".strip())
            except SlackError as exc:
                self._slackbot_says(user_id, channel_id, f'{command} failed with the error "{exc.code}"')
        return ActionResult("slash_command", delivery)

    def _slackbot_says(self, user_id: str, channel_id: str, text: str) -> None:
        self.workspace.ephemerals.post(channel_id, user_id, text=text, from_bot=False)

    def open_home(self, user_id: str) -> ActionResult:
        """Opens the app's Home tab, which sends `app_home_opened` to the app."""
        self._person(user_id)
        ws = self.workspace
        home = ws.views.home(user_id)
        envelope = self._payloads.app_home_opened(
            user_id=user_id,
            view=ws.views.get(home.id) if home else None,
            event_id=ws.mint.event_id(),
            now=ws.now(),
        )
        delivery = self.deliverer.send_event(user_id, envelope)
        self._notice_if_failed(delivery, None)
        return ActionResult("event_callback", delivery)

    def say(self, user_id: str, channel_id: str, text: str) -> dict[str, Any]:
        """Posts an ordinary message as a person (the app is not subscribed to message events)."""
        channel_id = self._channel_for(user_id, channel_id)
        if not text.strip():
            raise DriverError("empty message")
        return self.workspace.messages.post(channel_id, text=text, user_id=user_id)

    # queries ---------------------------------------------------------------------------

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        return self.workspace.messages.history(self.workspace.directory.channel(channel_id).id)

    def message(self, channel_id: str, ts: str) -> dict[str, Any]:
        return self.workspace.messages.get(self.workspace.directory.channel(channel_id).id, ts)

    def ephemerals(self, user_id: str, channel_id: str | None = None) -> list[dict[str, Any]]:
        return self.workspace.ephemerals.shown_to(user_id, channel_id)

    def open_view(self, user_id: str) -> dict[str, Any] | None:
        """The modal on top of the person's stack, as Slack's view object."""
        record = self.workspace.views.top_modal(user_id)
        return self.workspace.views.get(record.id) if record else None

    def modal_errors(self, user_id: str) -> dict[str, str]:
        """Errors shown under the inputs of the person's top modal."""
        record = self.workspace.views.top_modal(user_id)
        return dict(record.errors) if record else {}

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        record = self.workspace.views.home(user_id)
        return self.workspace.views.get(record.id) if record else None

    def api_calls(self, method: str | None = None) -> list[ApiCall]:
        return self.workspace.traffic.api_calls(method)

    def deliveries(self, kind: DeliveryKind | None = None) -> list[Delivery]:
        return self.workspace.traffic.deliveries(kind)

    def notices(self, user_id: str) -> list[Notice]:
        return self.workspace.notices.shown_to(user_id)

    # mail --------------------------------------------------------------------------------

    def mails(self, to: str | None = None) -> list[Mail]:
        """Mails the catcher kept, in the order they arrived; `to` keeps those to one address."""
        return self.workspace.inbox.mails(to)

    def mail(self, mail_id: int) -> Mail:
        found = self.workspace.inbox.get(mail_id)
        if found is None:
            raise DriverError(f"no mail {mail_id} (the Inbox keeps the last {self.workspace.inbox.limit})")
        return found

    def clear_mails(self) -> None:
        self.workspace.inbox.clear()

    def wait_for_mail(
        self, to: str, *, subject: str | None = None, after: int = 0, timeout: float = 5.0
    ) -> Mail:
        """The first mail to `to` (and with `subject` in its subject) whose id is above `after`.

        Pass the id of the last mail seen as `after` to wait for the next one.
        """
        def found() -> Mail | None:
            return next(
                (m for m in self.mails(to) if m.id > after and (subject is None or subject in m.subject)),
                None,
            )

        what = f"a mail to {to}" + (f" about {subject!r}" if subject else "")
        return self.wait_for(found, timeout=timeout, what=what)

    def wait_for(
        self, condition: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition"
    ) -> T:
        """Waits until `condition()` returns something truthy, re-checking on every change.

        Apps usually acknowledge first and update Slack afterwards, so tests wait for effects.
        """
        deadline = time.monotonic() + timeout
        version = self.workspace.version
        while True:
            result = condition()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            # Re-check at least every 50 ms: some conditions depend on things outside the workspace.
            version = self.workspace.wait_for_change(version, min(remaining, 0.05))
