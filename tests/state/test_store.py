"""The store's semantics on fakeredis and a real server: every status, every audit line, every TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.crc import key_slot

from slack_approvals.state import (
    ApprovalRequest,
    ApprovalStore,
    AsyncApprovalStore,
    CloseStatus,
    DecideStatus,
    Decision,
    KeySpace,
    Outcome,
    Status,
)
from slack_approvals.state.plans import new_request_id
from tests.conftest import Backend

from .support import (
    CHANNEL,
    FRANK,
    LI,
    MAYA,
    OPS,
    OUTSIDER,
    REQUESTER,
    SEC,
    SHORT,
    TINY,
    BlpopSpy,
    Held,
    ThreadWaiters,
    blpop_probe,
    create_expired,
    keys_without_ttl,
    snapshot,
    spec,
    until_server_clock_reaches,
    until_server_clock_reaches_async,
)

KEYS = KeySpace()


# -- create and get ----------------------------------------------------------------------------


def test_create_is_idempotent_by_key(store: ApprovalStore, redis_client: redis.Redis) -> None:
    first = store.create(spec(), "flow-run-7/deploy-gate")
    keys_after_first = snapshot(redis_client).keys()
    again = store.create(spec(title="A retried task may differ"), "flow-run-7/deploy-gate")

    assert again.id == first.id
    assert again.spec.title == "Deploy api v2"
    assert again.created_at == first.created_at and again.deadline == first.deadline
    assert [e.event for e in store.audit(first.id)] == ["created"]
    assert redis_client.zrange(KEYS.pending_index(), 0, -1) == [first.id]
    assert snapshot(redis_client).keys() == keys_after_first
    assert store.create(spec(), "flow-run-8/deploy-gate").id != first.id


def test_create_without_key_makes_a_new_request_each_time(store: ApprovalStore) -> None:
    assert store.create(spec()).id != store.create(spec()).id


def test_create_again_after_close_returns_the_decision(store: ApprovalStore,
                                                      redis_client: redis.Redis) -> None:
    request = store.create(spec(quorum=1), "gate-key")
    store.decide(request.id, MAYA, "reject", reason="freeze week")
    again = store.create(spec(quorum=1), "gate-key")
    assert again.status is Status.REJECTED
    assert redis_client.zscore(KEYS.pending_index(), request.id) is None
    assert [e.event for e in store.audit(request.id)] == ["created", "vote", "rejected"]


def test_get_returns_what_was_stored(store: ApprovalStore) -> None:
    created = store.create(spec(summary="Rolls out v2 to eu-west", timeout=timedelta(minutes=10),
                                facts=[{"label": "Version", "value": "2.0.1"}],
                                approver_groups=[OPS]))
    read = store.get(created.id)
    assert read == created
    assert read.status is Status.PENDING and read.votes == [] and read.decision is None
    assert read.spec.facts[0].value == "2.0.1" and read.spec.approver_groups == [OPS]
    assert read.deadline - read.created_at == timedelta(minutes=10)
    assert abs(read.created_at - datetime.now(UTC)) < timedelta(seconds=5)


def test_absolute_deadline_wins_over_timeout(store: ApprovalStore) -> None:
    deadline = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    request = store.create(spec(deadline=deadline, timeout=timedelta(minutes=1)))
    assert request.deadline == deadline


# -- decide: every refusal, and nothing written ----------------------------------------------


def _close_by(way: str) -> Callable[[ApprovalStore], ApprovalRequest]:
    def make(store: ApprovalStore) -> ApprovalRequest:
        if way == "timeout":
            request = create_expired(store, approvers=[MAYA, FRANK, LI])
            assert store.expire(request.id).status is CloseStatus.CLOSED_NOW
            return request
        request = store.create(spec(approvers=[MAYA, FRANK, LI], quorum=1))
        if way == "approve":
            assert store.decide(request.id, MAYA, "approve").status is DecideStatus.APPROVED
        elif way == "reject":
            assert store.decide(request.id, MAYA, "reject").status is DecideStatus.REJECTED
        elif way == "cancel":
            assert store.cancel(request.id, REQUESTER).status is CloseStatus.CLOSED_NOW
        return request

    return make


@pytest.mark.parametrize("way", ["approve", "reject", "cancel", "timeout"])
@pytest.mark.parametrize("vote", ["approve", "reject"])
def test_decide_refuses_closed_request_and_writes_nothing(
    store: ApprovalStore, redis_client: redis.Redis, way: str, vote: str,
) -> None:
    request = _close_by(way)(store)
    before = snapshot(redis_client)
    result = store.decide(request.id, FRANK, vote, reason="too late")
    assert result.status is DecideStatus.CLOSED
    assert result.request is not None and result.request.status.closed
    assert snapshot(redis_client) == before


def test_decide_refuses_unknown_request(store: ApprovalStore, redis_client: redis.Redis) -> None:
    store.create(spec())
    before = snapshot(redis_client)
    result = store.decide(new_request_id(), MAYA, "approve")
    assert result.status is DecideStatus.UNKNOWN and result.request is None
    assert snapshot(redis_client) == before


def test_decide_refuses_expired_but_unswept_request(store: ApprovalStore,
                                                    redis_client: redis.Redis) -> None:
    request = create_expired(store)
    before = snapshot(redis_client)
    result = store.decide(request.id, MAYA, "approve")
    assert result.status is DecideStatus.EXPIRED
    assert result.request is not None and result.request.status is Status.PENDING
    assert snapshot(redis_client) == before


def test_decide_refuses_absolute_deadline_once_passed(store: ApprovalStore) -> None:
    request = store.create(spec(deadline=datetime.now(UTC) + SHORT))
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    until_server_clock_reaches(store.client, request.deadline)
    assert store.decide(request.id, FRANK, "approve").status is DecideStatus.EXPIRED


def test_request_stays_readable_after_its_absolute_deadline(store: ApprovalStore) -> None:
    request = store.create(spec(deadline=datetime.now(UTC) + SHORT))
    until_server_clock_reaches(store.client, request.deadline)
    assert request.deadline <= datetime.now(UTC)
    assert store.get(request.id).deadline == request.deadline
    closed = store.expire(request.id)
    assert closed.status is CloseStatus.CLOSED_NOW and closed.request is not None
    # Gate tasks hand requests on as JSON; a past deadline must not make them unreadable.
    assert ApprovalRequest.model_validate_json(closed.request.model_dump_json()) == closed.request


@pytest.mark.parametrize(
    ("user", "overrides", "expected"),
    [
        pytest.param(OUTSIDER, {}, DecideStatus.NOT_ELIGIBLE, id="not-named"),
        pytest.param(REQUESTER, {}, DecideStatus.NOT_ELIGIBLE, id="requester-not-named"),
        pytest.param(REQUESTER, {"approvers": [REQUESTER, MAYA], "quorum": 1},
                     DecideStatus.SELF_APPROVAL, id="requester-named"),
        pytest.param(REQUESTER, {"approvers": [], "quorum": 1}, DecideStatus.SELF_APPROVAL,
                     id="requester-open-request"),
        pytest.param(OUTSIDER, {"approvers": [], "approver_groups": [OPS]},
                     DecideStatus.NOT_ELIGIBLE, id="not-in-group"),
    ],
)
def test_decide_refuses_ineligible_users_and_writes_nothing(
    store: ApprovalStore, redis_client: redis.Redis, user: str,
    overrides: dict[str, object], expected: DecideStatus,
) -> None:
    request = store.create(spec(**overrides))
    before = snapshot(redis_client)
    result = store.decide(request.id, user, "approve", groups=[SEC])
    assert result.status is expected
    assert result.request is not None and result.request.votes == []
    assert snapshot(redis_client) == before
    assert store.recent(user) == []


def test_self_approval_allowed_when_the_spec_says_so(store: ApprovalStore) -> None:
    request = store.create(spec(approvers=[REQUESTER, MAYA], allow_self_approval=True))
    assert store.decide(request.id, REQUESTER, "approve").status is DecideStatus.RECORDED
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.APPROVED


def test_requester_may_reject_their_own_request(store: ApprovalStore) -> None:
    request = store.create(spec(approvers=[REQUESTER, MAYA], quorum=1))
    result = store.decide(request.id, REQUESTER, "reject", reason="wrong branch")
    assert result.status is DecideStatus.REJECTED
    assert result.request is not None and result.request.decision is not None
    assert result.request.decision.decided_by == REQUESTER


@pytest.mark.parametrize("second", ["approve", "reject"])
def test_second_vote_by_same_user_is_refused(store: ApprovalStore, redis_client: redis.Redis,
                                             second: str) -> None:
    request = store.create(spec(approvers=[MAYA, FRANK, LI], quorum=3))
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    before = snapshot(redis_client)
    result = store.decide(request.id, MAYA, second, reason="changed my mind")
    assert result.status is DecideStatus.DUPLICATE_VOTE
    assert snapshot(redis_client) == before
    assert result.request is not None
    assert [(v.user, v.vote) for v in result.request.votes] == [(MAYA, Outcome.APPROVE)]


def test_group_membership_makes_a_user_eligible(store: ApprovalStore) -> None:
    request = store.create(spec(approvers=[MAYA], approver_groups=[OPS], quorum=3))
    assert store.decide(request.id, OUTSIDER, "approve", groups=[SEC]).status \
        is DecideStatus.NOT_ELIGIBLE
    assert store.decide(request.id, OUTSIDER, "approve", groups=[SEC, OPS]).status \
        is DecideStatus.RECORDED
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    assert store.decide(request.id, LI, "approve", groups=[OPS]).status is DecideStatus.APPROVED
    final = store.get(request.id)
    assert {v.user for v in final.votes} == {OUTSIDER, MAYA, LI}


def test_open_request_accepts_anyone_but_the_requester(store: ApprovalStore) -> None:
    request = store.create(spec(approvers=[], quorum=2))
    assert store.decide(request.id, REQUESTER, "approve").status is DecideStatus.SELF_APPROVAL
    assert store.decide(request.id, OUTSIDER, "approve").status is DecideStatus.RECORDED
    assert store.decide(request.id, "W0GUEST", "approve").status is DecideStatus.APPROVED


def test_reject_closes_at_once_with_its_reason(store: ApprovalStore,
                                              redis_client: redis.Redis) -> None:
    request = store.create(spec(approvers=[MAYA, FRANK, LI], quorum=2))
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    result = store.decide(request.id, FRANK, "reject", reason="  change freeze  ")
    assert result.status is DecideStatus.REJECTED
    assert result.request is not None
    decision = result.request.decision
    assert decision is not None
    assert (decision.status, decision.approved, decision.decided_by, decision.reason) == \
        (Status.REJECTED, False, FRANK, "change freeze")
    assert [(v.user, v.vote) for v in decision.votes] == \
        [(MAYA, Outcome.APPROVE), (FRANK, Outcome.REJECT)]
    assert redis_client.zscore(KEYS.pending_index(), request.id) is None
    assert store.decide(request.id, LI, "approve").status is DecideStatus.CLOSED


def test_quorum_closes_and_later_votes_are_refused(store: ApprovalStore) -> None:
    request = store.create(spec(approvers=[MAYA, FRANK, LI], quorum=2))
    first = store.decide(request.id, MAYA, "approve", reason="fine")
    assert first.status is DecideStatus.RECORDED
    assert first.request is not None and first.request.decision is None
    second = store.decide(request.id, LI, "approve")
    assert second.status is DecideStatus.APPROVED
    assert second.request is not None and second.request.decision is not None
    decision = second.request.decision
    assert (decision.status, decision.approved, decision.decided_by) == (Status.APPROVED, True, LI)
    assert len(decision.votes) == 2
    assert store.decide(request.id, FRANK, "reject").status is DecideStatus.CLOSED
    assert store.get(request.id).decision == decision


# -- wait ----------------------------------------------------------------------------------


def test_wait_returns_a_decision_made_before_it_started(store: ApprovalStore) -> None:
    request = store.create(spec(quorum=1))
    store.decide(request.id, MAYA, "approve")
    started = time.monotonic()
    decision = store.wait(request.id, 5)
    assert time.monotonic() - started < 1
    assert decision is not None and decision.approved and decision.decided_by == MAYA
    # A second read still sees it: the waiter put the token back.
    assert store.wait(request.id, 5) == decision


def test_wait_returns_none_when_nothing_happens(store: ApprovalStore) -> None:
    request = store.create(spec())
    store.decide(request.id, MAYA, "approve")
    started = time.monotonic()
    assert store.wait(request.id, 0.2) is None
    assert time.monotonic() - started >= 0.19


@pytest.mark.parametrize("waiters", [1, 4])
def test_wait_wakes_when_another_thread_decides(store: ApprovalStore, backend: Backend,
                                                waiters: int) -> None:
    request = store.create(spec(quorum=1))
    group = ThreadWaiters(backend, request.id, waiters)
    group.held()
    assert group.results == []
    decided = time.monotonic()
    store.decide(request.id, FRANK, "reject", reason="no")
    assert max(group.sent) < decided
    group.join()
    assert len(group.results) == waiters
    for decision, woke in group.results:
        assert decision is not None and decision.decided_by == FRANK and not decision.approved
        assert woke - decided < 2


def test_wait_wakes_on_timeout_outcome(store: ApprovalStore, backend: Backend) -> None:
    request = store.create(spec(deadline=datetime.now(UTC) + SHORT, timeout_outcome="approve"))
    group = ThreadWaiters(backend, request.id, 2)
    group.held()
    until_server_clock_reaches(store.client, request.deadline)
    assert group.results == []
    swept = time.monotonic()
    assert [r.id for r in store.expire_due()] == [request.id]
    assert max(group.sent) < swept
    group.join()
    assert [(d.status, d.approved) for d, _ in group.results if d is not None] == \
        [(Status.TIMED_OUT, True)] * 2
    assert all(woke - swept < 2 for _, woke in group.results)


@pytest.mark.parametrize("waiters", [1, 3])
def test_async_wait_wakes_when_another_task_decides(backend: Backend, waiters: int) -> None:
    async def scenario() -> list[Decision | None]:
        spy = BlpopSpy(backend.async_client())
        store = AsyncApprovalStore(spy)
        try:
            request = await store.create(spec(quorum=1))
            held = Held(spy.sent, waiters, blpop_probe(backend))
            tasks = [asyncio.create_task(store.wait(request.id, 10)) for _ in range(waiters)]
            await held.wait_async(lambda: sum(not task.done() for task in tasks))

            async def click() -> None:
                result = await store.decide(request.id, MAYA, "approve", reason="ship it")
                assert result.status is DecideStatus.APPROVED

            started = time.monotonic()
            await asyncio.gather(click(), *tasks)
            assert max(spy.sent[:waiters]) < started
            assert time.monotonic() - started < 2
            assert await store.wait(request.id, 1) is not None
            return [task.result() for task in tasks]
        finally:
            await store.aclose()

    decisions = asyncio.run(scenario())
    assert len(decisions) == waiters
    assert all(d is not None and d.approved and d.decided_by == MAYA for d in decisions)


def test_async_wait_times_out_with_none(backend: Backend) -> None:
    async def scenario() -> Decision | None:
        store = AsyncApprovalStore(backend.async_client())
        try:
            request = await store.create(spec())
            return await store.wait(request.id, 0.2)
        finally:
            await store.aclose()

    assert asyncio.run(scenario()) is None


# -- expire, cancel, resolve -----------------------------------------------------------------


def test_expire_before_the_deadline_is_refused(store: ApprovalStore,
                                               redis_client: redis.Redis) -> None:
    request = store.create(spec())
    before = snapshot(redis_client)
    result = store.expire(request.id)
    assert result.status is CloseStatus.NOT_DUE
    assert result.request is not None and result.request.status is Status.PENDING
    assert snapshot(redis_client) == before
    assert store.expire_due() == []


@pytest.mark.parametrize(("outcome", "approved"), [("reject", False), ("approve", True)])
def test_expire_applies_the_timeout_outcome(store: ApprovalStore, outcome: str,
                                            approved: bool) -> None:
    request = create_expired(store, timeout_outcome=outcome)
    result = store.expire(request.id)
    assert result.status is CloseStatus.CLOSED_NOW
    assert result.request is not None and result.request.decision is not None
    decision = result.request.decision
    assert (decision.status, decision.approved, decision.decided_by, decision.reason) == \
        (Status.TIMED_OUT, approved, None, "deadline passed")
    last = store.audit(request.id)[-1]
    assert (last.event, last.status, last.approved, last.user) == \
        ("timed_out", Status.TIMED_OUT, approved, None)
    assert store.expire(request.id).status is CloseStatus.ALREADY_CLOSED
    assert len(store.audit(request.id)) == 2


def test_expire_due_closes_only_overdue_requests(store: ApprovalStore,
                                                 redis_client: redis.Redis) -> None:
    first = store.create(spec(timeout=TINY))
    second = store.create(spec(timeout=TINY, timeout_outcome="approve"))
    later = store.create(spec())
    until_server_clock_reaches(store.client, second.deadline)
    closed = store.expire_due()
    assert {r.id for r in closed} == {first.id, second.id}
    assert {r.id: r.decision.approved for r in closed if r.decision} == \
        {first.id: False, second.id: True}
    assert redis_client.zrange(KEYS.pending_index(), 0, -1) == [later.id]
    assert store.get(later.id).status is Status.PENDING
    assert store.expire_due() == []


def test_expire_due_respects_its_limit(store: ApprovalStore) -> None:
    last = [store.create(spec(timeout=TINY)) for _ in range(3)][-1]
    until_server_clock_reaches(store.client, last.deadline)
    assert len(store.expire_due(limit=2)) == 2
    assert len(store.expire_due(limit=2)) == 1


def test_requester_cancels(store: ApprovalStore, redis_client: redis.Redis) -> None:
    request = store.create(spec())
    result = store.cancel(request.id, REQUESTER, reason="superseded by v3")
    assert result.status is CloseStatus.CLOSED_NOW
    assert result.request is not None and result.request.decision is not None
    decision = result.request.decision
    assert (decision.status, decision.approved, decision.decided_by, decision.reason) == \
        (Status.CANCELLED, False, REQUESTER, "superseded by v3")
    assert redis_client.zscore(KEYS.pending_index(), request.id) is None
    assert store.cancel(request.id, REQUESTER).status is CloseStatus.ALREADY_CLOSED


@pytest.mark.parametrize("user", [MAYA, OUTSIDER])
def test_cancel_by_another_user_is_refused(store: ApprovalStore, redis_client: redis.Redis,
                                           user: str) -> None:
    request = store.create(spec())
    before = snapshot(redis_client)
    result = store.cancel(request.id, user)
    assert result.status is CloseStatus.NOT_REQUESTER
    assert result.request is not None and result.request.status is Status.PENDING
    assert snapshot(redis_client) == before


@pytest.mark.parametrize("user", [MAYA, None])
def test_forced_cancel_by_anyone(store: ApprovalStore, user: str | None) -> None:
    request = store.create(spec())
    result = store.cancel(request.id, user, reason="flow run deleted", force=True)
    assert result.status is CloseStatus.CLOSED_NOW
    assert result.request is not None and result.request.decision is not None
    assert result.request.decision.decided_by == user
    assert store.audit(request.id)[-1].event == "cancelled"


def test_close_operations_on_unknown_request(store: ApprovalStore,
                                             redis_client: redis.Redis) -> None:
    unknown = new_request_id()
    assert store.cancel(unknown, REQUESTER).status is CloseStatus.UNKNOWN
    assert store.expire(unknown).status is CloseStatus.UNKNOWN
    assert store.resolve(unknown, approved=True).status is CloseStatus.UNKNOWN
    assert redis_client.dbsize() == 0


def test_resolve_records_a_system_decision(store: ApprovalStore) -> None:
    request = store.create(spec())
    result = store.resolve(request.id, approved=True, reason="below the 100 EUR auto-approval limit")
    assert result.status is CloseStatus.CLOSED_NOW
    assert result.request is not None and result.request.decision is not None
    decision = result.request.decision
    assert (decision.status, decision.approved, decision.decided_by, decision.votes) == \
        (Status.APPROVED, True, None, [])
    events = store.audit(request.id)
    assert [e.event for e in events] == ["created", "approved"]
    assert (events[-1].user, events[-1].approved, events[-1].reason) == \
        (None, True, "below the 100 EUR auto-approval limit")
    assert store.resolve(request.id, approved=False).status is CloseStatus.ALREADY_CLOSED


def test_resolve_can_reject_in_someones_name(store: ApprovalStore) -> None:
    request = store.create(spec())
    store.decide(request.id, MAYA, "approve")
    result = store.resolve(request.id, approved=False, by=LI, reason="budget exceeded")
    assert result.request is not None and result.request.decision is not None
    assert (result.request.status, result.request.decision.decided_by) == (Status.REJECTED, LI)
    assert [(e.event, e.user) for e in store.audit(request.id)] == \
        [("created", REQUESTER), ("vote", MAYA), ("rejected", LI)]


# -- attach_message ------------------------------------------------------------------------


def test_first_post_wins(store: ApprovalStore) -> None:
    request = store.create(spec())
    assert store.attach_message(request.id, CHANNEL, "1712345678.000100") is True
    assert store.attach_message(request.id, "C02OTHER", "1712345679.000200") is False
    stored = store.get(request.id)
    assert (stored.message_channel, stored.message_ts) == (CHANNEL, "1712345678.000100")
    posted = [e for e in store.audit(request.id) if e.event == "posted"]
    assert len(posted) == 1
    assert posted[0].model_extra == {"channel": CHANNEL, "ts": "1712345678.000100"}


# -- pending and recent ----------------------------------------------------------------------


def test_pending_lists_open_requests_soonest_first(store: ApprovalStore) -> None:
    late = store.create(spec(timeout=timedelta(hours=2)))
    soon = store.create(spec(timeout=timedelta(hours=1)))
    closed = store.create(spec(quorum=1))
    store.decide(closed.id, MAYA, "approve")
    assert [r.id for r in store.pending()] == [soon.id, late.id]
    assert [r.id for r in store.pending(limit=1)] == [soon.id]


def test_pending_for_a_user_lists_only_what_they_may_decide(store: ApprovalStore) -> None:
    named = store.create(spec(approvers=[MAYA], quorum=1))
    by_group = store.create(spec(approvers=[FRANK], approver_groups=[OPS]))
    own = store.create(spec(requester=MAYA, approvers=[], quorum=1))
    voted = store.create(spec(approvers=[MAYA, FRANK]))
    store.decide(voted.id, MAYA, "approve")
    other = store.create(spec(approvers=[FRANK], quorum=1))
    closed = store.create(spec(approvers=[MAYA, FRANK], quorum=1))
    store.decide(closed.id, FRANK, "approve")
    open_to_all = store.create(spec(approvers=[], quorum=1))
    expired = create_expired(store, approvers=[MAYA], quorum=1)

    everything = {r.id for r in store.pending()}
    assert everything == {named.id, by_group.id, own.id, voted.id, other.id, open_to_all.id,
                          expired.id}
    assert {r.id for r in store.pending(MAYA, [OPS])} == {named.id, by_group.id, open_to_all.id}
    assert {r.id for r in store.pending(MAYA)} == {named.id, open_to_all.id}
    assert {r.id for r in store.pending(FRANK)} == \
        {by_group.id, own.id, voted.id, other.id, open_to_all.id}


def test_pending_index_heals_stale_entries(store: ApprovalStore,
                                           redis_client: redis.Redis) -> None:
    live = store.create(spec())
    vanished = store.create(spec())
    redis_client.delete(*KEYS.request_keys(vanished.id))
    # A client that died between the closing script and its ZREM leaves a closed entry behind.
    closed = store.create(spec())
    store.cancel(closed.id, REQUESTER)
    redis_client.zadd(KEYS.pending_index(), {closed.id: 2})
    never_created = new_request_id()
    redis_client.zadd(KEYS.pending_index(), {never_created: 1})

    assert [r.id for r in store.pending()] == [live.id]
    assert redis_client.zrange(KEYS.pending_index(), 0, -1) == [live.id]


def test_a_users_list_is_exact_however_many_others_wait(store: ApprovalStore,
                                                        redis_client: redis.Redis) -> None:
    """Requests for others with sooner deadlines used to crowd a user's own out of the list."""
    pipe_store = ApprovalStore(redis_client)
    for _ in range(150):
        pipe_store.create(spec(approvers=[FRANK], quorum=1, timeout=timedelta(minutes=30)))
    named = store.create(spec(approvers=[MAYA, FRANK], timeout=timedelta(hours=3)))
    by_group = store.create(spec(approvers=[], approver_groups=[OPS], quorum=1,
                                 timeout=timedelta(hours=2)))
    open_to_all = store.create(spec(approvers=[], quorum=1, timeout=timedelta(hours=4)))
    other_group = store.create(spec(approvers=[], approver_groups=[SEC], quorum=1))

    assert [r.id for r in store.pending(MAYA, [OPS], limit=10)] == \
        [by_group.id, named.id, open_to_all.id]
    assert [r.id for r in store.pending(MAYA, [OPS], limit=2)] == [by_group.id, named.id]
    assert [r.id for r in store.pending(MAYA, [OPS], include_open=False)] == \
        [by_group.id, named.id]
    assert [r.id for r in store.pending(LI, [SEC], include_open=False)] == [other_group.id]
    assert len(store.pending(FRANK, limit=500)) == 152
    assert sorted(store.pending_groups()) == [OPS, SEC]


