"""The in-memory Slack workspace: the seeded directory plus one store per kind of mutable state."""

from __future__ import annotations

from slack_approvals.sandbox.changes import Changes
from slack_approvals.sandbox.clock import Clock, wall_clock
from slack_approvals.sandbox.directory import Directory
from slack_approvals.sandbox.ephemerals import Ephemerals
from slack_approvals.sandbox.ids import IdMint
from slack_approvals.sandbox.mails import Inbox
from slack_approvals.sandbox.messages import Messages
from slack_approvals.sandbox.notices import Notices
from slack_approvals.sandbox.seed import Seed, default_seed
from slack_approvals.sandbox.tokens import Tokens
from slack_approvals.sandbox.traffic import Traffic
from slack_approvals.sandbox.views import Views


class Workspace:
    """Owns one store per kind of state, all behind one shared lock.

    Every mutation bumps `version` and wakes waiters, which is what live page updates
    and `wait_for_change` hang off.
    """

    def __init__(
        self,
        seed: Seed | None = None,
        *,
        clock: Clock = wall_clock,
        id_seed: int | None = None,
    ) -> None:
        self.directory = Directory(seed or default_seed())
        self.clock = clock
        self.mint = IdMint(id_seed)
        self._changes = Changes()
        self.messages = Messages(self._changes, self.directory, self.mint, clock)
        self.ephemerals = Ephemerals(self._changes, self.directory, self.mint, clock)
        self.views = Views(self._changes, self.directory, self.mint, clock)
        self.tokens = Tokens(self._changes, self.mint, clock)
        self.traffic = Traffic(self._changes, clock)
        self.notices = Notices(self._changes, clock)
        self.inbox = Inbox(self._changes, clock)

    @property
    def version(self) -> int:
        return self._changes.version

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Blocks until the version moves past `since` or the timeout runs out."""
        return self._changes.wait_for_change(since, timeout)

    def reset(self) -> None:
        """Forgets every message, view, log entry and mail; the directory stays."""
        with self._changes.lock:
            self.messages.clear()
            self.ephemerals.clear()
            self.views.clear()
            self.tokens.clear()
            self.traffic.clear()
            self.notices.clear()
            self.inbox.clear()
            self._changes.restart_serials()
            self._changes.touch()

    def now(self) -> float:
        return self.clock()
