"""The Slack Web API client every part of the project uses, with Slack's retry advice built in."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

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


class UnreachedRetryHandler(ConnectionErrorRetryHandler):
    """Retries only a call that never reached Slack (connection refused, unknown host): a
    reset or a dropped answer may come after Slack acted on it."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        reason = error.reason if isinstance(error, URLError) else error
        return response is None and isinstance(reason, ConnectionRefusedError | socket.gaierror)


def make_post_once_client(client: WebClient) -> WebClient:
    """`client` for posts that must never go out twice (reminders, escalation notices: thread
    replies and DMs). It retries a 429 (Slack says it did not post) and a call that never
    reached Slack; a 5xx or a dropped connection may have posted, so it is left to the caller
    (bot/nudges.py sends again only what Slack surely did not take).

    The request's own message keeps `make_client`'s retries: a duplicate there is harmless (the
    store keeps the first ts it is told of, and any copy's buttons vote on the same request),
    while a post given up on a 5xx would fail the flow's gate."""
    # A copy, so it reports (and counts) its calls as `client` does; only the retries differ.
    poster = copy.copy(client)
    poster.retry_handlers = [RateLimitErrorRetryHandler(max_retry_count=3),
                             UnreachedRetryHandler(max_retry_count=2)]
    return poster


def make_lookup_client(client: WebClient, timeout: int = 2) -> WebClient:
    """For lookups made before an ack (group membership): short, and never waiting out a
    Retry-After, so Slack's 3 s budget holds even when Slack is slow."""
    return ReportingWebClient(token=client.token, base_url=client.base_url, timeout=timeout,
                              on_error=getattr(client, "on_error", None))
