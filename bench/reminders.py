"""The sweeper's cost with many pending requests and many reminders due at once.

N plain pending requests (no reminder) and M requests whose first reminder is due, on a private
redis-server and the sandbox (in its own process) as Slack. One sweep before anything is due
shows what the pending requests cost an idle sweep. Then M reminders fall due twice in the
same run: once sent as the sweeper sent them before (each request on its own: four Redis round
trips, and conversations.open before every DM), once as it sends them now (Redis in bulk per
claim, a user's DM channel opened once). Redis commands are the server's own count (INFO
total_commands_processed); Slack calls are counted at the bot's WebClient.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from slack_sdk import WebClient

from slack_approvals.bot.client import make_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.nudges import CLAIM_LIMIT, REMIND, SEND_WORKERS, Mapper, Nudger
from slack_approvals.bot.sweeper import Sweeper
from slack_approvals.state.models import ApprovalRequest, RequestSpec, ms_to_datetime
from slack_approvals.state.store import ApprovalStore

from .clicks import APPROVER, CHANNEL, REQUESTER
from .common import Mode, Result, finish, machine, new_figure, save_figure
from .pipelined import PipelinedRunner
from .services import BOT_TOKEN, RedisServer, SandboxProcess

NAME = "reminders"
TITLE = "Sweeper: N pending requests, M reminders due at once"
EVERY = timedelta(seconds=1)
# The default APPROVALS_SWEEP_SECONDS: the issue asks each reminder within one sweep interval.
TARGET_SWEEP_SECONDS = 5.0

SIZES: dict[Mode, dict[str, Any]] = {
    "full": {"pending": 10_000, "due": 1_000},
    "quick": {"pending": 2_000, "due": 200},
    "tiny": {"pending": 100, "due": 10},
}


class CountingClient(WebClient):
    """Counts the Web API calls the bot makes and the time they take."""

    calls = 0
    seconds = 0.0

    def api_call(self, api_method: str, **kwargs: Any) -> Any:  # type: ignore[override]
        CountingClient.calls += 1
        started = time.perf_counter()
        try:
            return super().api_call(api_method, **kwargs)
        finally:
            CountingClient.seconds += time.perf_counter() - started


def commands(store: ApprovalStore) -> int:
    """Commands the server processed so far, less the INFO call that reads it."""
    return int(store.client.info("stats")["total_commands_processed"])


def spec(n: int, remind: bool) -> RequestSpec:
    return RequestSpec(title=f"Bench request {n}", channel=CHANNEL, approvers=[APPROVER],
                       requester=REQUESTER, timeout=timedelta(days=1),
                       remind_every=EVERY if remind else None, remind_limit=1)


class OneByOneMessenger(Messenger):
    """The messenger as it was: every DM opens its channel again (conversations.open)."""

    def direct_message(self, user: str, message: dict[str, Any]) -> tuple[str, str]:
        opened = self.client.conversations_open(users=user)
        return self.post_message(str(opened["channel"]["id"]), message)


class OneByOneNudger(Nudger):
    """The sweep as it was, for the before/after comparison in one run: each claimed request
    on its own (read, fire script, reschedule, read back), in the 8 senders' threads."""

    def _fire(self, kind: str, request_ids: list[str], send: Mapper) -> int:
        def one(request_id: str) -> int:
            request = self.store.get(request_id)  # its quiet hours were judged on this read
            hours = request.spec.business_hours
            if hours is not None and not hours.is_open(self.clock()):
                self.store.defer(kind, request_id, hours.next_open(self.clock()))
                return 0
            fired = self.store.fire(kind, request_id)
            return self._tell_logged(kind, fired) if fired.fired else 0

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return sum(pool.map(one, request_ids))


@dataclass
class Burst:
    """One sweep sending every due reminder: its time, Redis commands and Slack calls."""

    seconds: float
    commands: int
    slack_calls: int
    slack_seconds: float
    sent: list[int]


def burst(store: ApprovalStore, runner: PipelinedRunner, messenger: Messenger, n: int,
          sweep: Callable[[], object]) -> Burst:
    """Create and post `n` requests whose first reminder falls due at once, wait until it
    has, then time one `sweep`."""
    due: list[ApprovalRequest] = runner.run([store.plans.create(spec(i, remind=True), None)
                                             for i in range(n)])
    due = [messenger.post(request) for request in due]
    last_due = max(request.created_at for request in due) + EVERY
    while ms_to_datetime(int(store.client.time()[0]) * 1000) <= last_due:
        time.sleep(0.05)
    CountingClient.calls, CountingClient.seconds = 0, 0.0
    before, timer = commands(store), time.perf_counter()
    sweep()
    seconds, used = time.perf_counter() - timer, commands(store) - before - 1
    sent = [r.reminders_sent for r in runner.run([store.plans.get(r.id) for r in due])]
    return Burst(seconds, used, CountingClient.calls, CountingClient.seconds, sent)


