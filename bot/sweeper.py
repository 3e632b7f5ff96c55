"""Closes overdue requests with their timeout outcome, through the one close path, sends the
reminders and escalation announcements that are due (bot/nudges.py), and edits again the
messages whose last edit failed. Any number of bots may sweep one Redis: each action is
claimed and fired once. The mailer, when there is one, and the resumer of suspended flow runs
(state/resuming.py) each run beside it on a thread of their own: a slow mail server or Prefect
server holds back no deadline, reminder or escalation."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError

from slack_approvals.state.closing import resume_due

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
        # Deadlines and settled tiers close requests here without calling Prefect: the close
        # makes the resume due in Redis and the resumer thread fires it at its next pass.
        self.closer = dataclasses.replace(deps.closer, resumer=None)
        # A reminder post Slack did not take goes out again at the next sweep.
        self.nudger = Nudger(deps.store, deps.messenger, deps.groups, self.closer,
                             resend_after=timedelta(seconds=interval))
        if clock is not None:
            self.nudger.clock = clock
        self._stop = threading.Event()
        self._thread = self._every("sweep", self.sweep_once, "approvals-sweeper")
        # Mail on a thread of its own: an unreachable mail server holds back no deadline,
        # reminder or resume (daemon: a mail server that does not answer must not keep the
        # process alive).
        if mailer is not None:
            mailer.stopping = self._stop
        self._mail_thread = (self._every("mail", mailer.run_due, "approvals-mailer")
                             if mailer is not None else None)
        self._resume_thread = (self._every("resume pass", self.resume_once, "approvals-resumer")
                               if deps.closer.resumer is not None else None)

    def sweep_once(self) -> int:
        """Closes what is overdue (returns how many), then re-edits stale messages."""
        # Each phase on its own: one that fails (a bad record, Redis restarting) is logged
        # and the phases after it still run.
        closed = self._phase("deadlines", lambda: len(self.closer.expire_due())) or 0
        # Tiers first, so a reminder in the same sweep names the people they added.
        self._phase("escalations", lambda: self.nudger.run_due(ESCALATE))
        self._phase("reminders", lambda: self.nudger.run_due(REMIND))
        self._phase("message edits", self.deps.messenger.refresh_stale)
        return closed

    def resume_once(self) -> dict[str, str]:
        """Suspended flow runs owed a resume (or watched while their request waits): one
        time-boxed pass, on the resumer thread."""
        return resume_due(self.deps.closer)

    @staticmethod
    def _phase(name: str, run: Callable[[], Any]) -> Any:
        try:
            return run()
        except RedisError as e:
            log.warning("sweep: %s failed: %s", name, e)
        except Exception:
            log.exception("sweep: %s failed", name)
        return None

    def _every(self, name: str, work: Callable[[], object], thread: str) -> threading.Thread:
        """A daemon thread doing `work` every interval until stopped. A failure (Redis
        restarting, one bad request) is logged by `_phase` and the next round tries again."""
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self._phase(name, work)
        return threading.Thread(target=loop, name=thread, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if self._mail_thread is not None:
            self._mail_thread.start()
        if self._resume_thread is not None:
            self._resume_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        # A send under way ends at its SMTP timeout; the lease brings back what it left.
        if self._mail_thread is not None and self._mail_thread.is_alive():
            self._mail_thread.join(timeout=10)
        # A pass ends within its time box plus one Prefect call; the lease brings back the rest.
        if self._resume_thread is not None and self._resume_thread.is_alive():
            self._resume_thread.join(timeout=10)
