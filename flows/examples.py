"""Small flows that show a gate: one approval, payments by amount, two steps.

Their parameters say what is asked; who approves, how many and where is the approval
policy's to decide (the built-in policy auto-approves payments below 1,000 and asks for two
approvals above 10,000; a policy file says otherwise, e.g. per gate `manager` / `finance`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from prefect import flow
from pydantic import Field

from .gates import approval_gate
from .hooks import APPROVAL_HOOKS
from .params import RequestedParams, Title
from .results import FrozenModel, GateResult

# -- simple-approval ---------------------------------------------------------------------------


class SimpleApprovalParams(RequestedParams):
    title: Title = "Approve this step"
    summary: Annotated[str, Field(max_length=3000)] = ""


@flow(name="simple-approval", persist_result=True,
      description="Ask once in Slack and return the decision.",
      **APPROVAL_HOOKS)
async def simple_approval(params: SimpleApprovalParams | None = None) -> GateResult:
    p = params or SimpleApprovalParams()
    decision = await approval_gate("approval", p.title, summary=p.summary,
                                   requester=p.requester, params=p.matched())
    return GateResult.of("approval", decision)


# -- payment-approval --------------------------------------------------------------------------


class PaymentParams(RequestedParams):
    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)] = Decimal("2500.00")
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    payee: Annotated[str, Field(min_length=1, max_length=100)] = "ACME Supplies Ltd"
    reference: Annotated[str, Field(max_length=100)] = ""


class PaymentResult(FrozenModel):
    amount: Decimal
    currency: str
    payee: str
    gate: GateResult
    paid: bool


@flow(name="payment-approval", persist_result=True,
      description="A payment: auto-approved when small, one approver, two when large.",
      **APPROVAL_HOOKS)
async def payment_approval(params: PaymentParams | None = None) -> PaymentResult:
    p = params or PaymentParams()
    title = f"Pay {p.amount:,} {p.currency} to {p.payee}"
    facts = {"Amount": f"{p.amount:,} {p.currency}", "Payee": p.payee}
    if p.reference:
        facts["Reference"] = p.reference
    decision = await approval_gate("payment", title, facts=facts, requester=p.requester,
                                   params=p.matched())
    return PaymentResult(amount=p.amount, currency=p.currency, payee=p.payee,
                         gate=GateResult.of("payment", decision), paid=decision.approved)


# -- multi-step-approval -----------------------------------------------------------------------


class MultiStepParams(RequestedParams):
    title: Title = "Purchase request"
    summary: Annotated[str, Field(max_length=3000)] = ""


class MultiStepResult(FrozenModel):
    steps: list[GateResult]
    approved: bool
    stopped_at: str | None


@flow(name="multi-step-approval", persist_result=True,
      description="Manager, then finance; stops at the first rejection.", **APPROVAL_HOOKS)
async def multi_step_approval(params: MultiStepParams | None = None) -> MultiStepResult:
    p = params or MultiStepParams()
    steps = [("manager", "Manager approval"), ("finance", "Finance approval")]
    results: list[GateResult] = []
    for gate, step in steps:
        decision = await approval_gate(
            gate, f"{step}: {p.title}", summary=p.summary,
            facts={"Step": f"{len(results) + 1} of {len(steps)}: {step.lower()}"},
            requester=p.requester, params=p.matched())
        results.append(GateResult.of(gate, decision))
        if not decision.approved:
            return MultiStepResult(steps=results, approved=False, stopped_at=gate)
    return MultiStepResult(steps=results, approved=True, stopped_at=None)
