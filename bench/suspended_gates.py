"""Pending approvals in deployment runs: suspended past the hold window vs waiting in-process.

The production shape on loopback: a Prefect server on PostgreSQL, `approvals serve`
(PREFECT_RUNNER_POLL_FREQUENCY=1), one bot in HTTP mode (its sweeper resumes what a click
could not), Redis, the sandbox. Runs of `simple-approval` are started in waves, each wave
waiting until its runs are suspended, so the hold window never holds them all at once.

    suspended   APPROVALS_HOLD_SECONDS short: every pending run Suspended, no process
    in-process  APPROVALS_HOLD_SECONDS=86400: every pending run waits in its own process (as
                before suspension existed)

With all N pending: RSS and count of every process of ours (serve and the runs it started,
the bot), Prefect writes (flow- and task-run states, events) in a quiet window, Redis memory;
then clicks, one at a time (signed, at the bot), timed from the click to the run's Completed
state (suspended) or to the gate's wait task completing (in-process, i.e. inside the hold
window). The last part, in this process, counts the task-run states and events one gate
writes per attempt with attempts of one wait slice (before) and of ATTEMPT_SECONDS (after).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from .clicks import APPROVER, CHANNEL, REQUESTER, signed_click
from .common import Mode, Result, finish, machine, new_figure, save_figure, summary, wait_until
from .services import (
    BOT_TOKEN,
    SIGNING_SECRET,
    BotProcess,
    RedisServer,
    SandboxProcess,
    _stop,
    approvals_command,
    postgres_available,
    postgres_prefect,
)

NAME = "suspended_gates"
TITLE = "Pending approvals in deployments: suspended vs waiting in-process"
TARGET_GIB_AT_500 = 1.0
TARGET_RESUME_P99_S = 3.0
TARGET_HOLD_P99_MS = 50.0
EXTRAPOLATE_TO = 500
DEPLOYMENT = "simple-approval/slack-approvals"

SIZES: dict[Mode, dict[str, Any]] = {
    "full": {"suspended": [20, 100], "in_process": [20], "wave": 10, "hold": 3,
             "quiet_seconds": 60, "clicks": 20, "writes_seconds": 60, "writes_gates": 5},
    "quick": {"suspended": [20], "in_process": [10], "wave": 10, "hold": 3,
              "quiet_seconds": 30, "clicks": 10, "writes_seconds": 40, "writes_gates": 3},
    "tiny": {"suspended": [2], "in_process": [2], "wave": 2, "hold": 2,
             "quiet_seconds": 5, "clicks": 2, "writes_seconds": 12, "writes_gates": 1},
}

POLICY = f"""\
version: 1
defaults:
  channel: {CHANNEL}
  approvers: [{APPROVER}]
  timeout: 2h
