"""What the bot's observability costs: a Prometheus scrape of `approvals bot` (Redis up, silent,
stopped) and the ack of a click with metrics and JSON logs on, against a bot with neither.

Two real `approvals bot` processes share one redis-server and one sandbox; clicks go to them
in turns, one at a time, so both see the same machine load. The pending gauge is read from
Redis at every scrape, so the scrape is timed with many requests pending.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from slack_approvals.approvals.logformat import TEXT_FORMAT, JsonFormatter
from slack_approvals.approvals.serving import free_port
from slack_approvals.bot.client import make_client
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.metrics import PENDING_READ_TIMEOUT_SECONDS, BotMetrics
from slack_approvals.state.connection import connect
from slack_approvals.state.models import RequestSpec
from slack_approvals.state.store import ApprovalStore

from .ack_load import make_clicks, post_requests, sequential
from .clicks import APPROVER, CHANNEL, REQUESTER
from .common import Mode, Result, finish, machine, ms, new_figure, save_figure, summary
from .pipelined import PipelinedRunner
from .services import BOT_TOKEN, BotProcess, RedisServer, SandboxProcess, prefect_harness

NAME = "metrics"
TITLE = "Observability of `approvals bot`: scrape time and what it costs a click"
NEEDS_PREFECT = True  # the bots emit a Prefect event per decision
# A scrape must stay well inside Prometheus' default 10 s timeout even when Redis hangs.
TARGET_SILENT_SCRAPE_MS = 1000.0

SIZES: dict[Mode, dict[str, Any]] = {
    "full": {"pending": 10_000, "scrapes": 500, "silent_scrapes": 10, "clicks": 500, "warmup": 30},
    "quick": {"pending": 2_000, "scrapes": 200, "silent_scrapes": 5, "clicks": 150, "warmup": 20},
    "tiny": {"pending": 100, "scrapes": 10, "silent_scrapes": 2, "clicks": 10, "warmup": 3},
}


def scrape(client: httpx.Client, url: str) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    response = client.get(url)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    values = {sample.name: sample.value
              for family in text_string_to_metric_families(response.text)
              for sample in family.samples if not sample.labels}
    return seconds, values


def scrapes(client: httpx.Client, url: str, count: int) -> tuple[list[float], dict[str, float]]:
    timings: list[float] = []
    last: dict[str, float] = {}
    for _ in range(count):
        seconds, last = scrape(client, url)
        timings.append(ms(seconds))
    return timings, last


def run(mode: Mode, results_dir: Path) -> Result:
    params = SIZES[mode]
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    started = time.perf_counter()
    metrics_port = free_port()
    with RedisServer() as redis_server, SandboxProcess() as sandbox, prefect_harness() as prefect_url:
        client = connect(redis_server.url)
        store = ApprovalStore(client)
        spec = RequestSpec(title="Rotate keys", channel=CHANNEL, approvers=[APPROVER],
                           requester=REQUESTER, timeout=timedelta(hours=2))
        # Requests that only wait (never posted, never clicked): the gauge counts them all.
        PipelinedRunner(client).run([store.plans.create(spec, None)
                                     for _ in range(params["pending"])])
        messenger = Messenger(make_client(BOT_TOKEN, sandbox.api_url), store)
        per_bot = params["warmup"] + params["clicks"]
        request_ids = post_requests(store, messenger, 2 * per_bot)
        observed = {"APPROVALS_METRICS_PORT": str(metrics_port),
                    "APPROVALS_METRICS_HOST": "127.0.0.1", "APPROVALS_LOG_FORMAT": "json"}
        with BotProcess(sandbox.api_url, redis_server.url, prefect_url) as plain, \
                BotProcess(sandbox.api_url, redis_server.url, prefect_url, observed) as watched, \
                httpx.Client(timeout=30.0) as http:
            bots = {"metrics and JSON logs": watched, "neither": plain}
            clicks = {name: make_clicks(request_ids[i * per_bot:(i + 1) * per_bot])
                      for i, name in enumerate(bots)}
            for name, bot in bots.items():  # auth.test, imports, first connections
                sequential(f"{bot.url}/slack/events", clicks[name][:params["warmup"]])
            latencies: dict[str, list[float]] = {name: [] for name in bots}
            for i in range(params["warmup"], per_bot):  # in turns: both see the same load
                for name, bot in bots.items():
                    click = clicks[name][i]
                    sequential(f"{bot.url}/slack/events", [click])
                    if click.acked:
                        latencies[name].append(ms(click.done - click.sent))
            errors = {name: sum(1 for c in clicks[name] if not c.acked) for name in bots}

            url = f"http://127.0.0.1:{metrics_port}/metrics"
            up, values = scrapes(http, url, params["scrapes"])
            pending_now = int(client.zcard(store.plans.keys.pending_index()))
            assert redis_server.process is not None
            os.kill(redis_server.process.pid, signal.SIGSTOP)  # a Redis that does not answer
            try:
                silent, silent_values = scrapes(http, url, params["silent_scrapes"])
            finally:
                os.kill(redis_server.process.pid, signal.SIGCONT)
            client.close()
            redis_server.stop()
            stopped, stopped_values = scrapes(http, url, params["scrapes"])
            result.data["bot_errors_logged"] = plain.errors_logged()[:20]

    result.data.update({
        "ack_ms": {name: summary(values_) for name, values_ in latencies.items()},
        "click_errors": errors,
        "scrape_ms": {"Redis up": summary(up), "Redis silent (SIGSTOP)": summary(silent),
                      "Redis stopped": summary(stopped)},
        "pending_gauge": values.get("approvals_pending_requests"),
        "pending_in_redis": pending_now,
        "gauge_when_silent": silent_values.get("approvals_pending_requests"),
        "gauge_when_stopped": stopped_values.get("approvals_pending_requests"),
    })
    scrape_ms = result.data["scrape_ms"]
    result.add("scrape, Redis up: median", scrape_ms["Redis up"]["median"], "ms",
               detail=f"{params['pending']:,} pending; {scrape_ms['Redis up']['n']} scrapes")
    result.add("scrape, Redis up: p99", scrape_ms["Redis up"]["p99"], "ms")
    result.add("scrape, Redis silent: max", scrape_ms["Redis silent (SIGSTOP)"]["max"], "ms",
               f"< {TARGET_SILENT_SCRAPE_MS:.0f} ms",
               scrape_ms["Redis silent (SIGSTOP)"]["max"] < TARGET_SILENT_SCRAPE_MS,
               detail=f"the pending read gives up after {PENDING_READ_TIMEOUT_SECONDS:g} s")
    result.add("scrape, Redis stopped: median", scrape_ms["Redis stopped"]["median"], "ms")
    result.add("pending gauge = requests pending in Redis", result.data["pending_gauge"], "",
               f"= {pending_now:,}", result.data["pending_gauge"] == pending_now,
               detail="and left out of the scrape while Redis is silent or stopped"
               if result.data["gauge_when_silent"] is None
               and result.data["gauge_when_stopped"] is None else "a stale gauge was served")
    for name in bots:
        ack = result.data["ack_ms"][name]
        result.add(f"ack, {name}: median", ack["median"], "ms",
                   detail=f"p99 {ack['p99']:.1f} ms over {ack['n']} clicks, "
                          f"{errors[name]} not acked")
    per_click, per_json, per_text = in_process_costs(params["clicks"] * 200)
    result.data["in_process_us"] = {"count a click": per_click, "JSON log line": per_json,
                                    "text log line": per_text}
    result.add("counting one click, in process", per_click, "µs",
               detail="ack and click-to-record histograms and a decision counter")
    result.add("one JSON log line, in process", per_json, "µs",
               detail=f"text formatter: {per_text:.1f} µs")
    result.notes.append("The two bots' acks differ by what the machine's other work does to one "
                        "click at a time on two cores; the in-process costs say what counting "
                        "and JSON lines take of the bot's own time.")
    return finish(result, results_dir, started, plot)


def in_process_costs(rounds: int) -> tuple[float, float, float]:
    """Microseconds per click counted, per JSON log line and per text log line formatted."""
    metrics = BotMetrics(CollectorRegistry())
    started = time.perf_counter()
    for _ in range(rounds):
        metrics.acked("block_actions", 0.004)
        metrics.click_recorded(time.time() - 0.01)
        metrics.decisions.labels("approved").inc()
    per_click = (time.perf_counter() - started) / rounds * 1e6
    record = logging.LogRecord("slack_approvals.bot.voting", logging.INFO, __file__, 1,
                               "recorded a vote on %s", ("r1",), None)
    record.request_id = "r1"
    costs = []
    for formatter in (JsonFormatter(), logging.Formatter(TEXT_FORMAT)):
        started = time.perf_counter()
        for _ in range(rounds):
            formatter.format(record)
        costs.append((time.perf_counter() - started) / rounds * 1e6)
    return per_click, costs[0], costs[1]


def plot(result: Result, results_dir: Path) -> None:
    fig, (left, right) = new_figure(ncols=2, width=5.0)
    for ax, key, title in ((left, "scrape_ms", "GET /metrics"),
                           (right, "ack_ms", "click ack, one at a time")):
        data = result.data[key]
        labels = list(data)
        medians = [data[label]["median"] for label in labels]
        p99s = [data[label]["p99"] for label in labels]
        positions = range(len(labels))
        ax.barh([p + 0.2 for p in positions], medians, height=0.4, label="median",
                color="#4C72B0")
        ax.barh([p - 0.2 for p in positions], p99s, height=0.4, label="p99", color="#DD8452")
        for p, (m, q) in enumerate(zip(medians, p99s, strict=True)):
            ax.annotate(f"{m:.2f}", (m, p + 0.2), textcoords="offset points", xytext=(3, -3),
                        fontsize=7)
            ax.annotate(f"{q:.2f}", (q, p - 0.2), textcoords="offset points", xytext=(3, -3),
                        fontsize=7)
        ax.set_yticks(list(positions), labels, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("milliseconds (log)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    save_figure(fig, result, results_dir,
                f"{result.params['pending']:,} pending; medians and p99 of every scrape and click")
