"""`approvals demo`: the whole product on one machine, no Slack workspace needed.

Starts the private Redis, the sandbox (a local Slack), the bot in HTTP mode pointed at it, and
a scenario of real Prefect flows (a three-department review and a production deploy approval);
shows a live table of requests, then a summary and the audit trail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import Any

from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from slack_approvals.bot.ids import request_id_of_vote_block
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state.models import ApprovalRequest, Status
from slack_approvals.state.private_server import ensure_private_server, stop_private_server
from slack_approvals.state.store import ApprovalStore

from .demo_policy import EXPECTED_STATUS, POLICY, AutoClicker
from .runtime import BotRuntime, build_runtime
from .serving import ServerThread, free_port
from .settings import Settings

DEMO_BOT_TOKEN = "xoxb-demo-sandbox-token"
STATUS_STYLE = {Status.PENDING: "yellow", Status.APPROVED: "green", Status.REJECTED: "red",
                Status.TIMED_OUT: "magenta", Status.CANCELLED: "dim"}


@dataclass
class DemoStack:
    settings: Settings
    sandbox: SandboxServer
    runtime: BotRuntime
    store: ApprovalStore
    seen: dict[str, ApprovalRequest] = field(default_factory=dict)

    def posted_ids(self) -> list[str]:
        """Ids of the requests this run posted, read from the sandbox's log of chat.postMessage
        (the buttons' block ids), so a request decided within a second is not missed."""
        ids = []
        for call in self.sandbox.api_calls("chat.postMessage"):
            for block in call.args.get("blocks") or []:
                block_id = str(block.get("block_id", "")) if isinstance(block, dict) else ""
                request_id = request_id_of_vote_block(block_id)
                if request_id is not None:
                    ids.append(request_id)
        return ids

    def refresh(self) -> list[ApprovalRequest]:
        """Every request of this run, in the order they were created."""
        for request_id in self.posted_ids():
            self.seen[request_id] = self.store.get(request_id)
        return sorted(self.seen.values(), key=lambda r: r.created_at)


def requests_table(requests: list[ApprovalRequest]) -> Table:
    table = Table("request", "title", "channel", "votes", "state", "decided by", title="Requests")
    table.columns[0].no_wrap = True
    for r in requests:
        state = r.status.value.replace("_", " ")
        table.add_row(r.id, r.spec.title, r.spec.channel,
                      ", ".join(f"{v.user} {v.vote.value}" for v in r.votes) or "-",
                      f"[{STATUS_STYLE[r.status]}]{state}[/]",
                      (r.decision.decided_by or "-") if r.decision else "")
    return table


def audit_tables(stack: DemoStack) -> Group:
    tables = []
    for request in stack.refresh():
        table = Table("time (UTC)", "event", "user", "detail", title=f"Audit: {request.spec.title}")
        for event in stack.store.audit(request.id):
            detail = " ".join(x for x in (event.vote.value if event.vote else "", event.reason or "")
                              if x)
            table.add_row(f"{event.at:%H:%M:%S.%f}"[:-3], event.event, event.user or "-", detail)
        tables.append(table)
    return Group(*tables)


def check_policy(requests: list[ApprovalRequest]) -> list[str]:
    """Mismatches between what the scripted people did and what the store recorded."""
    problems = []
    channels = {r.spec.channel for r in requests}
    for channel in POLICY:
        if channel not in channels:
            problems.append(f"no request was posted to {channel}")
    for r in requests:
        act = POLICY.get(r.spec.channel)
        if act is None:
            continue
        expected = EXPECTED_STATUS[act.vote]
        if r.status.value != expected:
            problems.append(f"{r.spec.title} in {r.spec.channel}: {r.status.value}, expected {expected}")
        elif act.vote != "wait" and (r.decision is None or r.decision.decided_by != act.user):
            problems.append(f"{r.spec.title}: decided by the wrong person")
    return problems


Scenario = Callable[[DemoStack, timedelta], Coroutine[Any, Any, dict[str, Any]]]


def run_demo(settings: Settings, scenario: Scenario, *, auto: bool, port: int,
             decision_timeout: timedelta, console: Console | None = None) -> int:
    """0 when the scenario ran (and, with `auto`, every decision matched the policy), else 1.

    Each step registers how to stop what it started on one exit stack, so a normal end, an
    error, Ctrl+C and SIGTERM all stop everything in the reverse order it was started.
    """
    console = console or Console()
    unwind_on_sigterm()
    quiet_flow_logs()
    with ExitStack() as stack:
        redis_url = start_redis(stack, settings, console)
        start_prefect_server(stack, console)
        sandbox, link = start_sandbox(stack, port)
        bot_settings = demo_settings(settings, sandbox, redis_url, link)
        demo = start_bot(stack, bot_settings, sandbox, link, console)
        if auto:
            start_auto_clicker(stack, sandbox, console)
        run = start_scenario(scenario, demo, decision_timeout)
        follow_requests(demo, run.done, console)
        result = run.result()
        print_report(demo, result, console)
        if auto and not policy_held(demo, console):
            return 1
    return 0


def unwind_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl+C, so the private Redis and Prefect server are stopped too."""
    if threading.current_thread() is threading.main_thread():  # only there may handlers be set
        signal.signal(signal.SIGTERM, _interrupt)


def quiet_flow_logs() -> None:
    """Flow run logs would scroll the live table away; warnings and errors still show."""
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.WARNING)


def start_redis(stack: ExitStack, settings: Settings, console: Console) -> str:
    """The configured Redis if there is one, else the private server; a private server this
    run started is stopped at the end, one that was already running is left alone."""
    if settings.redis_url:
        return settings.redis_url
    folder = settings.approvals_data_dir / "redis"
    server = ensure_private_server(folder)
    if server.started_now:
        stack.callback(stop_private_server, folder)
    console.print(f"Redis: private server {server.url} ({server.binary})")
    return server.url


def start_prefect_server(stack: ExitStack, console: Console) -> None:
    """One temporary Prefect server for the scenario and for flows started from Slack, unless
    PREFECT_API_URL names one; left to themselves, each event loop thread would start its own."""
    if os.environ.get("PREFECT_API_URL"):
        return
    from prefect.server.api.server import SubprocessASGIServer  # Prefect loads only when needed

    server = SubprocessASGIServer()
    server.start(timeout=120)
    stack.callback(server.stop)
    os.environ["PREFECT_API_URL"] = server.api_url
    stack.callback(os.environ.pop, "PREFECT_API_URL", None)
    console.print(f"Prefect: temporary server {server.api_url}")


@dataclass(frozen=True)
class BotLink:
    """What the sandbox and the bot must agree on: where events go and how they are signed."""

    signing_secret: str
    port: int

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"


def start_sandbox(stack: ExitStack, port: int) -> tuple[SandboxServer, BotLink]:
    """The sandbox starts first: the bot needs its API address, it only needs the bot's."""
    link = BotLink(signing_secret=secrets.token_hex(16), port=free_port())
    sandbox = stack.enter_context(SandboxServer(
        signing_secret=link.signing_secret, bot_token=DEMO_BOT_TOKEN, port=port,
        request_url=link.events_url))
    return sandbox, link


def demo_settings(settings: Settings, sandbox: SandboxServer, redis_url: str, link: BotLink) -> Settings:
    """The user's settings, pointed at the sandbox and Redis, with a fast sweep so timeouts show."""
    return settings.model_copy(update={
        "slack_api_url": sandbox.api_url, "redis_url": redis_url,
        "slack_bot_token": _secret(DEMO_BOT_TOKEN), "slack_signing_secret": _secret(link.signing_secret),
        "approvals_sweep_seconds": 1.0,
    })


def start_bot(stack: ExitStack, settings: Settings, sandbox: SandboxServer, link: BotLink,
              console: Console) -> DemoStack:
    """The sandbox's address is printed only once the bot behind it answers."""
    from .launching import default_launcher, emit_decision_event

    # Flows run here, in process, whatever PREFECT_API_URL says: the demo owns its runs.
    launcher = default_launcher(settings, mode="in-process")
    runtime = build_runtime(settings, launcher=launcher, on_decision=emit_decision_event)
    bot = stack.enter_context(ServerThread(runtime.web, port=link.port))
    runtime.sweeper.start()
    stack.callback(runtime.deps.background.shutdown, wait=True)
    stack.callback(runtime.sweeper.stop)
    console.print(f"Sandbox Slack: [bold]{sandbox.url}/?user=U02FRANK&channel=C02FINANCE[/bold]"
                  "  (switch people in the sidebar)")
    console.print(f"Bot: {bot.url}/slack/events")
    return DemoStack(settings, sandbox, runtime, runtime.deps.store)


def start_auto_clicker(stack: ExitStack, sandbox: SandboxServer, console: Console) -> None:
    """Scripted people click the buttons, so the demo runs to the end by itself."""
    clicker = AutoClicker(sandbox)
    clicker.start()
    stack.callback(clicker.stop)
    console.print("Auto mode: finance approves, engineering rejects, sales lets its "
                  "request time out, the manager approves the deploy.")


class ScenarioRun:
    """The scenario runs on its own thread and event loop, so this one can draw the table; its
    error is kept and raised here, after the live table stops."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self._result: dict[str, Any] = {}
        self._error: BaseException | None = None

    def run(self, scenario: Scenario, demo: DemoStack, decision_timeout: timedelta) -> None:
        try:
            self._result.update(asyncio.run(scenario(demo, decision_timeout)))
        except BaseException as e:
            self._error = e
        finally:
            self.done.set()

    def result(self) -> dict[str, Any]:
        """The scenario's result by flow; raises what the scenario raised."""
        if self._error is not None:
            raise self._error
        return self._result


def start_scenario(scenario: Scenario, demo: DemoStack, decision_timeout: timedelta) -> ScenarioRun:
    """A daemon thread, so Ctrl+C during the scenario does not wait for its flows."""
    run = ScenarioRun()
    threading.Thread(target=run.run, args=(scenario, demo, decision_timeout), name="demo-scenario",
                     daemon=True).start()
    return run


def follow_requests(demo: DemoStack, done: threading.Event, console: Console) -> None:
    """A live table on a terminal; piped to a file or CI log, one table at the end instead of a
    redraw per tick."""
    if not console.is_terminal:
        done.wait()
        console.print(requests_table(demo.refresh()))
        return
    with Live(requests_table(demo.refresh()), console=console, refresh_per_second=4) as live:
        while not done.wait(0.25):
            live.update(requests_table(demo.refresh()))
        live.update(requests_table(demo.refresh()))


def print_report(demo: DemoStack, result: dict[str, Any], console: Console) -> None:
    """The audit trail of every request, then what each flow returned."""
    time.sleep(0.5)  # let the last message edits land before printing the audit
    console.print(audit_tables(demo))
    summary = Table("flow", "result", title="Summary")
    for name, value in result.items():
        summary.add_row(name, str(value))
    console.print(summary)


def policy_held(demo: DemoStack, console: Console) -> bool:
    """With scripted people the outcome is known in advance, so `--auto` doubles as a check."""
    problems = check_policy(demo.refresh())
    for problem in problems:
        console.print(f"[red]mismatch:[/red] {problem}")
    if problems:
        return False
    console.print("[green]Every decision matches the scripted policy.[/green]")
    return True


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _secret(value: str) -> SecretStr:
    return SecretStr(value)
