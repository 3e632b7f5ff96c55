"""The approval store: the plans of `plans.py` run on a blocking or an asyncio Redis client.

    ApprovalStore        redis.Redis / RedisCluster / fakeredis  (CLI, bot listeners)
    AsyncApprovalStore   redis.asyncio clients                    (waiting flow gates)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import RedisError, ResponseError

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
from .plans import (
    DEFAULT_LEASE,
    DEFAULT_RETENTION,
    Batch,
    Call,
    Fired,
    Owed,
    Plan,
    Plans,
    RunScript,
    Scripts,
    Step,
)
from .resuming import ResumeState
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
        # Told of every Redis error with the store operation it broke (the bot counts them).
        self.on_redis_error: Callable[[str, RedisError], None] | None = None

    def _execute(self, step: Step) -> Any:
        if isinstance(step, RunScript):
            if step.name not in self._scripts:
                self._scripts[step.name] = self.client.register_script(script_source(step.name))
            return self._scripts[step.name](keys=step.keys, args=step.args)
        if isinstance(step, Scripts):
            for script in step.scripts:
                if script.name not in self._scripts:
                    self._scripts[script.name] = self.client.register_script(
                        script_source(script.name))
            if isinstance(self.client, redis.cluster.RedisCluster):
                # redis-py refuses EVALSHA in a cluster pipeline: one script at a time.
                replies: list[Any] = []
                for script in step.scripts:
                    try:
                        replies.append(self._scripts[script.name](keys=script.keys,
                                                                  args=script.args))
                    except ResponseError as e:
                        replies.append(e)
                return replies
            pipe = self.client.pipeline(transaction=False)
            for script in step.scripts:
                self._scripts[script.name](keys=script.keys, args=script.args, client=pipe)
            return pipe.execute(raise_on_error=False)
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
        except RedisError as e:
            self._failed(getattr(plan, "__name__", "store"), e)
            raise

    def _failed(self, operation: str, error: RedisError) -> None:
        if self.on_redis_error is not None:
            self.on_redis_error(operation, error)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except RedisError as e:
            self._failed("ping", e)
            raise

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

    def redeem(self, request_id: str, token_hash: str,
               reason: str | None = None) -> tuple[str, DecideResult | None]:
        """Vote through an approval link (see Plans.redeem)."""
        result: tuple[str, DecideResult | None] = self._run(
            self.plans.redeem(request_id, token_hash, reason))
        return result

    def link(self, request_id: str, token_hash: str) -> dict[str, str] | None:
        result: dict[str, str] | None = self._run(self.plans.link(request_id, token_hash))
        return result

    def mail_begin(self, request_id: str, address: str, slack_user: str | None,
                   token_hashes: tuple[str, str],
                   lease: timedelta = DEFAULT_LEASE, owner: str = "") -> tuple[str, datetime | None]:
        result: tuple[str, datetime | None] = self._run(
            self.plans.mail_begin(request_id, address, slack_user, token_hashes, lease, owner))
        return result

    def mail_end(self, request_id: str, address: str, error: str | None = None,
                 final: bool = False, owner: str = "") -> int | None:
        result: int | None = self._run(
            self.plans.mail_end(request_id, address, error, final, owner))
        return result

    def mail_next(self, request_id: str, at: datetime | None) -> None:
        self._run(self.plans.mail_next(request_id, at))

    def link_misses(self, client: str, add: bool = False) -> int:
        result: int = self._run(self.plans.link_misses(client, add))
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

    def settle(self, request_id: str) -> CloseResult:
        result: CloseResult = self._run(self.plans.settle(request_id))
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

    def read_specs(self, request_ids: list[str],
                   corrupt: dict[str, str] | None = None) -> dict[str, RequestSpec]:
        result: dict[str, RequestSpec] = self._run(self.plans.read_specs(request_ids, corrupt))
        return result

    def fire_many(self, kind: str, specs: Mapping[str, RequestSpec]) -> dict[str, Fired]:
        result: dict[str, Fired] = self._run(self.plans.fire_many(kind, specs))
        return result

    def unschedule(self, kind: str, request_ids: list[str]) -> None:
        self._run(self.plans.unschedule(kind, request_ids))

    def settle_many(self, request_ids: list[str],
                    errors: dict[str, str] | None = None) -> list[ApprovalRequest]:
        result: list[ApprovalRequest] = self._run(self.plans.settle_many(request_ids, errors))
        return result

    def tier_times(self, specs: Mapping[str, RequestSpec]) -> dict[str, list[datetime]]:
        result: dict[str, list[datetime]] = self._run(self.plans.tier_times(specs))
        return result

    def defer(self, kind: str, request_id: str, until: datetime) -> None:
        self._run(self.plans.defer(kind, request_id, until))

    def defer_many(self, kind: str, holds: Mapping[str, datetime]) -> None:
        self._run(self.plans.defer_many(kind, holds))

    def owe(self, request: ApprovalRequest, owed: Owed, after: timedelta,
            kind: str = "remind") -> bool:
        result: bool = self._run(self.plans.owe(request, owed, after, kind))
        return result

    def take_stale(self, limit: int = 100) -> list[str]:
        result: list[str] = self._run(self.plans.take_stale(limit))
        return result

    def suspend(self, request_id: str, flow_run_id: str, watch_at: datetime,
                server: str = "") -> tuple[int, datetime] | None:
        result: tuple[int, datetime] | None = self._run(
            self.plans.suspend(request_id, flow_run_id, watch_at, server))
        return result

    def resume_state(self, request_id: str) -> ResumeState | None:
        result: ResumeState | None = self._run(self.plans.resume_state(request_id))
        return result

    def resume_missing(self, request_id: str, now: datetime) -> datetime:
        result: datetime = self._run(self.plans.resume_missing(request_id, now))
        return result

    def resume_found(self, request_id: str) -> None:
        self._run(self.plans.resume_found(request_id))

    def resumed(self, request_id: str) -> None:
        self._run(self.plans.resumed(request_id))

    def unwatch(self, request_id: str) -> None:
        self._run(self.plans.unwatch(request_id))

    def resume_later(self, request_id: str, at: datetime | None) -> None:
        self._run(self.plans.resume_later(request_id, at))

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
        if isinstance(step, Scripts):
            for script in step.scripts:
                if script.name not in self._scripts:
                    self._scripts[script.name] = self.client.register_script(
                        script_source(script.name))
            if isinstance(self.client, redis.asyncio.cluster.RedisCluster):
                # As the blocking store: no scripts in a cluster pipeline.
                replies: list[Any] = []
                for script in step.scripts:
                    try:
                        replies.append(await self._scripts[script.name](keys=script.keys,
                                                                        args=script.args))
                    except ResponseError as e:
                        replies.append(e)
                return replies
            pipe = self.client.pipeline(transaction=False)
            for script in step.scripts:
                await self._scripts[script.name](keys=script.keys, args=script.args, client=pipe)
            return await pipe.execute(raise_on_error=False)
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
