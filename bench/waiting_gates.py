"""Many gates waiting at once in one process: memory, threads, idle CPU, and how fast all wake.

Each run is a fresh child process holding N waiters; the parent then approves all N in one
pipeline from its own client, and the child reports when each waiter returned.

    kind "store"  N `AsyncApprovalStore.wait` calls, each on its own `connect_async` client,
                  as `wait_for_decision` opens one per attempt (flows.services)
    kind "flow"   N real `wait_for_decision` tasks gathered in one async Prefect flow
    kind "shared" N waits on one shared client with the plain URL (redis-py's pool limit)

    parent  --stdin: config-->  child: waiters block (BLPOP); RSS, threads, idle CPU
    parent  <--stdout: ready--  child
    parent  decides all ...     child: waiters return --stdout: return times--> parent
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import psutil

from slack_approvals.state.keys import KeySpace
from slack_approvals.state.models import RequestSpec
from slack_approvals.state.plans import DEFAULT_RETENTION, Plans

from .clicks import APPROVER, CHANNEL, REQUESTER
from .common import Mode, Result, finish, machine, median, ms, new_figure, save_figure
from .pipelined import PipelinedRunner
from .services import SHARED_SERVER_ENV, RedisServer, prefect_harness

NAME = "waiting_gates"
TITLE = "Waiting gates in one process"
TARGET_ALL_RETURN_S = 2.0
WAIT_TIMEOUT_S = 120.0
NEEDS_PREFECT = True

SIZES: dict[Mode, dict[str, Any]] = {
    "full": {"waiters": [10, 100, 1000], "repeats": 3, "idle_seconds": 5.0,
             "flow_tasks": 100, "flow_repeats": 3, "flow_idle_seconds": 10.0},
    "quick": {"waiters": [10, 100, 1000], "repeats": 2, "idle_seconds": 2.0,
              "flow_tasks": 100, "flow_repeats": 1, "flow_idle_seconds": 3.0},
    "tiny": {"waiters": [10], "repeats": 1, "idle_seconds": 0.3,
             "flow_tasks": 5, "flow_repeats": 1, "flow_idle_seconds": 0.3},
}


# -- child: holds the waiters --------------------------------------------------------------

def _say(stream: IO[str], message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


Waiter = Callable[[str], Awaitable[bool]]


def store_waiter(url: str, shared: bool) -> Waiter:
    from slack_approvals.state.connection import connect_async
    from slack_approvals.state.store import AsyncApprovalStore

    shared_store = AsyncApprovalStore(connect_async(url)) if shared else None

    async def wait(request_id: str) -> bool:
        if shared_store is not None:
            decision = await shared_store.wait(request_id, timeout=WAIT_TIMEOUT_S)
            return decision is not None and decision.approved
        # One client per wait, opened and closed around it, as the gate's task does.
        store = AsyncApprovalStore(connect_async(url))
        try:
            decision = await store.wait(request_id, timeout=WAIT_TIMEOUT_S)
        finally:
            await store.aclose()
        return decision is not None and decision.approved

    return wait


async def hold_waiters(config: dict[str, Any], wait: Waiter, out: IO[str],
                       run_all: Callable[[list[Awaitable[None]]], Awaitable[Any]] | None = None) -> None:
    """Start one waiter per id, measure once all block, report, then await their return."""
    import redis.asyncio

    process = psutil.Process()
    ids: list[str] = config["ids"]
    monitor = redis.asyncio.Redis.from_url(config["monitor_url"], decode_responses=True)

    async def blocked_clients() -> int:
        return int((await monitor.info("clients"))["blocked_clients"])

    before_blocked = await blocked_clients()
    rss_before = process.memory_info().rss
    threads_before = process.num_threads()
    returned: list[float] = []
    errors: list[str] = []

    async def one(request_id: str) -> None:
        try:
            approved = await wait(request_id)
        except Exception as e:  # reported to the parent, which decides what it means
            errors.append(f"{type(e).__name__}: {e}")
            return
        if approved:
            returned.append(time.monotonic())

    waiters: list[Awaitable[None]] = [one(request_id) for request_id in ids]
    runner = asyncio.ensure_future(run_all(waiters) if run_all else asyncio.gather(*waiters))
    deadline = time.monotonic() + 60
    blocked = 0
    while time.monotonic() < deadline and not runner.done():
        blocked = await blocked_clients() - before_blocked
        if blocked + len(errors) >= len(ids):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # let the last waiters' allocations settle before measuring
    rss_after = process.memory_info().rss
    threads_after = process.num_threads()
    cpu_before = process.cpu_times()
    idle = float(config["idle_seconds"])
    await asyncio.sleep(idle)
    cpu_after = process.cpu_times()
    cpu_seconds = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    _say(out, {"ready": True, "blocked": blocked, "errors": len(errors), "error_sample": errors[:3],
               "rss_before": rss_before, "rss_after": rss_after, "threads_before": threads_before,
               "threads_after": threads_after, "idle_cpu_seconds": cpu_seconds, "idle_seconds": idle})
    if config.get("decide", True):
        await asyncio.wait_for(runner, timeout=WAIT_TIMEOUT_S)
    else:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    _say(out, {"done": True, "returned": returned, "errors": len(errors)})
    await monitor.aclose()


@contextlib.contextmanager
def flow_context(config: dict[str, Any]) -> Iterator[Callable[[list[Awaitable[None]]], Awaitable[Any]]]:
    """A Prefect server, the gate's services, and a flow that gathers the waiters."""
    from prefect import flow

    from .gate_services import gate_services
    from .services import prefect_harness

    @flow(name="bench-waiting-gates")
    async def gather_gates(count: int) -> None:
        await asyncio.gather(*pending)

    @flow(name="bench-warm-up")
    async def warm_up() -> None:
        return None

    pending: list[Awaitable[None]] = []

    async def run_all(waiters: list[Awaitable[None]]) -> None:
        pending.extend(waiters)
        await gather_gates(len(waiters))

    with prefect_harness(), gate_services(config["url"]):
        asyncio.run(warm_up())  # Prefect's clients and threads exist before the baseline
        yield run_all


