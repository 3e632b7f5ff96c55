"""`approvals demo`: the whole product on one machine, no Slack workspace needed.

Starts the private Redis, the sandbox (a local Slack), the bot in HTTP mode pointed at it, and
a scenario of real Prefect flows (a three-department review and a production deploy approval);
shows a live table of requests, then a summary and the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from slack_approvals.bot.ids import request_id_of_vote_block
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state.models import USER_ID_PATTERN, ApprovalRequest, Status
from slack_approvals.state.private_server import ensure_private_server, stop_private_server
from slack_approvals.state.store import ApprovalStore

from .demo_policy import EXPECTED_STATUS, POLICY, AutoClicker, approval_policy_text
from .runtime import BotRuntime, build_runtime
from .serving import ServerThread, free_port
from .settings import Settings

DEMO_BOT_TOKEN = "xoxb-demo-sandbox-token"
# The demo keeps to a database of its own on the private Redis and empties it when it starts:
# requests left pending by an earlier demo point at messages of a sandbox that is gone.
# Database 0 is the one `approvals request` and the bot use.
DEMO_DB = 1
# Ctrl+C ends the interactive demo; after its own flows are done that is the normal end.
INTERRUPTED = 130
# Prefect's temporary server must not phone home (an offline machine would log errors).
QUIET_PREFECT = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
STATUS_STYLE = {Status.PENDING: "yellow", Status.APPROVED: "green", Status.REJECTED: "red",
                Status.TIMED_OUT: "magenta", Status.CANCELLED: "dim"}


class People:
    """Names for user and channel ids, read once each through the bot's Slack client
    (`users.info`, `conversations.info`)."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self.names: dict[str, str] = {}

    def channel(self, channel: str) -> str:
        if channel.startswith("#"):
            return channel
        if channel not in self.names:
            try:
                info = self.client.conversations_info(channel=channel)["channel"]
            except (SlackApiError, OSError):
                return channel  # asked again next time
            self.names[channel] = f"#{info['name']}" if info.get("name") else channel
        return self.names[channel]

    def name(self, user: str) -> str:
        if not re.match(USER_ID_PATTERN, user):
            return user  # not a person: "timeout", a cancel by the system
        if user not in self.names:
            try:
                info = self.client.users_info(user=user)["user"]
            except (SlackApiError, OSError):
                return user  # asked again next time
            profile = info.get("profile") or {}
            self.names[user] = str(info.get("real_name") or profile.get("display_name")
                                   or info.get("name") or user)
        return self.names[user]


@dataclass
class DemoStack:
    settings: Settings
    sandbox: SandboxServer
    runtime: BotRuntime
    store: ApprovalStore
    people: People
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


def requests_table(requests: list[ApprovalRequest], people: People) -> Table:
    """Stored text is shown as typed (Text, not markup); people by name, not by id."""
    table = Table("request", "title", "channel", "votes", "state", "decided by", title="Requests")
    table.columns[0].no_wrap = True
    for r in requests:
        state = r.status.value.replace("_", " ")
        table.add_row(r.id, Text(r.spec.title), Text(people.channel(r.spec.channel)),
                      Text(", ".join(f"{people.name(v.user)} {v.vote.value}" for v in r.votes)
                           or "-"),
                      Text(state, style=STATUS_STYLE[r.status]),
                      Text(people.name(r.decision.decided_by or "-")) if r.decision else "")
    return table


def audit_tables(stack: DemoStack) -> Group:
    tables = []
    for request in stack.refresh():
        table = Table("time (UTC)", "event", "user", "detail",
                      title=Text(f"Audit: {request.spec.title}"))
        for event in stack.store.audit(request.id):
            detail = " ".join(x for x in (event.vote.value if event.vote else "", event.reason or "")
                              if x)
            table.add_row(f"{event.at:%H:%M:%S.%f}"[:-3], event.event,
                          Text(stack.people.name(event.user) if event.user else "-"), Text(detail))
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
        elif act.vote != "wait" and (r.decision is None or r.decision.decided_by not in (
                act.user, f"mailto:{act.email}")):
            problems.append(f"{r.spec.title}: decided by the wrong person")
        elif act.email and {v.user for v in r.votes} != {act.user, f"mailto:{act.email}"}:
            problems.append(f"{r.spec.title}: expected votes from {act.user} and {act.email}")
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
        start_prefect_server(stack, settings, console)
        sandbox, link = start_sandbox(stack, port)
        bot_settings = demo_settings(settings, sandbox, redis_url, link,
                                     write_approval_policy(settings, decision_timeout))
        demo = start_bot(stack, bot_settings, sandbox, link, console)
        if auto:
            start_auto_clicker(stack, sandbox, console)
        run = start_scenario(scenario, demo, decision_timeout)
        stack.callback(run.stop)
        interrupted = follow_requests(demo, run, console, until_interrupted=not auto)
        print_report(demo, run.result() if run.done.is_set() else {}, console)
        if interrupted:
            if run.done.is_set() and not auto:
                return 0  # the interactive demo's normal end
            console.print("Interrupted: stopping what the demo started.")
            return INTERRUPTED
        if auto and not policy_held(demo, console):
            return 1
    return 0


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the sandbox page could not listen on `port` (0 means any free port)."""
    if port == 0:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def unwind_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl+C, so the private Redis and Prefect server are stopped too.

    Ctrl+C itself is set back to KeyboardInterrupt: a process started in the background of a
    non-interactive shell (a script, a CI job) inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt, so the demo would not stop on it."""
    if threading.current_thread() is threading.main_thread():  # only there may handlers be set
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def quiet_flow_logs() -> None:
    """Flow run logs would scroll the live table away; warnings and errors still show."""
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.WARNING)


