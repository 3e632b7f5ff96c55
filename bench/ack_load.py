"""How fast the `approvals bot` process acks a click, alone and at 50-200 clicks per second.

The real CLI runs in HTTP mode against a sandbox (its own process) and a fresh redis-server.
Every click approves a distinct posted request, so every ack must leave exactly one vote in
Redis. Clicks are paced open-loop: each is sent at its scheduled time whether or not earlier
ones were answered, and its latency counts from that time (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from slack_approvals.bot.client import make_client
from slack_approvals.bot.messenger import Messenger
from slack_approvals.state.connection import connect
from slack_approvals.state.keys import KeySpace
from slack_approvals.state.models import RequestSpec
from slack_approvals.state.store import ApprovalStore

from .clicks import APPROVER, CHANNEL, REQUESTER, signed_click
from .common import Mode, Result, finish, machine, ms, new_figure, save_figure, summary
from .services import BOT_TOKEN, BotProcess, RedisServer, SandboxProcess, prefect_harness

NAME = "ack_load"
TITLE = "Click ack time of `approvals bot` (HTTP mode)"
TARGET_P99_MS = 100.0
TARGET_RATE = 100
NEEDS_PREFECT = True  # the bot emits a Prefect event per decision

SIZES: dict[Mode, dict[str, Any]] = {
    "full": {"rates": [50, 100, 200], "seconds": 30.0, "sequential": 1000, "warmup": 50},
    "quick": {"rates": [50, 100, 200], "seconds": 3.0, "sequential": 200, "warmup": 20},
    "tiny": {"rates": [50], "seconds": 0.5, "sequential": 10, "warmup": 3},
}


@dataclass
class Click:
    request_id: str
    body: bytes
    headers: dict[str, str]
    due: float = 0.0
    sent: float = 0.0
    done: float = 0.0
    status: int | None = None
    error: str | None = None

    @property
    def acked(self) -> bool:
        return self.status == 200

    @property
    def latency(self) -> float:
        """From the scheduled send time to the ack: queueing in the client counts too."""
        return self.done - self.due


def post_requests(store: ApprovalStore, messenger: Messenger, count: int) -> list[str]:
    """Create and post `count` requests the way a gate does, four at a time."""
    spec = RequestSpec(title="Deploy api v2.3.1", summary="Release notes: faster checkout.",
                       channel=CHANNEL, approvers=[APPROVER], quorum=1, requester=REQUESTER,
                       timeout=timedelta(hours=2))

    def one(_: int) -> str:
        return messenger.post(store.create(spec)).id

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


def make_clicks(request_ids: list[str]) -> list[Click]:
    """Bodies are built and signed before the clock starts; signatures stay valid for 300 s."""
    clicks = []
    for i, request_id in enumerate(request_ids):
        body, headers = signed_click(request_id, message_ts=f"1700000000.{i:06d}")
        clicks.append(Click(request_id, body, headers))
    return clicks


async def _send(client: httpx.AsyncClient, url: str, click: Click, loop: asyncio.AbstractEventLoop) -> None:
    click.sent = loop.time()
    try:
        response = await client.post(url, content=click.body, headers=click.headers)
        click.status = response.status_code
    except httpx.HTTPError as e:
        click.error = type(e).__name__
    click.done = loop.time()


async def open_loop(url: str, clicks: list[Click], rate: float) -> None:
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        start = loop.time() + 0.1
        tasks = []
        for i, click in enumerate(clicks):
            click.due = start + i / rate
            delay = click.due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(client, url, click, loop)))
        await asyncio.gather(*tasks)


def sequential(url: str, clicks: list[Click]) -> None:
    with httpx.Client(timeout=10.0) as client:
        for click in clicks:
            click.due = click.sent = time.perf_counter()
            try:
                response = client.post(url, content=click.body, headers=click.headers)
                click.status = response.status_code
            except httpx.HTTPError as e:
                click.error = type(e).__name__
            click.done = time.perf_counter()


def audit_check(client: Any, clicks: list[Click]) -> dict[str, int]:
    """Every acked click must have left exactly one vote in the request's audit trail."""
    keys = KeySpace()
    pipe = client.pipeline(transaction=False)
    for click in clicks:
        pipe.lrange(keys.audit(click.request_id), 0, -1)
    audits = pipe.execute()
    lost = duplicated = recorded_unacked = 0
    for click, entries in zip(clicks, audits, strict=True):
        votes = sum(1 for raw in entries if json.loads(raw).get("event") == "vote")
        if click.acked and votes == 0:
            lost += 1
        if votes > 1:
            duplicated += 1
        if not click.acked and votes == 1:
            recorded_unacked += 1
    return {"lost": lost, "duplicated": duplicated, "recorded_not_acked": recorded_unacked}


