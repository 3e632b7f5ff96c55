"""The gate contract, with flows run for real: idempotent posting, bounded waits retried only
while pending, timeouts applied by the gate, Slack errors retried, real errors not."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
import redis
from prefect import Flow, flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.flow_engine import run_flow_async
from prefect.states import Scheduled
from slack_sdk.errors import SlackApiError

from slack_approvals.flows.errors import ApprovalRejected
from slack_approvals.flows.examples import SimpleApprovalParams, simple_approval
from slack_approvals.flows.gates import approval_gate
from slack_approvals.state import Decision, Outcome, Status

from .support import APPROVALS, MAYA, FlowEnv, decided_events, run


@flow(name="guarded-step")
async def guarded_step(raise_on_reject: bool) -> Decision:
    return await approval_gate("guard", "Guarded step", raise_on_reject=raise_on_reject)


def test_gate_wakes_on_the_click_and_posts_once(env: FlowEnv) -> None:
    env.approvers.on("Approve this step", MAYA, after=1.2)

    result = run(simple_approval())

    assert (result.status, result.approved, result.decided_by) == (Status.APPROVED, True, MAYA)
    assert env.posts() == 1
    # 0.5 s slices: the wait was retried while pending, and each slice stayed bounded.
    assert len(env.waits) >= 2 and max(env.waits) <= 0.5
    request = env.store.get(result.request_id)
    assert request.spec.gate == "approval" and request.spec.flow_run_id
    assert request.message_channel == APPROVALS
    assert env.audit_events(result.request_id) == ["created", "posted", "vote", "approved"]
    # A person decided: telling Prefect is the bot's job (its on_decision hook), not the gate's.
    assert decided_events(result.request_id, timeout=1.0) == []


def test_rejection_is_a_value_unless_asked_to_raise(env: FlowEnv) -> None:
    env.approvers.on("Guarded step", MAYA, Outcome.REJECT, reason="not this week")

    decision = run(guarded_step(raise_on_reject=False))
    assert (decision.status, decision.approved, decision.reason) == (Status.REJECTED, False,
                                                                     "not this week")

    with pytest.raises(ApprovalRejected, match="rejected by U01MAYA: not this week") as raised:
        run(guarded_step(raise_on_reject=True))
    assert raised.value.decision.status is Status.REJECTED


@pytest.mark.parametrize(("outcome", "approved"), [(Outcome.REJECT, False), (Outcome.APPROVE, True)])
def test_timeout_applies_the_outcome_and_says_so(env: FlowEnv, outcome: Outcome,
                                                 approved: bool) -> None:
    env.use_policy(f"version: 1\ndefaults: {{timeout: 1s, timeout_outcome: {outcome.value}}}\n")
    params = SimpleApprovalParams()

    result = run(simple_approval(params))

    assert (result.status, result.approved, result.decided_by) == (Status.TIMED_OUT, approved, None)
    audit = env.store.audit(result.request_id)
    assert [e.event for e in audit] == ["created", "posted", "timed_out"]
    assert audit[-1].approved is approved and audit[-1].reason == "deadline passed"
    message = env.message_of(result.request_id)
    assert message["text"].startswith("Timed out:")
    default = "approved" if approved else "rejected"
    assert any(f"no decision in time, so {default} by default" in str(block)
               for block in message["blocks"])
    # The gate made this decision, so the gate told Prefect; once.
    events = decided_events(result.request_id)
    assert len(events) == 1
    assert events[0].resource["approval.status"] == "timed_out"
    assert events[0].resource["approval.outcome"] == outcome.value


def test_a_real_error_fails_the_wait_at_once(env: FlowEnv) -> None:
    env.wait_faults.append(redis.ResponseError("WRONGTYPE Operation against a key holding "
                                               "the wrong kind of value"))
    started = time.monotonic()

    with pytest.raises(redis.ResponseError):
        run(simple_approval())

    assert len(env.waits) == 1, "only DecisionPending is retried"
    assert time.monotonic() - started < 5


def test_a_lost_connection_is_waited_out_and_the_decision_read(env: FlowEnv) -> None:
    env.wait_faults.append(redis.ConnectionError("connection lost mid-wait"))
    env.approvers.on("Approve this step", MAYA, after=1.0)

    result = run(simple_approval())

    assert result.approved and result.decided_by == MAYA
    assert env.posts() == 1


@pytest.mark.slow
def test_slack_trouble_is_retried_without_a_second_message(env: FlowEnv) -> None:
    # Three 503s outlast the client's own two retries; the task's retry then posts.
    env.sb.faults.inject("chat.postMessage", 503, count=3)
    env.approvers.on("Approve this step", MAYA)

    result = run(simple_approval())

    assert result.approved
    assert env.posts() == 1
    assert len(env.sb.api_calls("chat.postMessage")) == 4


def test_a_permanent_slack_error_is_not_retried(env: FlowEnv) -> None:
    env.use_policy("version: 1\ndefaults: {channel: C09NOWHERE}\n")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        run(simple_approval(SimpleApprovalParams()))

    assert len(env.sb.api_calls("chat.postMessage")) == 1


def test_rerun_flow_finds_its_request_after_a_failure_mid_wait(env: FlowEnv) -> None:
    """An error that is not an outage fails the wait; the flow's own retry re-runs it (same flow
    run id), finds the request and its message, and still reads the decision."""
    env.wait_faults.append(redis.ResponseError("ERR an error the store did not expect"))
    env.approvers.on("Approve this step", MAYA, after=1.0)

    result = run(simple_approval.with_options(retries=1, retry_delay_seconds=0)())

    assert result.approved and result.decided_by == MAYA
    assert env.posts() == 1
    assert len(env.sb.api_calls("chat.update")) >= 1  # the re-run refreshed the message it found
    assert env.audit_events(result.request_id).count("posted") == 1


@pytest.mark.real_redis
def test_a_crashed_run_started_again_posts_nothing_new(real_env: FlowEnv) -> None:
    """Kill the flow run while its gate is blocked on the real Redis, then run the same flow
    run again, as Prefect's retry of a crashed run does."""
    env = real_env
    params = {"params": SimpleApprovalParams().model_dump(mode="json")}
    approval_flow: Flow[..., Any] = simple_approval

    async def scenario() -> tuple[State[object], State[object], str]:
        async with get_client() as client:
            flow_run = await client.create_flow_run(simple_approval, parameters=params)
            first = asyncio.create_task(run_flow_async(approval_flow, flow_run=flow_run,
                                                       return_type="state"))
            assert await asyncio.to_thread(env.waiting.wait, 10)
            await asyncio.sleep(0.2)  # blocked in BLPOP
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
            crashed = (await client.read_flow_run(flow_run.id)).state
            assert crashed is not None
            await client.set_flow_run_state(flow_run.id, Scheduled(), force=True)
            env.approvers.on("Approve this step", MAYA, after=0.3)
            again = await run_flow_async(approval_flow, flow_run=await client.read_flow_run(flow_run.id),
                                         return_type="state")
            assert isinstance(again, State)
            return crashed, again, str(flow_run.id)

    crashed, again, flow_run_id = run(scenario())

    assert not crashed.is_completed()
    assert again.is_completed()
    result = again.result()
    assert result.approved and result.decided_by == MAYA
    assert env.posts() == 1
    assert env.store.get(result.request_id).spec.flow_run_id == flow_run_id