"""


# -- the stack -----------------------------------------------------------------------------

class Serve:
    """`approvals serve`, configured through its environment only."""

    def __init__(self, prefect_api_url: str, redis_url: str, slack_api_url: str,
                 hold_seconds: float) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
        (self.folder / "policy.yaml").write_text(POLICY)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SLACK_", "APPROVALS_", "REDIS_URL", "PREFECT_"))}
        self.env.update({
            "PREFECT_API_URL": prefect_api_url,
            "PREFECT_HOME": str(self.folder / "prefect-home"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_api_url,
            "REDIS_URL": redis_url,
            "APPROVALS_POLICY": str(self.folder / "policy.yaml"),
            "APPROVALS_REQUESTER": REQUESTER,
            "APPROVALS_HOLD_SECONDS": str(hold_seconds),
            "APPROVALS_DATA_DIR": str(self.folder / "data"),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        })
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        log_path = self.folder / "serve.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*approvals_command(), "serve"], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=self.env, cwd=self.folder, start_new_session=True)

        def deployed() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"approvals serve exited: {log_path.read_text()[-2000:]}")
            return _deployment_exists()

        wait_until(deployed, 180, "approvals serve to create its deployments", 0.5)
        time.sleep(2)  # the runner polls once its deployments exist
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, timeout=60)


def _deployment_exists() -> bool:
    async def read() -> bool:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            try:
                await client.read_deployment_by_name(DEPLOYMENT)
            except Exception:
                return False
            return True

    return asyncio.run(read())


def processes_of(*roots: subprocess.Popen[bytes] | None) -> list[psutil.Process]:
    found: list[psutil.Process] = []
    for root in roots:
        if root is None or root.poll() is not None:
            continue
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(root.pid)
            found += [process, *process.children(recursive=True)]
    return found


def rss_mib(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / 2**20


# -- Prefect: runs, states, events -----------------------------------------------------------

async def _start_runs(count: int, label: str) -> list[str]:
    from prefect.deployments import run_deployment

    runs = [await run_deployment(DEPLOYMENT, timeout=0,  # type: ignore[misc]
                                 parameters={"params": {"title": f"{label} {i}"}})
            for i in range(count)]
    return [str(run.id) for run in runs]  # type: ignore[union-attr]


async def _states(run_ids: list[str]) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {run_id: (await client.read_flow_run(run_id)).state  # type: ignore[arg-type]
                for run_id in run_ids}


def states(run_ids: list[str]) -> dict[str, Any]:
    return asyncio.run(_states(run_ids))


async def _writes(run_ids: list[str], since: datetime, until: datetime) -> dict[str, int]:
    """Flow-run and task-run states of these runs, and all events, stamped in [since, until]."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    def inside(stamp: datetime | None) -> bool:
        return stamp is not None and since <= stamp <= until

    counts = {"flow_run_states": 0, "task_run_states": 0, "events": 0}
    async with get_client() as client:
        for run_id in run_ids:
            states_ = await client.read_flow_run_states(run_id)  # type: ignore[arg-type]
            counts["flow_run_states"] += sum(inside(s.timestamp) for s in states_)
        for start in range(0, len(run_ids), 50):
            chunk = run_ids[start:start + 50]
            task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[uuid.UUID(i) for i in chunk])))
            for task_run in task_runs:
                states_ = await client.read_task_run_states(task_run.id)
                counts["task_run_states"] += sum(inside(s.timestamp) for s in states_)
        response = await client._client.post("/events/filter", json={
            "filter": {"occurred": {"since": since.isoformat(), "until": until.isoformat()}},
            "limit": 1})
        response.raise_for_status()
        counts["events"] = int(response.json()["total"])
    return counts


def writes(run_ids: list[str], since: datetime, until: datetime) -> dict[str, int]:
    return asyncio.run(_writes(run_ids, since, until))


