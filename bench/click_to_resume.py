"""From an Approve click to the waiting flow going on, against Prefect's own pause and a poll.

    gate       signed block_actions POST to `approvals bot` (uvicorn + Bolt, its own process)
               -> decide.lua in redis-server (AOF) -> BLPOP wakes `wait_for_decision`
               -> `approval_gate` returns in a running async flow
    poll 1 s   the same click; the flow's task reads the request from Redis every second
    pause      the flow calls pause_flow_run (apause_flow_run, as an async flow does);
               another thread calls resume_flow_run; the flow polls the API every 10 s
               (Prefect's default) or every 1 s

Every latency runs from the moment the click (or resume call) is sent to the moment the flow
has the decision; both moments are read from the same clock in this process.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from slack_approvals.state.keys import KeySpace

from .clicks import APPROVER, CHANNEL, signed_click
from .common import Mode, Result, finish, machine, median, ms, new_figure, save_figure, summary
from .services import BotProcess, RedisServer, SandboxProcess, prefect_harness

NAME = "click_to_resume"
TITLE = "Click to resume: a waiting gate vs Prefect's pause_flow_run"
TARGET_MEDIAN_MS = 50.0
TARGET_P99_MS = 250.0
TARGET_RATIO = 50.0
NEEDS_PREFECT = True
# The click lands at a random moment once the gate is waiting: blocking reads do not care,
# pollers do, and a real approver's timing is unrelated to either.
CLICK_JITTER_S = 0.02

SIZES: dict[Mode, dict[str, Any]] = {
    "full": {"gate": 200, "warmup": 3, "poll_1s": 30, "pause_1s": 30, "pause_10s": 8},
    "quick": {"gate": 20, "warmup": 3, "poll_1s": 5, "pause_1s": 5, "pause_10s": 2},
    "tiny": {"gate": 2, "warmup": 1, "poll_1s": 1, "pause_1s": 1, "pause_10s": 0},
}


@dataclass
class Recorder:
    """Hands waiting requests from the flow to the clicking thread and times both ends."""

    announced: queue.Queue[tuple[str, str]] = field(default_factory=queue.Queue)
    sent: dict[str, float] = field(default_factory=dict)
    returned: dict[str, float] = field(default_factory=dict)
    # Wall-clock twins of the two moments, to compare with the vote time Redis records.
    sent_wall: dict[str, float] = field(default_factory=dict)
    returned_wall: dict[str, float] = field(default_factory=dict)
    acks: list[float] = field(default_factory=list)
    done: dict[str, threading.Event] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def announce(self, key: str, detail: str = "") -> None:
        self.done.setdefault(key, threading.Event())
        self.announced.put((key, detail))

    def mark_sent(self, key: str) -> None:
        self.sent_wall[key] = time.time()
        self.sent[key] = time.perf_counter()

    def mark_returned(self, key: str) -> None:
        self.returned[key] = time.perf_counter()
        self.returned_wall[key] = time.time()
        self.done.setdefault(key, threading.Event()).set()

    def latencies_ms(self, skip: int = 0) -> list[float]:
        keys = [k for k in self.sent if k in self.returned][skip:]
        return [ms(self.returned[k] - self.sent[k]) for k in keys]


def build_flows(recorder: Recorder) -> dict[str, Any]:
    """The benchmark's flows, closed over the recorder."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.flow_runs import apause_flow_run
    from prefect.runtime import flow_run

    from slack_approvals.flows.gates import approval_gate, gate_draft, request_approval
    from slack_approvals.flows.services import services
    from slack_approvals.state.models import Decision

    @flow(name="bench-gates-in-a-row")
    async def gates_in_a_row(count: int) -> None:
        for i in range(count):
            decision = await approval_gate(f"click-{i}", f"Deploy build {i}", approvers=[APPROVER],
                                           channel=CHANNEL, timeout=timedelta(minutes=30))
            recorder.mark_returned(decision.request_id)

    @task(name="poll-for-decision", cache_policy=NO_CACHE)
    async def poll_for_decision(request_id: str, interval: float) -> Decision:
        """What a gate without blocking reads would do: look, sleep, look again."""
        async with services().async_store() as store:
            while True:
                request = await store.get(request_id)
                if request.decision is not None:
                    return request.decision
                await asyncio.sleep(interval)

    @flow(name="bench-poll-in-a-row")
    async def polls_in_a_row(count: int, interval: float) -> None:
        for i in range(count):
            draft = gate_draft(f"Deploy build {i}", approvers=[APPROVER], channel=CHANNEL,
                               timeout=timedelta(minutes=30))
            request = await request_approval(draft, f"poll-{i}")
            recorder.announce(request.id, request.message_ts or "")
            decision = await poll_for_decision(request.id, interval)
            recorder.mark_returned(decision.request_id)

    @flow(name="bench-pauses-in-a-row")
    async def pauses_in_a_row(count: int, poll_interval: int) -> None:
        for i in range(count):
            key = f"{flow_run.id}:{i}"
            recorder.announce(key, str(flow_run.id))
            await apause_flow_run(timeout=600, poll_interval=poll_interval, key=f"pause-{i}")
            recorder.mark_returned(key)

    return {"gates": gates_in_a_row, "polls": polls_in_a_row, "pauses": pauses_in_a_row}