def child_main() -> None:
    config = json.loads(sys.stdin.readline())
    kind = config["kind"]
    if kind == "flow":
        from slack_approvals.flows.gates import wait_for_decision
        from slack_approvals.state.connection import connect
        from slack_approvals.state.store import ApprovalStore

        # Read before the measurement, as request_approval hands the deadline to the wait.
        store = ApprovalStore(connect(config["url"]))
        deadlines = {request_id: store.get(request_id).deadline for request_id in config["ids"]}

        async def task_wait(request_id: str) -> bool:
            decision = await wait_for_decision(request_id, deadlines[request_id])
            return decision is not None and decision.approved  # None only past a hold window

        with flow_context(config) as run_all:
            asyncio.run(hold_waiters(config, task_wait, sys.stdout, run_all))
        return
    asyncio.run(hold_waiters(config, store_waiter(config["url"], kind == "shared"), sys.stdout))


# -- parent: creates, decides, measures ----------------------------------------------------

def read_message(child: subprocess.Popen[str]) -> dict[str, Any]:
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        child.wait(timeout=10)
        raise RuntimeError(f"the waiting child exited with {child.returncode} before answering")
    message: dict[str, Any] = json.loads(line)
    return message


def measure(server: RedisServer, kind: str, count: int, idle: float, decide: bool = True,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    client = server.client()
    client.flushall()
    plans = Plans(KeySpace(), DEFAULT_RETENTION)
    runner = PipelinedRunner(client, chunk=count)
    spec = RequestSpec(title="Quarterly budget", channel=CHANNEL, approvers=[APPROVER],
                       requester=REQUESTER, timeout=timedelta(hours=1))
    ids = [request.id for request in runner.run([plans.create(spec, None) for _ in range(count)])]
    child = subprocess.Popen([sys.executable, "-m", "bench.waiting_gates", "--child"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parent.parent, env=env)
    assert child.stdin is not None
    child.stdin.write(json.dumps({"kind": kind, "url": server.url, "monitor_url": server.url,
                                  "ids": ids, "idle_seconds": idle, "decide": decide}) + "\n")
    child.stdin.flush()
    try:
        ready = read_message(child)
        decide_started = time.monotonic()
        if decide:
            # All decides in one pipeline: the scripts run back to back in Redis, as fast as it can.
            decided = runner.run([plans.decide(request_id, APPROVER, "approve", None, ())
                                  for request_id in ids])
            assert all(r.status.value == "approved" for r in decided), decided[:3]
        decide_done = time.monotonic()
        done = read_message(child)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        client.close()
    returned = sorted(done["returned"])
    return {
        "kind": kind,
        "waiters": count,
        "blocked": ready["blocked"],
        "errors": done["errors"],
        "error_sample": ready["error_sample"],
        "rss_delta_bytes": ready["rss_after"] - ready["rss_before"],
        "rss_per_waiter_bytes": (ready["rss_after"] - ready["rss_before"]) / count,
        "rss_after_bytes": ready["rss_after"],
        "threads_before": ready["threads_before"],
        "threads_after": ready["threads_after"],
        "idle_cpu_percent": 100 * ready["idle_cpu_seconds"] / ready["idle_seconds"],
        "decide_ms": ms(decide_done - decide_started),
        "returned": len(returned),
        "all_returned_s": (returned[-1] - decide_started) if returned and decide else None,
        "median_return_ms": ms(median(returned) - decide_started) if returned and decide else None,
    }


def aggregate(items: list[dict[str, Any]]) -> dict[str, Any]:
    count = items[0]["waiters"]
    finished = [r["all_returned_s"] for r in items if r["all_returned_s"] is not None]
    return {
        "waiters": count,
        "runs": len(items),
        "rss_delta_mib": median(r["rss_delta_bytes"] for r in items) / 2**20,
        "rss_per_waiter_kib": median(r["rss_per_waiter_bytes"] for r in items) / 1024,
        "threads_added": median(r["threads_after"] - r["threads_before"] for r in items),
        "threads_after": median(r["threads_after"] for r in items),
        "idle_cpu_percent": median(r["idle_cpu_percent"] for r in items),
        "all_returned_s": median(finished) if finished else None,
        "median_return_ms": median(r["median_return_ms"] for r in items if r["median_return_ms"] is not None),
        "errors": sum(r["errors"] for r in items),
        "returned_all": all(r["returned"] == count for r in items),
    }


def flows_ready() -> bool:
    try:
        from slack_approvals.flows.gates import wait_for_decision
    except ImportError:
        return False
    return wait_for_decision is not None


def run(mode: Mode, results_dir: Path) -> Result:
    params = SIZES[mode]
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    started = time.perf_counter()
    biggest = max(params["waiters"])
    with RedisServer() as server:
        shared = measure(server, "shared", biggest, 0.1, decide=False)
        result.data["shared_default_pool"] = {k: shared[k] for k in ("waiters", "blocked", "errors",
                                                                     "error_sample")}
        runs = {count: [measure(server, "store", count, params["idle_seconds"])
                        for _ in range(params["repeats"])] for count in params["waiters"]}
        flow_runs = []
        if flows_ready():
            # One Prefect server for every flow child, started here: it is not in their RSS.
            with prefect_harness() as api_url:
                env = {**os.environ, SHARED_SERVER_ENV: api_url}
                flow_runs = [measure(server, "flow", params["flow_tasks"], params["flow_idle_seconds"],
                                     env=env) for _ in range(params["flow_repeats"])]
    result.data["runs"] = {str(k): v for k, v in runs.items()}
    result.data["flow_runs"] = flow_runs
    rows = [aggregate(items) for items in runs.values()]
    result.data["rows"] = rows
    result.data["flow_row"] = aggregate(flow_runs) if flow_runs else None
    top = rows[-1]
    for row in rows:
        n = row["waiters"]
        is_top = n == top["waiters"] and n >= 1000
        result.add(f"RSS added @{n} waiters", row["rss_delta_mib"], "MiB",
                   detail=f"{row['rss_per_waiter_kib']:.1f} KiB per waiter")
        result.add(f"threads added @{n} waiters", row["threads_added"], "",
                   "no thread per gate" if is_top else None,
                   row["threads_added"] < n / 10 if is_top else None,
                   detail=f"{row['threads_after']:.0f} threads in all")
        result.add(f"idle CPU @{n} waiters", row["idle_cpu_percent"], "% of a core")
        met = (row["all_returned_s"] is not None and row["returned_all"]
               and row["all_returned_s"] <= TARGET_ALL_RETURN_S)
        result.add(f"all {n} returned after decide", row["all_returned_s"], "s",
                   f"<= {TARGET_ALL_RETURN_S:g} s" if is_top else None, met if is_top else None,
                   detail=f"median waiter {row['median_return_ms']:.0f} ms")
    flow_row = result.data["flow_row"]
    if flow_row is not None:
        n = flow_row["waiters"]
        result.add(f"flow, {n} wait_for_decision tasks: RSS added", flow_row["rss_delta_mib"], "MiB",
                   detail=f"{flow_row['rss_per_waiter_kib']:.1f} KiB per task")
        result.add(f"flow, {n} tasks: threads added", flow_row["threads_added"], "",
                   detail=f"{flow_row['threads_after']:.0f} threads in all")
        result.add(f"flow, {n} tasks: idle CPU", flow_row["idle_cpu_percent"], "% of a core",
                   detail=f"over {params['flow_idle_seconds']:g} s with 10 s wait slices")
        result.add(f"flow, all {n} tasks returned after decide", flow_row["all_returned_s"], "s")
    else:
        result.notes.append("flows.gates.wait_for_decision was not importable: flow variant skipped.")
    sd = result.data["shared_default_pool"]
    result.add(f"one shared client, plain URL: waiters failing @{sd['waiters']}", sd["errors"], "",
               detail=(sd["error_sample"] or [""])[0])
    result.notes.append(
        "Each store waiter opens its own connect_async client, as wait_for_decision does per "
        f"attempt. Sharing one client instead: {sd['errors']} of {sd['waiters']} waiters fail at "
        "once, because redis-py's asyncio pool holds 100 connections unless the URL says "
        "?max_connections=N, and each blocked BLPOP holds one.")
    return finish(result, results_dir, started, plot)


def plot(result: Result, results_dir: Path) -> None:
    rows = result.data["rows"]
    flow_row = result.data["flow_row"]
    n = [row["waiters"] for row in rows]
    fig, (mem, wake) = new_figure(ncols=2, width=5.2)
    mem.plot(n, [row["rss_delta_mib"] for row in rows], "o-", color="#4C72B0",
             label="RSS added, store waiters")
    for x, row in zip(n, rows, strict=True):
        mem.annotate(f"{row['rss_per_waiter_kib']:.0f} KiB each", (x, row["rss_delta_mib"]),
                     textcoords="offset points", xytext=(0, 6), fontsize=7, ha="center")
    if flow_row is not None:
        mem.plot([flow_row["waiters"]], [flow_row["rss_delta_mib"]], "D", color="#8172B3",
                 label=f"RSS added, {flow_row['waiters']} gate tasks in a flow")
    mem.set_xscale("log")
    mem.set_xticks(n, [f"{x:,}" for x in n])
    mem.minorticks_off()
    mem.set_xlabel("waiting gates in one process")
    mem.set_ylabel("resident memory added (MiB)")
    threads = mem.twinx()
    threads.plot(n, [row["threads_added"] for row in rows], "s--", color="#DD8452",
                 label="threads added")
    threads.set_ylabel("threads added")
    threads.set_ylim(bottom=0, top=max(10.0, max(row["threads_added"] for row in rows) * 2))
    handles, labels = mem.get_legend_handles_labels()
    more_handles, more_labels = threads.get_legend_handles_labels()
    mem.legend(handles + more_handles, labels + more_labels, fontsize=7, loc="upper left")
    wake.plot(n, [row["all_returned_s"] for row in rows], "o-", color="#55A868",
              label="last waiter returns")
    wake.plot(n, [row["median_return_ms"] / 1000 for row in rows], "s-", color="#8172B3",
              label="median waiter returns")
    if flow_row is not None and flow_row["all_returned_s"] is not None:
        wake.plot([flow_row["waiters"]], [flow_row["all_returned_s"]], "D", color="#C44E52",
                  label="last gate task returns (flow)")
    wake.axhline(TARGET_ALL_RETURN_S, color="#C44E52", linestyle="--", linewidth=1,
                 label="target for 1,000")
    wake.set_xscale("log")
    wake.set_xticks(n, [f"{x:,}" for x in n])
    wake.tick_params(axis="x", which="minor", bottom=False)
    wake.set_yscale("log")
    wake.set_xlabel("waiting gates in one process")
    wake.set_ylabel("seconds after the decides were sent")
    wake.legend(fontsize=7)
    save_figure(fig, result, results_dir,
                f"median of {result.params['repeats']} runs per size (flow: "
                f"{result.params['flow_repeats']}), each in a fresh process")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    if parser.parse_args().child:
        child_main()


if __name__ == "__main__":
    main()
