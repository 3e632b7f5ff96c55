"""What the listeners need, gathered once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from slack_approvals.state.models import ApprovalRequest
from slack_approvals.state.store import ApprovalStore

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
    on_decision: Callable[[ApprovalRequest], None] | None = None
    # Slack calls that follow an ack (message edits, ephemerals, modals) run here, so the ack
    # leaves as soon as the vote is in Redis; shut down with wait=True to finish them on stop.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="slack-followup"))
