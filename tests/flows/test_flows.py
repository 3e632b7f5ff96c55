"""Every registered flow, run for real against Prefect, the sandbox and Redis, decisions
arriving through the store from another thread as clicks would."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from slack_approvals.flows.departments import DepartmentReviewParams, DepartmentSpec, department_review
from slack_approvals.flows.etl import (
    EtlParams,
    SalesRecord,
    calculate_statistics,
    etl_pipeline,
    save_to_database,
    validate_records,
)
from slack_approvals.flows.examples import (
    MultiStepParams,
    PaymentParams,
    multi_step_approval,
    payment_approval,
)
from slack_approvals.flows.journal import read_all
from slack_approvals.flows.operations import (
    DeployParams,
    DestructiveParams,
    deploy_approval,
    destructive_operation,
)
from slack_approvals.state import DecideStatus, Outcome, Status

from .support import (
    APPROVALS,
    DEPLOYS,
    ENG,
    ENG_LEADS,
    ERIN,
    FINANCE,
    FINANCE_GROUP,
    FRANK,
    MAYA,
    OLIVER,
    REQUESTER,
    SALES,
    SALES_LEADS,
    SARA,
    FlowEnv,
    decided_events,
    run,
)

# Who approves each flow's gates, as an admin's policy file would say.
TEST_POLICY = f"""
version: 1
rules:
  - name: small-payments
    match: {{flow: payment-approval, params: {{amount: "< 1000"}}}}
    auto_approve: amount below the 1,000 USD threshold
  - name: large-payments
    match: {{flow: payment-approval, params: {{amount: "> 10000"}}}}
    approvers: [{MAYA}, {FRANK}]
    quorum: 2
  - name: finance-step
    match: {{flow: multi-step-approval, gate: finance}}
    approver_groups: [{FINANCE_GROUP}]
  - name: destructive
    match: {{flow: destructive-operation}}
    approvers: [{MAYA}, {FRANK}, {REQUESTER}]
  - {{name: finance, match: {{gate: "department:finance"}}, channel: {FINANCE},
     approver_groups: [{FINANCE_GROUP}]}}
  - {{name: engineering, match: {{gate: "department:engineering"}}, channel: {ENG},
     approver_groups: [{ENG_LEADS}]}}
  - {{name: sales, match: {{gate: "department:sales"}}, channel: {SALES},
     approver_groups: [{SALES_LEADS}]}}
  - {{name: operations, match: {{gate: "department:operations"}}, channel: {DEPLOYS},
     approvers: [{OLIVER}]}}
  - {{name: people, match: {{gate: "department:people"}}, channel: {APPROVALS}, approvers: [{MAYA}]}}
