"""The Slack Web API client every part of the project uses, with Slack's retry advice built in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

# Told of each Web API call that failed (after its retries): the method and what was raised.
SlackErrorHook = Callable[[str, Exception], None]


class ReportingWebClient(WebClient):
    """A WebClient that tells `on_error` of every failed call. Every method of WebClient
    (chat_postMessage, views_open, ...) goes through `api_call`, so this sees them all."""

    def __init__(self, *args: Any, on_error: SlackErrorHook | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_error = on_error

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        try:
            return super().api_call(api_method, **kwargs)
        except Exception as e:
            if self.on_error is not None:
                self.on_error(api_method, e)
            raise


def make_client(token: str, base_url: str, timeout: int = 10,
                on_error: SlackErrorHook | None = None) -> WebClient:
    """slack-sdk retries nothing by default; 429s honour Retry-After, 5xx back off."""
    client = ReportingWebClient(token=token, base_url=base_url, timeout=timeout, on_error=on_error)
    client.retry_handlers.extend([
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ])
    return client


def make_lookup_client(client: WebClient, timeout: int = 2) -> WebClient:
    """For lookups made before an ack (group membership): short, and never waiting out a
    Retry-After, so Slack's 3 s budget holds even when Slack is slow."""
    return ReportingWebClient(token=client.token, base_url=client.base_url, timeout=timeout,
                              on_error=getattr(client, "on_error", None))
