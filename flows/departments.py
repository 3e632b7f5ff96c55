"""`department-review`: one async child flow per department, run at once with asyncio.gather.

Each child works out its department's figures and asks that department's approvers in its own
channel; the parent keeps one roll-up message in its channel, edited as each department decides,
and returns who approved, rejected or timed out.

Who signs off for a department, and where, is the approval policy's: each department's gate is
`department:<name>` (flow `department-review`), so a rule per department matches it, e.g.

    - name: finance-sign-off
      match: {flow: department-review, gate: "department:finance"}
      channel: C02FINANCE
      approver_groups: [S01FINANCE]

The roll-up goes to the channel the policy gives the gate `rollup` (no request is made there).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from prefect import flow, task
from prefect.cache_policies import NO_CACHE, RUN_ID, TASK_SOURCE
from prefect.runtime import flow_run as current_flow_run
from pydantic import BeforeValidator, Field, model_validator
from slack_sdk.models.blocks import Block, ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock

from slack_approvals.policy.routing import Settled
from slack_approvals.state.models import ApprovalRequest, Status

from .errors import GatePending
from .gates import (
    SLACK_RETRY_POLICY,
    approval_gate,
    gate_draft,
    suspend_until_decided,
    wait_out_redis,
)
from .hooks import APPROVAL_HOOKS
from .params import FlowParams, RequestedParams, split_commas
from .results import FrozenModel, GateResult
from .services import services

DEFAULT_DEPARTMENTS = ("finance", "engineering", "sales")
MAX_DEPARTMENTS = 50
ROLLUP_LINES_PER_BLOCK = 12  # ~200 characters a line keeps each section under Slack's 3,000


class DepartmentSpec(FlowParams):
    """A department; who signs off for it, and where, the approval policy says (by gate)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9 _-]{0,39}$")]

    @property
    def slug(self) -> str:
        return re.sub(r"[ _]+", "-", self.name.lower())


def _departments(value: object) -> object:
    """`finance,sales` (or a list of names): the departments by name."""
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


class DepartmentReviewParams(RequestedParams):
    period: Annotated[str, Field(pattern=r"^\d{4}-(Q[1-4]|0[1-9]|1[0-2])$")] = "2025-Q4"
    departments: Annotated[list[DepartmentSpec], BeforeValidator(_departments),
                           Field(min_length=1, max_length=MAX_DEPARTMENTS)] = Field(
        default_factory=lambda: [DepartmentSpec(name=n) for n in DEFAULT_DEPARTMENTS])

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


FLOW = "department-review"  # the flow name the policy sees at every department's gate
ROLLUP_GATE = "rollup"


def department_gate(department: DepartmentSpec) -> str:
    return f"department:{department.slug}"


def department_params(department: DepartmentSpec, period: str) -> dict[str, object]:
    """What the policy's `params:` conditions see at a department's gate."""
    return {"period": period, "department": department.name}


@flow(name="department-sign-off", persist_result=True,
      flow_run_name="sign-off-{department.name}",
      description="One department's figures, signed off by its approvers.", **APPROVAL_HOOKS)
async def department_sign_off(department: DepartmentSpec, period: str,
                              requester: str | None = None,
                              review_id: str | None = None) -> DepartmentResult:
    """`review_id` scopes the gate to the parent run, so a re-run parent finds the request."""
    started_at = datetime.now(UTC)
    figures = department_figures(department.name, period)
    gate = department_gate(department)
    decision = await approval_gate(
        gate, f"{department.name}: sign off the {period} figures",
        facts={"Revenue": f"{figures.revenue:,.2f}", "Costs": f"{figures.costs:,.2f}",
               "Margin": f"{figures.margin:.1%}", "Headcount": str(figures.headcount)},
        requester=requester, key_scope=review_id, flow=FLOW,
        params=department_params(department, period), pending_in_child=True)
    return DepartmentResult(department=department.name, figures=figures,
                            gate=GateResult.of(gate, decision), started_at=started_at,
                            finished_at=datetime.now(UTC))


def routes(p: DepartmentReviewParams) -> tuple[Settled, dict[str, Settled]]:
    """Where the roll-up goes, and whom each department's gate will ask (read, not written)."""
    opener = services().opener

    def settled(gate: str, params: dict[str, object]) -> Settled:
        return opener.settle(replace(gate_draft("routing", requester=p.requester, params=params,
                                                flow=FLOW), gate=gate))

    rollup = settled(ROLLUP_GATE, p.matched())
    return rollup, {d.name: settled(department_gate(d), department_params(d, p.period))
                    for d in p.departments}


