"""App Home and `/approvals list`: what waits for a user's decision, and their recent ones."""

from __future__ import annotations

from slack_approvals.state.models import ApprovalRequest

from .blocks import home_view
from .deps import BotDeps


def decidable_by(deps: BotDeps, user: str) -> list[ApprovalRequest]:
    """Pending requests naming `user` (directly or by group) that they could vote on now.

    Requests open to anyone are left out: they are decided where they were posted, and
    listing them to everyone would show a private channel's request outside it."""
    pending_all = [r for r in deps.store.pending(limit=200) if not r.spec.open_to_anyone]
    candidate_groups = {g for r in pending_all for g in r.spec.approver_groups}
    groups = frozenset(deps.groups.groups_of(user, candidate_groups))
    return [r for r in pending_all if r.may_decide(user, groups)]


def publish_home(deps: BotDeps, user: str, notice: str | None = None) -> None:
    view = home_view(user, decidable_by(deps, user), deps.store.recent(user, limit=20),
                     notice=notice)
    deps.messenger.client.views_publish(user_id=user, view=view)
