"""The approval policy end to end: the issue's policy file (with the sandbox's people) in force
for the real bot, whose launcher runs flows in this process on the session's Prefect server;
slash commands and clicks signed as Slack signs them, through the sandbox; `approvals request`
and `approvals policy` as the shell runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client

from slack_approvals.approvals.launching import InProcessLauncher, default_launcher, emit_decision_event
from slack_approvals.approvals.runtime import build_runtime
from slack_approvals.approvals.serving import ServerThread
from slack_approvals.approvals.settings import Settings, load_settings
from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.flows.services import services_installed
from slack_approvals.sandbox.driver import ActionResult
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state.models import ApprovalRequest, Status
from slack_approvals.state.store import ApprovalStore
from tests.bot.fixtures import (
    APPROVALS_CHANNEL,
    BOT_TOKEN,
    ERIN,
    FINANCE_GROUP,
    FRANK,
    MAYA,
    OLIVER,
    RILEY,
    SIGNING_SECRET,
    flatten,
    wait_ephemeral,
)
from tests.conftest import RedisServer

# The issue's example as written, its people and channel those of the sandbox workspace.
ISSUE_POLICY = (Path(__file__).parent / "issue_policy.yaml").read_text()
POLICY = (ISSUE_POLICY.replace("U0ANNA", MAYA).replace("U0BEN", FRANK).replace("U0CARL", ERIN)
          .replace("S0FINANCE", FINANCE_GROUP).replace("C0APPROVALS", APPROVALS_CHANNEL))
AUTO_REASON = "below the 1,000 USD threshold"
# Parameters only the policy may decide, as a caller would try to set them.
ROUTING = ["quorum=1", f"channel={APPROVALS_CHANNEL}", f"approvers={RILEY}",
           f"approver_groups={FINANCE_GROUP}", "timeout_outcome=approve", f"requester={MAYA}"]


@dataclass
class PolicyBot:
    sandbox: SandboxServer
    store: ApprovalStore
    launcher: InProcessLauncher
    settings: Settings
    policy_path: Path
    folder: Path
    redis_url: str

    def slash(self, text: str, user: str = RILEY) -> ActionResult:
        answer = self.sandbox.slash(user, APPROVALS_CHANNEL, "/approvals", text)
        assert answer.status == 200, answer.body
        return answer

    def ephemeral(self, needle: str, user: str = RILEY, timeout: float = 10) -> str:
        return wait_ephemeral(self.sandbox, user, needle, timeout)

    def started_run(self, flow: str) -> str:
        """The flow run id the bot announced for the last `run`."""
        text = self.ephemeral(f"Started `{flow}`: flow run `", timeout=60)
        return text.split("flow run `", 1)[1].split("`", 1)[0]

    def posted(self, title: str, timeout: float = 60) -> ApprovalRequest:
        def found() -> ApprovalRequest | None:
            for request in self.store.pending(limit=100):
                if request.message_ts and title in request.spec.title:
                    return request
            return None
        return self.sandbox.wait_for(found, timeout=timeout, what=f"a request for {title!r} posted")

    def click(self, user: str, request: ApprovalRequest) -> None:
        assert request.message_channel and request.message_ts
        clicked = self.sandbox.click(user, request.message_channel, request.message_ts,
                                     APPROVE_ACTION)
        assert clicked.status == 200, clicked.body

    def cli_env(self) -> dict[str, str]:
        """A fresh process configured only through its environment: no Prefect server, so
        nothing starts a temporary one."""
        env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": self.sandbox.api_url,
               "REDIS_URL": self.redis_url, "APPROVALS_POLICY": str(self.policy_path),
               "APPROVALS_DATA_DIR": str(self.folder / "cli-data"),
               "APPROVALS_WAIT_SLICE_SECONDS": "0.5"}
        for name in ("PREFECT_API_URL", "APPROVALS_CHANNEL", "APPROVALS_DEFAULT_APPROVERS",
                     "APPROVALS_REQUESTER", "SLACK_APP_TOKEN"):
            env.pop(name, None)
        return env

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`approvals ...` as a shell runs it."""
        return subprocess.run([sys.executable, "-m", "slack_approvals", *args], cwd=self.folder,
                              env=self.cli_env(), capture_output=True, text=True, timeout=timeout,
                              check=False)


