"""Approval gates: post a request to Slack, then wait for its decision without holding a thread.

    approval_gate(gate, title, ...)   what a flow calls; runs both tasks, returns the Decision
    request_approval                  task: route by the approval policy, create (idempotent per
                                      flow run and gate), then post, or auto-approve or deny
    wait_for_decision                 task: every attempt blocks on Redis slice after slice for
                                      up to ATTEMPT_SECONDS, then raises DecisionPending, the
                                      only exception it retries on; past a hold window it
                                      returns None instead

A retried task or a re-run flow finds its request by the idempotency key
`{flow run id}:{gate}` and edits the message it already posted instead of posting another.

A gate in a deployment run waits in its process for the hold window (FlowConfig.hold_seconds),
then suspends the run (Prefect's suspend_flow_run: the process exits); whoever records the
decision resumes it (state/resuming.py), and the run re-enters the flow from the top, finds its
request and reads the decision at once. Subflows and runs without a deployment wait in-process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar, Unpack
from urllib.error import URLError

from prefect import get_run_logger, task
from prefect._flow_run_suspension import mark_flow_run_suspension_requested
from prefect._internal.control_listener import get_intent
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import Pause, TerminationSignal
from prefect.flow_runs import asuspend_flow_run
from prefect.runtime import flow_run as current_flow_run
from prefect.runtime import task_run as current_task_run
from prefect.settings import get_current_settings
from prefect.states import Cancelled
from prefect.tasks import Task
from slack_sdk.errors import SlackApiError

from slack_approvals.policy.opening import Draft
from slack_approvals.state.connection import TRANSIENT_ERRORS
from slack_approvals.state.errors import RequestNotFound
from slack_approvals.state.hours import BusinessHours
from slack_approvals.state.models import (
    MAX_TIMEOUT,
    ApprovalRequest,
    CloseStatus,
    Decision,
    EscalationTier,
    Fact,
    Outcome,
)
from slack_approvals.state.resuming import WATCH_EVERY, server_identity

from .errors import ApprovalRejected, DecisionPending, FlowRunCancelled, GatePending, RedisOutage
from .hooks import cancel_request, held, hold, release
from .services import flow_config, services

_T = TypeVar("_T")

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
# One attempt of a waiting gate lasts at most this long. Only between attempts does Prefect
# write (a state and its event); the Redis slices inside an attempt write nothing, so a gate
# waiting an hour writes about 12 states instead of 360 (at 10 s slices).
ATTEMPT_SECONDS = 300.0
# Prefect fails a suspended run once its suspend times out. It lasts this much past the
# request's deadline, so the deadline is always ours to apply (the sweeper closes the request
# with its timeout outcome and resumes the run).
SUSPEND_GRACE = timedelta(days=1)
# While Redis is unreachable a gate tries again after 0.2 s, doubling up to 5 s (with jitter, so
# gates that lost Redis together do not all knock at once when it comes back).
OUTAGE_FIRST_BACKOFF = 0.2
OUTAGE_MAX_BACKOFF = 5.0


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


def _slack_retryable(exc: object) -> bool:
    if isinstance(exc, SlackApiError):
        return exc.response.get("error") not in PERMANENT_SLACK_ERRORS
    return isinstance(exc, URLError | TimeoutError)


async def slack_trouble(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a post only when Slack was busy, down or unreachable, never on our own mistakes."""
    return _slack_retryable(await state.aresult(raise_on_failure=False))


