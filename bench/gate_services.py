"""Installs the clients the flows' gates use, pointed at the benchmark's Redis and sandbox."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from slack_approvals.bot.client import make_client
from slack_approvals.bot.messenger import Messenger
from slack_approvals.flows.services import FlowConfig, Services, services_installed
from slack_approvals.state.connection import connect, connect_async
from slack_approvals.state.store import ApprovalStore, AsyncApprovalStore

from .clicks import APPROVER, CHANNEL, REQUESTER
from .services import BOT_TOKEN

# Never contacted when nothing is posted (waiting-only benchmarks).
UNUSED_API_URL = "http://127.0.0.1:9/api/"


@contextlib.contextmanager
def gate_services(redis_url: str, api_url: str = UNUSED_API_URL,
                  wait_slice_seconds: float = 10.0) -> Iterator[None]:
    """What the composition root installs from settings, built from explicit URLs instead."""

    def build() -> Services:
        store = ApprovalStore(connect(redis_url))
        return Services(store, Messenger(make_client(BOT_TOKEN, api_url), store),
                        lambda: AsyncApprovalStore(connect_async(redis_url)))

    config = FlowConfig(channel=CHANNEL, approvers=(APPROVER,), requester=REQUESTER,
                        wait_slice_seconds=wait_slice_seconds)
    with services_installed(build, config):
        yield