def test_the_per_user_indexes_follow_votes_and_closes(store: ApprovalStore,
                                                      redis_client: redis.Redis) -> None:
    request = store.create(spec(approvers=[MAYA, FRANK], approver_groups=[OPS], quorum=2), "gate")
    cancelled = store.create(spec(approvers=[], approver_groups=[SEC], quorum=1))
    assert redis_client.zrange(KEYS.pending_by_approver(MAYA), 0, -1) == [request.id]
    assert redis_client.zrange(KEYS.pending_by_group(OPS), 0, -1) == [request.id]
    assert sorted(store.pending_groups()) == [OPS, SEC]

    store.decide(request.id, MAYA, "approve")  # it no longer waits for Maya
    assert redis_client.zrange(KEYS.pending_by_approver(MAYA), 0, -1) == []
    assert redis_client.zrange(KEYS.pending_by_approver(FRANK), 0, -1) == [request.id]
    # A retried create lists the request again, but not to those who already voted.
    assert store.create(spec(approvers=[MAYA, FRANK], approver_groups=[OPS]), "gate").id == \
        request.id
    assert redis_client.zrange(KEYS.pending_by_approver(MAYA), 0, -1) == []
    assert store.pending(MAYA, [OPS], include_open=False) == []
    store.cancel(cancelled.id, REQUESTER)
    assert store.pending_groups() == [OPS]
    store.decide(request.id, FRANK, "approve")
    for key in (KEYS.pending_by_approver(FRANK), KEYS.pending_by_group(OPS)):
        assert redis_client.exists(key) == 0, key
    assert store.pending_groups() == []