"""


@pytest.fixture(autouse=True)
def _policy(request: pytest.FixtureRequest) -> None:
    for name in ("env", "real_env"):
        if name in request.fixturenames:
            request.getfixturevalue(name).use_policy(TEST_POLICY)


# -- etl-pipeline ------------------------------------------------------------------------------


def db_rows(path: Path, batch_id: str) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT count(*) FROM sales WHERE batch_id = ?",
                                      (batch_id,)).fetchone()
    return int(count)


def test_etl_asks_before_storing_dirty_data_then_stores(env: FlowEnv) -> None:
    env.approvers.on("sales records despite", MAYA)

    result = run(etl_pipeline(EtlParams(rows=300, error_rate=0.1)))

    assert result.problem_rate > 0.05
    assert result.approval is not None and result.approval.approved
    assert result.statistics.count == result.rows - result.invalid  # the child's valid set
    assert result.stored is not None
    path = env.config.data_dir / "etl.sqlite3"
    assert result.stored.database == str(path)
    assert db_rows(path, result.stored.batch_id) == result.stored.rows_in_batch == result.statistics.count
    message = env.message_of(result.approval.request_id)
    assert f"{result.invalid} of 300" in str(message["blocks"])


def test_etl_with_clean_data_stores_without_asking(env: FlowEnv) -> None:
    result = run(etl_pipeline(EtlParams(rows=50, error_rate=0.0)))

    assert (result.invalid, result.approval) == (0, None)
    assert result.stored is not None and result.stored.rows_in_batch == 50
    assert env.posts() == 0


def test_etl_rejected_stores_nothing(env: FlowEnv) -> None:
    env.approvers.on("sales records despite", MAYA, Outcome.REJECT, reason="fix the feed first")

    result = run(etl_pipeline())

    assert result.approval is not None and result.approval.status is Status.REJECTED
    assert result.stored is None
    assert not (env.config.data_dir / "etl.sqlite3").exists()


def test_etl_children_run_alone(env: FlowEnv, tmp_path: Path) -> None:
    records = [
        SalesRecord(id=1, day="2025-01-02", region="north", amount=10.0, quantity=2),
        SalesRecord(id=2, day="2025-01-03", region="south", amount=30.0, quantity=1),
        SalesRecord(id=3, day="2025-02-30", region="north", amount=None, quantity=-1),
    ]
    report = run(validate_records(records))
    assert [r.id for r in report.valid] == [1, 2]
    assert {(p.record_id, p.field) for p in report.problems} == {(3, "amount"), (3, "quantity"),
                                                                  (3, "day")}
    statistics = run(calculate_statistics(report.valid))
    assert (statistics.count, statistics.units, statistics.total_amount) == (2, 3, 40.0)
    assert (statistics.mean_amount, statistics.median_amount) == (20.0, 20.0)
    assert statistics.by_region["north"].total_amount == 10.0

    path = tmp_path / "alone.sqlite3"
    first = run(save_to_database(report.valid, statistics, str(path), "batch-1"))
    again = run(save_to_database(report.valid, statistics, str(path), "batch-1"))
    assert first.rows_in_batch == again.rows_in_batch == db_rows(path, "batch-1") == 2


# -- department-review -------------------------------------------------------------------------

FIVE = [DepartmentSpec(name=name) for name in ("finance", "engineering", "sales", "operations", "people")]
# Whom TEST_POLICY's rules ask for each department, and where.
ROUTES = {
    "finance": (FINANCE, [], [FINANCE_GROUP]),
    "engineering": (ENG, [], [ENG_LEADS]),
    "sales": (SALES, [], [SALES_LEADS]),
    "operations": (DEPLOYS, [OLIVER], []),
    "people": (APPROVALS, [MAYA], []),
}
SIGNER = {"finance": FRANK, "engineering": ERIN, "sales": SARA, "operations": OLIVER, "people": MAYA}


def test_department_review_runs_departments_at_once(env: FlowEnv, prefect_database: str) -> None:
    if prefect_database == "sqlite":
        pytest.skip("SQLite serialises concurrent child flow runs (503 and a 2 s client back-off "
                    "each); put PostgreSQL's initdb and postgres on PATH")
    for name, user in SIGNER.items():
        env.approvers.on(f"{name}: sign off", user, after=1.0)

    result = run(department_review(DepartmentReviewParams(departments=FIVE, period="2025-Q3")))

    assert sorted(result.approved) == sorted(SIGNER) and not result.rejected + result.timed_out
    children = result.departments
    # Every child started before any finished: they ran at the same time, not in turn.
    assert max(c.started_at for c in children) < min(c.finished_at for c in children)
    for child in children:
        request = env.store.get(child.gate.request_id)
        channel, approvers, groups = ROUTES[child.department]
        assert request.message_channel == channel
        assert (request.spec.approvers, request.spec.approver_groups) == (approvers, groups)
        assert request.spec.policy_rule == child.department
        assert child.gate.decided_by == SIGNER[child.department]
    rollup = env.sb.message(result.rollup_channel, result.rollup_ts)
    assert rollup["text"] == "Department review 2025-Q3: 5 of 5 decided"
    updates = [c for c in env.sb.api_calls("chat.update") if c.args.get("ts") == result.rollup_ts]
    assert 1 <= len(updates) <= 5  # at most one edit per decision; a burst collapses into one


def test_department_review_aggregates_each_outcome(env: FlowEnv) -> None:
    env.approvers.on("finance: sign off", FRANK)
    env.approvers.on("engineering: sign off", ERIN, Outcome.REJECT, reason="costs look wrong")
    env.use_policy(TEST_POLICY.replace("version: 1\n", "version: 1\ndefaults: {timeout: 1.5}\n"))
    params = DepartmentReviewParams.model_validate({"departments": "finance,engineering,sales"})

    result = run(department_review(params))

    assert (result.approved, result.rejected, result.timed_out) == (["finance"], ["engineering"],
                                                                    ["sales"])
    rollup = str(env.sb.message(result.rollup_channel, result.rollup_ts)["blocks"])
    assert ":white_check_mark: *finance*: approved by <@U02FRANK>" in rollup
    assert ":x: *engineering*: rejected by <@U03ERIN>" in rollup
    assert ":hourglass: *sales*: timed out, rejected by default" in rollup
    assert "3 of 3 decided · 1 approved" in rollup


# -- payment-approval --------------------------------------------------------------------------


def test_small_payment_is_auto_approved_and_the_audit_says_so(env: FlowEnv) -> None:
    result = run(payment_approval(PaymentParams(amount=Decimal("250"))))

    assert (result.paid, result.gate.decided_by) == (True, None)
    audit = env.store.audit(result.gate.request_id)
    assert [e.event for e in audit] == ["created", "approved"]
    assert audit[0].model_extra == {"policy_rule": "small-payments", "policy_hash": env.policy.current().hash}
    assert audit[-1].reason == "amount below the 1,000 USD threshold"
    assert env.posts() == 0
    assert decided_events(result.gate.request_id)[0].resource["approval.status"] == "approved"


def test_payment_needs_one_approver_then_two_above_the_second_threshold(env: FlowEnv) -> None:
    env.approvers.on("Pay 2,500.00 USD", MAYA)
    single = run(payment_approval(PaymentParams(amount=Decimal("2500.00"))))
    assert (single.paid, single.gate.decided_by) == (True, MAYA)
    assert env.store.get(single.gate.request_id).spec.policy_rule is None

    env.approvers.on("Pay 20,000.00 USD", MAYA)
    env.approvers.on("Pay 20,000.00 USD", FRANK, after=0.5)
    large = run(payment_approval(PaymentParams(amount=Decimal("20000.00"))))
    assert (large.paid, large.gate.decided_by) == (True, FRANK)
    request = env.store.get(large.gate.request_id)
    assert request.spec.quorum == 2 and [v.user for v in request.votes] == [MAYA, FRANK]


# -- multi-step-approval -----------------------------------------------------------------------


def test_multi_step_asks_manager_then_finance(env: FlowEnv) -> None:
    env.approvers.on("Manager approval", MAYA)
    env.approvers.on("Finance approval", FRANK)

    result = run(multi_step_approval(MultiStepParams()))

    assert result.approved and result.stopped_at is None
    assert [(s.gate, s.decided_by) for s in result.steps] == [("manager", MAYA), ("finance", FRANK)]


def test_multi_step_stops_at_the_first_rejection(env: FlowEnv) -> None:
    env.approvers.on("Manager approval", MAYA, Outcome.REJECT, reason="over budget")

    result = run(multi_step_approval())

    assert (result.approved, result.stopped_at, len(result.steps)) == (False, "manager", 1)
    assert env.posts() == 1  # finance was never asked


# -- deploy-approval and destructive-operation -------------------------------------------------


def test_deploy_shows_environment_and_version_and_records_the_release(env: FlowEnv) -> None:
    env.approvers.on("Deploy api 2.4.1 to production", MAYA)

    result = run(deploy_approval(DeployParams(environment="production", version="2.4.1")))

    assert result.gate.approved and result.deployed is not None and result.deployed.recorded_now
    fields = str(env.message_of(result.gate.request_id)["blocks"])
    assert "*Environment*\\nproduction" in fields and "*Version*\\n2.4.1" in fields
    journal = read_all(env.config.data_dir / "deployments.jsonl")
    assert [(r["request_id"], r["details"]["Version"]) for r in journal] == [
        (result.gate.request_id, "2.4.1")]


def test_destructive_operation_needs_two_others_than_the_requester(env: FlowEnv) -> None:
    env.approvers.on("Drop table", REQUESTER)
    env.approvers.on("Drop table", MAYA, after=0.2)
    env.approvers.on("Drop table", FRANK, after=0.4)

    result = run(destructive_operation(DestructiveParams()))

    assert result.gate.approved and result.performed is not None
    statuses = [(c.user, c.status) for c in env.approvers.clicks]
    assert statuses == [(REQUESTER, DecideStatus.SELF_APPROVAL), (MAYA, DecideStatus.RECORDED),
                        (FRANK, DecideStatus.APPROVED)]
    assert read_all(env.config.data_dir / "operations.jsonl")[0]["approved_by"] == [MAYA, FRANK]


def test_destructive_operation_rejected_does_nothing(env: FlowEnv) -> None:
    env.approvers.on("Drop table", MAYA, Outcome.REJECT, reason="we still need it")

    result = run(destructive_operation(DestructiveParams()))

    assert not result.gate.approved and result.performed is None
    assert not (env.config.data_dir / "operations.jsonl").exists()


@pytest.mark.real_redis
def test_department_review_on_a_real_redis(real_env: FlowEnv) -> None:
    for name, user in SIGNER.items():
        real_env.approvers.on(f"{name}: sign off", user, after=0.5)

    result = run(department_review(DepartmentReviewParams(departments=FIVE)))

    assert sorted(result.approved) == sorted(SIGNER)
    assert real_env.posts() == 6  # five requests and the roll-up
