"""The bot's Prometheus metrics, kept in a registry the caller owns, served on a port of their own.

    approvals_pending_requests                      gauge, read from Redis at each scrape
    approvals_decisions_total{outcome}              approved, rejected, timed_out, cancelled
    approvals_click_to_record_seconds               Slack's click time -> vote stored in Redis
    approvals_ack_seconds{kind}                     a request's arrival -> its ack
    approvals_slack_api_errors_total{method,error}  Web API calls that failed after retries
    approvals_redis_errors_total{operation,kind}    Redis errors by store operation
    approvals_runs_suspended                        gauge, runs suspended at a gate and not yet
                                                    resumed (the resume schedule), read at each scrape
    approvals_runs_resumed_total                    suspended runs Prefect accepted to resume

Counters count what this process did: with several bots behind a load balancer, sum them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError

from slack_approvals.state.closing import DecisionListener
from slack_approvals.state.models import ApprovalRequest, Status
from slack_approvals.state.resuming import ResumeOutcome, RunResumer

# From a cache hit to Slack's 3 s ack budget and past it: where clicks and acks fall.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PENDING_METRIC = "approvals_pending_requests"
SUSPENDED_METRIC = "approvals_runs_suspended"
# The pending count is one Redis read per scrape; past this the scrape goes on without it.
PENDING_READ_TIMEOUT_SECONDS = 0.5
DECISION_OUTCOMES = tuple(s.value for s in Status if s is not Status.PENDING)

PendingReader = Callable[[], int]


def payload_kind(body: Mapping[str, Any]) -> str:
    """What Slack sent, as a label of few values: block_actions, view_submission, view_closed,
    slash_command, event or other."""
    kind = body.get("type")
    if kind in ("block_actions", "view_submission", "view_closed"):
        return str(kind)
    if "command" in body:
        return "slash_command"
    if kind == "event_callback":
        return "event"
    return "other"


def slack_error_code(error: Exception) -> str:
    """Slack's error code (`channel_not_found`, `ratelimited`), or the exception's class for a
    call that never got an answer (`URLError`, `TimeoutError`)."""
    if isinstance(error, SlackApiError):
        response = error.response
        code = response.get("error") if isinstance(response.data, dict) else None
        return str(code) if code else f"http_{response.status_code}"
    return type(error).__name__


class BotMetrics:
    """Every metric of the bot, registered in `registry`; tests pass a fresh one each."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter("approvals_decisions", "Final decisions this bot recorded or "
                                 "applied, by outcome.", ["outcome"], registry=registry)
        for outcome in DECISION_OUTCOMES:
            self.decisions.labels(outcome)  # every outcome shows, at 0 until it happens
        self.click_to_record = Histogram(
            "approvals_click_to_record_seconds", "From the click (Slack's action_ts) to the vote "
            "stored in Redis.", buckets=LATENCY_BUCKETS, registry=registry)
        self.ack = Histogram("approvals_ack_seconds", "From a request's arrival at the bot to its ack, "
                             "by what Slack sent.", ["kind"],
                             buckets=LATENCY_BUCKETS, registry=registry)
        self.slack_errors = Counter("approvals_slack_api_errors", "Slack Web API calls that "
                                    "failed after their retries.", ["method", "error"],
                                    registry=registry)
        self.redis_errors = Counter("approvals_redis_errors", "Redis errors, by the operation "
                                    "they broke and their kind.", ["operation", "kind"],
                                    registry=registry)
        self.runs_resumed = Counter("approvals_runs_resumed", "Suspended flow runs that Prefect "
                                    "accepted to resume after their decision.", registry=registry)

    # -- what the bot's parts call ---------------------------------------------------------

    def decided(self, request: ApprovalRequest) -> None:
        """A DecisionListener: the Closer tells it once of each final decision."""
        if request.decision is not None:
            self.decisions.labels(request.decision.status.value).inc()

    def counting_decisions(self, listener: DecisionListener | None) -> DecisionListener:
        """`listener` (may be None), after counting the decision."""
        def both(request: ApprovalRequest) -> object:
            self.decided(request)
            return listener(request) if listener is not None else None
        return both

    def click_recorded(self, clicked_at: float, now: float | None = None) -> None:
        """`clicked_at`: Slack's `action_ts` (epoch seconds). A clock behind Slack's would give
        a negative span: it counts as 0."""
        self.click_to_record.observe(max(0.0, (time.time() if now is None else now) - clicked_at))

    def acked(self, kind: str, seconds: float) -> None:
        self.ack.labels(kind).observe(seconds)

    def slack_error(self, method: str, error: Exception) -> None:
        """A SlackErrorHook (bot/client.py)."""
        self.slack_errors.labels(method, slack_error_code(error)).inc()

    def redis_error(self, operation: str, error: Exception) -> None:
        """The store's on_redis_error hook; also the scrape's own read."""
        self.redis_errors.labels(operation, type(error).__name__).inc()

    def run_resumed(self) -> None:
        """Call once for each suspended run Prefect accepted to resume (resume_flow_run)."""
        self.runs_resumed.inc()

    def counting_resumes(self, resumer: RunResumer) -> RunResumer:
        """`resumer`, counting every resume Prefect accepted."""
        return _CountingResumer(resumer, self)

    def watch_pending(self, read: PendingReader) -> None:
        """Report the pending count `read` returns at every scrape. A Redis error leaves the
        gauge out of that scrape (absent, not a stale number) and is counted."""
        self.registry.register(_ScrapeGauge(PENDING_METRIC, _PENDING_HELP, "pending_count",
                                            read, self))

    def watch_suspended(self, read: PendingReader) -> None:
        """Report the suspended runs `read` counts at every scrape, as `watch_pending` does.
        A gate suspends in its flow run's own process, which serves no metrics; what it leaves
        in Redis (its run's entry on the resume schedule) is what every bot can see."""
        self.registry.register(_ScrapeGauge(SUSPENDED_METRIC, _SUSPENDED_HELP, "suspended_count",
                                            read, self))