def test_user_indexes_heal_entries_of_closed_and_vanished_requests(
    store: ApprovalStore, redis_client: redis.Redis,
) -> None:
    live = store.create(spec(approvers=[MAYA], quorum=1))
    vanished = store.create(spec(approvers=[MAYA], approver_groups=[OPS], quorum=1))
    redis_client.delete(*KEYS.request_keys(vanished.id))
    closed = store.create(spec(approvers=[MAYA], quorum=1))
    store.cancel(closed.id, REQUESTER)
    # A client that died between the closing script and its index updates leaves entries.
    redis_client.zadd(KEYS.pending_by_approver(MAYA), {closed.id: 1})

    assert [r.id for r in store.pending(MAYA, [OPS])] == [live.id]
    assert redis_client.zrange(KEYS.pending_by_approver(MAYA), 0, -1) == [live.id]
    assert redis_client.exists(KEYS.pending_by_group(OPS)) == 0


def test_pending_reads_past_a_long_run_of_stale_entries(store: ApprovalStore,
                                                        redis_client: redis.Redis) -> None:
    live = store.create(spec())
    redis_client.zadd(KEYS.pending_index(), {new_request_id(): i for i in range(250)})
    assert [r.id for r in store.pending(limit=5)] == [live.id]
    assert redis_client.zrange(KEYS.pending_index(), 0, -1) == [live.id]


