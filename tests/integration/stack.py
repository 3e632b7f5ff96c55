"""The production shape on loopback, for the fault suite: a Prefect server on a private
PostgreSQL, a private redis-server with AOF, the sandbox, `approvals serve` and two
`approvals bot` processes in HTTP mode, each a real process started the way an operator would.

    Stack          the running pieces and what a scenario does with them
    ServeProcess   `approvals serve`, configured through its environment only
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.deployments import run_deployment
from prefect.server.api.server import SubprocessASGIServer
from prefect.states import Cancelling

from bench.clicks import APPROVER, CHANNEL, REQUESTER, signed_click
from bench.services import BOT_TOKEN, SIGNING_SECRET, BotProcess, SandboxProcess, approvals_command
from slack_approvals.state import ApprovalRequest, ApprovalStore, AuditEvent, RequestNotFound, Status
from slack_approvals.state.connection import connect
from slack_approvals.state.plans import new_request_id
from tests.conftest import RedisServer, start_redis_server
from tests.flows.harness import prefect_server

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
FLOW = "simple-approval"
DEPLOYMENT = f"{FLOW}/slack-approvals"
GATE_TIMEOUT_SECONDS = 60
# Every request the suite opens goes to one channel and one approver, and times out in a minute.
POLICY = f"""\
version: 1
defaults:
  channel: {CHANNEL}
  approvers: [{APPROVER}]
  timeout: {GATE_TIMEOUT_SECONDS}s
"""
FINAL_RUN_STATES = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.2) -> T:
    """Poll until `probe` returns something truthy; generous timeouts (shared 2-core machines)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def _tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


