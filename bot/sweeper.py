"""Closes overdue requests with their timeout outcome, through the one close path, sends the
reminders and escalation announcements that are due (bot/nudges.py), and edits again the
messages whose last edit failed. Any number of bots may sweep one Redis: each action is
claimed and fired once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from slack_approvals.state.resuming import resume_due

from .deps import BotDeps
from .mailer import Mailer
from .nudges import ESCALATE, REMIND, Nudger

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, deps: BotDeps, interval: float,
                 clock: Callable[[], datetime] | None = None, mailer: Mailer | None = None) -> None:
        self.deps = deps
        # Sends the mails to email approvers; None when no SMTP server is set up.
        self.mailer = mailer
        self.interval = interval
        # A reminder post Slack did not take goes out again at the next sweep.
        self.nudger = Nudger(deps.store, deps.messenger, deps.groups, deps.closer,
                             resend_after=timedelta(seconds=interval))
        if clock is not None:
            self.nudger.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="approvals-sweeper", daemon=True)

    def sweep_once(self) -> int:
        """Closes what is overdue (returns how many), then re-edits stale messages."""
        closed = len(self.deps.closer.expire_due())
        # Tiers first, so a reminder in the same sweep names the people they added.
        self.nudger.run_due(ESCALATE)
        self.nudger.run_due(REMIND)
        self.deps.messenger.refresh_stale()
        # Suspended flow runs owed a resume (or watched while their request waits).
        resume_due(self.deps.closer)
        # Last: a slow mail server must not hold back deadlines and Slack edits.
        if self.mailer is not None:
            self.mailer.run_due()
        return closed

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except RedisError as e:
                # Redis may be restarting; the next sweep tries again.
                log.warning("sweep failed: %s", e)
            except Exception:
                # Whatever went wrong with one request must not stop every later sweep.
                log.exception("sweep failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
