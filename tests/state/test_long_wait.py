"""A wait outlasts the read timeouts of its clients and still ends in the decision.

redis-py cuts any read that takes longer than the client's `socket_timeout`, and a BLPOP is such
a read. The blocking store answers commands on a client that gives up after a couple of seconds
(`connect`) and blocks on a client of its own (`connect_waiter`); the asyncio store's client
(`connect_async`) has no read timeout, where redis-py's default would be 5 s. Rather than wait
out seconds, each test brings the timeout that would cut the wait down to READ_TIMEOUT: the
blocking store's command client is given it, and redis-py's default is shrunk to it for the
asyncio store. A wait on such a client is cut (each test shows one is), while the store's own
waiter stays in one BLPOP, on one connection, for longer and still returns the decision.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection

from slack_approvals.state import ApprovalStore, AsyncApprovalStore, Decision, RequestSpec
from slack_approvals.state.connection import connect, connect_async, connect_waiter
from tests.conftest import RedisServer

from .support import BlpopSpy, Held, blocked_in_blpop

pytestmark = pytest.mark.real_redis

READ_TIMEOUT = 0.1
HOLD = 2 * READ_TIMEOUT


def spec() -> RequestSpec:
    return RequestSpec(title="Long wait", channel="C01APPROVALS", approvers=["U01MAYA"])


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis(port=redis_server.port, decode_responses=True, socket_timeout=10) as client:
        client.flushall()
        yield client


def test_blocking_wait_outlasts_the_command_timeout(redis_server: RedisServer,
                                                    admin: redis.Redis) -> None:
    setup = ApprovalStore(connect(redis_server.url))
    commands = connect(redis_server.url, socket_timeout=READ_TIMEOUT)
    spy = BlpopSpy(connect_waiter(redis_server.url))
    store = ApprovalStore(commands, waiter=spy)
    try:
        with pytest.raises(redis.TimeoutError):
            ApprovalStore(commands).wait(setup.create(spec()).id, 10)

        request = setup.create(spec())
        held = Held(spy.sent, 1, lambda: blocked_in_blpop(admin))
        results: list[Decision | None] = []
        waiter = threading.Thread(target=lambda: results.append(store.wait(request.id, 10)))
        waiter.start()
        held.wait(lambda: int(waiter.is_alive()))
        blocked = blocked_in_blpop(admin) - held.already
        waiter.join(HOLD)
        assert waiter.is_alive()
        assert blocked_in_blpop(admin) - held.already == blocked, "the BLPOP was cut"
        setup.decide(request.id, "U01MAYA", "approve")
        waiter.join(2)
        assert not waiter.is_alive()
        assert results[0] is not None and results[0].approved
    finally:
        for client in (setup.client, commands, spy.client):
            client.close()


def _shrunk(original: Callable[..., None], default: float) -> Callable[..., None]:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("socket_timeout", default) == default:
            kwargs["socket_timeout"] = READ_TIMEOUT
        original(self, *args, **kwargs)

    return init


@pytest.fixture
def short_default_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py's default read timeout becomes READ_TIMEOUT for asyncio connections opened
    without a timeout of their own."""
    cls = redis.asyncio.connection.AbstractConnection
    default = inspect.signature(cls.__init__).parameters["socket_timeout"].default
    assert default is not None, "redis-py no longer cuts slow reads by default"
    monkeypatch.setattr(cls, "__init__", _shrunk(cls.__init__, default))


@pytest.mark.usefixtures("short_default_read_timeout")
def test_async_wait_outlasts_the_default_read_timeout(redis_server: RedisServer,
                                                      admin: redis.Redis) -> None:
    async def scenario() -> Decision | None:
        spy = BlpopSpy(connect_async(redis_server.url))
        store = AsyncApprovalStore(spy)
        on_default = AsyncApprovalStore(
            redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True))
        try:
            with pytest.raises(redis.TimeoutError):
                await on_default.wait((await store.create(spec())).id, 10)

            request = await store.create(spec())
            held = Held(spy.sent, 1, lambda: blocked_in_blpop(admin))
            waiter = asyncio.create_task(store.wait(request.id, 10))
            await held.wait_async(lambda: int(not waiter.done()))
            blocked = blocked_in_blpop(admin) - held.already
            await asyncio.sleep(HOLD)
            assert not waiter.done()
            assert blocked_in_blpop(admin) - held.already == blocked, "the BLPOP was cut"
            await store.decide(request.id, "U01MAYA", "reject", reason="no")
            return await asyncio.wait_for(waiter, 2)
        finally:
            await on_default.aclose()
            await store.aclose()

    decision = asyncio.run(scenario())
    assert decision is not None and not decision.approved
