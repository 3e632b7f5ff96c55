"""The approval store: the plans of `plans.py` run on a blocking or an asyncio Redis client.

    ApprovalStore        redis.Redis / RedisCluster / fakeredis  (CLI, bot listeners)
    AsyncApprovalStore   redis.asyncio clients                    (waiting flow gates)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from .keys import KeySpace
from .models import (
    ApprovalRequest,
    AuditEvent,
    CloseResult,
    DecideResult,
    Decision,
    Outcome,
    RequestSpec,
)
from .plans import DEFAULT_LEASE, DEFAULT_RETENTION, Batch, Call, Fired, Plan, Plans, RunScript, Step
from .scripts import script_source


def _decode(value: Any) -> Any:
    """Plans see text only, whether or not the client was built with decode_responses."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {_decode(k): _decode(v) for k, v in value.items()}
    return value


# Commands that block server-side until something arrives; they run on the waiter client,
# whose socket timeout outlasts the wait (the plain client's is short, for quick answers).
BLOCKING_COMMANDS = frozenset({"blpop"})


class ApprovalStore:
    """Blocking store. The clients are passed in; the store never opens connections itself.
    `waiter`, when given, runs the blocking reads of `wait` (see BLOCKING_COMMANDS)."""

    def __init__(self, client: Any, *, keys: KeySpace | None = None,
                 retention: timedelta = DEFAULT_RETENTION, waiter: Any = None) -> None:
        self.client = client
        self.waiter = client if waiter is None else waiter
        self.plans = Plans(keys or KeySpace(), retention)
        self._scripts: dict[str, Any] = {}

    def _execute(self, step: Step) -> Any:
        if isinstance(step, RunScript):
            if step.name not in self._scripts:
                self._scripts[step.name] = self.client.register_script(script_source(step.name))
            return self._scripts[step.name](keys=step.keys, args=step.args)
        if isinstance(step, Batch):
            pipe = self.client.pipeline(transaction=False)
            for call in step.calls:
                getattr(pipe, call.command)(*call.args, **call.kwargs)
            return pipe.execute()
        client = self.waiter if step.command in BLOCKING_COMMANDS else self.client
        return getattr(client, step.command)(*step.args, **step.kwargs)

    def _run(self, plan: Plan) -> Any:
        try:
            step = next(plan)
            while True:
                step = plan.send(_decode(self._execute(step)))
        except StopIteration as stop:
            return stop.value

    def ping(self) -> bool:
        return bool(self.client.ping())

    def create(self, spec: RequestSpec, idempotency_key: str | None = None) -> ApprovalRequest:
        result: ApprovalRequest = self._run(self.plans.create(spec, idempotency_key))
        return result

    def get(self, request_id: str) -> ApprovalRequest:
        result: ApprovalRequest = self._run(self.plans.get(request_id))
        return result

    def decide(self, request_id: str, user: str, vote: Outcome | str, reason: str | None = None,
               groups: Iterable[str] = ()) -> DecideResult:
        result: DecideResult = self._run(self.plans.decide(request_id, user, vote, reason, groups))
        return result

    def wait(self, request_id: str, timeout: float) -> Decision | None:
        result: Decision | None = self._run(self.plans.wait(request_id, timeout))
        return result

    def expire(self, request_id: str) -> CloseResult:
        result: CloseResult = self._run(self.plans.expire(request_id))
        return result

    def expire_due(self, limit: int = 100) -> list[ApprovalRequest]:
        result: list[ApprovalRequest] = self._run(self.plans.expire_due(limit))
        return result

    def cancel(self, request_id: str, user: str | None, reason: str | None = None,
               force: bool = False) -> CloseResult:
        result: CloseResult = self._run(self.plans.cancel(request_id, user, reason, force))
        return result

    def resolve(self, request_id: str, approved: bool, by: str | None = None,
                reason: str | None = None) -> CloseResult:
        result: CloseResult = self._run(self.plans.resolve(request_id, approved, by, reason))
        return result

    def pending(self, user: str | None = None, groups: Iterable[str] = (),
                limit: int = 100, include_open: bool = True) -> list[ApprovalRequest]:
        result: list[ApprovalRequest] = self._run(
            self.plans.pending(user, groups, limit, include_open))
        return result

    def pending_groups(self) -> list[str]:
        result: list[str] = self._run(self.plans.pending_groups())
        return result

    def recent(self, user: str, limit: int = 10) -> list[ApprovalRequest]:
        result: list[ApprovalRequest] = self._run(self.plans.recent(user, limit))
        return result

    def audit(self, request_id: str) -> list[AuditEvent]:
        result: list[AuditEvent] = self._run(self.plans.audit(request_id))
        return result

    def attach_message(self, request_id: str, channel: str, ts: str) -> bool:
        result: bool = self._run(self.plans.attach_message(request_id, channel, ts))
        return result

    def mark_stale(self, request_id: str) -> None:
        self._run(self.plans.mark_stale(request_id))

    def claim(self, kind: str, limit: int = 100, lease: timedelta = DEFAULT_LEASE) -> list[str]:
        result: list[str] = self._run(self.plans.claim(kind, limit, lease))
        return result

    def fire(self, kind: str, request_id: str) -> Fired:
        result: Fired = self._run(self.plans.fire(kind, request_id))
        return result

    def defer(self, kind: str, request_id: str, until: datetime) -> None:
        self._run(self.plans.defer(kind, request_id, until))

    def take_stale(self, limit: int = 100) -> list[str]:
        result: list[str] = self._run(self.plans.take_stale(limit))
        return result

    def keep_policy(self, policy_hash: str, text: str, until: datetime) -> None:
        self._run(self.plans.keep_policy(policy_hash, text, until))

    def policy_text(self, policy_hash: str) -> str | None:
        result: str | None = self._run(self.plans.policy_text(policy_hash))
        return result