async def slack_or_redis_trouble(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Creating a request needs Redis as well as Slack: a blip of either is retried alike."""
    exc = await state.aresult(raise_on_failure=False)
    return _slack_retryable(exc) or isinstance(exc, TRANSIENT_ERRORS)


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


def _last_attempt() -> bool:
    context = TaskRunContext.get()
    return context is None or context.task_run.run_count > context.task.retries


def _open(draft: Draft, key: str, last_attempt: bool) -> ApprovalRequest:
    """Route by the policy, create, then post (or auto-approve / deny): the Opener's one path."""
    created: list[str] = []

    def held(request: ApprovalRequest) -> None:
        created.append(request.id)
        hold(request.id, current_flow_run.id, current_flow_run.root_flow_run_id)

    try:
        return services().opener.open(draft, key, on_created=held).request
    except Exception as e:
        retryable = _slack_retryable(e) or isinstance(e, TRANSIENT_ERRORS)
        if created and (last_attempt or not retryable):
            # Nobody can see it, so nobody can decide it: close it, with Slack's answer in the audit.
            cancel_request(created[0], f"the message could not be posted: {e}")
        raise


# Creating a request retries Redis blips as well as Slack's, on Slack's schedule.
REQUEST_RETRY_POLICY: RetryPolicy = {**SLACK_RETRY_POLICY,
                                     "retry_condition_fn": slack_or_redis_trouble}


# Neither gate task keeps a result: a run re-entered after a suspend runs both again (they
# find the request by its key), and not persisting spares a file write on the click's path.
@task(name="request-approval", cache_policy=NO_CACHE, persist_result=False,
      **REQUEST_RETRY_POLICY)
async def request_approval(draft: Draft, gate: str, key_scope: str | None = None) -> ApprovalRequest:
    """Route, create and post; a retry finds both the request and its message. A message
    Slack still refuses when the retries are spent cancels its request."""
    if not GATE_PATTERN.match(gate):
        raise ValueError(f"gate: {gate!r} is not a gate name (letters, digits, _.:/-, up to 100)")
    draft = replace(draft, gate=gate, flow_run_id=current_flow_run.id,
                    flow=draft.flow or current_flow_run.flow_name)
    request = await asyncio.to_thread(_open, draft, _idempotency_key(gate, key_scope),
                                      _last_attempt())
    spec = request.spec
    if request.decision is not None:
        get_run_logger().info("approval request %s (%s) %s by policy rule %s: %s", request.id, gate,
                              request.decision.status.value, spec.policy_rule,
                              request.decision.reason)
    else:
        get_run_logger().info("approval request %s (%s) is in %s, waiting for %s", request.id, gate,
                              request.message_channel,
                              ", ".join(spec.approvers + spec.approver_groups)
                              or "anyone in the channel")
    return request


def _seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


async def _run_cancelled() -> bool:
    """Whether the Prefect server has this flow run cancelling or cancelled. A server that
    cannot be asked (restarting) is no reason to stop: the next slice asks again."""
    run_id = current_flow_run.id
    if not run_id:
        return False
    try:
        async with get_client() as client:
            state = (await client.read_flow_run(run_id)).state
    except Exception as e:  # the API is down or restarting; waiting goes on
        logging.getLogger(__name__).debug("could not read the state of flow run %s: %s", run_id, e)
        return False
    return state is not None and (state.is_cancelling() or state.is_cancelled())


def _cancelled_reason() -> str:
    return f"the flow run {current_flow_run.name or current_flow_run.id} was cancelled"


async def _stop_cancelled_run(request_id: str) -> FlowRunCancelled:
    """Close the request as cancelled (a decision already made stays), move the run out of
    Cancelling (nobody else will when no runner killed it), and say why. Prefect then records
    the gate's error over it: the run ends Failed, its message saying it was cancelled."""
    await asyncio.to_thread(cancel_request, request_id, _cancelled_reason())
    release(request_id, current_flow_run.id, current_flow_run.root_flow_run_id)
    try:
        async with get_client() as client:
            await client.set_flow_run_state(
                current_flow_run.id, Cancelled(message=f"cancelled at its gate ({request_id})"),
                force=True)
    except Exception as e:  # the run still stops; it then ends Cancelling or Failed
        logging.getLogger(__name__).warning("could not mark flow run %s cancelled: %s",
                                            current_flow_run.id, e)
    return FlowRunCancelled(request_id, current_flow_run.name or str(current_flow_run.id))


async def _one_slice(request_id: str, deadline: datetime, longest: float) -> Decision:
    """Block on Redis until a decision or the end of the slice (never past the deadline nor
    `longest` seconds); past the deadline, apply the request's timeout outcome. Raises
    DecisionPending otherwise."""
    svc = services()
    async with svc.async_store() as store:
        remaining = _seconds_until(deadline)
        if remaining > MIN_WAIT_SECONDS:
            decision = await store.wait(request_id, max(min(flow_config().wait_slice_seconds,
                                                            remaining, longest), MIN_WAIT_SECONDS))
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


async def _until_redis_answers(request_id: str, error: Exception) -> None:
    """Wait out an outage: back off (asleep, no thread held) until Redis answers a PING, or fail
    the run when the outage outlasts flow_config().redis_outage_seconds. Logs its start and end."""
    logger = get_run_logger()
    budget = flow_config().redis_outage_seconds
    started = time.monotonic()
    logger.warning("Redis is unreachable (%s); request %s waits for it up to %g s",
                   error, request_id, budget)
    delay = OUTAGE_FIRST_BACKOFF
    while True:
        down = time.monotonic() - started
        if down >= budget:
            raise RedisOutage(request_id, down, budget, error) from error
        await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), budget - down))
        delay = min(delay * 2, OUTAGE_MAX_BACKOFF)
        try:
            async with services().async_store() as store:
                await store.ping()
        except TRANSIENT_ERRORS as e:
            error = e
            continue
        logger.warning("Redis answers again after %.1f s; request %s reads its decision",
                       time.monotonic() - started, request_id)
        return


