"""Helpers of the flow tests: the installed services, and approvers who click from another thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from slack_approvals.bot.client import make_client
from slack_approvals.bot.messenger import Messenger
from slack_approvals.flows.services import FlowConfig, Services, services_installed
from slack_approvals.policy.builtin import builtin_policy
from slack_approvals.policy.document import Policy, parse_policy
from slack_approvals.sandbox.config import DEFAULT_BOT_TOKEN
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state import (
    ApprovalRequest,
    ApprovalStore,
    AsyncApprovalStore,
    DecideStatus,
    Decision,
    Outcome,
)
from tests.conftest import Backend

MAYA, FRANK, ERIN, OLIVER, SARA, REQUESTER = (
    "U01MAYA", "U02FRANK", "U03ERIN", "U04OLIVER", "U05SARA", "U06REQ")
APPROVALS, FINANCE, ENG, SALES, DEPLOYS = (
    "C01APPROVALS", "C02FINANCE", "C03ENG", "C04SALES", "C05DEPLOYS")
FINANCE_GROUP, ENG_LEADS, SALES_LEADS = "S01FINANCE", "S02ENGLEADS", "S03SALESLEADS"
GROUP_MEMBERS = {FINANCE_GROUP: {FRANK, MAYA}, ENG_LEADS: {ERIN, OLIVER}, SALES_LEADS: {SARA}}


class ObservedAsyncStore(AsyncApprovalStore):
    """The real asyncio store, counting waits; a queued fault breaks the next wait midway."""

    def __init__(self, client: Any, env: FlowEnv) -> None:
        super().__init__(client)
        self.env = env

    async def wait(self, request_id: str, timeout: float) -> Decision | None:
        self.env.waits.append(timeout)
        self.env.waiting.set()
        fault = self.env.take_wait_fault()
        if fault is not None:
            await asyncio.sleep(0.2)  # blocked for a while, then the connection drops
            raise fault
        return await super().wait(request_id, timeout)


@dataclass
class Click:
    request_id: str
    user: str
    vote: Outcome
    status: DecideStatus
    decided_at: float  # time.perf_counter() when store.decide returned


@dataclass
class Rule:
    match: Callable[[ApprovalRequest], bool]
    user: str
    vote: Outcome
    after: float
    reason: str | None


class Approvers:
    """People clicking: a thread that decides each posted request a rule matches, `after`
    seconds after it first saw the message, through store.decide as the bot would."""

    def __init__(self, store: ApprovalStore) -> None:
        self.store = store
        self.rules: list[Rule] = []
        self.clicks: list[Click] = []
        self._seen: dict[str, float] = {}
        self._done: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on(self, match: Callable[[ApprovalRequest], bool] | str, user: str,
           vote: Outcome = Outcome.APPROVE, *, after: float = 0.0, reason: str | None = None) -> None:
        """`match` is a predicate, or a text the request's title must contain."""
        if isinstance(match, str):
            text = match
            match = lambda request: text in request.spec.title  # noqa: E731
        self.rules.append(Rule(match, user, vote, after, reason))
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="approvers", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.01):
            now = time.monotonic()
            for request in self.store.pending(limit=500):
                if not request.message_ts:
                    continue
                first_seen = self._seen.setdefault(request.id, now)
                for index, rule in enumerate(self.rules):
                    key = (request.id, index)
                    if key in self._done or now - first_seen < rule.after or not rule.match(request):
                        continue
                    self._done.add(key)
                    groups = [g for g in request.spec.approver_groups
                              if rule.user in GROUP_MEMBERS.get(g, set())]
                    result = self.store.decide(request.id, rule.user, rule.vote, rule.reason,
                                               groups=groups)
                    self.clicks.append(Click(request.id, rule.user, rule.vote, result.status,
                                             time.perf_counter()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class SwitchablePolicy:
    """The policy a test's flows see; `env.use_policy(text)` swaps it, as a reloaded file would."""

    def __init__(self) -> None:
        self.policy = builtin_policy()

    def current(self) -> Policy:
        return self.policy


@dataclass
class FlowEnv:
    sb: SandboxServer
    backend: Backend
    store: ApprovalStore
    config: FlowConfig
    approvers: Approvers
    waits: list[float] = field(default_factory=list)
    wait_faults: list[BaseException] = field(default_factory=list)
    waiting: threading.Event = field(default_factory=threading.Event)  # set by the first wait
    policy: SwitchablePolicy = field(default_factory=SwitchablePolicy)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    @contextmanager
    def installed(cls, sb: SandboxServer, backend: Backend, tmp_path: object, *,
                  wait_slice: float = 0.5) -> Iterator[FlowEnv]:
        store = ApprovalStore(backend.sync_client())
        config = FlowConfig(channel=APPROVALS, approvers=(MAYA,), requester=REQUESTER,
                            wait_slice_seconds=wait_slice, data_dir=Path(str(tmp_path)) / "data")
        env = cls(sb, backend, store, config, Approvers(store))

        def factory() -> Services:
            messenger = Messenger(make_client(DEFAULT_BOT_TOKEN, sb.api_url), store)
            return Services(store, messenger, lambda: ObservedAsyncStore(backend.async_client(), env),
                            policy=env.policy)

        try:
            with services_installed(factory, config):
                yield env
        finally:
            env.approvers.stop()
            store.client.close()

    def backend_store_for(self, url: str) -> ApprovalStore:
        """A store on another Redis (e.g. the one a CLI command under test connects to)."""
        return ApprovalStore(redis.Redis.from_url(url, decode_responses=True))

    def use_policy(self, text: str) -> Policy:
        self.policy.policy = parse_policy(text, "test-policy.yaml")
        return self.policy.policy

    def take_wait_fault(self) -> BaseException | None:
        with self._lock:
            return self.wait_faults.pop(0) if self.wait_faults else None

    def posts(self) -> int:
        """Messages Slack accepted through chat.postMessage."""
        return sum(1 for call in self.sb.api_calls("chat.postMessage") if call.response.get("ok"))

    def message_of(self, request_id: str) -> dict[str, Any]:
        request = self.store.get(request_id)
        assert request.message_channel and request.message_ts
        return self.sb.message(request.message_channel, request.message_ts)

    def audit_events(self, request_id: str) -> list[str]:
        return [event.event for event in self.store.audit(request_id)]


def run(coroutine: Any) -> Any:
    """Runs an async flow call to its result, on a fresh event loop like the CLI does."""
    return asyncio.run(coroutine)


def decided_events(request_id: str, timeout: float = 10.0) -> list[Any]:
    """The approval.decided events the Prefect server stored for a request (waits for the first)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    event_filter = EventFilter(event=EventNameFilter(name=["approval.decided"]),
                               resource=EventResourceFilter(id=[f"approval.request.{request_id}"]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(event_filter, limit=50).events
            if events or time.monotonic() > deadline:
                return list(events)
            time.sleep(0.1)