def test_recent_lists_what_a_user_voted_on_newest_first(store: ApprovalStore) -> None:
    ids = []
    for _ in range(3):
        request = store.create(spec(approvers=[MAYA, FRANK], quorum=2))
        assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
        ids.append(request.id)
    store.decide(ids[0], FRANK, "approve")
    refused = store.create(spec(approvers=[FRANK], quorum=1))
    store.decide(refused.id, MAYA, "approve")

    assert [r.id for r in store.recent(MAYA)] == ids[::-1]
    assert [r.id for r in store.recent(MAYA, limit=2)] == ids[:0:-1]
    assert [r.id for r in store.recent(FRANK)] == [ids[0]]
    assert store.recent(FRANK)[0].status is Status.APPROVED
    assert store.recent(OUTSIDER) == []


# -- keys, TTLs and the audit ----------------------------------------------------------------


def test_pending_keys_live_until_deadline_plus_retention(redis_client: redis.Redis) -> None:
    store = ApprovalStore(redis_client, retention=timedelta(hours=1))
    request = store.create(spec(timeout=timedelta(minutes=10)))
    expected_ms = 70 * 60 * 1000
    for key in (KEYS.spec(request.id), KEYS.state(request.id), KEYS.audit(request.id)):
        assert expected_ms - 5000 < redis_client.pttl(key) <= expected_ms
    assert redis_client.exists(KEYS.done(request.id)) == 0


