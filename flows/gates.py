"""Approval gates: post a request to Slack, then wait for its decision without holding a thread.

    approval_gate(gate, title, ...)   what a flow calls; runs both tasks, returns the Decision
    request_approval                  task: create (idempotent per flow run and gate) and post
    wait_for_decision                 task: every attempt blocks on Redis for one slice, then
                                      raises DecisionPending, the only exception it retries on
    auto_approve                      task: a decision the flow makes itself, with its reason

A retried task or a re-run flow finds its request by the idempotency key
`{flow run id}:{gate}` and edits the message it already posted instead of posting another.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack
from urllib.error import URLError

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import flow_run as current_flow_run
from prefect.runtime import task_run as current_task_run
from prefect.tasks import Task
from slack_sdk.errors import SlackApiError

from slack_approvals.state.errors import RequestNotFound
from slack_approvals.state.models import (
    MAX_TIMEOUT,
    ApprovalRequest,
    CloseStatus,
    Decision,
    Fact,
    Outcome,
    RequestSpec,
)

from .errors import ApprovalRejected, DecisionPending
from .services import flow_config, services

GATE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")

# Slack answers these the same way however often we ask; retrying only delays the failure.
PERMANENT_SLACK_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
    "account_inactive", "token_revoked", "token_expired", "missing_scope", "invalid_blocks",
    "invalid_arguments", "msg_too_long", "no_text", "restricted_action",
})

# Redis decides deadlines by its own clock; ours may run ahead of it by a little. Past our
# deadline but not the server's, an attempt blocks this long on Redis before trying again.
CLOCK_GRACE_SECONDS = 0.25
CLOCK_SKEW_ALLOWANCE = timedelta(seconds=60)
# Shorter than this left before the deadline is not worth a blocking call.
MIN_WAIT_SECONDS = 0.005


class _QuietWaiting(logging.Filter):
    """Prefect logs every retry; a waiting gate retries each slice (8640 times a day at 10 s),
    so its retries, which are waiting rather than failing, are left out of the run's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, DecisionPending) for arg in args)


logging.getLogger("prefect.task_runs").addFilter(_QuietWaiting())


def wait_attempts(remaining: timedelta, wait_slice: float) -> int:
    """Retries `wait_for_decision` needs to reach the deadline, plus room for clock skew."""
    slices = math.ceil(max(remaining.total_seconds(), 0) / wait_slice)
    return slices + math.ceil(CLOCK_SKEW_ALLOWANCE.total_seconds() / CLOCK_GRACE_SECONDS) + 1


