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
    console = console or Console()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl+C, so the private Redis and Prefect server are stopped too.
        signal.signal(signal.SIGTERM, _interrupt)
    # Flow run logs would scroll the live table away; warnings and errors still show.
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with ExitStack() as stack:
        redis_url = settings.redis_url
        if not redis_url:
            folder = settings.approvals_data_dir / "redis"
            server = ensure_private_server(folder)
            redis_url = server.url
            if server.started_now:
                stack.callback(stop_private_server, folder)
            console.print(f"Redis: private server {redis_url} ({server.binary})")
        if not os.environ.get("PREFECT_API_URL"):
            # One temporary Prefect server for the scenario and for flows started from Slack;
            # left to themselves, each event loop thread would try to start its own.
            from prefect.server.api.server import SubprocessASGIServer

            prefect_server = SubprocessASGIServer()
            prefect_server.start(timeout=120)
            stack.callback(prefect_server.stop)
            os.environ["PREFECT_API_URL"] = prefect_server.api_url
            stack.callback(os.environ.pop, "PREFECT_API_URL", None)
            console.print(f"Prefect: temporary server {prefect_server.api_url}")
        signing_secret = secrets.token_hex(16)
        bot_port = free_port()
        sandbox = stack.enter_context(SandboxServer(
            signing_secret=signing_secret, bot_token=DEMO_BOT_TOKEN, port=port,
            request_url=f"http://127.0.0.1:{bot_port}/slack/events"))
        demo_settings = settings.model_copy(update={
            "slack_api_url": sandbox.api_url, "redis_url": redis_url,
            "slack_bot_token": _secret(DEMO_BOT_TOKEN), "slack_signing_secret": _secret(signing_secret),
            "approvals_sweep_seconds": 1.0,
        })
        from .launching import default_launcher, emit_decision_event

        # Flows run here, in process, whatever PREFECT_API_URL says: the demo owns its runs.
        launcher = default_launcher(demo_settings, mode="in-process")
        runtime = build_runtime(demo_settings, launcher=launcher, on_decision=emit_decision_event)
        bot = stack.enter_context(ServerThread(runtime.web, port=bot_port))
        runtime.sweeper.start()
        stack.callback(runtime.deps.background.shutdown, wait=True)
        stack.callback(runtime.sweeper.stop)
        demo = DemoStack(demo_settings, sandbox, runtime, runtime.deps.store)
        console.print(f"Sandbox Slack: [bold]{sandbox.url}/?user=U02FRANK&channel=C02FINANCE[/bold]"
                      "  (switch people in the sidebar)")
        console.print(f"Bot: {bot.url}/slack/events")
        if auto:
            clicker = AutoClicker(sandbox)
            clicker.start()
            stack.callback(clicker.stop)
            console.print("Auto mode: finance approves, engineering rejects, sales lets its "
                          "request time out, the manager approves the deploy.")
        result: dict[str, Any] = {}
        done = threading.Event()

        def run_scenario() -> None:
            try:
                result.update(asyncio.run(scenario(demo, decision_timeout)))
            except BaseException as e:  # shown below, after the live table stops
                result["error"] = e
            finally:
                done.set()

        threading.Thread(target=run_scenario, name="demo-scenario", daemon=True).start()
        if console.is_terminal:
            with Live(requests_table(demo.refresh()), console=console,
                      refresh_per_second=4) as live:
                while not done.wait(0.25):
                    live.update(requests_table(demo.refresh()))
                live.update(requests_table(demo.refresh()))
        else:
            # Piped to a file or CI log: one table at the end instead of a redraw per tick.
            done.wait()
            console.print(requests_table(demo.refresh()))
        if "error" in result:
            raise result["error"]
        time.sleep(0.5)  # let the last message edits land before printing the audit
        console.print(audit_tables(demo))
        summary = Table("flow", "result", title="Summary")
        for name, value in result.items():
            summary.add_row(name, str(value))
        console.print(summary)
        if auto:
            problems = check_policy(demo.refresh())
            for problem in problems:
                console.print(f"[red]mismatch:[/red] {problem}")
            if problems:
                return 1
            console.print("[green]Every decision matches the scripted policy.[/green]")
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _secret(value: str) -> SecretStr:
    return SecretStr(value)