def test_closed_keys_live_for_the_retention(redis_client: redis.Redis) -> None:
    store = ApprovalStore(redis_client, retention=timedelta(minutes=5))
    request = store.create(spec(timeout=timedelta(days=2), quorum=1))
    store.decide(request.id, MAYA, "approve")
    store.wait(request.id, 1)
    for key in KEYS.request_keys(request.id):
        assert 5 * 60 * 1000 - 5000 < redis_client.pttl(key) <= 5 * 60 * 1000, key


def test_every_key_carries_a_ttl_after_every_operation(redis_client: redis.Redis) -> None:
    store = ApprovalStore(redis_client)
    checks = 0

    def check(_: object) -> None:
        nonlocal checks
        assert keys_without_ttl(redis_client) == []
        checks += 1

    first = store.create(spec(), "ttl-gate")
    check(first)
    check(store.attach_message(first.id, CHANNEL, "1.2"))
    check(store.decide(first.id, MAYA, "approve"))
    check(store.decide(first.id, OUTSIDER, "approve"))
    check(store.pending(MAYA))
    check(store.wait(first.id, 0.05))
    check(store.decide(first.id, FRANK, "approve"))
    check(store.wait(first.id, 1))
    check(store.wait(first.id, 1))
    check(store.create(spec(), "ttl-gate"))
    second = store.create(spec(approver_groups=[OPS]))
    check(store.cancel(second.id, REQUESTER))
    third = create_expired(store)
    check(store.pending())
    check(store.expire_due())
    fourth = store.create(spec())
    check(store.resolve(fourth.id, approved=True))
    check(store.recent(MAYA))
    fifth = store.create(spec())
    check(store.decide(fifth.id, FRANK, "reject"))
    assert checks == 16
    assert redis_client.dbsize() > 10
    assert store.get(third.id).status is Status.TIMED_OUT


