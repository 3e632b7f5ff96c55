"""A waiting gate writes little to Prefect: the slices of a wait are Redis reads inside one task
attempt; only an attempt's end (every ATTEMPT_SECONDS) is a task-run state. Flows run for real
on the session's Prefect server; the states are read back through its API."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType

from slack_approvals.flows import gates
from slack_approvals.flows.examples import simple_approval

from .support import MAYA, FlowEnv, run


def wait_task_states(flow_run_id: str) -> list[list[StateType]]:
    """The state types of each wait-for-decision task run of a flow run, oldest first."""

    async def read() -> list[list[StateType]]:
        async with get_client() as client:
            task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)])))
            found = []
            for task_run in task_runs:
                if task_run.name.startswith("wait-for-decision"):
                    states = await client.read_task_run_states(task_run.id)
                    found.append([s.type for s in sorted(states, key=lambda s: s.timestamp)])
            return found

    return asyncio.run(read())


def test_many_slices_of_waiting_are_one_attempt(env: FlowEnv) -> None:
    env.approvers.on("Approve this step", MAYA, after=2.5)
    result = run(simple_approval())
    assert result.approved
    assert len(env.waits) >= 4  # 0.5 s slices: the gate woke and checked its run several times
    flow_run_id = env.store.get(result.request_id).spec.flow_run_id
    assert flow_run_id is not None
    (states,) = wait_task_states(flow_run_id)
    # One attempt: no Retrying/AwaitingRetry state for the slices it waited through.
    assert states == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED], states


def test_an_attempt_ends_after_attempt_seconds(env: FlowEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempt length, not the slice, is what Prefect records: with 1 s attempts a 2.5 s
    wait is retried at least twice (and wakes on the click all the same)."""
    monkeypatch.setattr(gates, "ATTEMPT_SECONDS", 1.0)
    env.approvers.on("Approve this step", MAYA, after=2.5)
    result = run(simple_approval())
    assert result.approved
    flow_run_id = env.store.get(result.request_id).spec.flow_run_id
    assert flow_run_id is not None
    (states,) = wait_task_states(flow_run_id)
    running = [s for s in states if s is StateType.RUNNING]
    assert len(running) >= 3, states
    assert states[-1] is StateType.COMPLETED
