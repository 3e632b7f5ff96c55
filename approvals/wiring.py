"""Turns settings into connected parts: the Redis URL (private server if unset) and the stores."""

from __future__ import annotations

from typing import Any

from slack_approvals.state.connection import connect, connect_async, connect_waiter
from slack_approvals.state.private_server import ensure_private_server
from slack_approvals.state.store import ApprovalStore, AsyncApprovalStore

from .settings import Settings


def resolve_redis_url(settings: Settings) -> str:
    """REDIS_URL when set; otherwise the project folder's private server, started on demand."""
    if settings.redis_url:
        return settings.redis_url
    return ensure_private_server(settings.approvals_data_dir / "redis").url


def sync_store(settings: Settings, url: str | None = None) -> ApprovalStore:
    """Every call answers within a short socket timeout; `wait` blocks on a client of its own
    (it connects only when something waits, so the bot never opens it)."""
    url = url or resolve_redis_url(settings)
    client: Any = connect(url)
    return ApprovalStore(client, retention=settings.retention, waiter=connect_waiter(url))


def async_store(settings: Settings, url: str | None = None) -> AsyncApprovalStore:
    client: Any = connect_async(url or resolve_redis_url(settings))
    return AsyncApprovalStore(client, retention=settings.retention)
