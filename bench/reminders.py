"""The sweeper's cost with many pending requests and many reminders due at once.

N plain pending requests (no reminder) and M requests whose first reminder is due, on a private
redis-server and the sandbox (in its own process) as Slack. One sweep before anything is due
shows what the pending requests cost an idle sweep; one sweep after sends every due reminder
(a thread reply, conversations.open and a DM each). Redis commands are the server's own count
(INFO total_commands_processed); Slack calls are counted at the bot's WebClient.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from slack_sdk import WebClient

from slack_approvals.bot.client import make_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.nudges import SEND_WORKERS
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


def run(mode: Mode, results_dir: Path) -> Result:
    params = dict(SIZES[mode])
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    started = time.perf_counter()
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

        due: list[ApprovalRequest] = runner.run([store.plans.create(spec(n, remind=True), None)
                                                 for n in range(params["due"])])
        posting = time.perf_counter()
        due = [messenger.post(request) for request in due]
        post_s = time.perf_counter() - posting

        last_due = max(request.created_at for request in due) + EVERY
        while ms_to_datetime(int(store.client.time()[0]) * 1000) <= last_due:
            time.sleep(0.05)
        CountingClient.calls, CountingClient.seconds = 0, 0.0
        before, timer = commands(store), time.perf_counter()
        sweeper.sweep_once()
        sweep_s, sweep_commands = time.perf_counter() - timer, commands(store) - before - 1
        slack_calls, slack_s = CountingClient.calls, CountingClient.seconds
        sent = [r.reminders_sent for r in runner.run([store.plans.get(r.id) for r in due])]
        deps.background.shutdown(wait=True)

    n_due = params["due"]
    result.data.update({"idle_s": idle_s, "idle_commands": idle_commands, "sweep_s": sweep_s,
                        "sweep_commands": sweep_commands, "slack_calls": slack_calls,
                        "post_s": post_s, "slack_s": slack_s, "sent": sent})
    result.add(f"idle sweep, {params['pending']:,} pending", idle_s * 1000, "ms",
               detail=f"{idle_commands} Redis commands: nothing scans the pending requests")
    result.add(f"sweep sending {n_due:,} reminders", sweep_s, "s",
               f"< {TARGET_SWEEP_SECONDS:g} s (one sweep interval)", sweep_s < TARGET_SWEEP_SECONDS,
               detail=f"{sweep_s / n_due * 1000:.1f} ms a reminder; its Slack calls took "
                      f"{slack_s:.1f} s summed over {SEND_WORKERS} senders (the sandbox, one process)")
    result.add("Redis commands per reminder", sweep_commands / n_due, "",
               detail="server count, incl. inside Lua; round trips: read, fire, reschedule, read back")
    result.add("Slack calls per reminder", slack_calls / n_due, "",
               detail="thread reply, conversations.open, DM")
    result.add("reminders sent exactly once", sum(1 for n in sent if n == 1), "",
               f"= {n_due}", all(n == 1 for n in sent))
    result.notes.append(f"Posting the {n_due:,} request messages took {post_s:.1f} s beforehand.")
    result.notes.append("The sandbox has no rate limits; real Slack allows about one message a "
                        "second per channel, so 1,000 thread replies in one channel take minutes "
                        "there (DMs go to separate channels).")
    return finish(result, results_dir, started, plot)


def plot(result: Result, results_dir: Path) -> None:
    data = result.data
    fig, (ax,) = new_figure(width=6.0, height=3.2)
    labels = [f"idle sweep\n{result.params['pending']:,} pending", "sending sweep"]
    values = [data["idle_s"], data["sweep_s"]]
    ax.barh(labels, values, color=["#4C72B0", "#DD8452"])
    for i, value in enumerate(values):
        ax.annotate(f"{value:.3g} s", (value, i), textcoords="offset points", xytext=(4, -3),
                    fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_title(f"{result.params['pending']:,} pending + {result.params['due']:,} due reminders",
                 fontsize=9)
    save_figure(fig, result, results_dir, "one sweep before and after the reminders fall due")
