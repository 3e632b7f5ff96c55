"""Builds blocking and asyncio Redis clients from one URL.

    redis://, rediss://, unix://                          a single server
    redis+sentinel://[:pw@]host:port[,host:port]/master[/db]   via Redis Sentinel
    redis+cluster://[:pw@]host:port[,host:port]            Redis Cluster (hash tags keep a
                                                           request's keys in one slot)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.backoff
import redis.cluster
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff

from .errors import RedisSetupError

Kind = Literal["single", "sentinel", "cluster"]

# No read timeout: redis-py's default (5 s) would cut every BLPOP that waits longer.
# Keepalive and health checks let a long BLPOP notice a dead server instead of hanging.
_COMMON: dict[str, Any] = {
    "decode_responses": True,
    "socket_timeout": None,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 30,
}


@dataclass(frozen=True)
class RedisTarget:
    kind: Kind
    url: str
    nodes: list[tuple[str, int]] = field(default_factory=list)
    master: str = ""
    db: int = 0
    password: str | None = None
    username: str | None = None
    tls: bool = False


def redacted(url: str) -> str:
    """The URL with any password replaced, for error messages and logs."""
    return re.sub(r"(://[^:@/]*:)[^@/]*@", r"\1***@", url)


def parse_redis_url(url: str) -> RedisTarget:
    """Validate a Redis URL up front so a typo fails at start, not on the first click."""
    if not url or not isinstance(url, str):
        raise RedisSetupError("REDIS_URL is empty")
    shown = redacted(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        if scheme != "unix" and not parts.hostname:
            raise RedisSetupError(f"REDIS_URL {shown!r} names no host")
        if scheme == "unix" and not parts.path:
            raise RedisSetupError(f"REDIS_URL {shown!r} names no socket path")
        try:
            _ = parts.port
        except ValueError as e:
            raise RedisSetupError(f"REDIS_URL {shown!r}: bad port") from e
        return RedisTarget(kind="single", url=url)
    if scheme not in ("redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"):
        raise RedisSetupError(
            f"REDIS_URL scheme {parts.scheme!r} is not one of redis, rediss, unix, "
            "redis+sentinel, redis+cluster"
        )
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    nodes = []
    for host_port in hosts.split(","):
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise RedisSetupError(f"REDIS_URL {shown!r}: {host_port!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    kind: Kind = "sentinel" if scheme.endswith("sentinel") else "cluster"
    master, db = "", 0
    if kind == "sentinel":
        if not path:
            raise RedisSetupError(f"REDIS_URL {shown!r}: name the master, e.g. /mymaster")
        master = path[0]
        if len(path) > 1:
            if not path[1].isdigit():
                raise RedisSetupError(f"REDIS_URL {shown!r}: database must be a number")
            db = int(path[1])
    return RedisTarget(
        kind=kind, url=url, nodes=nodes, master=master, db=db,
        password=unquote(password) or None, username=unquote(username) or None,
        tls=scheme.startswith("rediss"),
    )


# The bot answers a click within Slack's 3 s and a health check within its own few seconds, so
# a Redis that stops answering (frozen, partitioned) must fail a command well inside that.
# Every command here is a key read, a pipeline or a short script, far below this.
COMMAND_TIMEOUT_SECONDS = 2.0
# A blocking read waits up to the plans' longest wait (an hour) and then some.
WAIT_SOCKET_TIMEOUT_SECONDS = 3600 + 30


def connect(url: str, *, socket_timeout: float | None = COMMAND_TIMEOUT_SECONDS) -> Any:
    """A blocking client for `url` (the bot and the CLI), whose every call gives up after
    `socket_timeout`; blocking waits get a client of their own (`connect_waiter`).

    Nothing is retried: a script whose reply timed out may still have run (or run when a
    frozen server wakes), and sending it again would turn a recorded vote into "you have
    already voted". The caller says "try again" instead, and a new connection is made then."""
    target = parse_redis_url(url)
    auth: dict[str, Any] = {"password": target.password, "username": target.username}
    timeouts: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": COMMAND_TIMEOUT_SECONDS if socket_timeout else 5,
        "retry": redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    }
    common = {**_COMMON, **timeouts}
    if target.kind == "single":
        return redis.Redis.from_url(url, **common)
    if target.kind == "cluster":
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in target.nodes]
        return redis.cluster.RedisCluster(startup_nodes=nodes, ssl=target.tls, **auth,
                                          decode_responses=True, **timeouts)
    sentinel = redis.sentinel.Sentinel(
        target.nodes, socket_connect_timeout=timeouts["socket_connect_timeout"],
        sentinel_kwargs={"password": target.password, "socket_timeout": socket_timeout})
    return sentinel.master_for(target.master, db=target.db, ssl=target.tls, **auth, **common)


def connect_waiter(url: str) -> Any:
    """The blocking client for `store.wait` (BLPOP), whose socket outlasts the longest wait."""
    return connect(url, socket_timeout=WAIT_SOCKET_TIMEOUT_SECONDS)


# Redis is away for now (killed and restarting, loading its AOF, failing over to a replica),
# not refusing what we asked: worth waiting out. BusyLoadingError and Sentinel's
# MasterNotFoundError are ConnectionErrors; a demoted master answers READONLY until the
# client reconnects to the new one.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError,
    redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError,
)


def async_retry() -> redis.asyncio.retry.Retry:
    """Rides out a blip of a second or two (a failover, a restart); a longer outage surfaces
    as a ConnectionError for the caller to wait out on its own terms.

    `from_url` gives no retries at all (Retry(NoBackoff, 0)). A resent command records
    nothing twice: every write is a Lua script on ids chosen before it runs (create finds the
    request it made, decide refuses a second vote by the same user, close leaves a closed
    request alone), and the waiter's wake-up token is a hint that a second copy only repeats."""
    return redis.asyncio.retry.Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 3)


def connect_async(url: str) -> Any:
    """An asyncio client for `url`, with `async_retry()`; one per event loop."""
    target = parse_redis_url(url)
    auth: dict[str, Any] = {"password": target.password, "username": target.username}
    if target.kind == "single":
        return redis.asyncio.Redis.from_url(url, retry=async_retry(), **_COMMON)
    if target.kind == "cluster":
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes]
        return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, ssl=target.tls, **auth,
                                                  decode_responses=True, socket_timeout=None,
                                                  retry=async_retry())
    sentinel = redis.asyncio.sentinel.Sentinel(target.nodes, socket_connect_timeout=5,
                                               sentinel_kwargs={"password": target.password})
    return sentinel.master_for(target.master, db=target.db, ssl=target.tls, **auth,
                               retry=async_retry(), **_COMMON)
