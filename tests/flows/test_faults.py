"""Gates under faults, with flows run for real: Redis killed and restarted on its AOF while
gates wait, an outage past the budget, runs cancelled while waiting or as the decision lands,
runs that fail with requests open, and messages Slack never took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.flow_engine import run_flow_async
from prefect.states import Cancelling, Crashed, Failed

from slack_approvals.bot.client import make_client
from slack_approvals.bot.messenger import Messenger
from slack_approvals.flows import APPROVAL_HOOKS
from slack_approvals.flows.errors import RedisOutage
from slack_approvals.flows.examples import SimpleApprovalParams, simple_approval
from slack_approvals.flows.gates import gate_draft, request_approval
from slack_approvals.flows.hooks import close_open_requests, held, hold
from slack_approvals.flows.services import FlowConfig, Services, services_installed
from slack_approvals.sandbox.config import DEFAULT_BOT_TOKEN
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state import (
    ApprovalStore,
    AsyncApprovalStore,
    DecideStatus,
    Outcome,
    RequestSpec,
    Status,
)
from slack_approvals.state.connection import connect_async
from tests.conftest import Backend, RedisServer, start_redis_server

from .support import APPROVALS, MAYA, REQUESTER, FlowEnv, run

pytestmark = pytest.mark.real_redis


@pytest.fixture(scope="module")
def doomed_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own, which its tests kill -9 and start again."""
    server = start_redis_server(tmp_path_factory.mktemp("doomed-redis"))
    yield server
    if server.process.poll() is None:
        server.stop()


def fresh_store(server: RedisServer) -> ApprovalStore:
    return ApprovalStore(server.client())


@contextmanager
def installed(sb: SandboxServer, server: RedisServer, tmp_path: Path, **config: Any) -> Iterator[None]:
    """Services as the composition root builds them: waits on `connect_async` clients."""
    if server.process.poll() is not None:
        server.start()
    with server.client() as client:
        client.flushall()
    flow_config = replace(FlowConfig(channel=APPROVALS, approvers=(MAYA,), requester=REQUESTER,
                                     wait_slice_seconds=0.5, data_dir=tmp_path / "data"), **config)

    def factory() -> Services:
        store = fresh_store(server)
        return Services(store, Messenger(make_client(DEFAULT_BOT_TOKEN, sb.api_url), store),
                        lambda: AsyncApprovalStore(connect_async(server.url)))

    with services_installed(factory, flow_config):
        yield


def wait_until_pending(server: RedisServer, count: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [r.id for r in fresh_store(server).pending(limit=50) if r.message_ts]
        if len(pending) >= count:
            return pending
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} requests were posted in {timeout} s")


async def outage(server: RedisServer, down: float, gates: int) -> list[str]:
    """Kill -9 Redis once `gates` requests wait (their creation safely in the AOF), restart it
    on the same port and AOF after `down` seconds; returns the waiting request ids."""
    request_ids = await asyncio.to_thread(wait_until_pending, server, gates)
    await asyncio.sleep(1.5)  # appendfsync everysec: the requests are on disk, the gates in BLPOP
    server.kill9()
    await asyncio.sleep(down)
    await asyncio.to_thread(server.start)
    return request_ids


def approve_all(server: RedisServer, request_ids: list[str]) -> None:
    store = fresh_store(server)
    for request_id in request_ids:
        assert store.decide(request_id, MAYA, Outcome.APPROVE).status is DecideStatus.APPROVED


def survive(server: RedisServer, down: float, gates: int) -> tuple[list[Any], float]:
    """`gates` flow runs wait; Redis goes down for `down` s; each is approved once it is back.
    Returns the results and the time from the approvals to the last run's end."""
    async def scenario() -> tuple[list[Any], float]:
        runs = [asyncio.create_task(simple_approval(SimpleApprovalParams(title=f"Survive {i}")))
                for i in range(gates)]
        request_ids = await outage(server, down, gates)
        approved_at = time.perf_counter()
        await asyncio.to_thread(approve_all, server, request_ids)
        results = await asyncio.wait_for(asyncio.gather(*runs), 120)
        return list(results), time.perf_counter() - approved_at

    result: tuple[list[Any], float] = run(scenario())
    return result


