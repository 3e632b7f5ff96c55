"""Shared helpers of the state tests: request specs, the server clock, waiters held in BLPOP,
whole-database snapshots, TTL checks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis

from slack_approvals.state import ApprovalRequest, ApprovalStore, Decision, RequestSpec
from tests.conftest import Backend

REQUESTER = "U06REQ"
MAYA = "U01MAYA"
FRANK = "U02FRANK"
LI = "U03LI"
OUTSIDER = "U09OUT"
OPS = "S01OPS"
SEC = "S02SEC"
CHANNEL = "C01APPROVALS"
# A timeout to wait out at once: a request created with it is overdue a few ms later.
TINY = timedelta(milliseconds=5)
# A deadline a test must still be before for a few commands, then waits out.
SHORT = timedelta(milliseconds=200)
# How long a fakeredis waiter, which no CLIENT LIST can show, must stay waiting after its BLPOP
# was sent before a test takes it as blocked.
SETTLE = 0.05
# Upper bound of every poll below: reached only when something is broken.
PATIENCE = 5.0


def spec(**overrides: Any) -> RequestSpec:
    """A valid spec: two named approvers, both needed, asked for by REQUESTER."""
    fields: dict[str, Any] = {"title": "Deploy api v2", "channel": CHANNEL,
                              "approvers": [MAYA, FRANK], "quorum": 2, "requester": REQUESTER}
    fields.update(overrides)
    return RequestSpec.model_validate(fields)


# -- the server clock ----------------------------------------------------------------------
# The Lua scripts read deadlines off Redis's own clock (TIME), so the store takes no clock to
# fake: a test that needs a deadline behind it waits until TIME reaches it, and no longer.


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def _time_ms(reply: Any) -> int:
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


def until_server_clock_reaches(client: Any, deadline: datetime) -> None:
    """Sleeps until the server's TIME, in whole ms as the Lua scripts read it, is at `deadline`."""
    target = _ms(deadline)
    give_up = time.monotonic() + PATIENCE
    while (now := _time_ms(client.time())) < target:
        assert time.monotonic() < give_up, f"server clock stuck {target - now} ms before {deadline}"
        time.sleep((target - now) / 1000 + 0.001)


async def until_server_clock_reaches_async(client: Any, deadline: datetime) -> None:
    target = _ms(deadline)
    give_up = time.monotonic() + PATIENCE
    while (now := _time_ms(await client.time())) < target:
        assert time.monotonic() < give_up, f"server clock stuck {target - now} ms before {deadline}"
        await asyncio.sleep((target - now) / 1000 + 0.001)


def create_expired(store: ApprovalStore, **overrides: Any) -> ApprovalRequest:
    """A request whose deadline has passed by the server clock but which nobody swept."""
    request = store.create(spec(timeout=TINY, **overrides))
    until_server_clock_reaches(store.client, request.deadline)
    return request


# -- waiters held in BLPOP -----------------------------------------------------------------
# A wait reads the request first and only then blocks, so a decision made after a waiter sent
# its BLPOP can reach that waiter only through BLPOP. To show the waiter was woken, not merely
# late, a test also makes sure the BLPOP is held by the server before it decides: a real server
# lists it in CLIENT LIST (cmd=blpop, flag b); fakeredis lists no commands, so there the waiter
# must still be waiting SETTLE seconds after its BLPOP was sent.

Probe = Callable[[], set[str]]


class BlpopSpy:
    """Stands in for a store's Redis client and notes when each BLPOP is sent."""

    def __init__(self, client: Any, sent: list[float] | None = None) -> None:
        self.client = client
        self.sent: list[float] = [] if sent is None else sent  # time.monotonic() of each BLPOP

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name != "blpop":
            return attribute

        def blpop(*args: Any, **kwargs: Any) -> Any:
            self.sent.append(time.monotonic())
            return attribute(*args, **kwargs)

        return blpop


