"""What the listeners need, gathered once by the composition root."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from slack_sdk import WebClient

from slack_approvals.state.closing import Closer, DecisionListener
from slack_approvals.state.store import ApprovalStore

from .client import make_lookup_client
from .groups import GroupResolver
from .launcher import Launcher
from .messenger import Messenger


@dataclass
class BotDeps:
    store: ApprovalStore
    messenger: Messenger
    groups: GroupResolver
    launcher: Launcher | None = None
    # Called after every final decision, e.g. to emit a Prefect event; must not raise.
    on_decision: DecisionListener | None = None
    # Slack calls that follow an ack (message edits, ephemerals, modals) run here, so the ack
    # leaves as soon as the vote is in Redis; shut down with wait=True to finish them on stop.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="slack-followup"))
    # For calls made before the ack (views.open): short, never waiting out a Retry-After.
    quick_client: WebClient | None = None
    # The one path for closing without a vote and showing any decision (state.closing).
    closer: Closer = field(init=False)

    def __post_init__(self) -> None:
        self.closer = Closer(self.store, self.messenger, on_decision=self.on_decision)
        if self.quick_client is None:
            self.quick_client = make_lookup_client(self.messenger.client)
