"""Shared helpers of the state tests: request specs, whole-database snapshots, TTL checks."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import redis

from slack_approvals.state import ApprovalRequest, ApprovalStore, RequestSpec

REQUESTER = "U06REQ"
MAYA = "U01MAYA"
FRANK = "U02FRANK"
LI = "U03LI"
OUTSIDER = "U09OUT"
OPS = "S01OPS"
SEC = "S02SEC"
CHANNEL = "C01APPROVALS"
TINY = timedelta(milliseconds=5)


def spec(**overrides: Any) -> RequestSpec:
    """A valid spec: two named approvers, both needed, asked for by REQUESTER."""
    fields: dict[str, Any] = {"title": "Deploy api v2", "channel": CHANNEL,
                              "approvers": [MAYA, FRANK], "quorum": 2, "requester": REQUESTER}
    fields.update(overrides)
    return RequestSpec.model_validate(fields)


def create_expired(store: ApprovalStore, **overrides: Any) -> ApprovalRequest:
    """A request whose deadline has passed by the server clock but which nobody swept."""
    request = store.create(spec(timeout=TINY, **overrides))
    time.sleep(0.02)
    return request


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
