"""Operational flows: a deployment gated by environment and version, and a destructive
operation that needs two approvers other than the person asking.

The destructive gate asks for its two approvals itself (the flow's own gate arguments); the
approval policy still decides who the approvers are and may ask for more."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_flow_run
from pydantic import Field

from slack_approvals.state.models import Decision, Outcome

from .gates import approval_gate
from .hooks import APPROVAL_HOOKS
from .journal import append_once
from .params import RequestedParams
from .results import FrozenModel, GateResult
from .services import flow_config

DEPLOYMENTS_FILE = "deployments.jsonl"
OPERATIONS_FILE = "operations.jsonl"


class Action(FrozenModel):
    """What an approved flow did, as recorded in its journal under the data folder."""

    request_id: str
    flow_run_id: str | None
    approved_by: list[str]
    at: datetime
    details: dict[str, str]
    recorded_now: bool


@task(name="record-action", cache_policy=NO_CACHE)
async def record_action(journal: str, decision: Decision, details: dict[str, str]) -> Action:
    """Append once per request, so a re-run flow does not act twice."""
    action = Action(request_id=decision.request_id, flow_run_id=current_flow_run.id,
                    approved_by=[v.user for v in decision.votes if v.vote is Outcome.APPROVE],
                    at=datetime.now(UTC), details=details, recorded_now=False)
    record = action.model_dump(mode="json", exclude={"recorded_now"})
    path = flow_config().data_dir / journal
    recorded = await asyncio.to_thread(append_once, path, record)
    return action.model_copy(update={"recorded_now": recorded})


# -- deploy-approval ---------------------------------------------------------------------------


class DeployParams(RequestedParams):
    service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")] = "api"
    environment: Literal["development", "staging", "production"] = "staging"
    version: Annotated[str, Field(pattern=r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")] = "1.0.0"
    notes: Annotated[str, Field(max_length=1000)] = ""


class DeployResult(FrozenModel):
    service: str
    environment: str
    version: str
    gate: GateResult
    deployed: Action | None


@flow(name="deploy-approval", persist_result=True,
      description="Deploy a version to an environment once approved.",
      **APPROVAL_HOOKS)
async def deploy_approval(params: DeployParams | None = None) -> DeployResult:
    p = params or DeployParams()
    facts = {"Service": p.service, "Environment": p.environment, "Version": p.version}
    decision = await approval_gate(
        "deploy", f"Deploy {p.service} {p.version} to {p.environment}", summary=p.notes,
        facts=facts, requester=p.requester, params=p.matched())
    deployed = await record_action(DEPLOYMENTS_FILE, decision, facts) if decision.approved else None
    return DeployResult(service=p.service, environment=p.environment, version=p.version,
                        gate=GateResult.of("deploy", decision), deployed=deployed)


# -- destructive-operation ---------------------------------------------------------------------


class DestructiveParams(RequestedParams):
    operation: Annotated[str, Field(min_length=1, max_length=200)] = "Drop table"
    target: Annotated[str, Field(min_length=1, max_length=200)] = "analytics.events_2019"
    reason: Annotated[str, Field(max_length=1000)] = ""


# Two people other than the one asking; silence must never destroy data.
DESTRUCTIVE_QUORUM = 2


class DestructiveResult(FrozenModel):
    operation: str
    target: str
    gate: GateResult
    performed: Action | None


@flow(name="destructive-operation", persist_result=True,
      description="An irreversible operation: two approvers, and never the requester.",
      **APPROVAL_HOOKS)
async def destructive_operation(params: DestructiveParams | None = None) -> DestructiveResult:
    p = params or DestructiveParams()
    facts = {"Operation": p.operation, "Target": p.target}
    decision = await approval_gate(
        "destructive", f"{p.operation}: {p.target}",
        summary=p.reason or "This cannot be undone.", facts=facts, quorum=DESTRUCTIVE_QUORUM,
        allow_self_approval=False, timeout_outcome=Outcome.REJECT, requester=p.requester,
        params=p.matched())
    performed = (await record_action(OPERATIONS_FILE, decision,
                                     {"Operation": p.operation, "Target": p.target})
                 if decision.approved else None)
    return DestructiveResult(operation=p.operation, target=p.target,
                             gate=GateResult.of("destructive", decision), performed=performed)
