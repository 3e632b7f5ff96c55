"""The Slack Web API client every part of the project uses, with Slack's retry advice built in."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)


def make_client(token: str, base_url: str, timeout: int = 10) -> WebClient:
    """slack-sdk retries nothing by default; 429s honour Retry-After, 5xx back off."""
    client = WebClient(token=token, base_url=base_url, timeout=timeout)
    client.retry_handlers.extend([
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ])
    return client


def make_lookup_client(client: WebClient, timeout: int = 2) -> WebClient:
    """For lookups made before an ack (group membership): short, and never waiting out a
    Retry-After, so Slack's 3 s budget holds even when Slack is slow."""
    return WebClient(token=client.token, base_url=client.base_url, timeout=timeout)