def blocked_in_blpop(*clients: redis.Redis) -> set[str]:
    """The connections these servers hold blocked in BLPOP, as `server:client-id`."""
    return {f"{i}:{entry['id']}" for i, client in enumerate(clients)
            for entry in client.client_list()
            if entry.get("cmd") == "blpop" and "b" in entry.get("flags", "")}


def blpop_probe(backend: Backend) -> Probe | None:
    """CLIENT LIST on a real server; None on fakeredis, which does not say who is blocked."""
    if backend.fake_server is not None:
        return None

    def probe() -> set[str]:
        with backend.sync_client() as admin:
            return blocked_in_blpop(admin)

    return probe


class Held:
    """Proves that `count` waiters sit in BLPOP: create it before they start, call `wait` after."""

    def __init__(self, sent: list[float], count: int, probe: Probe | None) -> None:
        self.sent, self.count, self.probe = sent, count, probe
        self.already = set() if probe is None else probe()
        self.give_up = time.monotonic() + PATIENCE

    def _sent_all(self) -> bool:
        assert time.monotonic() < self.give_up, f"{len(self.sent)} of {self.count} BLPOPs sent"
        return len(self.sent) >= self.count

    def _held_all(self) -> bool:
        assert self.probe is not None
        held = self.probe() - self.already
        assert time.monotonic() < self.give_up, f"{len(held)} of {self.count} BLPOPs held"
        return len(held) >= self.count

    def wait(self, waiting: Callable[[], int]) -> None:
        """Returns once every BLPOP was sent and is held; `waiting` counts unfinished waiters."""
        while not self._sent_all():
            time.sleep(0.002)
        if self.probe is None:
            time.sleep(SETTLE)
        else:
            while not self._held_all():
                time.sleep(0.005)
        assert waiting() == self.count, "a waiter returned without a decision to return"

    async def wait_async(self, waiting: Callable[[], int]) -> None:
        # Polls: neither the spy's list nor the server's CLIENT LIST can signal an asyncio.Event.
        while not self._sent_all():  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        if self.probe is None:
            await asyncio.sleep(SETTLE)
        else:
            while not self._held_all():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        assert waiting() == self.count, "a waiter returned without a decision to return"


class ThreadWaiters:
    """`count` threads in `ApprovalStore.wait`, each on its own connection; `held` proves they block."""

    def __init__(self, backend: Backend, request_id: str, count: int, timeout: float = 10) -> None:
        self.sent: list[float] = []
        self.results: list[tuple[Decision | None, float]] = []  # (decision, time.monotonic() woken)
        self._held = Held(self.sent, count, blpop_probe(backend))
        self._threads = [threading.Thread(target=self._wait, args=(backend, request_id, timeout))
                         for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _wait(self, backend: Backend, request_id: str, timeout: float) -> None:
        client = backend.sync_client()
        try:
            decision = ApprovalStore(BlpopSpy(client, self.sent)).wait(request_id, timeout)
            self.results.append((decision, time.monotonic()))
        finally:
            client.close()

    def held(self) -> None:
        self._held.wait(lambda: sum(thread.is_alive() for thread in self._threads))

    def join(self, timeout: float = 10) -> None:
        for thread in self._threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in self._threads)


# -- the database --------------------------------------------------------------------------


def snapshot(client: redis.Redis) -> dict[str, tuple[str, Any, int]]:
    """Every key with its type, full value and absolute expiry: equal snapshots, equal database."""
    found: dict[str, tuple[str, Any, int]] = {}
    for raw_key in client.scan_iter("*"):
        key = str(raw_key)
        kind = str(client.type(key))
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(client.smembers(key))
        else:
            value = kind
        found[key] = (kind, value, client.pexpiretime(key))
    return found


def keys_without_ttl(client: redis.Redis) -> list[str]:
    return sorted(key for key in client.scan_iter("*") if client.pttl(key) == -1)
