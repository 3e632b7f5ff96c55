"""`department-review`: one async child flow per department, run at once with asyncio.gather.

Each child works out its department's figures and asks that department's approvers in its own
channel; the parent keeps one roll-up message in its channel, edited as each department decides,
and returns who approved, rejected or timed out.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Self

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_flow_run
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from slack_sdk.models.blocks import Block, ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock

from slack_approvals.policy.routing import Settled
from slack_approvals.state.models import Status

from .gates import SLACK_RETRY_POLICY, approval_gate, gate_draft
from .hooks import APPROVAL_HOOKS
from .params import FlowParams, RequestedParams, split_commas
from .results import FrozenModel, GateResult
from .services import services

DEFAULT_DEPARTMENTS = ("finance", "engineering", "sales")
MAX_DEPARTMENTS = 50
ROLLUP_LINES_PER_BLOCK = 12  # ~200 characters a line keeps each section under Slack's 3,000


class DepartmentSpec(BaseModel):
    """A department and who signs off for it; unnamed channel and approvers use the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9 _-]{0,39}$")]
    channel: ChannelRef = Field(default_factory=default_channel)
    approvers: UserList = Field(default_factory=default_approvers)
    approver_groups: GroupList = []

    @property
    def slug(self) -> str:
        return re.sub(r"[ _]+", "-", self.name.lower())


def _departments(value: object) -> object:
    """`finance,sales` (or a list of names) means departments with the default routing."""
    value = split_commas(value)
    if isinstance(value, list):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


class Figures(FrozenModel):
    revenue: float
    costs: float
    headcount: int

    @property
    def margin(self) -> float:
        return (self.revenue - self.costs) / self.revenue if self.revenue else 0.0


class DepartmentResult(FrozenModel):
    department: str
    figures: Figures
    gate: GateResult
    started_at: datetime
    finished_at: datetime


class DepartmentReviewParams(FlowParams):
    period: Annotated[str, Field(pattern=r"^\d{4}-(Q[1-4]|0[1-9]|1[0-2])$")] = "2025-Q4"
    departments: Annotated[list[DepartmentSpec], BeforeValidator(_departments),
                           Field(min_length=1, max_length=MAX_DEPARTMENTS)] = Field(
        default_factory=lambda: [DepartmentSpec(name=n) for n in DEFAULT_DEPARTMENTS])
    channel: ChannelRef = Field(default_factory=default_channel)  # where the roll-up goes
    requester: UserId | None = Field(default_factory=default_requester)
    timeout_seconds: TimeoutSeconds = 24 * 3600.0
    timeout_outcome: Outcome = Outcome.REJECT

    @model_validator(mode="after")
    def _unique(self) -> Self:
        slugs = [d.slug for d in self.departments]
        if len(set(slugs)) != len(slugs):
            raise ValueError("departments: each department may be named once")
        return self


class DepartmentReviewResult(FrozenModel):
    period: str
    departments: list[DepartmentResult]
    approved: list[str]
    rejected: list[str]
    timed_out: list[str]
    cancelled: list[str]
    rollup_channel: str
    rollup_ts: str


def department_figures(name: str, period: str) -> Figures:
    """Stand-in figures, stable for a department and period."""
    rng = random.Random(hashlib.sha256(f"{name.lower()}:{period}".encode()).digest())
    revenue = round(rng.uniform(200_000, 2_000_000), 2)
    return Figures(revenue=revenue, costs=round(revenue * rng.uniform(0.55, 0.95), 2),
                   headcount=rng.randint(5, 120))


@flow(name="department-sign-off", flow_run_name="sign-off-{department.name}",
      description="One department's figures, signed off by its approvers.", **APPROVAL_HOOKS)
async def department_sign_off(department: DepartmentSpec, period: str,
                              requester: str | None = None,
                              review_id: str | None = None) -> DepartmentResult:
    """`review_id` scopes the gate to the parent run, so a re-run parent finds the request."""
    started_at = datetime.now(UTC)
    figures = department_figures(department.name, period)
    gate = f"department:{department.slug}"
    decision = await approval_gate(
        gate, f"{department.name}: sign off the {period} figures",
        facts={"Revenue": f"{figures.revenue:,.2f}", "Costs": f"{figures.costs:,.2f}",
               "Margin": f"{figures.margin:.1%}", "Headcount": str(figures.headcount)},
        approvers=department.approvers, approver_groups=department.approver_groups,
        channel=department.channel, timeout=timedelta(seconds=timeout_seconds),
        timeout_outcome=timeout_outcome, requester=requester, key_scope=review_id)
    return DepartmentResult(department=department.name, figures=figures,
                            gate=GateResult.of(gate, decision), started_at=started_at,
                            finished_at=datetime.now(UTC))


# -- the roll-up message -----------------------------------------------------------------------

