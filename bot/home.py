"""App Home and `/approvals list`: what waits for a user's decision, and their recent ones."""

from __future__ import annotations

from slack_approvals.state.models import ApprovalRequest

from .blocks import home_view
from .deps import BotDeps

# More than App Home (15 cards) or `/approvals list` (10) show.
LIST_LENGTH = 50


def decidable_by(deps: BotDeps, user: str, limit: int = LIST_LENGTH) -> list[ApprovalRequest]:
    """Pending requests naming `user` (directly or by group) that they could vote on now,
    soonest deadline first, read from the user's and their groups' own indexes so that no
    number of other pending requests can push them out.

    Requests open to anyone are left out: they are decided where they were posted, and
    listing them to everyone would show a private channel's request outside it. A group
    Slack could not list just now is left out too (logged by the resolver)."""
    groups, _ = deps.groups.membership(user, deps.store.pending_groups())
    return deps.store.pending(user, groups, limit=limit, include_open=False)


def publish_home(deps: BotDeps, user: str, notice: str | None = None) -> None:
    view = home_view(user, decidable_by(deps, user), deps.store.recent(user, limit=20),
                     notice=notice)
    deps.messenger.client.views_publish(user_id=user, view=view)
