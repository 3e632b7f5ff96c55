"""A wait longer than redis-py's default 5 s read timeout still ends in the decision."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from slack_approvals.state import ApprovalStore, AsyncApprovalStore, RequestSpec, connect, connect_async
from tests.conftest import RedisServer

pytestmark = pytest.mark.slow


def spec() -> RequestSpec:
    return RequestSpec(title="Long wait", channel="C01APPROVALS", approvers=["U01MAYA"])


def test_blocking_wait_outlasts_the_default_read_timeout(redis_server: RedisServer) -> None:
    store = ApprovalStore(connect(redis_server.url))
    request = store.create(spec())
    timer = threading.Timer(6.0, store.decide, args=(request.id, "U01MAYA", "approve"))
    timer.start()
    started = time.monotonic()
    decision = store.wait(request.id, 10)
    assert decision is not None
    assert decision.approved
    assert time.monotonic() - started >= 5.5


def test_async_wait_outlasts_the_default_read_timeout(redis_server: RedisServer) -> None:
    async def scenario() -> bool:
        store = AsyncApprovalStore(connect_async(redis_server.url))
        request = await store.create(spec())

        async def decide_later() -> None:
            await asyncio.sleep(6.0)
            await store.decide(request.id, "U01MAYA", "reject", reason="no")

        decider = asyncio.create_task(decide_later())
        decision = await store.wait(request.id, 10)
        await decider
        await store.aclose()
        return decision is not None and not decision.approved

    assert asyncio.run(scenario())