@pytest.fixture
def policy_bot(prefect_database: str, sandbox: SandboxServer, redis_server: RedisServer,
               tmp_path: Path) -> Iterator[PolicyBot]:
    """The bot as `approvals bot` wires it (settings, policy file, in-process launcher,
    runtime), served over HTTP with the sandbox's slash commands and clicks pointed at it."""
    sandbox.reset()
    with redis_server.client() as client:
        client.flushall()
    policy_path = tmp_path / "approvals-policy.yaml"
    policy_path.write_text(POLICY)
    # The settings' own approvers differ from every rule's, so a leak of them would show.
    settings = load_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                             slack_api_url=sandbox.api_url, redis_url=redis_server.url,
                             approvals_channel=APPROVALS_CHANNEL,
                             approvals_default_approvers="U05SARA",
                             approvals_data_dir=tmp_path / "data", approvals_policy=policy_path,
                             approvals_wait_slice_seconds=0.5)
    with services_installed(None):
        launcher = default_launcher(settings, "in-process")
        assert isinstance(launcher, InProcessLauncher)
        runtime = build_runtime(settings, launcher=launcher, on_decision=emit_decision_event)
        try:
            with ServerThread(runtime.web) as server:
                sandbox.set_request_url(f"{server.url}/slack/events")
                yield PolicyBot(sandbox, runtime.deps.store, launcher, settings, policy_path,
                                tmp_path, redis_server.url)
        finally:
            launcher.stop(runtime.deps.closer, timeout=5)
            runtime.deps.background.shutdown(wait=True)
            sandbox.set_request_url(None)


def explained(bot: PolicyBot, *args: str) -> dict[str, Any]:
    result = bot.cli("policy", "explain", *args, "--json")
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_large_payment_asks_the_rule_s_approvers_and_completes_after_both_click(
        policy_bot: PolicyBot) -> None:
    bot = policy_bot
    bot.slash("run payment-approval amount=50000 payee=ACME")
    run_id = bot.started_run("payment-approval")
    request = bot.posted("to ACME")

    spec = request.spec
    assert (spec.approvers, spec.approver_groups, spec.quorum) == ([MAYA, FRANK], [FINANCE_GROUP], 2)
    assert (spec.channel, spec.requester, spec.policy_rule) == (APPROVALS_CHANNEL, RILEY,
                                                                "large-payments")
    assert spec.flow_run_id == run_id
    shown = flatten(bot.sandbox.message(request.message_channel or "", request.message_ts or ""))
    assert f"<@{MAYA}>" in shown and f"<@{FRANK}>" in shown and "0 of 2 approvals" in shown

    bot.click(MAYA, request)
    bot.sandbox.wait_for(lambda: len(bot.store.get(request.id).approvals) == 1, timeout=10,
                         what="the first approval recorded")
    assert bot.store.get(request.id).status is Status.PENDING  # one of two is not enough
    bot.click(FRANK, request)

    state = bot.launcher.wait(run_id, timeout=60)
    assert state.is_completed(), state.message
    result = state.result()
    assert result.paid and result.gate.request_id == request.id
    with get_client(sync_client=True) as client:  # the session's server saw the whole run
        flow_run = client.read_flow_run(uuid.UUID(run_id))
    assert flow_run.state is not None and flow_run.state.is_completed()
    assert f"requested-by:{RILEY}" in flow_run.tags
    decided = bot.store.get(request.id)
    assert decided.status is Status.APPROVED
    assert sorted(vote.user for vote in decided.votes) == sorted([MAYA, FRANK])

    # What `policy explain` says is what the run did, and the audit names the same policy.
    answer = explained(bot, "payment-approval", "-p", "amount=50000", "-p", "payee=ACME")
    assert spec.timeout is not None
    assert {k: answer[k] for k in ("rule", "approvers", "approver_groups", "quorum", "channel",
                                   "timeout", "timeout_outcome", "allow_self_approval",
                                   "auto_approve", "deny", "policy_hash")} == {
        "rule": "large-payments", "approvers": spec.approvers,
        "approver_groups": spec.approver_groups, "quorum": spec.quorum, "channel": spec.channel,
        "timeout": int(spec.timeout.total_seconds()), "timeout_outcome": spec.timeout_outcome.value,
        "allow_self_approval": spec.allow_self_approval, "auto_approve": None, "deny": None,
        "policy_hash": spec.policy_hash}
    created = bot.store.audit(request.id)[0]
    assert created.model_extra == {"policy_rule": "large-payments", "policy_hash": spec.policy_hash}
    assert bot.store.policy_text(answer["policy_hash"]) == POLICY


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_small_payment_is_auto_approved_with_the_rule_s_reason(policy_bot: PolicyBot) -> None:
    bot = policy_bot
    posts_before = len(bot.sandbox.api_calls("chat.postMessage"))
    bot.slash("run payment-approval amount=500 payee=ACME")
    run_id = bot.started_run("payment-approval")

    state = bot.launcher.wait(run_id, timeout=60)
    assert state.is_completed(), state.message
    result = state.result()
    assert result.paid
    request = bot.store.get(result.gate.request_id)
    assert request.status is Status.APPROVED and request.decision is not None
    assert request.decision.reason == AUTO_REASON
    assert request.spec.policy_rule == "small-payments"
    events = bot.store.audit(request.id)
    assert events[0].model_extra == {"policy_rule": "small-payments",
                                     "policy_hash": request.spec.policy_hash}
    assert any(e.reason == AUTO_REASON for e in events[1:]), [e.model_dump() for e in events]
    assert len(bot.sandbox.api_calls("chat.postMessage")) == posts_before  # nobody was asked

    answer = explained(bot, "payment-approval", "-p", "amount=500")
    assert (answer["rule"], answer["auto_approve"]) == ("small-payments", AUTO_REASON)


