"""Custom workspaces from a JSON seed file, as `python -m slack_approvals.sandbox --seed` and
SandboxServer take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_sdk import WebClient

from slack_approvals.sandbox import SandboxServer, load_seed


def test_a_seed_file_replaces_people_and_keeps_default_channels(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "team": {"id": "T0ACME", "domain": "acme", "name": "Acme"},
                "users": [{"id": "U0ADA", "name": "ada", "real_name": "Ada Admin"}],
                "groups": [{"id": "S0OPS", "handle": "ops", "users": ["U0ADA"]}],
            }
        )
    )
    with SandboxServer(seed=seed, bot_token="xoxb-acme") as sb:
        client = WebClient(token="xoxb-acme", base_url=sb.api_url)
        assert client.auth_test()["team_id"] == "T0ACME"
        assert [m["name"] for m in client.users_list()["members"]] == ["ada", "approvals"]
        assert client.usergroups_users_list(usergroup="S0OPS")["users"] == ["U0ADA"]
        assert client.conversations_info(channel="#approvals")["channel"]["id"] == "C01APPROVALS"


def test_groups_must_name_known_people(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"groups": [{"id": "S0X", "handle": "x", "users": ["U0GHOST"]}]}))
    with pytest.raises(ValueError, match="unknown users"):
        load_seed(seed)