def test_gates_wait_out_a_redis_kill_and_read_the_decision(
        sb: SandboxServer, doomed_redis: RedisServer, tmp_path: Path, prefect_database: str) -> None:
    with installed(sb, doomed_redis, tmp_path):
        results, after_click = survive(doomed_redis, down=1.0, gates=3)

    assert [(r.status, r.approved, r.decided_by) for r in results] == [
        (Status.APPROVED, True, MAYA)] * 3
    assert after_click < 30
    store = fresh_store(doomed_redis)
    for result in results:
        assert [e.event for e in store.audit(result.request_id)] == [
            "created", "posted", "vote", "approved"]


@pytest.mark.slow
def test_gates_wait_out_a_twenty_second_outage(
        sb: SandboxServer, doomed_redis: RedisServer, tmp_path: Path, prefect_database: str) -> None:
    with installed(sb, doomed_redis, tmp_path):
        results, _ = survive(doomed_redis, down=20.0, gates=2)

    assert all(r.approved and r.decided_by == MAYA for r in results)


def test_an_outage_past_the_budget_fails_the_run_and_says_why(
        sb: SandboxServer, doomed_redis: RedisServer, tmp_path: Path, prefect_database: str) -> None:
    async def scenario() -> None:
        waiting = asyncio.create_task(simple_approval())
        await asyncio.to_thread(wait_until_pending, doomed_redis, 1)
        await asyncio.sleep(1.5)
        doomed_redis.kill9()
        try:
            await asyncio.wait_for(waiting, 60)
        finally:
            await asyncio.to_thread(doomed_redis.start)

    with installed(sb, doomed_redis, tmp_path, redis_outage_seconds=2.0):
        started = time.monotonic()
        with pytest.raises(RedisOutage, match=r"Redis was unreachable for \d+ s .* waits out 2 s"):
            run(scenario())
    assert time.monotonic() - started < 45


async def _flow_run_of(client: Any, params: SimpleApprovalParams) -> FlowRun:
    return await client.create_flow_run(simple_approval,
                                        parameters={"params": params.model_dump(mode="json")})


def _cancelled_run(env: FlowEnv, approve_first: bool) -> tuple[State[Any], str]:
    """A run waits at its gate; Prefect marks it Cancelling (as an operator's cancel does when
    nothing kills the process); with approve_first, an approval lands right after."""
    async def scenario() -> tuple[State[Any], str]:
        async with get_client() as client:
            flow_run = await _flow_run_of(client, SimpleApprovalParams())
            running = asyncio.create_task(run_flow_async(simple_approval, flow_run=flow_run,
                                                         return_type="state"))
            assert await asyncio.to_thread(env.waiting.wait, 20)
            await asyncio.sleep(0.2)
            (request,) = env.store.pending()
            await client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
            if approve_first:
                env.store.decide(request.id, MAYA, Outcome.APPROVE)
            state = await asyncio.wait_for(running, 60)
            assert isinstance(state, State)
            return state, request.id

    result: tuple[State[Any], str] = run(scenario())
    return result


def test_a_cancelled_run_cancels_its_request_and_stops(env: FlowEnv) -> None:
    state, request_id = _cancelled_run(env, approve_first=False)

    assert state.is_final() and not state.is_completed()
    assert "was cancelled" in (state.message or "")
    request = env.store.get(request_id)
    assert request.status is Status.CANCELLED
    assert request.decision is not None and "was cancelled" in (request.decision.reason or "")
    assert env.message_of(request_id)["text"].lower().startswith("cancelled")
    assert env.store.decide(request_id, MAYA, Outcome.APPROVE).status is DecideStatus.CLOSED