async def _wait_task_done(run_id: str) -> datetime | None:
    """When the run's last wait-for-decision attempt completed (the gate woke)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[uuid.UUID(run_id)])))
    done = [t.state.timestamp for t in task_runs
            if t.name.startswith("wait-for-decision") and t.state is not None
            and t.state.is_completed()]
    return max(done) if done else None


# -- one configuration ---------------------------------------------------------------------

def requests_of(store: Any, run_ids: list[str]) -> dict[str, Any]:
    from slack_approvals.state.plans import new_request_id

    found = {}
    for run_id in run_ids:
        with contextlib.suppress(Exception):
            request = store.get(new_request_id(f"{run_id}:approval"))
            if request.message_ts:
                found[run_id] = request
    return found


def click(bot: BotProcess, request: Any) -> float:
    body, headers = signed_click(request.id, user=APPROVER, channel=CHANNEL,
                                 message_ts=request.message_ts)
    sent = time.time()
    response = httpx.post(f"{bot.url}/slack/events", content=body, headers=headers, timeout=10)
    response.raise_for_status()
    return sent


def measure(kind: str, count: int, params: dict[str, Any], stack: dict[str, Any]) -> dict[str, Any]:
    """N pending runs of one kind: what they cost, what they write, how fast a click ends one."""
    hold = params["hold"] if kind == "suspended" else 86400
    serve = Serve(stack["api_url"], stack["redis_url"], stack["slack_url"], hold).start()
    bot: BotProcess = stack["bot"]
    store = stack["store"]
    try:
        idle = processes_of(serve.process, bot.process)
        idle_rss = rss_mib(idle)
        idle_count = len(idle)
        run_ids: list[str] = []
        started = time.monotonic()
        for wave_start in range(0, count, params["wave"]):
            size = min(params["wave"], count - wave_start)
            wave = asyncio.run(_start_runs(size, f"{kind} {count}"))
            run_ids += wave
            wait_until(lambda w=wave: len(requests_of(store, w)) == len(w),  # type: ignore[misc]
                       600, f"{size} posted requests", 0.5)
            if kind == "suspended":
                wait_until(lambda w=wave: all(s is not None and s.name == "Suspended"  # type: ignore[misc]
                                              for s in states(w).values()),
                           600, f"{size} suspended runs", 0.5)
        if kind == "suspended":
            wait_until(lambda: len(processes_of(serve.process, bot.process)) <= idle_count,
                       120, "the suspended runs' processes to exit", 0.5)
        else:
            wait_until(lambda: all(s is not None and s.is_running()
                                   for s in states(run_ids).values()),
                       600, "every run waiting in its process", 0.5)
            wait_until(lambda: len(processes_of(serve.process, bot.process)) >= idle_count + count,
                       120, "every run's process", 0.5)
        all_pending_after = time.monotonic() - started
        time.sleep(2)  # settle
        processes = processes_of(serve.process, bot.process)
        pending_rss = rss_mib(processes)
        since = datetime.now(UTC)
        time.sleep(params["quiet_seconds"])
        until = datetime.now(UTC)
        time.sleep(3)  # events reach the database a moment after they are sent
        written = writes(run_ids, since, until)
        redis_bytes = int(store.client.info("memory")["used_memory"])
        requests = requests_of(store, run_ids)
        latencies: list[float] = []
        for run_id in run_ids[:params["clicks"]]:
            sent = click(bot, requests[run_id])
            if kind == "suspended":
                state = wait_until(lambda r=run_id: (s := states([r])[r]) is not None  # type: ignore[misc]
                                   and s.is_final() and s, 120, "the run to end", 0.05)
                assert state.is_completed(), state
                latencies.append(state.timestamp.timestamp() - sent)
            else:
                done = wait_until(lambda r=run_id: asyncio.run(_wait_task_done(r)),  # type: ignore[misc]
                                  120, "the gate to wake", 0.05)
                latencies.append(done.timestamp() - sent)
        # The rest, a wave at a time (a resumed run starts a process: a hundred at once would
        # only measure two cores thrashing).
        rest = run_ids[params["clicks"]:]
        for start in range(0, len(rest), params["wave"]):
            wave = rest[start:start + params["wave"]]
            for run_id in wave:
                click(bot, requests[run_id])
            wait_until(lambda w=wave: all(s is not None and s.is_final()  # type: ignore[misc]
                                          for s in states(w).values()),
                       900, "a wave of runs to end", 1.0)
        wait_until(lambda: all(s is not None and s.is_final() for s in states(run_ids).values()),
                   900, "every run to end", 1.0)
        hours = (until - since).total_seconds() / 3600
        return {
            "kind": kind, "count": count, "hold_seconds": hold,
            "idle_rss_mib": idle_rss, "idle_processes": idle_count,
            "pending_rss_mib": pending_rss, "pending_processes": len(processes),
            "all_pending_after_s": all_pending_after,
            "quiet_seconds": (until - since).total_seconds(), "writes": written,
            "states_per_gate_hour": (written["flow_run_states"] + written["task_run_states"])
            / count / hours,
            "events_per_gate_hour": written["events"] / count / hours,
            "redis_used_bytes": redis_bytes,
            "latencies_s": latencies, "latency": summary(latencies),
        }
    finally:
        serve.stop()


# -- writes of one waiting gate per attempt (in this process) ---------------------------------

async def _gates_waiting(count: int, seconds: float, attempt_seconds: float,
                         slice_seconds: float, store: Any) -> dict[str, Any]:
    """`count` in-process runs of simple-approval wait `seconds` with attempts of
    `attempt_seconds`; returns the states and events written meanwhile, per attempt."""
    from prefect.flow_engine import run_flow_async

    from slack_approvals.flows import gates
    from slack_approvals.flows.examples import SimpleApprovalParams, simple_approval
    from slack_approvals.flows.services import services_installed

    previous = gates.ATTEMPT_SECONDS
    gates.ATTEMPT_SECONDS = attempt_seconds
    factory, config = _installed
    try:
        from dataclasses import replace

        with services_installed(factory, replace(config, wait_slice_seconds=slice_seconds)):
            runs = [asyncio.create_task(run_flow_async(
                simple_approval,  # type: ignore[arg-type]
                parameters={"params": SimpleApprovalParams(title=f"writes {i}")},
                return_type="state")) for i in range(count)]
            pending: list[Any] = []
            for _ in range(600):
                pending = [r for r in store.pending(limit=1000) if r.spec.title.startswith("writes")]
                if len(pending) == count and all(r.message_ts for r in pending):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            since = datetime.now(UTC)
            await asyncio.sleep(seconds)
            until = datetime.now(UTC)
            run_ids = sorted({r.spec.flow_run_id for r in pending if r.spec.flow_run_id})
            for request in pending:
                store.decide(request.id, APPROVER, "approve")
            await asyncio.gather(*runs)
    finally:
        gates.ATTEMPT_SECONDS = previous
    await asyncio.sleep(3)
    written = await _writes(run_ids, since, until)
    attempts = count * (until - since).total_seconds() / attempt_seconds
    return {"attempt_seconds": attempt_seconds, "slice_seconds": slice_seconds, "gates": count,
            "seconds": (until - since).total_seconds(), "writes": written,
            "task_run_states_per_attempt": written["task_run_states"] / attempts,
            "events_per_attempt": written["events"] / attempts}


# The flows' services and defaults for the in-process gates, from the stack's settings.
_installed: tuple[Any, Any] = (None, None)


def gate_writes(params: dict[str, Any], stack: dict[str, Any]) -> dict[str, Any]:
    """Before: one attempt per 10 s slice. After: attempts of ATTEMPT_SECONDS (here shortened to
    a third of the window so it sees several; the states per attempt do not depend on it)."""
    global _installed
    from slack_approvals.approvals.launching import flow_config_from, services_factory
    from slack_approvals.approvals.settings import load_settings
    from slack_approvals.flows.gates import ATTEMPT_SECONDS

    settings = load_settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                             slack_api_url=stack["slack_url"], redis_url=stack["redis_url"],
                             approvals_channel=CHANNEL, approvals_default_approvers=[APPROVER],
                             approvals_requester=REQUESTER, approvals_policy=stack["policy"])
    _installed = (services_factory(settings), flow_config_from(settings))
    seconds = params["writes_seconds"]
    slice_s = 10.0 if seconds >= 30 else 2.0
    before = asyncio.run(_gates_waiting(params["writes_gates"], seconds, slice_s, slice_s,
                                        stack["store"]))
    after = asyncio.run(_gates_waiting(params["writes_gates"], seconds, seconds / 3, slice_s,
                                       stack["store"]))
    per_hour_before = 3600 / 10.0
    per_hour_after = 3600 / ATTEMPT_SECONDS
    return {
        "before": before, "after": after,
        "states_per_gate_hour_before": before["task_run_states_per_attempt"] * per_hour_before,
        "events_per_gate_hour_before": before["events_per_attempt"] * per_hour_before,
        "states_per_gate_hour_after": after["task_run_states_per_attempt"] * per_hour_after,
        "events_per_gate_hour_after": after["events_per_attempt"] * per_hour_after,
    }


# -- the benchmark -------------------------------------------------------------------------

@contextlib.contextmanager
def production_stack() -> Iterator[dict[str, Any]]:
    from slack_approvals.state.connection import connect
    from slack_approvals.state.store import ApprovalStore

    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer(["--appendonly", "yes"]))
        sandbox = stack.enter_context(SandboxProcess())
        api_url = stack.enter_context(postgres_prefect(database="bench_suspended_gates"))
        bot = stack.enter_context(BotProcess(sandbox.api_url, redis.url, api_url))
        folder = Path(tempfile.mkdtemp(prefix="bench-suspended-"))
        (folder / "policy.yaml").write_text(POLICY)
        yield {"api_url": api_url, "redis_url": redis.url, "slack_url": sandbox.api_url,
               "bot": bot, "store": ApprovalStore(connect(redis.url)),
               "policy": folder / "policy.yaml"}


def run(mode: Mode, results_dir: Path) -> Result:
    started = time.perf_counter()
    params = dict(SIZES[mode])
    result = Result(NAME, TITLE, mode, machine(), params)
    if not postgres_available():
        result.notes.append("skipped: no PostgreSQL on 127.0.0.1:5432 for the Prefect server")
        return finish(result, results_dir, started, plot)
    runs: list[dict[str, Any]] = []
    with production_stack() as stack:
        for count in params["in_process"]:
            runs.append(measure("in_process", count, params, stack))
        for count in params["suspended"]:
            runs.append(measure("suspended", count, params, stack))
        written = gate_writes(params, stack)
    result.data = {"runs": runs, "gate_writes": written}
    summarize(result, runs, written)
    return finish(result, results_dir, started, plot)


def _extrapolated_gib(kind_runs: list[dict[str, Any]]) -> tuple[float, float]:
    """(MiB per pending approval, GiB at EXTRAPOLATE_TO) from the idle and pending figures."""
    largest = max(kind_runs, key=lambda r: r["count"])
    if len(kind_runs) > 1:
        smallest = min(kind_runs, key=lambda r: r["count"])
        per = ((largest["pending_rss_mib"] - smallest["pending_rss_mib"])
               / (largest["count"] - smallest["count"]))
    else:
        per = (largest["pending_rss_mib"] - largest["idle_rss_mib"]) / largest["count"]
    per = max(per, 0.0)
    total = largest["idle_rss_mib"] + per * EXTRAPOLATE_TO
    return per, total / 1024


def summarize(result: Result, runs: list[dict[str, Any]], written: dict[str, Any]) -> None:
    for kind in ("in_process", "suspended"):
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            continue
        per, gib = _extrapolated_gib(mine)
        label = "suspended" if kind == "suspended" else "waiting in-process"
        for r in mine:
            result.add(f"{label}: {r['count']} pending, RSS of serve+runs+bot", r["pending_rss_mib"],
                       "MiB", detail=f"{r['pending_processes']} processes "
                       f"(idle {r['idle_processes']}, {r['idle_rss_mib']:.0f} MiB)")
            result.add(f"{label}: {r['count']} pending, Prefect writes",
                       r["states_per_gate_hour"], "states/gate-h",
                       detail=f"{r['events_per_gate_hour']:.1f} events/gate-h over "
                       f"{r['quiet_seconds']:.0f} s")
        result.add(f"{label}: extrapolated to {EXTRAPOLATE_TO} pending", gib, "GiB",
                   f"< {TARGET_GIB_AT_500:g} GiB", gib < TARGET_GIB_AT_500,
                   f"{per:.1f} MiB per pending approval")
        latencies = [x for r in mine for x in r["latencies_s"]]
        stats = summary(latencies)
        if kind == "suspended":
            result.add("click -> Completed after a suspend, p99", stats["p99"], "s",
                       f"< {TARGET_RESUME_P99_S:g} s", stats["p99"] < TARGET_RESUME_P99_S,
                       f"p50 {stats['median']:.2f} s, n={stats['n']}")
        else:
            result.add("click -> gate awake within the hold window, p99", stats["p99"] * 1000,
                       "ms", f"< {TARGET_HOLD_P99_MS:g} ms", stats["p99"] * 1000 < TARGET_HOLD_P99_MS,
                       f"p50 {stats['median'] * 1000:.1f} ms, n={stats['n']}")
    result.add("waiting gate, task-run states per gate-hour, before",
               written["states_per_gate_hour_before"], "states",
               detail=f"{written['events_per_gate_hour_before']:.0f} events; one attempt per 10 s slice")
    result.add("waiting gate, task-run states per gate-hour, after",
               written["states_per_gate_hour_after"], "states", "<= 12 (one per 5 min)",
               written["states_per_gate_hour_after"] <= 12.5,
               f"{written['events_per_gate_hour_after']:.0f} events; attempts of 5 min")
    result.notes.append(
        "RSS counts every process of ours that holds pending approvals (approvals serve, the "
        "flow-run processes it starts, the bot); the Prefect server, PostgreSQL, Redis and the "
        "sandbox are the same in both columns and left out. Extrapolated linearly: suspended "
        "from the difference between the two sizes, in-process from idle to N.")
    result.notes.append(
        "Writes per gate-hour, before/after: task-run states and events counted through the "
        "Prefect API for in-process gates waiting a fixed window, divided by the attempts in it, "
        "times the attempts an hour makes (360 at 10 s slices before, 12 at 5-minute attempts).")


def plot(result: Result, results_dir: Path) -> None:
    runs = result.data.get("runs", [])
    fig, axes = new_figure(2, width=6.0)
    colors = {"in_process": "#DD8452", "suspended": "#4C72B0"}
    for kind in ("in_process", "suspended"):
        mine = sorted((r for r in runs if r["kind"] == kind), key=lambda r: r["count"])
        if not mine:
            continue
        xs = [0] + [r["count"] for r in mine]
        ys = [mine[0]["idle_rss_mib"]] + [r["pending_rss_mib"] for r in mine]
        axes[0].plot(xs, ys, marker="o", color=colors[kind], label=kind.replace("_", "-"))
        lat = [x for r in mine for x in r["latencies_s"]]
        if lat:
            axes[1].hist([x * 1000 for x in lat], bins=20, alpha=0.7, color=colors[kind],
                         label=kind.replace("_", "-"))
    axes[0].set_xlabel("pending approvals")
    axes[0].set_ylabel("RSS of serve + runs + bot (MiB)")
    axes[0].legend()
    axes[1].set_xscale("symlog")
    axes[1].set_xlabel("click -> resumed (ms)")
    axes[1].set_ylabel("clicks")
    axes[1].legend()
    save_figure(fig, result, results_dir, "RSS after every run is pending; one click at a time")