def run(mode: Mode, results_dir: Path) -> Result:
    params = dict(SIZES[mode])
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    started = time.perf_counter()
    n_due = params["due"]
    with RedisServer() as redis_server, SandboxProcess() as sandbox:
        store = ApprovalStore(redis_server.client())
        runner = PipelinedRunner(store.client)
        runner.run([store.plans.create(spec(n, remind=False), None)
                    for n in range(params["pending"])])
        base = make_client(BOT_TOKEN, sandbox.api_url)
        client = CountingClient(token=BOT_TOKEN, base_url=base.base_url,
                                retry_handlers=base.retry_handlers)
        messenger = Messenger(client, store)
        deps = BotDeps(store=store, messenger=messenger, groups=GroupResolver(client))
        sweeper = Sweeper(deps, 60)

        before, timer = commands(store), time.perf_counter()
        sweeper.sweep_once()
        idle_s, idle_commands = time.perf_counter() - timer, commands(store) - before - 1

        # The same burst twice on one server and one sandbox: first as the sweeper sent it
        # before (one request at a time), then as it does now. The second meets a sandbox
        # holding the first burst's messages too, so the comparison favours "before".
        old_messenger = OneByOneMessenger(client, store)
        old = OneByOneNudger(store, old_messenger, deps.groups, deps.closer)
        was = burst(store, runner, old_messenger, n_due, lambda: old.run_due(REMIND))
        now = burst(store, runner, messenger, n_due, lambda: sweeper.nudger.run_due(REMIND))
        deps.background.shutdown(wait=True)

    result.data.update({"idle_s": idle_s, "idle_commands": idle_commands,
                        "before": asdict(was), "after": asdict(now)})
    result.add(f"idle sweep, {params['pending']:,} pending", idle_s * 1000, "ms",
               detail=f"{idle_commands} Redis commands: nothing scans the pending requests")
    for label, b in (("before", was), ("now", now)):
        result.add(f"{label}: sweep sending {n_due:,} reminders", b.seconds, "s",
                   f"< {TARGET_SWEEP_SECONDS:g} s (one sweep interval)",
                   b.seconds < TARGET_SWEEP_SECONDS,
                   detail=f"{b.seconds / n_due * 1000:.1f} ms a reminder; its Slack calls took "
                          f"{b.slack_seconds:.1f} s summed over {SEND_WORKERS} senders")
        result.add(f"{label}: Redis commands per reminder", b.commands / n_due, "",
                   detail="server count, incl. inside Lua; " + (
                       "round trips per reminder: read, fire, reschedule, read back"
                       if label == "before" else
                       f"round trips per {CLAIM_LIMIT}: claim, read specs, fire, reschedule"))
        result.add(f"{label}: Slack calls per reminder", b.slack_calls / n_due, "",
                   detail="thread reply, conversations.open, DM" if label == "before" else
                   "thread reply, DM (a user's DM channel is opened once)")
        result.add(f"{label}: reminders sent exactly once", sum(1 for n in b.sent if n == 1), "",
                   f"= {n_due}", all(n == 1 for n in b.sent))
    result.notes.append("Both bursts DM one approver each; with many approvers a sweep opens "
                        "each one's DM channel once (one more call per new user).")
    result.notes.append("The sandbox has no rate limits; real Slack allows about one message a "
                        "second per channel, so 1,000 thread replies in one channel take minutes "
                        "there (DMs go to separate channels).")
    return finish(result, results_dir, started, plot)


def plot(result: Result, results_dir: Path) -> None:
    data = result.data
    fig, (ax,) = new_figure(width=6.0, height=3.2)
    labels = [f"idle sweep\n{result.params['pending']:,} pending",
              "sending sweep,\none request at a time (before)", "sending sweep,\nbatched (now)"]
    values = [data["idle_s"], data["before"]["seconds"], data["after"]["seconds"]]
    ax.barh(labels, values, color=["#4C72B0", "#C44E52", "#DD8452"])
    for i, value in enumerate(values):
        ax.annotate(f"{value:.3g} s", (value, i), textcoords="offset points", xytext=(4, -3),
                    fontsize=8)
    ax.axvline(TARGET_SWEEP_SECONDS, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("seconds (dotted: one sweep interval)")
    ax.set_title(f"{result.params['pending']:,} pending + {result.params['due']:,} due reminders",
                 fontsize=9)
    save_figure(fig, result, results_dir, "one sweep before and after the reminders fall due")