class CpuMeter:
    """CPU seconds of every process on the click path, to see where a saturated machine's
    cores went: the bot, the sandbox (Slack), the Prefect server, Redis, the load generator."""

    def __init__(self, named: dict[str, int]) -> None:
        me = psutil.Process()
        known = set(named.values())
        self.processes = {name: psutil.Process(pid) for name, pid in named.items()}
        self.processes["load generator"] = me
        # What else this process started and still runs: the temporary Prefect server.
        for child in me.children(recursive=True):
            if child.pid not in known and "uvicorn" in " ".join(child.cmdline()):
                self.processes["prefect server"] = child
        self._start: dict[str, float] = {}
        self._start_machine = 0.0
        self._since = 0.0

    def _seconds(self, name: str, process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
            total = times.user + times.system
            if name != "load generator":  # its children are the other processes measured here
                for child in process.children(recursive=True):
                    child_times = child.cpu_times()
                    total += child_times.user + child_times.system
            return float(total)
        except psutil.Error:
            return 0.0

    @staticmethod
    def _machine_busy() -> float:
        times = psutil.cpu_times()
        return float(times.user + times.nice + times.system + times.irq + times.softirq
                     + getattr(times, "steal", 0.0))

    def start(self) -> None:
        self._since = time.monotonic()
        self._start = {name: self._seconds(name, p) for name, p in self.processes.items()}
        self._start_machine = self._machine_busy()

    def percent(self) -> dict[str, float]:
        """% of one core per process; `other processes` is whatever else ran on the machine."""
        elapsed = time.monotonic() - self._since
        ours = {name: 100 * (self._seconds(name, p) - self._start[name]) / elapsed
                for name, p in self.processes.items()}
        machine = 100 * (self._machine_busy() - self._start_machine) / elapsed
        ours["other processes"] = max(0.0, machine - sum(ours.values()))
        return {name: round(value, 1) for name, value in ours.items()}


def settle(process: psutil.Process, timeout: float = 60.0) -> float:
    """Wait until the bot has finished its follow-up Slack edits (CPU quiet); returns seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.cpu_percent(interval=0.5) < 5.0:
            break
    return time.monotonic() - started


def phase_summary(clicks: list[Click], seconds: float, check: dict[str, int],
                  cpu: dict[str, float]) -> dict[str, Any]:
    acked = [c for c in clicks if c.acked]
    latencies = [ms(c.latency) for c in acked]
    lags = [ms(c.sent - c.due) for c in clicks if c.sent]
    span = max(c.done for c in clicks) - min(c.due for c in clicks) if clicks else 0.0
    return {
        "clicks": len(clicks),
        "acked": len(acked),
        "errors": len(clicks) - len(acked),
        "error_kinds": sorted({c.error or str(c.status) for c in clicks if not c.acked}),
        "offered_seconds": seconds,
        "achieved_rate": len(acked) / span if span else 0.0,
        "latency_ms": summary(latencies),
        # The same clicks timed from when the client actually sent them, i.e. without the
        # load generator's own scheduling lag (which `latency_ms` rightly includes).
        "latency_from_send_ms": summary([ms(c.done - c.sent) for c in acked]),
        "client_lag_ms": summary(lags),
        "bot_cpu_percent": cpu["bot"],
        "cpu_percent_by_process": cpu,
        **check,
        "series": [[round(c.due - clicks[0].due, 4), round(ms(c.latency), 3)] for c in acked],
    }


def run(mode: Mode, results_dir: Path) -> Result:
    params = SIZES[mode]
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    started = time.perf_counter()
    total = params["warmup"] + params["sequential"] + sum(
        int(rate * params["seconds"]) for rate in params["rates"])
    with RedisServer() as redis_server, SandboxProcess() as sandbox, prefect_harness() as prefect_url:
        client = connect(redis_server.url)
        store = ApprovalStore(client)
        messenger = Messenger(make_client(BOT_TOKEN, sandbox.api_url), store)
        t0 = time.perf_counter()
        request_ids = post_requests(store, messenger, total)
        result.data["posting_seconds"] = time.perf_counter() - t0
        with BotProcess(sandbox.api_url, redis_server.url, prefect_url) as bot:
            url = f"{bot.url}/slack/events"
            assert bot.process is not None
            bot_process = psutil.Process(bot.process.pid)
            cursor = 0

            def take(count: int) -> list[Click]:
                nonlocal cursor
                chunk = request_ids[cursor:cursor + count]
                cursor += count
                return make_clicks(chunk)

            sequential(url, take(params["warmup"]))  # auth.test, imports, first connections
            settle(bot_process)
            clicks = take(params["sequential"])
            sequential(url, clicks)
            seq_latencies = [ms(c.done - c.sent) for c in clicks if c.acked]
            result.data["sequential"] = {
                "latency_ms": summary(seq_latencies),
                "errors": sum(1 for c in clicks if not c.acked),
                **audit_check(client, clicks),
            }
            settle(bot_process)
            phases: dict[str, Any] = {}
            assert sandbox.process is not None and redis_server.process is not None
            meter = CpuMeter({"bot": bot.process.pid, "sandbox": sandbox.process.pid,
                              "redis-server": redis_server.process.pid})
            for rate in params["rates"]:
                clicks = take(int(rate * params["seconds"]))
                meter.start()
                asyncio.run(open_loop(url, clicks, rate))
                cpu = meter.percent()
                phases[str(rate)] = phase_summary(clicks, params["seconds"],
                                                  audit_check(client, clicks), cpu)
                phases[str(rate)]["settle_seconds"] = settle(bot_process)
            # Every click's latency over time is kept for the highest rate only (the figure's).
            for rate in params["rates"][:-1]:
                del phases[str(rate)]["series"]
            result.data["phases"] = phases
            result.data["bot_errors_logged"] = bot.errors_logged()[:20]
        client.close()
    seq = result.data["sequential"]
    result.add("ack, sequential: median", seq["latency_ms"]["median"], "ms",
               detail=f"{seq['latency_ms']['n']} requests")
    result.add("ack, sequential: p99", seq["latency_ms"]["p99"], "ms")
    for rate, phase in result.data["phases"].items():
        lat = phase["latency_ms"]
        at_target = int(rate) == TARGET_RATE
        sent = phase["latency_from_send_ms"]
        cpu = phase["cpu_percent_by_process"]
        result.add(f"ack @{rate}/s: median", lat["median"], "ms",
                   detail=f"achieved {phase['achieved_rate']:.0f}/s; CPU % of a core: "
                          + ", ".join(f"{name} {value:.0f}" for name, value in cpu.items()))
        result.add(f"ack @{rate}/s: p99", lat["p99"], "ms",
                   f"<= {TARGET_P99_MS:.0f} ms" if at_target else None,
                   lat["p99"] <= TARGET_P99_MS if at_target else None,
                   detail=f"from actual send: p99 {sent['p99']:.0f} ms; client lag p99 "
                          f"{phase['client_lag_ms']['p99']:.0f} ms")
        clean = phase["lost"] == 0 and phase["duplicated"] == 0
        result.add(f"@{rate}/s: errors / lost / duplicated", phase["errors"] + phase["lost"]
                   + phase["duplicated"], "", "0 lost, 0 duplicated", clean,
                   detail=f"{phase['errors']} errors, {phase['lost']} lost, "
                          f"{phase['duplicated']} duplicated of {phase['clicks']}")
    result.notes.append(
        "Load generator (httpx async), bot, sandbox and redis-server share the machine's cores; "
        "latency counts from each click's scheduled time. Each click approves its own posted "
        "request, so each ack is followed by a chat.update to the sandbox and an approval.decided "
        "event to the Prefect server (the benchmark's temporary one) in the bot's background pool.")
    return finish(result, results_dir, started, plot)


def plot(result: Result, results_dir: Path) -> None:
    phases = result.data["phases"]
    rates = [int(r) for r in phases]
    fig, (left, right) = new_figure(ncols=2, width=5.4)
    medians = [phases[str(r)]["latency_ms"]["median"] for r in rates]
    p99s = [phases[str(r)]["latency_ms"]["p99"] for r in rates]
    left.plot(rates, medians, "o-", label="median", color="#4C72B0")
    left.plot(rates, p99s, "s-", label="p99", color="#DD8452")
    seq = result.data["sequential"]["latency_ms"]
    left.axhline(seq["median"], color="#4C72B0", linestyle=":", linewidth=1,
                 label=f"sequential median ({seq['median']:.1f} ms)")
    left.axhline(TARGET_P99_MS, color="#C44E52", linestyle="--", linewidth=1,
                 label=f"target p99 @{TARGET_RATE}/s")
    for r, m, p in zip(rates, medians, p99s, strict=True):
        left.annotate(f"{m:,.0f}" if m >= 100 else f"{m:.1f}", (r, m), textcoords="offset points",
                      xytext=(6, -10), fontsize=7)
        left.annotate(f"{p:,.0f}" if p >= 100 else f"{p:.1f}", (r, p), textcoords="offset points",
                      xytext=(6, 3), fontsize=7)
    left.set_xlabel("offered clicks per second (open loop)")
    left.set_ylabel("ack latency (ms, log)")
    left.set_yscale("log")
    left.set_xticks(rates)
    left.legend(fontsize=7)
    top = str(max(rates))
    series = phases[top]["series"]
    right.scatter([s[0] for s in series], [s[1] for s in series], s=2, alpha=0.5, color="#55A868")
    right.set_xlabel("seconds into the run")
    right.set_ylabel("ack latency (ms, log)")
    right.set_title(f"every click at {top}/s", fontsize=9)
    right.set_yscale("log")
    save_figure(fig, result, results_dir,
                f"percentiles over all clicks of one {result.params['seconds']:g} s run per rate")
