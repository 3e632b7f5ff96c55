"""The policy file in force: hot reload that keeps the old policy on a bad file, and the
`approvals policy` commands (check with line numbers, explain --json, show HASH)."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slack_approvals.approvals.cli import app
from slack_approvals.approvals.policies import PolicyFile
from slack_approvals.approvals.settings import SettingsError
from slack_approvals.policy.routing import route
from slack_approvals.state.store import ApprovalStore
from tests.conftest import RedisServer

ISSUE_POLICY = (Path(__file__).parent / "issue_policy.yaml").read_text()


def touch_later(path: Path, text: str) -> None:
    """Write, and move the mtime on, so a change is seen even within one clock tick."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_a_changed_file_is_reloaded_and_a_bad_one_keeps_the_old_policy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "approvals-policy.yaml"
    path.write_text(ISSUE_POLICY)
    source = PolicyFile(path)
    first = source.current()
    assert route(first, facts={"environment": "production"}).rule == "production-changes"

    touch_later(path, ISSUE_POLICY.replace("U0CARL", "U0DANA"))
    second = source.current()
    assert second.hash != first.hash
    assert route(second, facts={"environment": "production"}).settle().approvers == ("U0DANA",)

    with caplog.at_level(logging.ERROR):
        touch_later(path, ISSUE_POLICY.replace("quorum: 2", "quorum: two"))
        assert source.current() is second  # a typo is no outage
    assert f"refused, policy {second.hash} stays in force" in caplog.text
    assert f"{path}:14: rules[0].quorum" in caplog.text

    path.write_text(ISSUE_POLICY)  # unchanged mtime is possible: SIGHUP asks anyway
    source.ask_reload()
    assert source.current().hash == first.hash


def test_a_bad_file_at_start_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nrules:\n  - name: x\n    quorum: 0\n")
    with pytest.raises(SettingsError, match=r"p.yaml:4: rules\[0\].quorum"):
        PolicyFile(path)


def test_policy_check_exits_3_with_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(ISSUE_POLICY)
    result = CliRunner().invoke(app, ["policy", "check", str(good)])
    assert (result.exit_code, result.stdout.strip()) == (0, f"{good}: valid")

    bad = tmp_path / "bad.yaml"
    bad.write_text(ISSUE_POLICY.replace('">= 10000"', '"=> 10000"').replace(
        "flow: payment-approval  #", "flow: payments  #"))
    result = CliRunner().invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"{bad}:11: rules[0].match.params.amount: '=> 10000': `=>` is not an operator "
        "(use ==, !=, <, <=, >, >= or in [a, b])"]


def test_explain_json_and_show(tmp_path: Path, redis_server: RedisServer) -> None:
    path = tmp_path / "approvals-policy.yaml"
    path.write_text(ISSUE_POLICY)
    env = {"APPROVALS_POLICY": str(path), "REDIS_URL": redis_server.url,
           "APPROVALS_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["policy", "explain", "payment-approval", "-p", "amount=50000",
                                      "--json"], env=env)
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)
    assert {k: explained[k] for k in ("rule", "approvers", "approver_groups", "quorum",
                                       "auto_approve", "deny")} == {
        "rule": "large-payments", "approvers": ["U0ANNA", "U0BEN"],
        "approver_groups": ["S0FINANCE"], "quorum": 2, "auto_approve": None, "deny": None}
    small = CliRunner().invoke(app, ["policy", "explain", "payment-approval", "-p", "amount=500"],
                               env=env)
    assert "auto-approved: below the 1,000 USD threshold" in small.stdout
    refused = CliRunner().invoke(app, ["policy", "explain", "payment-approval", "-p", "quorum=1"],
                                 env=env)
    assert refused.exit_code == 3 and "`quorum` cannot be set" in refused.stderr
    cli = CliRunner().invoke(app, ["policy", "explain", "--fact", "environment=production", "--json"],
                             env=env)
    assert json.loads(cli.stdout)["approvers"] == ["U0CARL"]

    policy_hash = explained["policy_hash"]
    store = ApprovalStore(redis_server.client())
    store.keep_policy(policy_hash, ISSUE_POLICY, datetime.now(UTC) + timedelta(hours=1))
    shown = CliRunner().invoke(app, ["policy", "show", policy_hash], env=env)
    assert (shown.exit_code, shown.stdout) == (0, ISSUE_POLICY)
    missing = CliRunner().invoke(app, ["policy", "show", "0123456789abcdef"], env=env)
    assert missing.exit_code == 3 and "no policy 0123456789abcdef is kept" in missing.stderr