def in_thread(target: Callable[[], None]) -> threading.Thread:
    """A thread that sees this thread's Prefect settings (they live in context variables)."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), daemon=True)
    thread.start()
    return thread


def wait_blocked(client: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while int(client.info("clients")["blocked_clients"]) < 1:
        if time.monotonic() > deadline:
            raise TimeoutError("no gate started waiting on Redis")
        time.sleep(0.002)


def click(http: httpx.Client, url: str, recorder: Recorder, request_id: str, message_ts: str) -> None:
    body, headers = signed_click(request_id, message_ts=message_ts or "1700000000.000100")
    recorder.mark_sent(request_id)
    response = http.post(url, content=body, headers=headers)
    recorder.acks.append(ms(time.perf_counter() - recorder.sent[request_id]))
    if response.status_code != 200:
        recorder.errors.append(f"click on {request_id}: HTTP {response.status_code}")


def gate_clicker(redis_client: Any, url: str, recorder: Recorder, count: int) -> Callable[[], None]:
    """Click each gate once its task is blocked on Redis, then wait for the flow to go on."""
    keys = KeySpace()

    def loop() -> None:
        with httpx.Client(timeout=10) as http:
            for _ in range(count):
                try:
                    wait_blocked(redis_client)
                    (request_id,) = redis_client.zrange(keys.pending_index(), 0, -1)
                    message_ts = redis_client.hget(keys.state(request_id), "msg_ts") or ""
                    time.sleep(random.uniform(0, CLICK_JITTER_S))
                    click(http, url, recorder, request_id, message_ts)
                    recorder.done.setdefault(request_id, threading.Event()).wait(60)
                except Exception as e:  # reported in the results, the flow then times out
                    recorder.errors.append(f"{type(e).__name__}: {e}")
                    return

    return loop


def poll_clicker(url: str, recorder: Recorder, count: int, interval: float) -> Callable[[], None]:
    def loop() -> None:
        with httpx.Client(timeout=10) as http:
            for _ in range(count):
                request_id, message_ts = recorder.announced.get(timeout=120)
                time.sleep(random.uniform(0, interval))
                click(http, url, recorder, request_id, message_ts)
                recorder.done[request_id].wait(60)

    return loop


def resumer(recorder: Recorder, count: int, interval: float) -> Callable[[], None]:
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    def loop() -> None:
        with get_client(sync_client=True) as client:
            for _ in range(count):
                key, flow_run_id = recorder.announced.get(timeout=120)
                run_id = UUID(flow_run_id)
                deadline = time.monotonic() + 60
                while True:
                    state = client.read_flow_run(run_id).state
                    if state is not None and state.is_paused():
                        break
                    if time.monotonic() > deadline:
                        recorder.errors.append(f"flow run {run_id} never paused")
                        return
                    time.sleep(0.02)
                time.sleep(random.uniform(0, interval))
                recorder.mark_sent(key)
                resume_flow_run(run_id)
                recorder.done[key].wait(3 * interval + 60)

    return loop


def split_at_vote(redis_client: Any, recorder: Recorder, skip: int) -> dict[str, list[float]]:
    """Click -> vote stored (decided_ms, by Redis' clock) and vote stored -> flow resumes."""
    keys = KeySpace()
    ids = [k for k in recorder.sent if k in recorder.returned][skip:]
    to_vote, to_resume = [], []
    for request_id in ids:
        decided_ms = redis_client.hget(keys.state(request_id), "decided_ms")
        if decided_ms is None:
            continue
        to_vote.append(int(decided_ms) - recorder.sent_wall[request_id] * 1000)
        to_resume.append(recorder.returned_wall[request_id] * 1000 - int(decided_ms))
    return {"click_to_vote_ms": to_vote, "vote_to_resume_ms": to_resume}


def run_variant(flow_fn: Any, args: tuple[Any, ...], worker: Callable[[], None]) -> None:
    thread = in_thread(worker)
    asyncio.run(flow_fn(*args))
    thread.join(timeout=60)


def run(mode: Mode, results_dir: Path) -> Result:
    params = SIZES[mode]
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    warmup = params["warmup"]
    started = time.perf_counter()
    variants: dict[str, dict[str, Any]] = {}
    with RedisServer() as redis_server, SandboxProcess() as sandbox, prefect_harness() as prefect_url, \
            BotProcess(sandbox.api_url, redis_server.url, prefect_url) as bot:
        from .gate_services import gate_services

        url = f"{bot.url}/slack/events"
        redis_client = redis_server.client()
        with gate_services(redis_server.url, sandbox.api_url):
            recorder = Recorder()
            flows = build_flows(recorder)
            count = params["gate"] + warmup
            run_variant(flows["gates"], (count,), gate_clicker(redis_client, url, recorder, count))
            variants["gate"] = {"latency_ms": recorder.latencies_ms(skip=warmup),
                                "ack_ms": recorder.acks[warmup:], "errors": recorder.errors,
                                **split_at_vote(redis_client, recorder, warmup)}
            recorder = Recorder()
            flows = build_flows(recorder)
            n = params["poll_1s"]
            if n:
                run_variant(flows["polls"], (n, 1.0), poll_clicker(url, recorder, n, 1.0))
                variants["poll_1s"] = {"latency_ms": recorder.latencies_ms(), "errors": recorder.errors}
            for name, interval in (("pause_1s", 1), ("pause_10s", 10)):
                n = params[name]
                if not n:
                    continue
                recorder = Recorder()
                flows = build_flows(recorder)
                run_variant(flows["pauses"], (n, interval), resumer(recorder, n, interval))
                variants[name] = {"latency_ms": recorder.latencies_ms(), "errors": recorder.errors}
        redis_client.close()
    for variant in variants.values():
        variant["summary"] = summary(variant["latency_ms"])
    result.data["variants"] = variants
    gate = variants["gate"]["summary"]
    result.add("gate: click -> flow resumes, median", gate["median"], "ms",
               f"<= {TARGET_MEDIAN_MS:.0f} ms", gate["median"] <= TARGET_MEDIAN_MS,
               detail=f"{gate['n']} decisions")
    result.add("gate: p95", gate["p95"], "ms")
    result.add("gate: p99", gate["p99"], "ms", f"<= {TARGET_P99_MS:.0f} ms", gate["p99"] <= TARGET_P99_MS)
    result.add("gate: click -> vote in Redis, median", median(variants["gate"]["click_to_vote_ms"]),
               "ms", detail="Redis TIME has 1 ms resolution")
    result.add("gate: vote in Redis -> flow resumes, median",
               median(variants["gate"]["vote_to_resume_ms"]), "ms")
    labels = {"poll_1s": "poll Redis every 1 s", "pause_1s": "pause_flow_run, poll_interval=1 s",
              "pause_10s": "pause_flow_run, default poll_interval=10 s"}
    ratios = {}
    for name, label in labels.items():
        if name not in variants:
            continue
        s = variants[name]["summary"]
        ratio = s["median"] / gate["median"]
        ratios[name] = ratio
        result.add(f"{label}: median", s["median"], "ms", detail=f"{s['n']} samples")
        is_default = name == "pause_10s"
        result.add(f"ratio {name} / gate (medians)", ratio, "x",
                   f">= {TARGET_RATIO:.0f}x" if is_default else None,
                   ratio >= TARGET_RATIO if is_default else None)
    result.data["ratios"] = ratios
    errors = sum(len(v["errors"]) for v in variants.values())
    if errors:
        result.notes.append(f"{errors} errors: {[e for v in variants.values() for e in v['errors']][:3]}")
    result.notes.append(
        f"gate: {gate['n']} decisions after {warmup} warm-up gates; pause_flow_run at its default "
        f"10 s poll: {params['pause_10s']} samples only (each takes up to 10 s); at 1 s: "
        f"{params['pause_1s']}; poll loop: {params['poll_1s']}. Resumes and poll-loop clicks land "
        "at a uniformly random moment within one poll interval. Bot, sandbox and Prefect server "
        "run as separate processes on the same machine; Prefect: temporary SQLite server. "
        "ack_ms in the JSON is the clicking thread's view and shares this process' GIL with the "
        "waking flow; ack_load measures acks on their own.")
    return finish(result, results_dir, started, plot)


def plot(result: Result, results_dir: Path) -> None:
    variants = result.data["variants"]
    order = [("gate", "gate (BLPOP)", "#55A868"), ("poll_1s", "poll Redis 1 s", "#8172B3"),
             ("pause_1s", "pause_flow_run 1 s", "#DD8452"),
             ("pause_10s", "pause_flow_run 10 s (default)", "#C44E52")]
    present = [(key, label, color) for key, label, color in order if key in variants]
    fig, (cdf, bars) = new_figure(ncols=2, width=5.4)
    for key, label, color in present:
        values = sorted(variants[key]["latency_ms"])
        if not values:
            continue
        cdf.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post",
                 color=color, label=f"{label} (n={len(values)})")
    cdf.set_xscale("log")
    cdf.set_xlabel("click (or resume) to flow going on (ms, log)")
    cdf.set_ylabel("fraction of decisions")
    cdf.axvline(TARGET_MEDIAN_MS, color="#999999", linestyle=":", linewidth=1, label="target median")
    cdf.legend(fontsize=7, loc="lower right")
    medians = [variants[key]["summary"]["median"] for key, _, _ in present]
    p95 = [variants[key]["summary"]["p95"] for key, _, _ in present]
    positions = range(len(present))
    bars.bar(positions, medians, color=[color for _, _, color in present])
    bars.scatter(positions, p95, marker="_", s=300, color="black", label="p95", zorder=3)
    gate_median = variants["gate"]["summary"]["median"]
    for p, value, tick in zip(positions, medians, p95, strict=True):
        ratio = value / gate_median
        text = f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"
        if p:
            text += f"\n{ratio:.0f}x the gate"
        bars.text(p, max(value, tick) * 1.15, text, ha="center", va="bottom", fontsize=7)
    bars.set_yscale("log")
    bars.set_ylim(min(medians) / 2, max(max(medians), max(p95)) * 4)
    bars.set_xticks(list(positions), [label.replace(" (", "\n(") for _, label, _ in present], fontsize=7)
    bars.set_ylabel("median (ms, log); tick = p95")
    bars.legend(fontsize=7, loc="upper left")
    save_figure(fig, result, results_dir, "medians over all samples of one run; the CDF shows every sample")
