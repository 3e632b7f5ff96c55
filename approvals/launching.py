"""Flow launching and decision events for the bot; filled in by the flows layer."""

from __future__ import annotations

from bot.launcher import Launcher
from state.models import ApprovalRequest

from .settings import Settings


def default_launcher(settings: Settings) -> Launcher | None:
    return None


def emit_decision_event(request: ApprovalRequest) -> None:
    return None
