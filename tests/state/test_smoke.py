"""The store's basic round trip on both backends; the full suite lives beside this file."""

from __future__ import annotations

import asyncio

from slack_approvals.state import ApprovalStore, AsyncApprovalStore, DecideStatus, RequestSpec, Status
from tests.conftest import Backend

from .support import BlpopSpy, Held, blpop_probe


def spec(**overrides: object) -> RequestSpec:
    fields: dict[str, object] = {"title": "Deploy api v2", "channel": "C01APPROVALS",
                                 "approvers": ["U01MAYA", "U02FRANK"], "quorum": 2,
                                 "requester": "U06REQ"}
    fields.update(overrides)
    return RequestSpec.model_validate(fields)


def test_quorum_closes_and_wait_sees_it(store: ApprovalStore) -> None:
    request = store.create(spec())
    assert store.decide(request.id, "U01MAYA", "approve").status is DecideStatus.RECORDED
    assert store.wait(request.id, 0.05) is None
    assert store.decide(request.id, "U02FRANK", "approve").status is DecideStatus.APPROVED
    decision = store.wait(request.id, 1)
    assert decision is not None and decision.approved and decision.decided_by == "U02FRANK"
    assert [e.event for e in store.audit(request.id)] == ["created", "vote", "vote", "approved"]


def test_async_store_shares_the_plans(backend: Backend) -> None:
    async def scenario() -> Status:
        spy = BlpopSpy(backend.async_client())
        store = AsyncApprovalStore(spy)
        request = await store.create(spec(quorum=1))
        held = Held(spy.sent, 1, blpop_probe(backend))
        waiter = asyncio.create_task(store.wait(request.id, 5))
        await held.wait_async(lambda: int(not waiter.done()))
        await store.decide(request.id, "U01MAYA", "reject", reason="not today")
        decision = await asyncio.wait_for(waiter, 2)
        await store.aclose()
        assert decision is not None and decision.reason == "not today"
        return decision.status

    assert asyncio.run(scenario()) is Status.REJECTED