def start_redis(stack: ExitStack, settings: Settings, console: Console) -> str:
    """A database of the demo's own on the private server, emptied first, so nothing from an
    earlier demo shows up; REDIS_URL is left alone (the demo's people and requests are made
    up). A private server this run started is stopped at the end, one already running is not."""
    folder = settings.approvals_data_dir / "redis"
    server = ensure_private_server(folder)
    if server.started_now:
        stack.callback(stop_private_server, folder)
    url = demo_database(server.url)
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()
    note = " (REDIS_URL is not used by the demo)" if settings.redis_url else ""
    console.print(f"Redis: private server {escape(url)} ({escape(server.binary)}){note}")
    return url


def demo_database(url: str) -> str:
    """The private server's URL with the demo's database number in place of the default."""
    return re.sub(r"/\d*$", f"/{DEMO_DB}", url) if re.search(r":\d+/\d*$", url) \
        else f"{url.rstrip('/')}/{DEMO_DB}"


def start_prefect_server(stack: ExitStack, settings: Settings, console: Console) -> None:
    """One temporary Prefect server for the scenario and for flows started from Slack, unless
    PREFECT_API_URL names one; left to themselves, each event loop thread would start its own.

    The server runs in a session of its own, so the terminal's Ctrl+C reaches only the demo,
    which sends the last events and logs before it stops the server (else Prefect prints
    "Error logging to API" and an EventsWorker dump); its output goes to a file, not across
    the live table.
    """
    for name, value in QUIET_PREFECT.items():
        os.environ.setdefault(name, value)
    if os.environ.get("PREFECT_API_URL"):
        stack.callback(flush_prefect)
        return
    from prefect.server.api.server import SubprocessASGIServer  # Prefect loads only when needed

    log_path = settings.approvals_data_dir / "prefect-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = stack.enter_context(log_path.open("ab"))

    class DetachedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            import prefect
            from prefect.settings import get_current_settings

            return subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                 "--factory",
                 "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                     "PREFECT__SERVER_FINAL": "1",
                     **get_current_settings().to_environment_variables(exclude_unset=True),
                     **QUIET_PREFECT},
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True)

    server = DetachedServer()
    server.start(timeout=120)
    stack.callback(server.stop)
    os.environ["PREFECT_API_URL"] = server.api_url
    stack.callback(os.environ.pop, "PREFECT_API_URL", None)
    stack.callback(flush_prefect)  # runs first: the server is still there to receive them
    console.print(f"Prefect: temporary server {server.api_url}")


def flush_prefect(timeout: float = 10.0) -> None:
    """Send the events and log lines Prefect still holds while its server can receive them."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    # While draining, each worker reports "Still processing items" every 4 s: progress of the
    # flush asked for here, not a failure.
    for worker in (EventsWorker, APILogWorker):
        logging.getLogger(worker.__name__).setLevel(logging.ERROR)
        worker.drain_all(timeout=timeout)


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


def write_approval_policy(settings: Settings, decision_timeout: timedelta) -> Path:
    """The demo's approval policy (who signs off where, and how long they have), as a file."""
    path = settings.approvals_data_dir / "demo-policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(approval_policy_text(decision_timeout))
    return path