@pytest.mark.parametrize("routing", ROUTING)
def test_run_with_a_routing_parameter_is_refused_naming_it(policy_bot: PolicyBot,
                                                           routing: str) -> None:
    bot = policy_bot
    name = routing.split("=", 1)[0]
    answer = bot.slash(f"run payment-approval amount=50000 {routing}")
    assert answer.json()["response_type"] == "ephemeral"
    text = bot.ephemeral(f"`{name}` cannot be set")
    assert "who approves" in text
    assert bot.store.pending(limit=10) == []
    assert bot.sandbox.messages(APPROVALS_CHANNEL) == []  # nothing started, nothing posted


def test_slash_policy_explains_who_would_be_asked(policy_bot: PolicyBot) -> None:
    bot = policy_bot
    answer = bot.slash("policy payment-approval amount=50000")
    assert answer.json()["response_type"] == "ephemeral"
    text = bot.ephemeral("applies rule `large-payments`")
    assert f"<@{MAYA}>" in text and f"<@{FRANK}>" in text and FINANCE_GROUP in text
    assert "2 approvals needed" in text and "not by the requester" in text

    bot.slash("policy payment-approval amount=500")
    assert AUTO_REASON in bot.ephemeral("applies rule `small-payments`")
    assert bot.store.pending(limit=10) == [] and bot.sandbox.messages(APPROVALS_CHANNEL) == []


@pytest.mark.parametrize("routing", ROUTING)
def test_slash_policy_refuses_a_routing_parameter_the_same_way(policy_bot: PolicyBot,
                                                               routing: str) -> None:
    bot = policy_bot
    name = routing.split("=", 1)[0]
    answer = bot.slash(f"policy payment-approval amount=50000 {routing}")
    assert answer.json()["response_type"] == "ephemeral"
    assert "who approves" in bot.ephemeral(f"`{name}` cannot be set")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_cli_request_with_the_production_fact_asks_the_rule_s_approver(
        policy_bot: PolicyBot) -> None:
    bot = policy_bot
    args = ["request", "--title", "Migrate the orders table", "--fact", "environment=production",
            "--requester", RILEY, "--wait"]
    cli = subprocess.Popen([sys.executable, "-m", "slack_approvals", *args], cwd=bot.folder,
                           env=bot.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        request = bot.posted("Migrate the orders table")
        assert (request.spec.approvers, request.spec.approver_groups, request.spec.quorum) == (
            [ERIN], [], 1)
        assert request.spec.policy_rule == "production-changes"
        bot.click(ERIN, request)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, (out, err)
    assert "by policy rule production-changes" in out and f"approved by {ERIN}" in out

    answer = explained(bot, "--fact", "environment=production")
    assert (answer["rule"], answer["approvers"]) == ("production-changes", [ERIN])


def test_policy_check_reports_a_bad_file_with_its_line(policy_bot: PolicyBot) -> None:
    bot = policy_bot
    assert bot.cli("policy", "check", str(bot.policy_path)).returncode == 0
    bad = bot.folder / "bad-policy.yaml"
    bad.write_text(POLICY.replace("quorum: 2", "quorum: two"))
    result = bot.cli("policy", "check", str(bad))
    assert result.returncode == 3, result.stdout
    line = POLICY.splitlines().index("    quorum: 2") + 1
    assert result.stderr.startswith(f"{bad}:{line}: rules[0].quorum"), result.stderr


def test_the_bot_follows_a_changed_policy_file_and_keeps_the_old_one_on_a_bad_change(
        policy_bot: PolicyBot) -> None:
    bot = policy_bot

    def explanation(text: str) -> str:
        """The bot's answer to `/approvals <text>`, told apart from earlier answers."""
        before = len(bot.sandbox.ephemerals(RILEY))
        bot.slash(text)
        bot.sandbox.wait_for(lambda: len(bot.sandbox.ephemerals(RILEY)) > before, timeout=10,
                             what=f"the answer to {text!r}")
        return flatten(bot.sandbox.ephemerals(RILEY)[before:])

    assert f"<@{FRANK}>" in explanation("policy payment-approval amount=50000")

    stamp = bot.policy_path.stat().st_mtime_ns + 1_000_000_000  # seen within one clock tick
    bot.policy_path.write_text(POLICY.replace(f"approvers: [{MAYA}, {FRANK}]",
                                              f"approvers: [{MAYA}, {OLIVER}]"))
    os.utime(bot.policy_path, ns=(stamp, stamp))
    changed = explanation("policy payment-approval amount=50000")
    assert f"<@{OLIVER}>" in changed and f"<@{FRANK}>" not in changed

    bot.policy_path.write_text(POLICY.replace("quorum: 2", "quorum: two"))
    os.utime(bot.policy_path, ns=(stamp + 1_000_000_000, stamp + 1_000_000_000))
    kept = explanation("policy payment-approval amount=50000")  # a typo is no outage
    assert f"<@{OLIVER}>" in kept and "2 approvals needed" in kept