class ServeProcess:
    """`approvals serve`: every registered flow as a deployment, run in processes of its own."""

    def __init__(self, folder: Path, prefect_api_url: str, redis_url: str, slack_api_url: str,
                 extra_env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "policy.yaml").write_text(POLICY)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SLACK_", "APPROVALS_", "REDIS_URL", "PREFECT_"))}
        self.env.update({
            "PREFECT_API_URL": prefect_api_url,
            "PREFECT_HOME": str(self.folder / "prefect-home"),
            "PREFECT_LOGGING_LEVEL": "INFO",
            # Runs handed back are picked up within a second of the next serve starting.
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_api_url,
            "REDIS_URL": redis_url,
            "APPROVALS_POLICY": str(self.folder / "policy.yaml"),
            "APPROVALS_REQUESTER": REQUESTER,
            "APPROVALS_WAIT_SLICE_SECONDS": "5",
            "APPROVALS_DATA_DIR": str(self.folder / "data"),
            "PYTHONPATH": str(ROOT),
            **(extra_env or {}),
        })
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"serve-{self.starts}.log"

    def start(self) -> ServeProcess:
        self.starts += 1
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*approvals_command(), "serve"], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=self.env, cwd=self.folder, start_new_session=True)

        def polling() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"approvals serve exited: {_tail(self.log_path)}")
            return "polling for scheduled runs" in self.log_path.read_text(errors="replace")

        wait_for("approvals serve to poll", polling, timeout=120)
        return self

    def terminate(self, timeout: float = 60.0) -> float:
        """SIGTERM to `approvals serve` alone (as `docker stop` sends it); seconds to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("serve-*.log")))


@dataclass
class Stack:
    prefect_api_url: str
    redis: RedisServer
    sandbox: SandboxProcess
    serve: ServeProcess
    bots: list[BotProcess]
    store: ApprovalStore
    clicks: list[tuple[str, int]] = field(default_factory=list)  # (request id, status) per click

    # -- runs -----------------------------------------------------------------------------

    def start_runs(self, count: int, title: str = "Deploy") -> list[str]:
        """Runs of simple-approval started through the Prefect API, as `run_deployment` does."""

        async def start() -> list[str]:
            runs = [await run_deployment(DEPLOYMENT, parameters={"params": {"title": f"{title} {i}"}},
                                         timeout=0)
                    for i in range(count)]
            return [str(run.id) for run in runs]  # type: ignore[union-attr]

        return asyncio.run(start())

    def read_runs(self, run_ids: list[str]) -> dict[str, FlowRun]:
        async def read() -> dict[str, FlowRun]:
            async with get_client() as client:
                return {run_id: await client.read_flow_run(run_id) for run_id in run_ids}  # type: ignore[arg-type]

        return asyncio.run(read())

    def state_types(self, run_ids: list[str]) -> dict[str, StateType | None]:
        return {run_id: run.state.type if run.state else None
                for run_id, run in self.read_runs(run_ids).items()}

    def wait_runs_final(self, run_ids: list[str], timeout: float = 120.0) -> dict[str, FlowRun]:
        def final() -> dict[str, FlowRun] | None:
            runs = self.read_runs(run_ids)
            done = all(run.state is not None and run.state.type in FINAL_RUN_STATES for run in runs.values())
            return runs if done else None

        return wait_for(f"{len(run_ids)} flow runs to end", final, timeout=timeout, every=0.5)

    def wait_runs_running(self, run_ids: list[str], timeout: float = 120.0) -> None:
        def running() -> bool:
            return all(t is StateType.RUNNING for t in self.state_types(run_ids).values())

        wait_for(f"{len(run_ids)} flow runs to run", running, timeout=timeout, every=0.25)

    def restart_prefect(self) -> float:
        """Stop the Prefect server (SIGTERM, as a deploy restarts it) and start it again on the
        same port and database; seconds the API was down."""
        port = httpx.URL(self.prefect_api_url).port
        server = SubprocessASGIServer(port=port)  # the harness's own instance for that port
        assert server.server_process is not None, "no Prefect server runs on that port"
        started = time.monotonic()
        # Not server.stop(): it forgets the instance, and the harness would not stop the new one.
        server.server_process.terminate()
        server.server_process.wait(timeout=30)
        server.running = False
        server.start(timeout=90)
        return time.monotonic() - started

    async def _set_state(self, run_id: str, state: State) -> None:
        async with get_client() as client:
            await client.set_flow_run_state(run_id, state)  # type: ignore[arg-type]

    def cancel_run(self, run_id: str) -> None:
        """What the UI's Cancel does: ask for Cancelling, for the runner and the gate to act on."""
        asyncio.run(self._set_state(run_id, Cancelling()))

    # -- requests -------------------------------------------------------------------------

    def requests_of(self, run_ids: list[str], timeout: float = 120.0) -> dict[str, ApprovalRequest]:
        """Each run's request, once its message is posted (the gate then waits)."""

        def posted() -> dict[str, ApprovalRequest] | None:
            found = {r.spec.flow_run_id: r for r in self.store.pending(limit=1000)
                     if r.spec.flow_run_id in run_ids and r.message_ts}
            return {run_id: found[run_id] for run_id in run_ids} if len(found) == len(run_ids) else None

        return wait_for(f"{len(run_ids)} posted requests", posted, timeout=timeout, every=0.25)

    def store_requests_of(self, run_ids: list[str]) -> list[ApprovalRequest]:
        """The runs' requests in any state, found by the gate's idempotency key."""
        found = []
        for run_id in run_ids:
            with contextlib.suppress(RequestNotFound):
                found.append(self.store.get(new_request_id(f"{run_id}:approval")))
        return found

    def inject_fault(self, method: str, status: int, count: int) -> None:
        httpx.post(f"{self.sandbox.api_url.removesuffix('/api/')}/sandbox/faults",
                   json={"method": method, "status": status, "count": count}).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.sandbox.api_url.removesuffix('/api/')}/sandbox/faults").raise_for_status()

    def audit(self, request_id: str) -> list[AuditEvent]:
        return self.store.audit(request_id)

    # -- clicks ---------------------------------------------------------------------------

    def click(self, request: ApprovalRequest, bot: BotProcess, timeout: float = 10.0) -> int:
        """Approve, as Slack sends it to a bot's HTTP endpoint; 0 when the bot did not answer."""
        body, headers = signed_click(request.id, user=APPROVER, channel=CHANNEL,
                                     message_ts=request.message_ts or "1700000000.000100")
        try:
            status = httpx.post(f"{bot.url}/slack/events", content=body, headers=headers,
                                timeout=timeout).status_code
        except httpx.HTTPError:
            status = 0
        self.clicks.append((request.id, status))
        return status

    # -- the oracle -----------------------------------------------------------------------

    def check_outcome(self, requests: dict[str, ApprovalRequest], expected: Status,
                      run_state: StateType) -> None:
        """Every request in exactly one final state (its audit holds one closing event), at most
        one vote per approver (no duplicate), an acknowledged click never lost, and every run in
        the state its decision implies."""
        acked = {request_id for request_id, status in self.clicks if status == 200}
        for run_id, request in requests.items():
            now = self.store.get(request.id)
            assert now.status is expected, (run_id, now.status)
            events = self.audit(request.id)
            closing = [e for e in events if e.event in {s.value for s in Status if s.closed}]
            assert len(closing) == 1, (request.id, [e.event for e in events])
            votes = [e for e in events if e.event == "vote"]
            assert len(votes) == len({e.user for e in votes}), (request.id, votes)
            if request.id in acked:
                assert any(e.user == APPROVER for e in votes), f"acknowledged click lost on {request.id}"
        runs = self.wait_runs_final(list(requests))
        states = {run_id: run.state.type for run_id, run in runs.items() if run.state}
        assert set(states.values()) == {run_state}, states
        for bot in self.bots:
            assert not [line for line in bot.errors_logged() if "Traceback" in line], bot.errors_logged()


@contextlib.contextmanager
def stack(serve_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """The whole stack, up for one test module; torn down in reverse order. `serve_env` adds
    settings to `approvals serve` (e.g. a short APPROVALS_HOLD_SECONDS)."""
    from prefect.settings import PREFECT_API_URL

    with contextlib.ExitStack() as stack_:
        folder = Path(stack_.enter_context(tempfile.TemporaryDirectory(prefix="approvals-integration-")))
        database = stack_.enter_context(prefect_server())
        if database != "postgresql":
            raise RuntimeError("the integration suite needs PostgreSQL's initdb and postgres")
        api_url = str(PREFECT_API_URL.value())
        redis = start_redis_server(folder / "redis")
        stack_.callback(lambda: redis.process.poll() is None and redis.stop())
        sandbox = stack_.enter_context(SandboxProcess())
        bots = [stack_.enter_context(BotProcess(sandbox.api_url, redis.url, api_url)) for _ in range(2)]
        serve = ServeProcess(folder / "serve", api_url, redis.url, sandbox.api_url, serve_env)
        stack_.callback(serve.stop)
        serve.start()
        store = ApprovalStore(connect(redis.url))
        yield Stack(api_url, redis, sandbox, serve, bots, store)


def restart_bot(bot: BotProcess) -> None:
    bot.process = None
    bot.start()