# The default covers the longest timeout; approval_gate sets the exact count.
@task(name="wait-for-decision", task_run_name="wait-for-decision-{request_id}",
      retries=wait_attempts(MAX_TIMEOUT, ATTEMPT_SECONDS), retry_delay_seconds=0,
      retry_condition_fn=only_pending, cache_policy=NO_CACHE, persist_result=False)
async def wait_for_decision(request_id: str, deadline: datetime,
                            hold_until: datetime | None = None) -> Decision | None:
    """One attempt: slices of waiting (see `_one_slice`) for up to ATTEMPT_SECONDS, then
    DecisionPending (Prefect retries it); past `hold_until`, None: still pending.

    `deadline` is the request's, as request_approval read it: a slice reads Redis only
    inside `wait` (which sees a decision made before it started). A Redis outage (restart,
    failover) is waited out within the attempt, up to the configured budget, and the slice
    then reads the decision it missed. Each slice that ends pending checks that the flow
    run was not cancelled meanwhile (a read; a cancel the run was never told of, e.g. across a
    Prefect server restart): a cancelled run cancels its request and stops."""
    attempt_ends = time.monotonic() + ATTEMPT_SECONDS
    while True:
        longest = attempt_ends - time.monotonic()
        if hold_until is not None:
            longest = min(longest, _seconds_until(hold_until))
        try:
            return await _one_slice(request_id, deadline, longest)
        except TRANSIENT_ERRORS as e:
            await _until_redis_answers(request_id, e)
        except DecisionPending:
            if await _run_cancelled():
                raise await _stop_cancelled_run(request_id) from None
            if hold_until is not None and _seconds_until(hold_until) <= MIN_WAIT_SECONDS:
                return None
            if time.monotonic() >= attempt_ends:
                raise


