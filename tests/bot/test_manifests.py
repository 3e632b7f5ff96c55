"""The Slack app manifests ask for exactly what the bot uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slack_approvals.bot.ids import SLASH_COMMAND
from slack_approvals.bot.web import EVENTS_PATH

SLACK = Path(__file__).resolve().parents[2] / "slack"


@pytest.mark.parametrize("name", ["manifest.http.yml", "manifest.socket.yml"])
def test_manifest_matches_the_bot(name: str) -> None:
    manifest = yaml.safe_load((SLACK / name).read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # chat.postMessage/update/postEphemeral, the slash command, usergroups.users.list,
    # conversations.open for reminder and escalation DMs; users.lookupByEmail (users:read.email,
    # which Slack grants only with users:read) makes an email approver who is in the workspace
    # one voter, and users.info names the requester in the mail.
    assert scopes == {"chat:write", "commands", "im:write", "usergroups:read", "users:read",
                      "users:read.email"}
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [SLASH_COMMAND]
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    socket = manifest["settings"]["socket_mode_enabled"]
    assert socket is (name == "manifest.socket.yml")
    if not socket:
        assert manifest["settings"]["interactivity"]["request_url"].endswith(EVENTS_PATH)
        assert manifest["features"]["slash_commands"][0]["url"].endswith(EVENTS_PATH)