@dataclass(frozen=True)
class _CountingResumer:
    inner: RunResumer
    metrics: BotMetrics

    def resume(self, flow_run_id: str) -> ResumeOutcome:
        outcome = self.inner.resume(flow_run_id)
        if outcome is ResumeOutcome.RESUMED:
            self.metrics.run_resumed()
        return outcome

    @property
    def server(self) -> str:
        return self.inner.server

    def ended(self, flow_run_ids: Sequence[str]) -> dict[str, str]:
        return self.inner.ended(flow_run_ids)


class _ScrapeGauge(Collector):
    def __init__(self, name: str, help_text: str, operation: str, read: PendingReader,
                 metrics: BotMetrics) -> None:
        self.name, self.help_text, self.operation = name, help_text, operation
        self.read = read
        self.metrics = metrics

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.help_text)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            count = self.read()
        except RedisError as e:
            self.metrics.redis_error(self.operation, e)
            return
        yield GaugeMetricFamily(self.name, self.help_text, value=count)


_PENDING_HELP = "Requests waiting for a decision, read from Redis at scrape time."
_SUSPENDED_HELP = ("Flow runs suspended at a gate and not yet resumed (entries of the resume "
                   "schedule), read from Redis at scrape time.")


def pending_reader(client: Any, index_key: str) -> PendingReader:
    """ZCARD of a sorted set (the pending index, the resume schedule): one O(1) read, on a
    client whose timeout is short."""
    def read() -> int:
        return int(client.zcard(index_key))
    return read


class MetricsServer:
    """The metrics on http://host:port/metrics (any path answers), on a thread of its own; the
    Slack endpoint never serves them."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        server, thread = start_http_server(port, addr=host, registry=registry)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.port = server.server_port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