def test_every_key_of_a_request_shares_its_hash_tag(store: ApprovalStore,
                                                    redis_client: redis.Redis) -> None:
    request = store.create(spec(quorum=1))
    store.attach_message(request.id, CHANNEL, "1.2")
    store.decide(request.id, MAYA, "approve")
    store.wait(request.id, 1)
    other = store.create(spec())

    tagged = {key for key in redis_client.scan_iter("*") if f"{{{request.id}}}" in key}
    assert tagged == set(KEYS.request_keys(request.id))
    assert len({key_slot(key.encode()) for key in tagged}) == 1
    for key in redis_client.scan_iter("approvals:req:*"):
        assert f"{{{request.id}}}" in key or f"{{{other.id}}}" in key
    global_keys = {key for key in redis_client.scan_iter("*") if "{" not in key}
    # `other` is still pending, so it is listed for its approvers.
    assert global_keys == {KEYS.pending_index(), KEYS.user_history(MAYA),
                           KEYS.pending_by_approver(MAYA), KEYS.pending_by_approver(FRANK)}


def test_audit_keeps_every_event_in_order(store: ApprovalStore) -> None:
    request = store.create(spec(approvers=[MAYA, FRANK, LI], quorum=2))
    store.attach_message(request.id, CHANNEL, "1712345678.000100")
    store.decide(request.id, OUTSIDER, "approve")
    store.decide(request.id, MAYA, "approve", reason="looks good")
    store.decide(request.id, MAYA, "approve")
    store.decide(request.id, FRANK, "approve")
    store.decide(request.id, LI, "reject")

    events = store.audit(request.id)
    assert [(e.event, e.user, e.vote, e.reason) for e in events] == [
        ("created", REQUESTER, None, None),
        ("posted", None, None, None),
        ("vote", MAYA, Outcome.APPROVE, "looks good"),
        ("vote", FRANK, Outcome.APPROVE, None),
        ("approved", FRANK, None, None),
    ]
    assert (events[-1].status, events[-1].approved) == (Status.APPROVED, True)
    times = [e.at for e in events]
    assert times == sorted(times)
    stored = store.get(request.id)
    assert times[0] == stored.created_at
    assert [v.at for v in stored.votes] == times[2:4]
    assert stored.decision is not None and stored.decision.decided_at == times[-1]