async def slack_trouble(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a post only when Slack was busy, down or unreachable, never on our own mistakes."""
    exc = await state.aresult(raise_on_failure=False)
    if isinstance(exc, SlackApiError):
        return exc.response.get("error") not in PERMANENT_SLACK_ERRORS
    return isinstance(exc, URLError | TimeoutError)


class RetryPolicy(TypedDict):
    retries: int
    retry_delay_seconds: list[float]
    retry_condition_fn: Callable[[Task[..., Any], TaskRun, State[Any]], Coroutine[Any, Any, bool]]


# Every task that calls Slack retries the same way: busy or down is waited out for a minute.
SLACK_RETRY_POLICY: RetryPolicy = {"retries": 4, "retry_delay_seconds": [1, 5, 15, 30],
                                   "retry_condition_fn": slack_trouble}


async def only_pending(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """A pending decision is retried at once; any real error fails the gate on the spot."""
    return isinstance(await state.aresult(raise_on_failure=False), DecisionPending)


def _idempotency_key(gate: str, key_scope: str | None) -> str:
    scope = key_scope or current_flow_run.id or current_task_run.id
    if not scope:
        raise RuntimeError("a gate runs inside a Prefect flow or task run")
    return f"{scope}:{gate}"


def _create_and_post(spec: RequestSpec, key: str) -> ApprovalRequest:
    svc = services()
    return svc.board.post(svc.store.create(spec, key))


@task(name="request-approval", cache_policy=NO_CACHE, **SLACK_RETRY_POLICY)
async def request_approval(spec: RequestSpec, gate: str, key_scope: str | None = None) -> ApprovalRequest:
    """Create the request and post it; a retry finds both the request and its message."""
    if not GATE_PATTERN.match(gate):
        raise ValueError(f"gate: {gate!r} is not a gate name (letters, digits, _.:/-, up to 100)")
    spec = spec.model_copy(update={"flow_run_id": current_flow_run.id, "gate": gate})
    request = await asyncio.to_thread(_create_and_post, spec, _idempotency_key(gate, key_scope))
    get_run_logger().info("approval request %s (%s) is in %s, waiting for %s", request.id, gate,
                          request.message_channel, ", ".join(spec.approvers + spec.approver_groups)
                          or "anyone in the channel")
    return request


def _seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


# The default covers the longest timeout even at 1 s slices; approval_gate sets the exact count.
@task(name="wait-for-decision", task_run_name="wait-for-decision-{request_id}",
      retries=wait_attempts(MAX_TIMEOUT, 1.0), retry_delay_seconds=0,
      retry_condition_fn=only_pending, cache_policy=NO_CACHE)
async def wait_for_decision(request_id: str, deadline: datetime) -> Decision:
    """One attempt: block on Redis until a decision or the end of the slice (never past the
    deadline). Past the deadline, apply the request's timeout outcome and return it.

    `deadline` is the request's, as request_approval read it: a slice reads Redis only
    inside `wait` (which sees a decision made before it started)."""
    svc = services()
    async with svc.async_store() as store:
        remaining = _seconds_until(deadline)
        if remaining > MIN_WAIT_SECONDS:
            decision = await store.wait(request_id, min(flow_config().wait_slice_seconds, remaining))
            if decision is not None:
                return decision
            if _seconds_until(deadline) > MIN_WAIT_SECONDS:
                raise DecisionPending(request_id, deadline)
        closed = await asyncio.to_thread(svc.closer.expire, request_id)
        if closed.status is CloseStatus.NOT_DUE:
            decision = await store.wait(request_id, CLOCK_GRACE_SECONDS)
            if decision is not None:
                return decision
            raise DecisionPending(request_id, deadline)
        if closed.request is None or closed.request.decision is None:
            raise RequestNotFound(request_id)
        if closed.status is CloseStatus.CLOSED_NOW:
            get_run_logger().warning("approval request %s timed out: %s by default", request_id,
                                     "approved" if closed.request.decision.approved else "rejected")
        return closed.request.decision


def _resolve(spec: RequestSpec, key: str, reason: str) -> ApprovalRequest:
    svc = services()
    request = svc.store.create(spec, key)
    closed = svc.closer.resolve(request.id, approved=True, reason=reason)
    if closed.request is None or closed.request.decision is None:
        raise RequestNotFound(request.id)
    return closed.request


@task(name="auto-approve", cache_policy=NO_CACHE)
async def auto_approve(spec: RequestSpec, gate: str, reason: str,
                       key_scope: str | None = None) -> Decision:
    """Record a request the flow approves itself, so the audit shows what was let through and why."""
    spec = spec.model_copy(update={"flow_run_id": current_flow_run.id, "gate": gate})
    request = await asyncio.to_thread(_resolve, spec, _idempotency_key(gate, key_scope), reason)
    assert request.decision is not None
    get_run_logger().info("approval request %s (%s) %s: %s", request.id, gate,
                          request.decision.status.value, request.decision.reason)
    return request.decision


class Routing(TypedDict, total=False):
    """Who is asked, where, and how long they have; every key optional. The flows' parameter
    models hand theirs to a gate with `**params.routing()`."""

    approvers: Sequence[str] | None  # None: the installed default approvers
    approver_groups: Sequence[str]
    channel: str | None  # None: the installed default channel
    timeout: timedelta
    timeout_outcome: Outcome
    requester: str | None  # None: the installed default requester


class GateOptions(Routing, total=False):
    """The one list of a gate's routing keywords, which gate_spec and approval_gate take as
    `**options`: Routing plus how many must approve and whether the requester may."""

    quorum: int
    allow_self_approval: bool


def gate_spec(title: str, *, summary: str = "",
              facts: Mapping[str, object] | Sequence[Fact] = (),
              **options: Unpack[GateOptions]) -> RequestSpec:
    """A validated RequestSpec; unnamed channel, approvers and requester come from flow_config()."""
    config = flow_config()
    fact_list = ([Fact(label=k, value=str(v)) for k, v in facts.items()]
                 if isinstance(facts, Mapping) else list(facts))
    approvers = options.get("approvers")
    return RequestSpec(
        title=title, summary=summary, facts=fact_list,
        approvers=list(config.approvers if approvers is None else approvers),
        approver_groups=list(options.get("approver_groups", ())),
        quorum=options.get("quorum", 1),
        channel=options.get("channel") or config.channel,
        timeout=options.get("timeout", timedelta(hours=24)),
        timeout_outcome=options.get("timeout_outcome", Outcome.REJECT),
        requester=options.get("requester") or config.requester,
        allow_self_approval=options.get("allow_self_approval", False),
    )


async def approval_gate(
    gate: str,
    title: str,
    *,
    summary: str = "",
    facts: Mapping[str, object] | Sequence[Fact] = (),
    raise_on_reject: bool = False,
    key_scope: str | None = None,
    **options: Unpack[GateOptions],
) -> Decision:
    """Ask in Slack and wait for the answer; call it from an async flow.

    `gate` names this gate within its flow run (one request per flow run and gate, however
    often the flow or the tasks are retried); `key_scope` replaces the flow run id in that key,
    e.g. so child flows that a re-run parent starts afresh still find their requests.
    `options` (approvers, approver_groups, quorum, channel, timeout, timeout_outcome,
    requester, allow_self_approval) are described by `GateOptions`.
    A rejection, a timeout and a cancel are returned as a Decision with approved=False, or
    raised as ApprovalRejected when `raise_on_reject` is set.
    """
    spec = gate_spec(title, summary=summary, facts=facts, **options)
    request = await request_approval(spec, gate, key_scope)
    attempts = wait_attempts(request.deadline - datetime.now(UTC), flow_config().wait_slice_seconds)
    decision = await wait_for_decision.with_options(retries=attempts)(request.id, request.deadline)
    if raise_on_reject and not decision.approved:
        raise ApprovalRejected(decision)
    return decision
