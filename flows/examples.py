"""Small flows that show the gate's options: one approval, payments by amount, two steps."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from prefect import flow
from pydantic import Field

from .gates import approval_gate
from .hooks import APPROVAL_HOOKS
from .params import RequestedParams, Title
from .results import FrozenModel, GateResult

# -- simple-approval ---------------------------------------------------------------------------


class SimpleApprovalParams(QuorumGateParams):
    title: Title = "Approve this step"
    summary: Annotated[str, Field(max_length=3000)] = ""


@flow(name="simple-approval", description="Ask once in Slack and return the decision.",
      **APPROVAL_HOOKS)
async def simple_approval(params: SimpleApprovalParams | None = None) -> GateResult:
    p = params or SimpleApprovalParams()
    decision = await approval_gate("approval", p.title, summary=p.summary, quorum=p.quorum,
                                   **p.routing())
    return GateResult.of("approval", decision)


# -- payment-approval --------------------------------------------------------------------------

Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class PaymentRoute(StrEnum):
    AUTO = "auto"  # below auto_approve_below: approved by the flow, with the reason in the audit
    SINGLE = "single"  # one approver
    QUORUM = "quorum"  # above quorum_above: two approvers


class PaymentParams(GateParams):
    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)] = Decimal("2500.00")
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    payee: Annotated[str, Field(min_length=1, max_length=100)] = "ACME Supplies Ltd"
    reference: Annotated[str, Field(max_length=100)] = ""
    auto_approve_below: Money = Decimal("1000")
    quorum_above: Money = Decimal("10000")

    @model_validator(mode="after")
    def _thresholds(self) -> Self:
        if self.quorum_above < self.auto_approve_below:
            raise ValueError("quorum_above: must not be below auto_approve_below")
        if self.route is PaymentRoute.QUORUM:
            self.check_quorum(2, "approvers")
        return self

    @property
    def route(self) -> PaymentRoute:
        if self.amount < self.auto_approve_below:
            return PaymentRoute.AUTO
        return PaymentRoute.QUORUM if self.amount > self.quorum_above else PaymentRoute.SINGLE


class PaymentResult(FrozenModel):
    amount: Decimal
    currency: str
    payee: str
    route: PaymentRoute
    gate: GateResult
    paid: bool


@flow(name="payment-approval",
      description="A payment: auto-approved when small, one approver, two when large.",
      **APPROVAL_HOOKS)
async def payment_approval(params: PaymentParams | None = None) -> PaymentResult:
    p = params or PaymentParams()
    title = f"Pay {p.amount:,} {p.currency} to {p.payee}"
    facts = {"Amount": f"{p.amount:,} {p.currency}", "Payee": p.payee}
    if p.reference:
        facts["Reference"] = p.reference
    quorum = 2 if p.route is PaymentRoute.QUORUM else 1
    if p.route is PaymentRoute.AUTO:
        spec = gate_spec(title, facts=facts, **p.routing())
        reason = f"amount below the {p.auto_approve_below:,} {p.currency} threshold: auto-approved"
        decision = await auto_approve(spec, "payment", reason)
    else:
        facts["Approvals needed"] = str(quorum)
        decision = await approval_gate("payment", title, facts=facts, quorum=quorum, **p.routing())
    return PaymentResult(amount=p.amount, currency=p.currency, payee=p.payee, route=p.route,
                         gate=GateResult.of("payment", decision), paid=decision.approved)


# -- multi-step-approval -----------------------------------------------------------------------


class MultiStepParams(FlowParams):
    title: Title = "Purchase request"
    summary: Annotated[str, Field(max_length=3000)] = ""
    channel: ChannelRef = Field(default_factory=default_channel)
    manager_approvers: UserList = Field(default_factory=default_approvers)
    finance_approvers: UserList = Field(default_factory=default_approvers)
    finance_groups: GroupList = Field(default_factory=list)
    requester: UserId | None = Field(default_factory=default_requester)
    timeout_seconds: TimeoutSeconds = 24 * 3600.0

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.timeout_seconds)


class MultiStepResult(FrozenModel):
    steps: list[GateResult]
    approved: bool
    stopped_at: str | None


@flow(name="multi-step-approval",
      description="Manager, then finance; stops at the first rejection.", **APPROVAL_HOOKS)
async def multi_step_approval(params: MultiStepParams | None = None) -> MultiStepResult:
    p = params or MultiStepParams()
    steps = [
        ("manager", "Manager approval", p.manager_approvers, []),
        ("finance", "Finance approval", p.finance_approvers, p.finance_groups),
    ]
    results: list[GateResult] = []
    for gate, step, approvers, groups in steps:
        decision = await approval_gate(
            gate, f"{step}: {p.title}", summary=p.summary,
            facts={"Step": f"{len(results) + 1} of {len(steps)}: {step.lower()}"},
            approvers=approvers, approver_groups=groups, channel=p.channel,
            timeout=p.timeout,
            requester=p.requester)
        results.append(GateResult.of(gate, decision))
        if not decision.approved:
            return MultiStepResult(steps=results, approved=False, stopped_at=gate)
    return MultiStepResult(steps=results, approved=True, stopped_at=None)