class AsyncApprovalStore:
    """The same operations on `redis.asyncio`: a waiting gate holds a coroutine, not a thread."""

    def __init__(self, client: Any, *, keys: KeySpace | None = None,
                 retention: timedelta = DEFAULT_RETENTION) -> None:
        self.client = client
        self.plans = Plans(keys or KeySpace(), retention)
        self._scripts: dict[str, Any] = {}

    async def _execute(self, step: Step) -> Any:
        if isinstance(step, RunScript):
            if step.name not in self._scripts:
                self._scripts[step.name] = self.client.register_script(script_source(step.name))
            return await self._scripts[step.name](keys=step.keys, args=step.args)
        if isinstance(step, Batch):
            pipe = self.client.pipeline(transaction=False)
            for call in step.calls:
                getattr(pipe, call.command)(*call.args, **call.kwargs)
            return await pipe.execute()
        assert isinstance(step, Call)
        return await getattr(self.client, step.command)(*step.args, **step.kwargs)

    async def _run(self, plan: Plan) -> Any:
        try:
            step = next(plan)
            while True:
                step = plan.send(_decode(await self._execute(step)))
        except StopIteration as stop:
            return stop.value

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def aclose(self) -> None:
        await self.client.aclose()

    async def create(self, spec: RequestSpec,
                     idempotency_key: str | None = None) -> ApprovalRequest:
        result: ApprovalRequest = await self._run(self.plans.create(spec, idempotency_key))
        return result

    async def get(self, request_id: str) -> ApprovalRequest:
        result: ApprovalRequest = await self._run(self.plans.get(request_id))
        return result

    async def decide(self, request_id: str, user: str, vote: Outcome | str,
                     reason: str | None = None, groups: Iterable[str] = ()) -> DecideResult:
        result: DecideResult = await self._run(
            self.plans.decide(request_id, user, vote, reason, groups))
        return result

    async def wait(self, request_id: str, timeout: float) -> Decision | None:
        result: Decision | None = await self._run(self.plans.wait(request_id, timeout))
        return result

    async def expire(self, request_id: str) -> CloseResult:
        result: CloseResult = await self._run(self.plans.expire(request_id))
        return result

    async def expire_due(self, limit: int = 100) -> list[ApprovalRequest]:
        result: list[ApprovalRequest] = await self._run(self.plans.expire_due(limit))
        return result

    async def cancel(self, request_id: str, user: str | None, reason: str | None = None,
                     force: bool = False) -> CloseResult:
        result: CloseResult = await self._run(self.plans.cancel(request_id, user, reason, force))
        return result

    async def resolve(self, request_id: str, approved: bool, by: str | None = None,
                      reason: str | None = None) -> CloseResult:
        result: CloseResult = await self._run(self.plans.resolve(request_id, approved, by, reason))
        return result

    async def pending(self, user: str | None = None, groups: Iterable[str] = (),
                      limit: int = 100, include_open: bool = True) -> list[ApprovalRequest]:
        result: list[ApprovalRequest] = await self._run(
            self.plans.pending(user, groups, limit, include_open))
        return result

    async def pending_groups(self) -> list[str]:
        result: list[str] = await self._run(self.plans.pending_groups())
        return result

    async def recent(self, user: str, limit: int = 10) -> list[ApprovalRequest]:
        result: list[ApprovalRequest] = await self._run(self.plans.recent(user, limit))
        return result

    async def audit(self, request_id: str) -> list[AuditEvent]:
        result: list[AuditEvent] = await self._run(self.plans.audit(request_id))
        return result

    async def attach_message(self, request_id: str, channel: str, ts: str) -> bool:
        result: bool = await self._run(self.plans.attach_message(request_id, channel, ts))
        return result

    async def mark_stale(self, request_id: str) -> None:
        await self._run(self.plans.mark_stale(request_id))

    async def take_stale(self, limit: int = 100) -> list[str]:
        result: list[str] = await self._run(self.plans.take_stale(limit))
        return result