def test_an_approval_after_the_cancel_never_passes_the_gate(prefect_database: str,
                                                             sb: SandboxServer,
                                                             tmp_path: Path) -> None:
    backend = Backend("fake", None, fakeredis.FakeServer())
    # Long slices: the approval, not a slice's end, is what wakes the gate.
    with FlowEnv.installed(sb, backend, tmp_path, wait_slice=30) as env:
        state, request_id = _cancelled_run(env, approve_first=True)

        assert state.is_final() and not state.is_completed()
        assert "was cancelled" in (state.message or "")
        assert env.store.get(request_id).status is Status.APPROVED  # recorded, but not acted on


@flow(name="fails-beside-a-gate", **APPROVAL_HOOKS)
async def fails_beside_a_gate() -> None:
    # The request is posted and held by this run; the run then fails before anyone answers.
    await request_approval(gate_draft("Never answered"), "asked")
    raise RuntimeError("the step beside the gate broke")


def test_a_failed_run_cancels_the_requests_it_left_open(env: FlowEnv) -> None:
    with pytest.raises(RuntimeError, match="broke"):
        run(fails_beside_a_gate())

    assert env.store.pending(limit=50) == []
    audit = env.store.audit(_only_request(env))
    assert audit[-1].event == "cancelled"
    assert "failed" in (audit[-1].reason or "") and "broke" in (audit[-1].reason or "")
    assert env.store.decide(_only_request(env), MAYA,
                            Outcome.APPROVE).status is DecideStatus.CLOSED


def _only_request(env: FlowEnv) -> str:
    """The id of the one request in the store (spec keys carry it in their hash tag)."""
    ids = {key.split("{")[1].split("}")[0] for key in env.store.client.scan_iter("*{*}*")}
    assert len(ids) == 1, ids
    return ids.pop()


def test_a_terminated_served_run_keeps_its_requests(env: FlowEnv) -> None:
    spec = RequestSpec(title="Resumed later", approvers=[MAYA], channel=APPROVALS,
                       timeout=timedelta(hours=1))
    request = env.store.create(spec, "run-1:gate")
    flow_run = FlowRun(flow_id="00000000-0000-0000-0000-000000000000", name="stopped-run")
    flow_run_id = str(flow_run.id)
    hold(request.id, flow_run_id)

    close_open_requests(None, flow_run, Crashed(message="Execution was aborted by a termination signal."))
    assert env.store.get(request.id).status is Status.PENDING
    assert request.id in held(flow_run_id)

    close_open_requests(None, flow_run, Failed(message="boom"))
    assert env.store.get(request.id).status is Status.CANCELLED


def test_a_message_slack_never_took_cancels_its_request(env: FlowEnv) -> None:
    env.use_policy("version: 1\ndefaults: {channel: C09NOWHERE}\n")
    with pytest.raises(Exception, match="channel_not_found"):
        run(simple_approval(SimpleApprovalParams()))

    audit = env.store.audit(_only_request(env))
    assert [e.event for e in audit] == ["created", "cancelled"]
    assert "could not be posted" in (audit[-1].reason or "")
    assert "channel_not_found" in (audit[-1].reason or "")


def test_a_redis_blip_while_posting_is_retried_not_cancelled(env: FlowEnv,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis failing after the request exists (here: attaching the posted message) is a blip the
    task retries, not a reason to cancel the request."""
    attach = env.store.attach_message
    failures = [redis.ConnectionError("connection lost while attaching")]

    def flaky_attach(request_id: str, channel: str, ts: str) -> bool:
        if failures:
            raise failures.pop()
        return attach(request_id, channel, ts)

    monkeypatch.setattr(env.store, "attach_message", flaky_attach)
    env.approvers.on("Approve this step", MAYA, after=1.0)

    result = run(simple_approval(SimpleApprovalParams()))

    assert result.approved and result.decided_by == MAYA
    assert "cancelled" not in env.audit_events(result.request_id)