def _hold_until(in_child: bool) -> datetime | None:
    """When a gate here stops waiting in its process: only a deployment run's own flow code
    can suspend (not a subflow, not inside a task). A gate of a child flow whose parent is a
    deployment run stops too when `in_child` (its parent suspends). None: waits to the end."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or TaskRunContext.get() is not None:
        return None
    if context.flow_run.parent_task_run_id is not None:
        if not in_child or current_flow_run.parent_deployment_id is None:
            return None
    elif context.flow_run.deployment_id is None:
        return None
    return datetime.now(UTC) + timedelta(seconds=flow_config().hold_seconds)


async def wait_out_redis(request_id: str, call: Callable[..., _T], *args: Any) -> _T:
    """A call of the (sync) store from the flow's code, a Redis outage (restart, failover)
    waited out as the wait task does; the calls made here are safe to make twice."""
    while True:
        try:
            return await asyncio.to_thread(call, *args)
        except TRANSIENT_ERRORS as e:
            await _until_redis_answers(request_id, e)


async def _paused_under(key: str) -> State[Any] | None:
    """The run's state when Prefect recorded it Suspended under `key` (a suspend whose answer
    was lost), else None. Asks until the server answers: waiting on in this process while
    Prefect holds the run suspended would let a resume start it a second time."""
    run_id = current_flow_run.id
    delay = OUTAGE_FIRST_BACKOFF
    while True:
        try:
            async with get_client() as client:
                state = (await client.read_flow_run(run_id)).state
        except Exception as e:
            get_run_logger().warning("could not read flow run %s after its suspend (%s); "
                                     "asking again", current_flow_run.name, e)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, OUTAGE_MAX_BACKOFF)
            continue
        if state is not None and state.is_paused() and state.state_details.pause_key == key:
            return state
        return None


async def suspend_until_decided(requests: Sequence[ApprovalRequest]) -> bool:
    """Suspend this flow run until any of `requests`, or of the other requests this process's
    gates of the run wait on, is decided; call it from the flow's own code (not a task, not a
    subflow). First records, per request and atomically against its decision, that this run
    is to be resumed. Returns False when one was decided first or Prefect would not suspend
    (the caller reads the decisions and, if need be, waits on); otherwise Prefect's Pause
    leaves the process and the run later re-enters from the top."""
    logger = get_run_logger()
    svc = services()
    run_id = current_flow_run.id
    if run_id is None or not requests:
        return False
    root_id = current_flow_run.root_flow_run_id
    # Gates gathered in this run wait too: the process leaves, so a decision on any of them
    # must resume the run.
    request_ids = list(dict.fromkeys([r.id for r in requests]
                                     + sorted(held(run_id)) + sorted(held(root_id or run_id))))
    server = server_identity(get_current_settings().api.url)
    watch_at = datetime.now(UTC) + WATCH_EVERY
    rounds = []
    latest = datetime.now(UTC)
    for request_id in request_ids:
        suspending = await wait_out_redis(request_id, svc.store.suspend, request_id, run_id, watch_at,
                                  server)
        if suspending is None:  # decided just now: the caller reads it
            return False
        rounds.append(f"{request_id}:{suspending[0]}")
        latest = max(latest, suspending[1])
    timeout = _seconds_until(latest) + SUSPEND_GRACE.total_seconds()
    # A fresh key for each suspend (every request's round moved on): Prefect would pass a key
    # it has seen straight through.
    key = "approval:" + hashlib.sha256(",".join(sorted(rounds)).encode()).hexdigest()[:32]
    logger.info("%d approval request(s) still pending (%s): suspending flow run %s until one is "
                "decided", len(request_ids), ", ".join(request_ids), current_flow_run.name)
    for request_id in request_ids:  # the process exits: its hooks no longer hold these requests
        release(request_id, run_id, root_id)
    try:
        await asuspend_flow_run(timeout=int(timeout), key=key)
    except Exception as e:  # e.g. the Prefect server is restarting: wait in the process
        paused = await _paused_under(key)
        if paused is not None:  # it did suspend; only the answer was lost: leave, as Prefect does
            logger.info("flow run %s is suspended although its suspend failed (%s)",
                        current_flow_run.name, e)
            mark_flow_run_suspension_requested(uuid.UUID(str(run_id)), paused)
            raise Pause(state=paused) from None
        logger.warning("could not suspend flow run %s (%s); it waits in the process",
                       current_flow_run.name, e)
        for request_id in request_ids:
            hold(request_id, run_id, root_id)
    return False


class GateOptions(TypedDict, total=False):
    """The one list of a gate's own routing keywords, which gate_draft and approval_gate take
    as `**options`; every key optional. A matching rule of the approval policy overrides them;
    what neither names comes from the policy's defaults, then the installed FlowConfig."""

    approvers: Sequence[str] | None
    approver_groups: Sequence[str]
    email_approvers: Sequence[str]  # people outside Slack, asked by mail with approval links
    channel: str | None
    timeout: timedelta
    timeout_outcome: Outcome
    quorum: int
    allow_self_approval: bool
    remind_every: timedelta | None  # reminders to who has not voted, at most remind_limit
    remind_limit: int
    escalate: Sequence[EscalationTier | Mapping[str, Any]]  # tiers of {after, to, quorum?}
    business_hours: BusinessHours | Mapping[str, Any] | None  # when reminders may go out
    requester: str | None  # not routing: who asks; None: the installed default requester


