"""The resumer of suspended flow runs works on a thread of its own: a Prefect server that
hangs holds back no deadline (or reminder, or escalation) of the sweeper."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.sweeper import Sweeper
from slack_approvals.state.models import Status
from slack_approvals.state.resuming import ResumeOutcome
from tests.bot.fixtures import BotStack


class HangingResumer:
    """A Prefect server that takes every call and never answers until released."""

    server = "http://prefect.test:4200/api"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def resume(self, flow_run_id: str) -> ResumeOutcome:
        self.entered.set()
        self.release.wait(30)
        return ResumeOutcome.NOT_SUSPENDED

    def ended(self, flow_run_ids: Sequence[str]) -> dict[str, str]:
        self.entered.set()
        self.release.wait(30)
        return {}


def test_a_hanging_prefect_server_holds_back_no_deadline(bot: BotStack) -> None:
    resumer = HangingResumer()
    deps = BotDeps(store=bot.store, messenger=bot.deps.messenger, groups=bot.deps.groups,
                   resumer=resumer)
    waiting = bot.post()
    bot.store.suspend(waiting.id, "run-suspended", datetime.now(UTC) - timedelta(seconds=1),
                      resumer.server)
    sweeper = Sweeper(deps, 0.05)
    sweeper.start()
    try:
        bot.sandbox.wait_for(resumer.entered.is_set, what="the resumer to be stuck in Prefect")
        overdue = bot.post(timeout=timedelta(milliseconds=100))
        time.sleep(0.2)
        # Closed by the sweeper thread while the resumer thread is still stuck.
        bot.sandbox.wait_for(lambda: bot.store.get(overdue.id).status is Status.TIMED_OUT,
                             timeout=10, what="the deadline to be swept")
        assert not resumer.release.is_set()
        assert bot.store.get(waiting.id).status is Status.PENDING
    finally:
        resumer.release.set()
        sweeper.stop()
        deps.background.shutdown(wait=True)


def test_a_deadline_owed_a_resume_is_closed_without_calling_prefect(bot: BotStack) -> None:
    resumer = HangingResumer()
    deps = BotDeps(store=bot.store, messenger=bot.deps.messenger, groups=bot.deps.groups,
                   resumer=resumer)
    overdue = bot.post(timeout=timedelta(milliseconds=100))
    bot.store.suspend(overdue.id, "run-suspended", datetime.now(UTC) + timedelta(seconds=30),
                      resumer.server)
    time.sleep(0.2)
    sweeper = Sweeper(deps, 60)
    try:
        assert sweeper.sweep_once() == 1  # closed; the resume is left to the resumer thread
        assert not resumer.entered.is_set()
        found = bot.store.resume_state(overdue.id)
        assert found is not None and found.due is not None  # owed, on the schedule
    finally:
        resumer.release.set()
        deps.background.shutdown(wait=True)