# -- the roll-up message -----------------------------------------------------------------------

_ICONS = {Status.APPROVED: ":white_check_mark:", Status.REJECTED: ":x:",
          Status.TIMED_OUT: ":hourglass:", Status.CANCELLED: ":no_entry_sign:"}


def _channel(channel: str) -> str:
    if re.fullmatch(r"[CG][A-Z0-9]{2,31}", channel):
        return f"<#{channel}>"
    return channel if channel.startswith("#") else f"#{channel}"


class Rollup:
    """Every department's state in one message; the parent edits it as each one decides."""

    def __init__(self, period: str, departments: list[DepartmentSpec],
                 routes: dict[str, Settled] | None = None) -> None:
        self.period = period
        self.departments = departments
        self.routes = routes or {}
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
            route = self.routes.get(department.name)
            if route is None:
                return f":hourglass_flowing_sand: {name}: waiting"
            who = ", ".join([f"<@{u}>" for u in route.approvers]
                            + [f"<!subteam^{g}>" for g in route.approver_groups])
            where = f" in {_channel(route.channel)}" if route.channel else ""
            return f":hourglass_flowing_sand: {name}: waiting for {who or 'anyone'}{where}"
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


# Once per run: a run resumed after a suspend finds the message it posted (persisted result).
@task(name="post-rollup", cache_policy=RUN_ID + TASK_SOURCE, **SLACK_RETRY_POLICY)
async def post_rollup(channel: str, message: dict[str, Any]) -> tuple[str, str]:
    return await asyncio.to_thread(services().board.post_message, channel, message)


@task(name="update-rollup", cache_policy=NO_CACHE, **SLACK_RETRY_POLICY)
async def update_rollup(channel: str, ts: str, message: dict[str, Any]) -> None:
    await asyncio.to_thread(services().board.update_message, channel, ts, message)


async def _requests(request_ids: list[str]) -> list[ApprovalRequest]:
    """The pending requests, read through a Redis outage (a failover must not fail the run)."""
    get = services().store.get
    return [await wait_out_redis(request_id, get, request_id) for request_id in request_ids]


@flow(name="department-review", persist_result=True,
      description="Every department signs off its figures at once; one roll-up shows them all.",
      **APPROVAL_HOOKS)
async def department_review(params: DepartmentReviewParams | None = None) -> DepartmentReviewResult:
    p = params or DepartmentReviewParams()
    review_id = current_flow_run.id
    where, asked = await asyncio.to_thread(routes, p)
    rollup = Rollup(p.period, p.departments, asked)
    channel, ts = await post_rollup(where.channel or "#approvals", rollup.message())
    # Edits go out one at a time, each showing everything known by then, so a slow edit can
    # never overwrite a newer one; a burst of decisions collapses into the edits it needs.
    edits = asyncio.Lock()
    versions = {"recorded": 0, "shown": 0}

    async def sign_off(department: DepartmentSpec) -> DepartmentResult:
        try:
            result = await department_sign_off(department, p.period, p.requester, review_id)
            rollup.record(result)
            return result
        except GatePending:
            raise  # still waiting: nothing to show
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

    # In a deployment run each child waits its hold window, then ends with GatePending; once
    # every child has decided or ended so, this run suspends, and any decision resumes it. It
    # re-enters from the top: decided children are reused (completed, results persisted), the
    # others run afresh and find their requests (key_scope). In-process, children wait on.
    done: dict[str, DepartmentResult] = {}
    waiting = list(p.departments)
    while waiting:
        outcomes = await asyncio.gather(*(sign_off(d) for d in waiting), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, GatePending):
                raise outcome
        done.update({o.department: o for o in outcomes if isinstance(o, DepartmentResult)})
        pending = [o.request_id for o in outcomes if isinstance(o, GatePending)]
        waiting = [d for d in waiting if d.name not in done]
        if pending:
            await suspend_until_decided(await _requests(pending))
    results = [done[d.name] for d in p.departments]

    def named(status: Status) -> list[str]:
        return [r.department for r in results if r.gate.status is status]

    return DepartmentReviewResult(
        period=p.period, departments=results, approved=named(Status.APPROVED),
        rejected=named(Status.REJECTED), timed_out=named(Status.TIMED_OUT),
        cancelled=named(Status.CANCELLED), rollup_channel=channel, rollup_ts=ts)
