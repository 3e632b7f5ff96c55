"""suspend_until_decided under faults, in real Prefect flow runs: a suspend whose answer was
lost but that Prefect recorded leaves the process (never two processes for one run), a Redis
blip while recording the suspend is waited out, and every request the run's gates hold is
registered, so a decision on any of them resumes the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import Pause
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Suspended

from slack_approvals.flows import gates
from slack_approvals.flows.errors import GatePending
from slack_approvals.flows.hooks import APPROVAL_HOOKS, held, hold, release
from slack_approvals.state import ApprovalRequest, RequestSpec, Status

from .support import APPROVALS, MAYA, REQUESTER, FlowEnv, run


def _request(env: FlowEnv, title: str) -> ApprovalRequest:
    return env.store.create(RequestSpec(title=title, channel=APPROVALS, approvers=[MAYA],
                                        quorum=1, requester=REQUESTER,
                                        timeout=timedelta(hours=1)))


def test_a_suspend_prefect_recorded_but_never_answered_leaves_the_process(
        env: FlowEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _request(env, "Asked by this gate")
    gathered = _request(env, "Asked by a gate gathered beside it")

    async def recorded_then_lost(timeout: int, key: str) -> None:
        # The server takes the Suspended state; the answer never comes back.
        async with get_client() as client:
            await client.set_flow_run_state(current_flow_run.id,
                                            Suspended(timeout_seconds=timeout, pause_key=key),
                                            force=True)
        raise httpx.ReadTimeout("the answer to the suspend was lost")

    monkeypatch.setattr(gates, "asuspend_flow_run", recorded_then_lost)

    seen: dict[str, Any] = {}

    @flow(name="suspend-answer-lost")
    async def gate_flow() -> bool:
        run_id = seen["run"] = current_flow_run.id
        hold(gathered.id, run_id)  # the other gate, waiting in this process
        try:
            return await gates.suspend_until_decided([asked])
        except Pause:
            seen["left"] = True
            raise
        finally:
            seen["held"] = held(run_id)
            release(gathered.id, run_id)

    # It leaves as Prefect's own suspend does (the engine ends the call Paused): it does not
    # wait on in-process while Prefect says Suspended.
    with pytest.raises(Pause):
        run(gate_flow())
    assert seen["left"] is True
    assert seen["held"] == set()  # its hooks hold nothing: the process leaves
    # Both requests name the run to resume: a decision on either wakes it.
    assert env.store.get(asked.id).suspended_run == seen["run"]
    assert env.store.get(gathered.id).suspended_run == seen["run"]


def test_a_suspend_prefect_refused_waits_in_the_process(
        env: FlowEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _request(env, "Refused suspend")

    async def refused(timeout: int, key: str) -> None:
        raise RuntimeError("Flow run cannot be suspended: the server is restarting")

    monkeypatch.setattr(gates, "asuspend_flow_run", refused)

    @flow(name="suspend-refused")
    async def gate_flow() -> tuple[bool, set[str]]:
        suspended = await gates.suspend_until_decided([asked])
        held_now = held(current_flow_run.id)
        release(asked.id, current_flow_run.id, current_flow_run.root_flow_run_id)
        return suspended, held_now

    suspended, held_now = run(gate_flow())
    assert suspended is False and held_now == {asked.id}  # held again: its hooks cover it


def test_a_redis_blip_while_recording_the_suspend_is_waited_out(
        env: FlowEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _request(env, "Suspend through a blip")
    suspend = env.store.suspend
    failures = [redis.ConnectionError("failover under way")]

    def flaky_suspend(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return suspend(*args)

    async def refused(timeout: int, key: str) -> None:
        raise RuntimeError("not suspending in this test")

    monkeypatch.setattr(env.store, "suspend", flaky_suspend)
    monkeypatch.setattr(gates, "asuspend_flow_run", refused)

    @flow(name="suspend-through-a-blip")
    async def gate_flow() -> str:
        await gates.suspend_until_decided([asked])
        release(asked.id, current_flow_run.id, current_flow_run.root_flow_run_id)
        return str(current_flow_run.id)

    run_id = run(gate_flow())
    assert failures == []
    assert env.store.get(asked.id).suspended_run == run_id  # recorded after the blip


def test_a_parent_failing_before_it_suspends_cancels_its_childrens_open_requests(
        env: FlowEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # As in a served department review past the hold window: the child's gate ends pending.
    monkeypatch.setattr(gates, "_hold_until", lambda in_child: datetime.now(UTC))

    @flow(name="pending-child")
    async def child() -> None:
        await gates.approval_gate("sales", "Sales: sign off", pending_in_child=True)

    @flow(name="failing-parent", **APPROVAL_HOOKS)
    async def parent() -> None:
        try:
            await child()
        except GatePending as pending:
            seen["request"] = pending.request_id
        raise RuntimeError("the review failed before it could suspend")

    seen: dict[str, str] = {}
    with pytest.raises(RuntimeError):
        run(parent())
    closed = env.store.get(seen["request"])
    assert closed.status is Status.CANCELLED  # no live buttons left until its deadline
    assert closed.decision is not None and "failed" in (closed.decision.reason or "")
