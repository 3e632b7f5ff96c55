"""Builds the payloads Slack sends to apps: block_actions, view_submission, commands, events."""

from __future__ import annotations

import copy
from typing import Any

from slack_approvals.sandbox.config import SandboxConfig
from slack_approvals.sandbox.directory import Directory, im_channel_id


def user_ref(directory: Directory, user_id: str) -> dict[str, Any]:
    user = directory.user(user_id)
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": directory.team.id}


def team_ref(directory: Directory) -> dict[str, Any]:
    return {"id": directory.team.id, "domain": directory.team.domain}


def action_json(block_id: str, element: dict[str, Any], action_ts: str) -> dict[str, Any]:
    action: dict[str, Any] = {
        "action_id": element["action_id"],
        "block_id": block_id,
        "text": copy.deepcopy(element.get("text")),
        "type": element["type"],
        "action_ts": action_ts,
    }
    if "value" in element:
        action["value"] = element["value"]
    if "style" in element:
        action["style"] = element["style"]
    return action


class Payloads:
    """Every payload Slack sends the app; the builders all read one directory and config, held here."""

    def __init__(self, directory: Directory, config: SandboxConfig) -> None:
        self._directory = directory
        self._config = config

    def _interaction(self, kind: str, user_id: str, **fields: Any) -> dict[str, Any]:
        """The fields every interaction payload opens with; the kind's own follow in the order Slack sends."""
        return {
            "type": kind,
            "user": user_ref(self._directory, user_id),
            "api_app_id": self._directory.bot.app_id,
            "token": self._config.verification_token,
            **fields,
        }

    def _block_actions(
        self, user_id: str, container: dict[str, Any], trigger_id: str, **fields: Any
    ) -> dict[str, Any]:
        """Clicks in messages and in views share these fields; Slack puts `fields` after them."""
        return self._interaction(
            "block_actions",
            user_id,
            container=container,
            trigger_id=trigger_id,
            team=team_ref(self._directory),
            enterprise=None,
            is_enterprise_install=False,
            **fields,
        )

    def _view_event(self, kind: str, user_id: str, **fields: Any) -> dict[str, Any]:
        """Submissions and closings: Slack puts the kind's fields between the team and the enterprise."""
        return self._interaction(
            kind,
            user_id,
            team=team_ref(self._directory),
            **fields,
            is_enterprise_install=False,
            enterprise=None,
        )

    def message_block_actions(
        self,
        *,
        user_id: str,
        channel_id: str,
        message: dict[str, Any],
        is_ephemeral: bool,
        action: dict[str, Any],
        trigger_id: str,
        response_url: str,
    ) -> dict[str, Any]:
        container = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        }
        channel = {"id": channel_id, "name": self._directory.channel(channel_id).name}
        payload = self._block_actions(user_id, container, trigger_id, channel=channel)
        # Ephemeral messages are not stored by Slack, so their payloads carry no `message`.
        if not is_ephemeral:
            payload["message"] = copy.deepcopy(message)
        payload.update(state={"values": {}}, response_url=response_url, actions=[action])
        return payload

    def view_block_actions(
        self, *, user_id: str, view: dict[str, Any], action: dict[str, Any], trigger_id: str
    ) -> dict[str, Any]:
        container = {"type": "view", "view_id": view["id"]}
        return self._block_actions(user_id, container, trigger_id, view=copy.deepcopy(view), actions=[action])

    def view_submission(self, *, user_id: str, view: dict[str, Any], trigger_id: str) -> dict[str, Any]:
        return self._view_event(
            "view_submission", user_id, trigger_id=trigger_id, view=copy.deepcopy(view), response_urls=[]
        )

    def view_closed(self, *, user_id: str, view: dict[str, Any], is_cleared: bool) -> dict[str, Any]:
        return self._view_event("view_closed", user_id, view=copy.deepcopy(view), is_cleared=is_cleared)

    def slash_command(
        self,
        *,
        user_id: str,
        channel_id: str,
        command: str,
        text: str,
        trigger_id: str,
        response_url: str,
    ) -> dict[str, str]:
        directory = self._directory
        user = directory.user(user_id)
        channel = directory.channel(channel_id)
        return {
            "token": self._config.verification_token,
            "team_id": directory.team.id,
            "team_domain": directory.team.domain,
            "channel_id": channel_id,
            "channel_name": channel.name,
            "user_id": user.id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": directory.bot.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }

    def app_home_opened(
        self, *, user_id: str, view: dict[str, Any] | None, event_id: str, now: float
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": im_channel_id(user_id),
            "tab": "home",
            "event_ts": f"{now:.6f}",
        }
        # Slack includes the view only once a Home tab has been published for this person.
        if view is not None:
            event["view"] = copy.deepcopy(view)
        directory = self._directory
        return {
            "token": self._config.verification_token,
            "team_id": directory.team.id,
            "context_team_id": directory.team.id,
            "context_enterprise_id": None,
            "api_app_id": directory.bot.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": directory.team.id,
                    "user_id": directory.bot.user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{event_id}",
        }
