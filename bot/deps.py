"""What the listeners need, gathered once by the composition root."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from slack_sdk import WebClient

from slack_approvals.state.closing import Closer, DecisionListener
from slack_approvals.state.resuming import RunResumer
from slack_approvals.state.store import ApprovalStore

from .client import ReportingWebClient, make_lookup_client
from .groups import GroupResolver
from .launcher import Launcher
from .messenger import Messenger
from .metrics import BotMetrics


@dataclass
class BotDeps:
    store: ApprovalStore
    messenger: Messenger
    groups: GroupResolver
    launcher: Launcher | None = None
    # Called after every final decision, e.g. to emit a Prefect event; must not raise.
    on_decision: DecisionListener | None = None
    # Resumes flow runs suspended on a decided request (Prefect's, filled by the composition root).
    resumer: RunResumer | None = None
    # Slack calls that follow an ack (message edits, ephemerals, modals) run here, so the ack
    # leaves as soon as the vote is in Redis; shut down with wait=True to finish them on stop.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="slack-followup"))
    # For calls made before the ack (views.open): short, never waiting out a Retry-After.
    quick_client: WebClient | None = None
    # What the bot counts (bot/metrics.py); the composition root passes the registry it serves.
    metrics: BotMetrics = field(default_factory=lambda: BotMetrics(CollectorRegistry()))
    # The one path for closing without a vote and showing any decision (state.closing).
    closer: Closer = field(init=False)

    def __post_init__(self) -> None:
        # The store's Redis errors and the client's Slack errors are the bot's to count (a
        # client the composition root already gave a hook keeps it).
        self.store.on_redis_error = self.metrics.redis_error
        client = self.messenger.client
        if isinstance(client, ReportingWebClient) and client.on_error is None:
            client.on_error = self.metrics.slack_error
        self.closer = Closer(self.store, self.messenger,
                             on_decision=self.metrics.counting_decisions(self.on_decision),
                             resumer=(self.metrics.counting_resumes(self.resumer)
                                      if self.resumer is not None else None))
        if self.quick_client is None:
            self.quick_client = make_lookup_client(self.messenger.client)
