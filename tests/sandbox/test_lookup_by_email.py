"""users.lookupByEmail as Slack answers it: the user whose profile holds the address (ignoring
case), `users_not_found` otherwise, `invalid_arguments` without an address."""

from __future__ import annotations

import httpx
from slack_sdk import WebClient

from slack_approvals.sandbox import SandboxServer
from tests.sandbox.conftest import BOT_TOKEN
from tests.sandbox.support import api_error


def test_lookup_by_email(client: WebClient, sb: SandboxServer) -> None:
    maya = client.users_lookupByEmail(email="Maya@Sandbox.test")["user"]
    assert (maya["id"], maya["profile"]["email"]) == ("U01MAYA", "maya@sandbox.test")
    missing = api_error(lambda: client.users_lookupByEmail(email="nobody@example.com"))
    assert missing["error"] == "users_not_found"
    bare = httpx.post(sb.api_url + "users.lookupByEmail", data={"token": BOT_TOKEN}).json()
    assert bare == {"ok": False, "error": "invalid_arguments"}