def demo_settings(settings: Settings, sandbox: SandboxServer, redis_url: str, link: BotLink,
                  policy: Path) -> Settings:
    """The user's settings, pointed at the sandbox (its mail catcher too), Redis and the demo's
    approval policy, with a fast sweep so timeouts show and mails go out at once."""
    return settings.model_copy(update={
        "slack_api_url": sandbox.api_url, "redis_url": redis_url,
        "slack_bot_token": _secret(DEMO_BOT_TOKEN), "slack_signing_secret": _secret(link.signing_secret),
        "approvals_sweep_seconds": 1.0, "approvals_policy": policy,
        "approvals_smtp_url": _secret(sandbox.smtp_url),
        "approvals_mail_from": "Approvals <approvals@sandbox.test>",
        "approvals_public_url": f"http://127.0.0.1:{link.port}",
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
    console.print(f"Inbox (mail to approvers outside Slack): {sandbox.url}/?tab=inbox")
    return DemoStack(settings, sandbox, runtime, runtime.deps.store,
                     People(runtime.deps.messenger.client))


def start_auto_clicker(stack: ExitStack, sandbox: SandboxServer, console: Console) -> None:
    """Scripted people click the buttons, so the demo runs to the end by itself."""
    clicker = AutoClicker(sandbox)
    clicker.start()
    stack.callback(clicker.stop)
    console.print("Auto mode: finance approves, engineering rejects, sales lets its "
                  "request time out, the manager and the auditor (from the mailed link) approve "
                  "the deploy.")


class ScenarioRun:
    """The scenario runs on its own thread and event loop, so this one can draw the table; its
    error is kept and raised here, after the live table stops."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self._result: dict[str, Any] = {}
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def run(self, scenario: Scenario, demo: DemoStack, decision_timeout: timedelta) -> None:
        try:
            self._result.update(asyncio.run(self._main(scenario, demo, decision_timeout)))
        except BaseException as e:
            self._error = e
        finally:
            self.done.set()

    async def _main(self, scenario: Scenario, demo: DemoStack,
                    decision_timeout: timedelta) -> dict[str, Any]:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        return await scenario(demo, decision_timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the scenario's flows while Redis, the sandbox and Prefect are still up: left
        running, they would wait out the outage of each as it stops, logging from a daemon
        thread while the interpreter shuts down (which aborts it)."""
        loop, task = self._loop, self._task
        if self.done.is_set() or loop is None or task is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to cancel
            loop.call_soon_threadsafe(task.cancel)
        self.done.wait(timeout)

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


def follow_requests(demo: DemoStack, run: ScenarioRun, console: Console, *,
                    until_interrupted: bool) -> bool:
    """Follow the requests until the scenario is done or, with `until_interrupted`, until
    Ctrl+C (flows started from the page keep running meanwhile); True when interrupted.

    A live table on a terminal; piped to a file or CI log, a line per change of a request and
    one table at the end instead of a redraw per tick."""
    def table() -> Table:
        return requests_table(demo.refresh(), demo.people)

    announced = False
    shown: dict[str, Status] = {}

    def print_changes() -> None:
        for r in demo.refresh():
            if shown.get(r.id) != r.status:
                shown[r.id] = r.status
                console.print(Text(f"{r.id} {r.spec.title} ({demo.people.channel(r.spec.channel)}): "
                                   f"{r.status.value.replace('_', ' ')}"), soft_wrap=True)

    def announce_when_done() -> None:
        nonlocal announced
        if until_interrupted and run.done.is_set() and not announced:
            announced = True
            console.print(results_table(run.result()))
            console.print("The demo's own flows are done; the page stays up for flows started "
                          "from it (/approvals run ...). Ctrl+C stops the demo.")

    try:
        if not console.is_terminal:
            while until_interrupted or not run.done.is_set():
                run.done.wait(0.5)
                print_changes()
                announce_when_done()
            print_changes()
            console.print(table())
            return False
        with logs_above(console), Live(table(), console=console, refresh_per_second=4) as live:
            while until_interrupted or not run.done.is_set():
                run.done.wait(0.25)
                announce_when_done()
                live.update(table())
            live.update(table())
    except KeyboardInterrupt:
        if not console.is_terminal:
            console.print(table())
        return True
    return False


@contextmanager
def logs_above(console: Console) -> Iterator[None]:
    """Log lines printed through the live display's console land above the table instead of
    tearing it: handlers writing to the terminal are swapped for one that prints there."""
    terminal = {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}
    swapped: list[tuple[logging.Logger, logging.Handler, ConsoleLogHandler]] = []
    loggers = [logging.getLogger()] + [logger for logger in logging.Logger.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and handler.stream in terminal:
                above = ConsoleLogHandler(console, handler)
                logger.removeHandler(handler)
                logger.addHandler(above)
                swapped.append((logger, handler, above))
    try:
        yield
    finally:
        for logger, handler, above in swapped:
            logger.removeHandler(above)
            logger.addHandler(handler)


class ConsoleLogHandler(logging.Handler):
    """Prints records as the handler it stands in for formats them, through a Rich console."""

    def __init__(self, console: Console, original: logging.Handler) -> None:
        super().__init__(original.level)
        self.console = console
        self.original = original
        for log_filter in original.filters:
            self.addFilter(log_filter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.original.formatter or logging.Formatter()).format(record)
            self.console.print(Text(line), soft_wrap=True)
        except Exception:  # a log line must never break the demo
            self.handleError(record)


def results_table(result: dict[str, Any]) -> Table:
    summary = Table("flow", "result", title="Summary")
    for name, value in result.items():
        summary.add_row(name, Text(str(value)))
    return summary


def print_report(demo: DemoStack, result: dict[str, Any], console: Console) -> None:
    """The audit trail of every request, then what each flow returned (if they finished)."""
    time.sleep(0.5)  # let the last message edits land before printing the audit
    console.print(audit_tables(demo))
    if result:
        console.print(results_table(result))


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
