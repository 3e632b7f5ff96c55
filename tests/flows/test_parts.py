"""The plain logic inside the flows, without running them: retry rules, the roll-up text,
synthetic data, deployments and the services bootstrap."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.error import URLError

import pytest
import redis
from prefect.states import Failed
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from slack_approvals.approvals.deploying import served_deployments
from slack_approvals.flows.departments import DepartmentResult, DepartmentSpec, Figures, Rollup
from slack_approvals.flows.errors import DecisionPending
from slack_approvals.flows.etl import check_record, generate_records
from slack_approvals.flows.gates import CLOCK_GRACE_SECONDS, only_pending, slack_trouble, wait_attempts
from slack_approvals.flows.registry import REGISTRY
from slack_approvals.flows.results import GateResult
from slack_approvals.flows.services import (
    BOOTSTRAP_ENV,
    ServicesNotInstalled,
    flow_config,
    services,
    services_installed,
)
from slack_approvals.policy.routing import Settled
from slack_approvals.state import Outcome, Status


def slack_error(code: str) -> SlackApiError:
    response = SlackResponse(client=None, http_verb="POST", api_url="https://slack.test/api/x",
                             req_args={}, data={"ok": False, "error": code}, headers={},
                             status_code=200)
    return SlackApiError(code, response)


def retried(condition: Any, exc: BaseException) -> bool:
    none = cast(Any, None)
    return bool(asyncio.run(condition(none, none, Failed(data=exc))))


@pytest.mark.parametrize(("exc", "expected"), [
    (slack_error("ratelimited"), True),
    (slack_error("service_unavailable"), True),
    (URLError("connection refused"), True),
    (slack_error("channel_not_found"), False),
    (slack_error("invalid_auth"), False),
    (redis.ConnectionError("no redis"), False),
    (ValueError("bad spec"), False),
])
def test_posting_is_retried_only_for_slack_trouble(exc: BaseException, expected: bool) -> None:
    assert retried(slack_trouble, exc) is expected


def test_waiting_is_retried_only_while_pending() -> None:
    pending = DecisionPending("0123456789abcdef", datetime.now(UTC))
    assert retried(only_pending, pending)
    assert not retried(only_pending, redis.ConnectionError("lost"))
    assert not retried(only_pending, TimeoutError())


def test_enough_attempts_reach_the_longest_deadline() -> None:
    skew = int(60 / CLOCK_GRACE_SECONDS) + 1
    assert wait_attempts(timedelta(days=90), 10.0) == 777_600 + skew
    assert wait_attempts(timedelta(seconds=25), 10.0) == 3 + skew
    assert wait_attempts(timedelta(seconds=-5), 10.0) == skew


def result(name: str, status: Status, approved: bool, by: str | None) -> DepartmentResult:
    now = datetime.now(UTC)
    return DepartmentResult(department=name, figures=Figures(revenue=1, costs=1, headcount=1),
                            gate=GateResult(gate=f"department:{name}", request_id="x" * 16,
                                            status=status, approved=approved, decided_by=by,
                                            reason=None),
                            started_at=now, finished_at=now)


def test_rollup_shows_every_department_state() -> None:
    routes = {n: Settled(rule=None, policy_hash="0" * 16, channel=c, approvers=tuple(a),
                         approver_groups=tuple(g), quorum=1, timeout=timedelta(hours=1),
                         timeout_outcome=Outcome.REJECT, allow_self_approval=False,
                         auto_approve=None, deny=None) for n, c, a, g in [
        ("finance", "C02FINANCE", [], ["S01FINANCE"]), ("sales", "#sales", ["U05SARA"], []),
        ("people", "hr", [], []), ("legal", "C01APPROVALS", ["U01MAYA"], []),
        ("ops", "C05DEPLOYS", ["U04OLIVER"], [])]}
    departments = [DepartmentSpec(name=name) for name in routes]
    rollup = Rollup("2025-Q4", departments, routes)
    assert rollup.message()["text"] == "Department review 2025-Q4: 0 of 5 decided"
    rollup.record(result("sales", Status.APPROVED, True, "U05SARA"))
    rollup.record(result("people", Status.TIMED_OUT, True, None))
    rollup.record(result("legal", Status.CANCELLED, False, "U06REQ"))
    rollup.fail("ops")
    lines = [rollup.line(d) for d in departments]
    assert lines == [
        ":hourglass_flowing_sand: *finance*: waiting for <!subteam^S01FINANCE> in <#C02FINANCE>",
        ":white_check_mark: *sales*: approved by <@U05SARA>",
        ":hourglass: *people*: timed out, approved by default",
        ":no_entry_sign: *legal*: cancelled by <@U06REQ>",
        ":warning: *ops*: the sign-off flow failed",
    ]
    message = rollup.message()
    assert message["text"] == "Department review 2025-Q4: 4 of 5 decided"
    assert message["blocks"][-1]["elements"][0]["text"] == "4 of 5 decided · 2 approved"


def test_synthetic_records_are_repeatable_and_about_as_dirty_as_asked() -> None:
    records = generate_records(1000, 0.1, seed=3)
    assert records == generate_records(1000, 0.1, seed=3)
    dirty = sum(1 for r in records if check_record(r))
    assert 60 <= dirty <= 140
    assert not any(check_record(r) for r in generate_records(200, 0.0, seed=3))


def test_serve_offers_every_registered_flow_by_module_path() -> None:
    deployments = served_deployments()
    assert sorted(d.flow_name for d in deployments) == sorted(REGISTRY)
    assert {d.name for d in deployments} == {"slack-approvals"}
    assert all(d.entrypoint and d.entrypoint.startswith("slack_approvals.flows.") for d in deployments)


def test_a_fresh_process_installs_services_through_the_bootstrap_hook(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a served flow run's process does: nothing installed, so the hook is called."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    monkeypatch.setenv("APPROVALS_CHANNEL", "C03ENG")
    monkeypatch.setenv("APPROVALS_DEFAULT_APPROVERS", "U03ERIN")
    with services_installed(None), pytest.raises(ServicesNotInstalled):
        services()
    monkeypatch.setenv(BOOTSTRAP_ENV, "slack_approvals.approvals.launching:install_services_from_environment")
    with services_installed(None):
        assert flow_config().channel == "C03ENG" and flow_config().approvers == ("U03ERIN",)


def test_retries_of_a_waiting_gate_stay_out_of_the_logs() -> None:
    logger = logging.getLogger("prefect.task_runs")
    pending = DecisionPending("0123456789abcdef", datetime.now(UTC))

    def record(exc: BaseException) -> logging.LogRecord:
        return logger.makeRecord(logger.name, logging.INFO, __file__, 1,
                                 "Task run failed with %s: %r - Retry %s/%s will start %s",
                                 ("exception", exc, 1, 9, "immediately"), None)

    assert not logger.filter(record(pending))
    assert logger.filter(record(redis.ConnectionError("lost")))
