"""The department roll-up stays a message Slack accepts at the largest review."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk import WebClient

from slack_approvals.flows.departments import MAX_DEPARTMENTS, DepartmentSpec, Rollup
from slack_approvals.policy.routing import Settled
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state.models import Outcome


def test_rollup_of_the_largest_review_is_accepted(sb: SandboxServer) -> None:
    departments = [DepartmentSpec(name=f"Department {i:02d}") for i in range(MAX_DEPARTMENTS)]
    route = Settled(rule=None, policy_hash="0" * 16, channel="C02FINANCE",
                    approvers=("U02FRANK", "U01MAYA"), approver_groups=(), quorum=1,
                    timeout=timedelta(hours=1), timeout_outcome=Outcome.REJECT,
                    allow_self_approval=False, auto_approve=None, deny=None)
    message = Rollup("2025-Q4", departments, {d.name: route for d in departments}).message()
    assert len(message["blocks"]) <= 50
    client = WebClient(token=sb.config.bot_token, base_url=sb.api_url)
    assert client.chat_postMessage(channel="C01APPROVALS", **message)["ok"]
    text = str(sb.messages("C01APPROVALS")[-1]["blocks"])
    assert "Department 00" in text
    assert f"Department {MAX_DEPARTMENTS - 1:02d}" in text
