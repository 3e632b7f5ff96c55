"""REDIS_URL parsing, and a full round trip through Redis Cluster and Redis Sentinel."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import redis.cluster

from slack_approvals.state import (
    ApprovalStore,
    AsyncApprovalStore,
    DecideStatus,
    RedisSetupError,
    Status,
    connect,
    connect_async,
    parse_redis_url,
)
from tests.conftest import RedisServer, free_port, start_redis_server

from .support import FRANK, MAYA, BlpopSpy, Held, blocked_in_blpop, spec

# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "nodes", "master", "db", "tls"),
    [
        ("redis://localhost:6379/0", "single", [], "", 0, False),
        ("redis://:secret@redis.internal/3", "single", [], "", 0, False),
        ("rediss://user:pw@redis.example.com:6380", "single", [], "", 0, False),
        ("unix:///run/redis/redis.sock?db=2", "single", [], "", 0, False),
        ("redis+sentinel://s1:26379,s2:26380/mymaster/2", "sentinel",
         [("s1", 26379), ("s2", 26380)], "mymaster", 2, False),
        ("redis+sentinel://s1:26379/mymaster", "sentinel", [("s1", 26379)], "mymaster", 0, False),
        ("rediss+sentinel://s1:26379/main", "sentinel", [("s1", 26379)], "main", 0, True),
        ("redis+cluster://n1:7000,n2:7001,[::1]:7002", "cluster",
         [("n1", 7000), ("n2", 7001), ("::1", 7002)], "", 0, False),
    ],
)
def test_good_urls_are_parsed(url: str, kind: str, nodes: list[tuple[str, int]], master: str,
                              db: int, tls: bool) -> None:
    target = parse_redis_url(url)
    assert (target.kind, target.nodes, target.master, target.db, target.tls, target.url) == \
        (kind, nodes, master, db, tls, url)


def test_credentials_are_unquoted() -> None:
    target = parse_redis_url("redis+cluster://app:p%40ss@n1:7000")
    assert (target.username, target.password) == ("app", "p@ss")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "REDIS_URL is empty"),
        ("http://localhost:6379", "scheme 'http' is not one of"),
        ("localhost:6379", "is not one of"),
        ("redis://", "names no host"),
        ("redis://:6379/0", "names no host"),
        ("redis://localhost:port/0", "bad port"),
        ("redis://localhost:99999/0", "bad port"),
        ("unix://", "names no socket path"),
        ("redis+sentinel://s1:26379", "name the master"),
        ("redis+sentinel://s1:26379/", "name the master"),
        ("redis+sentinel://s1:26379/mymaster/zero", "database must be a number"),
        ("redis+sentinel://s1/mymaster", "'s1' is not host:port"),
        ("redis+cluster://n1:7000,n2", "'n2' is not host:port"),
        ("redis+cluster://n1:abc", "'n1:abc' is not host:port"),
        ("redis+cluster://", "'' is not host:port"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(RedisSetupError, match=message.replace("(", r"\(")):
        parse_redis_url(url)
    with pytest.raises(RedisSetupError):
        connect(url)


def test_single_server_round_trip(redis_server: RedisServer) -> None:
    with redis_server.client() as admin:
        admin.flushall()
    client = connect(redis_server.url)
    try:
        store = ApprovalStore(client)
        request = store.create(spec(quorum=1))
        assert store.decide(request.id, MAYA, "approve").status is DecideStatus.APPROVED
    finally:
        client.close()


# -- Redis Cluster and Sentinel --------------------------------------------------------------


def _wait_until(check: object, what: str, timeout: float = 15) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.05)


def _round_trip(url: str) -> None:
    """The gate's life on one URL: create, wait while two approvers click, read the audit."""
    client = connect(url)
    try:
        store = ApprovalStore(client)
        request = store.create(spec(), "cluster-gate")
        assert store.create(spec(), "cluster-gate").id == request.id
        assert store.attach_message(request.id, "C01APPROVALS", "1.2")
        assert store.wait(request.id, 0.1) is None
        assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
        assert [r.id for r in store.pending(FRANK)] == [request.id]
        assert store.decide(request.id, FRANK, "approve").status is DecideStatus.APPROVED
        decision = store.wait(request.id, 5)
        assert decision is not None and decision.approved
        assert [r.id for r in store.recent(MAYA)] == [request.id]
        assert [e.event for e in store.audit(request.id)] == \
            ["created", "posted", "vote", "vote", "approved"]
        assert store.pending() == [] and store.expire_due() == []
    finally:
        client.close()

    admin = connect(url)
    # CLIENT LIST of every server that may hold the waiter: each node of a cluster, or the master.
    servers = ([node.redis_connection for node in admin.get_nodes()]
               if isinstance(admin, redis.cluster.RedisCluster) else [admin])

    async def waiting_gate() -> Status:
        spy = BlpopSpy(connect_async(url))
        store = AsyncApprovalStore(spy)
        try:
            request = await store.create(spec(quorum=1))
            held = Held(spy.sent, 1, lambda: blocked_in_blpop(*servers))
            waiter = asyncio.create_task(store.wait(request.id, 5))
            await held.wait_async(lambda: int(not waiter.done()))
            await store.decide(request.id, FRANK, "reject", reason="not today")
            decision = await asyncio.wait_for(waiter, 2)
            assert decision is not None
            return decision.status
        finally:
            await store.aclose()

    try:
        assert asyncio.run(waiting_gate()) is Status.REJECTED
    finally:
        admin.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """Three master nodes with all 16384 slots; yields a redis+cluster:// URL."""
    cli = shutil.which("redis-cli")
    server = shutil.which("redis-server")
    if cli is None or server is None:
        pytest.skip("Redis Cluster needs redis-server and redis-cli on PATH")
    processes: list[subprocess.Popen[bytes]] = []
    ports = [free_port() for _ in range(3)]
    try:
        for port in ports:
            folder = tmp_path / str(port)
            folder.mkdir()
            processes.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-port", str(free_port()), "--save", "", "--appendonly", "no",
                 "--logfile", str(folder / "server.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            _wait_until(lambda p=port: redis.Redis(port=p).ping(), f"node {port} answers")
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=30)
        for port in ports:
            _wait_until(lambda p=port: redis.Redis(port=p, decode_responses=True)
                        .cluster("info").get("cluster_state") == "ok",
                        f"node {port} sees the cluster ok")
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports[:2])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


