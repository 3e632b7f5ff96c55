"""The one schedule of reminders and escalation tiers: claimed atomically, fired once, moved
on to the next action, emptied when the request closes; eligibility of a tier at vote time."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from slack_approvals.state import ApprovalStore, DecideStatus
from slack_approvals.state.models import ms_to_datetime
from tests.state.support import FRANK, MAYA, OPS, OUTSIDER, REQUESTER, spec, until_server_clock_reaches

EVERY = timedelta(seconds=1)
LI = "U03LI"


def due_of(store: ApprovalStore, kind: str, request_id: str) -> float | None:
    score = store.client.zscore(store.plans.keys.schedule(kind), request_id)
    return None if score is None else float(score)


def wait_due(store: ApprovalStore, kind: str, request_id: str) -> None:
    due = due_of(store, kind, request_id)
    assert due is not None
    until_server_clock_reaches(store.client, ms_to_datetime(int(due)))


def test_create_schedules_the_first_reminder_and_tier(store: ApprovalStore) -> None:
    request = store.create(spec(remind_every=EVERY, escalate=[{"after": "PT2S", "to": [LI]}]))
    created_ms = request.created_at.timestamp() * 1000
    assert due_of(store, "remind", request.id) == pytest.approx(created_ms + 1000, abs=1)
    assert due_of(store, "escalate", request.id) == pytest.approx(created_ms + 2000, abs=1)
    plain = store.create(spec())
    assert due_of(store, "remind", plain.id) is None
    assert store.claim("remind") == []  # nothing due yet


def test_a_reminder_fires_once_then_the_next_is_scheduled_up_to_the_limit(
        store: ApprovalStore) -> None:
    request = store.create(spec(remind_every=EVERY, remind_limit=2))
    wait_due(store, "remind", request.id)
    assert store.claim("remind") == [request.id]
    assert store.claim("remind") == []  # held by the first claimer
    fired = store.fire("remind", request.id)
    assert fired.fired and fired.count == 1
    assert fired.request is not None and fired.request.reminders_sent == 1
    again = store.fire("remind", request.id)  # a second claimer of the same action
    assert not again.fired
    wait_due(store, "remind", request.id)
    assert store.claim("remind") == [request.id]
    last = store.fire("remind", request.id)
    assert last.fired and last.count == 2
    assert due_of(store, "remind", request.id) is None  # the limit is reached
    events = [e.event for e in store.audit(request.id)]
    assert events.count("reminded") == 2


def test_nothing_fires_after_the_request_closes(store: ApprovalStore) -> None:
    request = store.create(spec(remind_every=EVERY, quorum=1))
    store.decide(request.id, MAYA, "approve")
    assert due_of(store, "remind", request.id) is None  # the decision took it off
    # A claim that raced the decision still fires nothing.
    store.client.zadd(store.plans.keys.schedule("remind"), {request.id: 0})
    assert store.claim("remind") == [request.id]
    fired = store.fire("remind", request.id)
    assert not fired.fired
    assert due_of(store, "remind", request.id) is None


def test_a_lost_claim_comes_due_again_after_its_lease(store: ApprovalStore) -> None:
    request = store.create(spec(remind_every=EVERY))
    wait_due(store, "remind", request.id)
    assert store.claim("remind", lease=timedelta(milliseconds=10)) == [request.id]
    wait_due(store, "remind", request.id)  # the claimer died: the lease runs out
    assert store.claim("remind") == [request.id]
    assert store.fire("remind", request.id).fired


def test_racing_claimers_fire_each_action_once(store: ApprovalStore) -> None:
    requests = [store.create(spec(remind_every=EVERY)) for _ in range(20)]
    for request in requests:
        wait_due(store, "remind", request.id)
    fired: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def sweeper() -> None:
        start.wait()
        for _ in range(10):
            for request_id in store.claim("remind", limit=3):
                if store.fire("remind", request_id).fired:
                    with lock:
                        fired.append(request_id)

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(fired) == sorted(r.id for r in requests)


def test_deferring_holds_a_claimed_action_until_then(store: ApprovalStore) -> None:
    request = store.create(spec(remind_every=EVERY))
    wait_due(store, "remind", request.id)
    assert store.claim("remind") == [request.id]
    until = request.created_at + timedelta(seconds=2)
    store.defer("remind", request.id, until)
    assert store.claim("remind") == []
    until_server_clock_reaches(store.client, until)
    assert store.claim("remind") == [request.id]
    assert store.fire("remind", request.id).fired


def test_a_tier_is_eligible_from_its_time_before_anyone_announces_it(store: ApprovalStore) -> None:
    request = store.create(spec(quorum=1, escalate=[
        {"after": "PT0.3S", "to": [OUTSIDER, OPS]}, {"after": "PT0.6S", "to": [LI]}]))
    assert store.decide(request.id, OUTSIDER, "approve").status is DecideStatus.NOT_ELIGIBLE
    until_server_clock_reaches(store.client, request.created_at + timedelta(milliseconds=300))
    assert store.decide(request.id, LI, "approve").status is DecideStatus.NOT_ELIGIBLE
    assert store.get(request.id).tiers_reached == 0
    assert store.decide(request.id, FRANK, "reject", groups=[OPS]).status is DecideStatus.REJECTED


def test_escalation_announces_every_tier_that_has_come(store: ApprovalStore) -> None:
    request = store.create(spec(escalate=[
        {"after": "PT0.1S", "to": [OUTSIDER]}, {"after": "PT0.2S", "to": [OPS]},
        {"after": "PT30S", "to": [LI]}]))
    until_server_clock_reaches(store.client, request.created_at + timedelta(milliseconds=200))
    assert store.claim("escalate") == [request.id]
    fired = store.fire("escalate", request.id)
    assert fired.fired and fired.count == 2
    assert fired.request is not None and fired.request.escalated_to == [OUTSIDER, OPS]
    assert due_of(store, "escalate", request.id) == pytest.approx(
        request.created_at.timestamp() * 1000 + 30_000, abs=1)
    (event,) = [e for e in store.audit(request.id) if e.event == "escalated"]
    assert event.model_extra == {"tier": 2, "to": [OUTSIDER, OPS]}


def test_self_approval_rules_hold_for_an_escalated_requester(store: ApprovalStore) -> None:
    request = store.create(spec(quorum=1, escalate=[{"after": "PT0.05S", "to": [REQUESTER]}]))
    until_server_clock_reaches(store.client, request.created_at + timedelta(milliseconds=50))
    status = store.decide(request.id, REQUESTER, "approve").status
    assert status is DecideStatus.SELF_APPROVAL


def test_escalation_tiers_count_toward_a_reachable_quorum() -> None:
    tiered = spec(approvers=[MAYA], quorum=2, escalate=[{"after": "PT1H", "to": [FRANK]}])
    assert tiered.quorum == 2
    with pytest.raises(ValueError, match="only 1 approver named"):
        spec(approvers=[MAYA], quorum=2)
    with pytest.raises(ValueError, match="each tier comes later"):
        spec(escalate=[{"after": "PT2H", "to": [FRANK]}, {"after": "PT1H", "to": [LI]}])