_ICONS = {Status.APPROVED: ":white_check_mark:", Status.REJECTED: ":x:",
          Status.TIMED_OUT: ":hourglass:", Status.CANCELLED: ":no_entry_sign:"}


def _channel(channel: str) -> str:
    if re.fullmatch(r"[CG][A-Z0-9]{2,31}", channel):
        return f"<#{channel}>"
    return channel if channel.startswith("#") else f"#{channel}"


class Rollup:
    """Every department's state in one message; the parent edits it as each one decides."""

    def __init__(self, period: str, departments: list[DepartmentSpec]) -> None:
        self.period = period
        self.departments = departments
        self.results: dict[str, DepartmentResult | None] = {d.name: None for d in departments}
        self.failed: set[str] = set()

    def record(self, result: DepartmentResult) -> None:
        self.results[result.department] = result

    def fail(self, name: str) -> None:
        self.failed.add(name)

    def line(self, department: DepartmentSpec) -> str:
        name = f"*{department.name}*"
        if department.name in self.failed:
            return f":warning: {name}: the sign-off flow failed"
        result = self.results[department.name]
        if result is None:
            who = ", ".join([f"<@{u}>" for u in department.approvers]
                            + [f"<!subteam^{g}>" for g in department.approver_groups])
            where = _channel(department.channel)
            return f":hourglass_flowing_sand: {name}: waiting for {who or 'anyone'} in {where}"
        gate = result.gate
        if gate.status is Status.TIMED_OUT:
            outcome = "approved" if gate.approved else "rejected"
            return f"{_ICONS[gate.status]} {name}: timed out, {outcome} by default"
        by = f" by <@{gate.decided_by}>" if gate.decided_by else ""
        return f"{_ICONS[gate.status]} {name}: {gate.status.value.replace('_', ' ')}{by}"

    def message(self) -> dict[str, Any]:
        decided = sum(1 for r in self.results.values() if r is not None) + len(self.failed)
        approved = sum(1 for r in self.results.values() if r is not None and r.gate.approved)
        total = len(self.departments)
        blocks: list[Block] = [HeaderBlock(text=f"Department review {self.period}")]
        lines = [self.line(d) for d in self.departments]
        for start in range(0, len(lines), ROLLUP_LINES_PER_BLOCK):
            chunk = "\n".join(lines[start:start + ROLLUP_LINES_PER_BLOCK])
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk[:3000])))
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"{decided} of {total} decided · {approved} approved")]))
        return {"text": f"Department review {self.period}: {decided} of {total} decided",
                "blocks": [b.to_dict() for b in blocks]}


@task(name="post-rollup", cache_policy=NO_CACHE, **SLACK_RETRY_POLICY)
async def post_rollup(channel: str, message: dict[str, Any]) -> tuple[str, str]:
    return await asyncio.to_thread(services().board.post_message, channel, message)


@task(name="update-rollup", cache_policy=NO_CACHE, **SLACK_RETRY_POLICY)
async def update_rollup(channel: str, ts: str, message: dict[str, Any]) -> None:
    await asyncio.to_thread(services().board.update_message, channel, ts, message)


@flow(name="department-review",
      description="Every department signs off its figures at once; one roll-up shows them all.",
      **APPROVAL_HOOKS)
async def department_review(params: DepartmentReviewParams | None = None) -> DepartmentReviewResult:
    p = params or DepartmentReviewParams()
    review_id = current_flow_run.id
    rollup = Rollup(p.period, p.departments)
    channel, ts = await post_rollup(p.channel, rollup.message())
    # Edits go out one at a time, each showing everything known by then, so a slow edit can
    # never overwrite a newer one; a burst of decisions collapses into the edits it needs.
    edits = asyncio.Lock()
    versions = {"recorded": 0, "shown": 0}

    async def sign_off(department: DepartmentSpec) -> DepartmentResult:
        try:
            result = await department_sign_off(department, p.period, p.timeout_seconds,
                                               p.timeout_outcome, p.requester, review_id)
            rollup.record(result)
            return result
        except Exception:
            rollup.fail(department.name)
            raise
        finally:
            versions["recorded"] += 1
            mine = versions["recorded"]
            async with edits:
                if versions["shown"] < mine:  # else an edit sent meanwhile already shows it
                    versions["shown"] = versions["recorded"]
                    await update_rollup(channel, ts, rollup.message())

    outcomes = await asyncio.gather(*(sign_off(d) for d in p.departments), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    results = [o for o in outcomes if isinstance(o, DepartmentResult)]

    def named(status: Status) -> list[str]:
        return [r.department for r in results if r.gate.status is status]

    return DepartmentReviewResult(
        period=p.period, departments=results, approved=named(Status.APPROVED),
        rejected=named(Status.REJECTED), timed_out=named(Status.TIMED_OUT),
        cancelled=named(Status.CANCELLED), rollup_channel=channel, rollup_ts=ts)