# -- the asyncio store runs the same plans ---------------------------------------------------


def test_async_store_runs_every_operation(backend: Backend) -> None:
    async def scenario() -> None:
        store = AsyncApprovalStore(backend.async_client())
        try:
            request = await store.create(spec(approvers=[MAYA, FRANK, LI]), "async-key")
            assert (await store.create(spec(), "async-key")).id == request.id
            assert await store.attach_message(request.id, CHANNEL, "1.2")
            assert (await store.decide(request.id, MAYA, "approve")).status \
                is DecideStatus.RECORDED
            assert (await store.decide(request.id, MAYA, "approve")).status \
                is DecideStatus.DUPLICATE_VOTE
            assert [r.id for r in await store.pending(LI)] == [request.id]
            assert [r.id for r in await store.recent(MAYA)] == [request.id]
            assert (await store.expire(request.id)).status is CloseStatus.NOT_DUE
            assert (await store.cancel(request.id, MAYA)).status is CloseStatus.NOT_REQUESTER
            assert (await store.decide(request.id, LI, "approve")).status \
                is DecideStatus.APPROVED
            assert (await store.get(request.id)).status is Status.APPROVED
            assert [e.event for e in await store.audit(request.id)] == \
                ["created", "posted", "vote", "vote", "approved"]
            second = await store.create(spec())
            assert (await store.resolve(second.id, approved=False)).status \
                is CloseStatus.CLOSED_NOW
            third = await store.create(spec(timeout=TINY))
            await until_server_clock_reaches_async(store.client, third.deadline)
            assert [r.id for r in await store.expire_due()] == [third.id]
            assert await store.pending() == []
            assert await store.ping()
        finally:
            await store.aclose()

    asyncio.run(scenario())