def gate_draft(title: str, *, summary: str = "",
               facts: Mapping[str, object] | Sequence[Fact] = (),
               params: Mapping[str, object] | None = None, flow: str | None = None,
               **options: Unpack[GateOptions]) -> Draft:
    """What a gate asks the Opener for. `params` (and the facts) are what the policy's rules
    match; `flow` defaults to the name of the flow run the gate runs in."""
    fact_list = ([Fact(label=k, value=str(v)) for k, v in facts.items()]
                 if isinstance(facts, Mapping) else list(facts))
    routing = {key: value for key, value in options.items() if key != "requester" and value is not None}
    return Draft(title=title, summary=summary, facts=fact_list,
                 requester=options.get("requester") or flow_config().requester,
                 options=routing, flow=flow, params=dict(params or {}))


async def approval_gate(
    gate: str,
    title: str,
    *,
    summary: str = "",
    facts: Mapping[str, object] | Sequence[Fact] = (),
    raise_on_reject: bool = False,
    key_scope: str | None = None,
    params: Mapping[str, object] | None = None,
    flow: str | None = None,
    pending_in_child: bool = False,
    **options: Unpack[GateOptions],
) -> Decision:
    """Ask in Slack and wait for the answer; call it from an async flow.

    `gate` names this gate within its flow run (one request per flow run and gate, however
    often the flow or the tasks are retried); `key_scope` replaces the flow run id in that key,
    e.g. so child flows that a re-run parent starts afresh still find their requests.
    `options` (approvers, approver_groups, quorum, channel, timeout, timeout_outcome,
    requester, allow_self_approval) are described by `GateOptions`; the approval policy
    decides over them, matching its rules on `flow` (default: this flow run's flow name), the
    gate, the requester, `params` (the flow's parameters) and the facts.
    A policy rule may auto-approve or deny: the Decision comes back at once.
    A rejection, a timeout and a cancel are returned as a Decision with approved=False, or
    raised as ApprovalRejected when `raise_on_reject` is set.
    In a deployment run the gate waits in its process for the hold window, then suspends the
    run. In a child flow (which Prefect never suspends), `pending_in_child` makes it raise
    GatePending past the hold window instead, for a parent that suspends itself
    (`suspend_until_decided`, as department-review does); without it a child waits on.
    """
    draft = gate_draft(title, summary=summary, facts=facts, params=params, flow=flow, **options)
    request = await request_approval(draft, gate, key_scope)
    if request.suspended_run is not None and FlowRunContext.get() is not None:
        # Re-entered after a suspend: this run reads the request itself from now on, so a
        # resume still owed (a decision that landed while it ran) must not wake its next
        # suspend for nothing; that suspend records itself afresh.
        await wait_out_redis(request.id, services().store.unwatch, request.id)
    decision: Decision | None = None
    while decision is None:
        hold_until = _hold_until(pending_in_child)
        attempts = wait_attempts(request.deadline - datetime.now(UTC), ATTEMPT_SECONDS)
        try:
            decision = await wait_for_decision.with_options(retries=attempts)(
                request.id, request.deadline, hold_until)
        except (asyncio.CancelledError, TerminationSignal):
            # Prefect's cancel of a served run arrives as a signal with the intent "cancel"; a
            # bare SIGTERM (a worker or `approvals serve` stopping) leaves the request for the
            # re-run.
            if get_intent() == "cancel":
                cancel_request(request.id, _cancelled_reason())
            raise
        if decision is None and FlowRunContext.get() is not None and \
                current_flow_run.parent_flow_run_id is not None:
            # The child ends undecided (not Completed); its parent suspends. Only the child lets
            # go: the parent still holds the request (its hooks cancel it should the parent end
            # before suspending; suspending releases it).
            release(request.id, current_flow_run.id)
            raise GatePending(request.id)
        if decision is None:
            await suspend_until_decided([request])
    # Cancelled while the decision came in (or with the cancel lost on the way): never pass.
    if await _run_cancelled():
        raise await _stop_cancelled_run(request.id)
    release(request.id, current_flow_run.id, current_flow_run.root_flow_run_id)
    if raise_on_reject and not decision.approved:
        raise ApprovalRejected(decision)
    return decision