@pytest.mark.slow
@pytest.mark.real_redis
def test_cluster_round_trip(cluster: str) -> None:
    _round_trip(cluster)
    # Keys spread over slots, yet the keys of each request share one.
    nodes = connect(cluster)
    try:
        keys = nodes.keys(target_nodes=redis.cluster.RedisCluster.ALL_NODES)
        by_tag: dict[str, set[int]] = {}
        for key in keys:
            if "{" in key:
                tag = key[key.index("{") + 1:key.index("}")]
                by_tag.setdefault(tag, set()).add(nodes.keyslot(key))
        assert len(by_tag) == 2 and all(len(slots) == 1 for slots in by_tag.values())
        assert len({nodes.keyslot(key) for key in keys}) >= 3
    finally:
        nodes.close()
    _scheduled_actions(cluster)


def _scheduled_actions(url: str) -> None:
    """The sweeper's bulk path on many requests spread over the nodes: scripts of many
    requests (fire, settle) run on a cluster client too, and one that fails spares the rest."""
    client = connect(url)
    try:
        store = ApprovalStore(client)
        reminded = [store.create(spec(remind_every="PT1S", remind_limit=2)) for _ in range(6)]
        tiered = [store.create(spec(escalate=[{"after": "PT0.05S", "to": ["U03LI"],
                                               "quorum": 1}])) for _ in range(3)]
        store.decide(tiered[0].id, MAYA, "approve")
        store.client.hset(store.plans.keys.state(reminded[0].id), "remind_every", "soon")
        _wait_until(lambda: len(store.claim("remind", lease=timedelta(0))) == 6, "all due")
        fired = store.fire_many("remind", store.read_specs([r.id for r in reminded]))
        assert sorted(i for i, f in fired.items() if f.fired) == sorted(r.id for r in reminded[1:])
        assert fired[reminded[0].id].error is not None
        closed = store.settle_many([t.id for t in tiered])
        assert [r.id for r in closed] == [tiered[0].id]
        specs = store.read_specs([t.id for t in tiered[1:]])
        assert all(f.fired for f in store.fire_many("escalate", specs).values())
    finally:
        client.close()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[str]:
    """A master of its own watched by one Sentinel; yields a redis+sentinel:// URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("Sentinel needs redis-server on PATH")
    master = start_redis_server(tmp_path / "master")
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor approvals 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds approvals 5000\n"
    )
    process = subprocess.Popen([binary, str(config), "--sentinel"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until(lambda: redis.Redis(port=port).sentinel_get_master_addr_by_name("approvals"),
                    "sentinel knows the master")
        yield f"redis+sentinel://127.0.0.1:{port}/approvals/0"
    finally:
        process.terminate()
        process.wait(10)
        master.stop()


@pytest.mark.slow
@pytest.mark.real_redis
def test_sentinel_round_trip(sentinel: str) -> None:
    _round_trip(sentinel)
