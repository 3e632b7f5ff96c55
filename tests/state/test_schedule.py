"""The one schedule of reminders and escalation tiers: claimed atomically, fired once, moved
on to the next action, emptied when the request closes; eligibility of a tier at vote time."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from slack_approvals.state import ApprovalStore, CloseStatus, DecideStatus, Status
from slack_approvals.state.errors import InvalidRequest
from slack_approvals.state.models import ms_to_datetime
from slack_approvals.state.plans import Owed, new_request_id
from tests.state.support import FRANK, MAYA, OPS, OUTSIDER, REQUESTER, spec, until_server_clock_reaches

EVERY = timedelta(seconds=1)
LI = "U03LI"
UNKNOWN = new_request_id("a request nobody created")


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


# -- a tier's own quorum --------------------------------------------------------------------


def test_a_tier_quorum_holds_from_its_time_on(store: ApprovalStore) -> None:
    request = store.create(spec(approvers=[MAYA, FRANK, LI], quorum=3, escalate=[
        {"after": "PT0.3S", "to": [OUTSIDER], "quorum": 2}]))
    assert request.quorum_at(request.created_at) == 3
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    until_server_clock_reaches(store.client, request.created_at + timedelta(milliseconds=300))
    assert store.get(request.id).quorum_at(request.created_at + timedelta(seconds=1)) == 2
    # Before any sweeper has announced the tier, the second approval is enough.
    assert store.decide(request.id, FRANK, "approve").status is DecideStatus.APPROVED
    decided = store.get(request.id)
    assert decided.decision is not None and decided.decision.decided_by == FRANK


def test_a_tier_lowering_the_quorum_below_the_approvals_approves_at_the_next_vote(
        store: ApprovalStore) -> None:
    request = store.create(spec(escalate=[{"after": "PT0.2S", "to": [LI], "quorum": 1}]))
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    until_server_clock_reaches(store.client, request.created_at + timedelta(milliseconds=200))
    # The request was settled at the tier's time: a reject after it cannot undo that.
    result = store.decide(request.id, FRANK, "reject")
    # Settled, not approved: Frank's click recorded nothing, and the bot must tell him so.
    assert result.status is DecideStatus.SETTLED
    assert result.request is not None and result.request.decision is not None
    decision = result.request.decision
    assert decision.approved and decision.decided_by is None
    assert [v.user for v in decision.votes] == [MAYA]  # Frank's reject was not recorded
    last = store.audit(request.id)[-1]
    assert last.event == "approved" and last.user is None
    assert last.reason == ("escalation tier 1 lowered the quorum to 1 and 1 approval was "
                           "already counted")
    assert store.recent(FRANK) == []  # Frank did not vote
    assert store.pending(MAYA) == [] and store.pending(None) == []
    assert due_of(store, "escalate", request.id) is None


def test_settle_approves_only_once_a_tier_quorum_is_met(store: ApprovalStore) -> None:
    request = store.create(spec(quorum=2, escalate=[
        {"after": "PT0.2S", "to": [LI], "quorum": 1}, {"after": "PT1H", "to": [OUTSIDER]}]))
    store.decide(request.id, MAYA, "approve")
    assert store.settle(request.id).status is CloseStatus.NOT_DUE  # the tier has not come
    until_server_clock_reaches(store.client, request.created_at + timedelta(milliseconds=200))
    settled = store.settle(request.id)
    assert settled.status is CloseStatus.CLOSED_NOW
    assert settled.request is not None and settled.request.status is Status.APPROVED
    assert store.settle(request.id).status is CloseStatus.ALREADY_CLOSED
    assert due_of(store, "escalate", request.id) is None
    plain = store.create(spec(quorum=2, escalate=[{"after": "PT0.01S", "to": [LI]}]))
    store.decide(plain.id, MAYA, "approve")
    until_server_clock_reaches(store.client, plain.created_at + timedelta(milliseconds=10))
    # A tier without a quorum of its own changes nothing.
    assert store.settle(plain.id).status is CloseStatus.NOT_DUE
    assert store.get(plain.id).quorum_at(plain.created_at + timedelta(hours=1)) == 2


def test_a_later_tier_without_a_quorum_keeps_the_one_before() -> None:
    tiered = spec(approvers=[MAYA, FRANK, LI], quorum=3, escalate=[
        {"after": "PT1H", "to": [OUTSIDER], "quorum": 2}, {"after": "PT2H", "to": [OPS]},
        {"after": "PT3H", "to": ["U07ZOE"], "quorum": 1}])
    assert [tiered.quorum_with(n) for n in range(4)] == [3, 2, 2, 1]


def test_a_tier_quorum_must_be_reachable_by_those_who_may_vote_by_then() -> None:
    with pytest.raises(ValueError, match=r"escalate\[0\].quorum: 3 approvals needed from that "
                                         r"tier on but only 2"):
        spec(approvers=[MAYA], quorum=3, escalate=[
            {"after": "PT1H", "to": [LI], "quorum": 3},
            {"after": "PT2H", "to": [OUTSIDER, "U07ZOE"], "quorum": 1}])
    # The requester named in a tier may not approve their own request.
    with pytest.raises(ValueError, match=r"only 1 of the people named.*requester U06REQ"):
        spec(approvers=[MAYA], escalate=[{"after": "PT1H", "to": [REQUESTER], "quorum": 2},
                                         {"after": "PT2H", "to": [LI], "quorum": 1}])
    assert spec(approvers=[MAYA], allow_self_approval=True, escalate=[
        {"after": "PT1H", "to": [REQUESTER], "quorum": 2},
        {"after": "PT2H", "to": [LI], "quorum": 1}]).escalate[0].quorum == 2
    # People of later tiers that keep the quorum count; a group's size is unknown: no check.
    assert spec(approvers=[MAYA], quorum=3, escalate=[
        {"after": "PT1H", "to": [LI], "quorum": 3},
        {"after": "PT2H", "to": [OUTSIDER]}]).escalate[0].quorum == 3
    assert spec(quorum=9, escalate=[{"after": "PT1H", "to": [OPS], "quorum": 9}]
                ).escalate[0].quorum == 9
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        spec(escalate=[{"after": "PT1H", "to": [LI], "quorum": 0}])


# -- many at once (the sweeper's bulk path) -------------------------------------------------


def test_fire_many_fires_each_once_and_returns_the_requests(store: ApprovalStore) -> None:
    reminded = [store.create(spec(remind_every=EVERY, remind_limit=2)) for _ in range(3)]
    tiered = store.create(spec(escalate=[{"after": "PT0.05S", "to": [OUTSIDER, OPS]}]))
    for request in reminded:
        wait_due(store, "remind", request.id)
    wait_due(store, "escalate", tiered.id)
    ids = store.claim("remind")
    assert sorted(ids) == sorted(r.id for r in reminded)
    specs = store.read_specs([*ids, UNKNOWN])
    assert set(specs) == set(ids)  # a request gone from Redis is left out
    fired = store.fire_many("remind", specs)
    assert all(f.fired and f.count == 1 and f.before == 0 for f in fired.values())
    for request_id, result in fired.items():
        assert result.request == store.get(request_id)  # the state came back with the script
        # The next reminder is on the schedule, an interval after the one just sent.
        next_due = due_of(store, "remind", request_id)
        first_due = (result.request.created_at + EVERY).timestamp() * 1000
        assert next_due is not None and next_due >= first_due + 1000
    again = store.fire_many("remind", specs)  # another sweeper with the same claim
    assert not any(f.fired for f in again.values())
    escalated = store.fire_many("escalate", store.read_specs(store.claim("escalate")))
    (result,) = escalated.values()
    assert result.fired and (result.before, result.count) == (0, 1)
    assert due_of(store, "escalate", tiered.id) is None
    # The reached tier's people find it in their lists, as after a single fire.
    assert [r.id for r in store.pending(OUTSIDER)] == [tiered.id]
    assert [r.id for r in store.pending(LI, groups=[OPS])] == [tiered.id]


def test_defer_many_holds_each_claimed_action(store: ApprovalStore) -> None:
    requests = [store.create(spec(remind_every=EVERY)) for _ in range(2)]
    for request in requests:
        wait_due(store, "remind", request.id)
    assert len(store.claim("remind")) == 2
    until = requests[-1].created_at + timedelta(seconds=2)
    store.defer_many("remind", {r.id: until for r in requests})
    store.defer_many("remind", {})
    assert store.claim("remind") == []
    until_server_clock_reaches(store.client, until)
    assert sorted(store.claim("remind")) == sorted(r.id for r in requests)


def test_owed_posts_are_taken_once_then_the_schedule_goes_on(store: ApprovalStore) -> None:
    request = store.create(spec(remind_every=EVERY, remind_limit=2))
    wait_due(store, "remind", request.id)
    fired = store.fire("remind", request.id)
    assert fired.request is not None and fired.resend is None
    next_due = due_of(store, "remind", request.id)
    assert store.owe(fired.request, Owed(thread=True, users=(MAYA,)), timedelta(0))
    owed_due = due_of(store, "remind", request.id)
    assert owed_due is not None and next_due is not None and owed_due < next_due
    wait_due(store, "remind", request.id)
    assert store.claim("remind") == [request.id]
    taken = store.fire_many("remind", store.read_specs([request.id]))[request.id]
    assert taken.fired and taken.resend == Owed(thread=True, users=(MAYA,))
    assert taken.count == 1 and taken.request is not None and taken.request.reminders_sent == 1
    assert due_of(store, "remind", request.id) == next_due  # back to the next reminder
    again = store.fire("remind", request.id)  # a second claimer: nothing owed, nothing due
    assert not again.fired
    store.cancel(request.id, REQUESTER)
    assert not store.owe(fired.request, Owed(thread=True, users=()), timedelta(0))


# -- settled by a tier: the click that finds it, the deadline, the quorum only ever lowered ----


def test_any_click_after_a_met_tier_quorum_is_settled_and_records_nothing(
        store: ApprovalStore) -> None:
    request = store.create(spec(escalate=[{"after": "PT0.2S", "to": [LI], "quorum": 1}]))
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    until_server_clock_reaches(store.client, request.created_at + timedelta(milliseconds=200))
    # Not even an approver: still no `approved` that reads like an accepted vote.
    result = store.decide(request.id, OUTSIDER, "reject", "not on my watch")
    assert result.status is DecideStatus.SETTLED and not result.status.accepted
    assert result.request is not None and result.request.status is Status.APPROVED
    assert [v.user for v in result.request.votes] == [MAYA]
    assert store.pending(None) == [] and store.recent(OUTSIDER) == []


def test_an_email_link_is_kept_when_the_click_only_found_it_settled(store: ApprovalStore) -> None:
    from slack_approvals.bot.links import token_hash
    from tests.state.test_links import ANN, mailed

    request = store.create(spec(approvers=[MAYA, FRANK], email_approvers=[ANN], quorum=2,
                                escalate=[{"after": "PT0.2S", "to": [LI], "quorum": 1}]))
    approve, _ = mailed(store, request.id)
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    until_server_clock_reaches(store.client, request.created_at + timedelta(milliseconds=200))
    status, result = store.redeem(request.id, token_hash(approve))
    assert status == "ok" and result is not None and result.status is DecideStatus.SETTLED
    # No vote was stored, so the link is not used up: it still says what became of it.
    link = store.link(request.id, token_hash(approve))
    assert link is not None and "used_ms" not in link
    assert [v.user for v in store.get(request.id).votes] == [MAYA]


def test_a_tier_quorum_met_before_the_deadline_approves_at_expiry(store: ApprovalStore) -> None:
    # Quorum 2; from 0.3 s on, 1; one approval at once; the deadline at 0.6 s.
    request = store.create(spec(timeout="PT0.6S", escalate=[
        {"after": "PT0.3S", "to": [LI], "quorum": 1}]))
    assert store.decide(request.id, MAYA, "approve").status is DecideStatus.RECORDED
    until_server_clock_reaches(store.client, request.deadline)
    closed = store.expire(request.id)
    assert closed.status is CloseStatus.CLOSED_NOW
    assert closed.request is not None and closed.request.status is Status.APPROVED
    last = store.audit(request.id)[-1]
    assert last.event == "approved" and last.reason is not None and "tier 1" in last.reason
    # The sweeper's path is the same script.
    swept = store.create(spec(timeout="PT0.6S", escalate=[
        {"after": "PT0.3S", "to": [LI], "quorum": 1}]))
    store.decide(swept.id, MAYA, "approve")
    until_server_clock_reaches(store.client, swept.deadline)
    (closed_request,) = store.expire_due()
    assert closed_request.id == swept.id and closed_request.status is Status.APPROVED


def test_a_tier_due_only_at_the_deadline_does_not_settle_it(store: ApprovalStore) -> None:
    request = store.create(spec(timeout="PT0.3S", escalate=[
        {"after": "PT0.3S", "to": [LI], "quorum": 1}]))
    store.decide(request.id, MAYA, "approve")
    until_server_clock_reaches(store.client, request.deadline + timedelta(milliseconds=50))
    closed = store.expire(request.id)
    assert closed.request is not None and closed.request.status is Status.TIMED_OUT


def test_a_tier_may_lower_the_quorum_but_never_raise_it() -> None:
    with pytest.raises(ValueError, match=r"escalate\[0\].quorum: 2 is more than the 1 already"):
        spec(quorum=1, escalate=[{"after": "PT1H", "to": [LI], "quorum": 2}])
    with pytest.raises(ValueError, match=r"escalate\[1\].quorum: 2 is more than the 1 already"):
        spec(quorum=2, escalate=[{"after": "PT1H", "to": [LI], "quorum": 1},
                                 {"after": "PT2H", "to": [OUTSIDER], "quorum": 2}])
    kept = spec(quorum=2, escalate=[{"after": "PT1H", "to": [LI], "quorum": 2},
                                    {"after": "PT2H", "to": [OUTSIDER], "quorum": 1}])
    assert [kept.quorum_with(n) for n in range(3)] == [2, 2, 1]


# -- one bad request in a batch spares the others ----------------------------------------------


def test_fire_many_isolates_a_failing_script_and_an_unreadable_state(store: ApprovalStore) -> None:
    requests = [store.create(spec(remind_every=EVERY, remind_limit=3)) for _ in range(3)]
    for request in requests:
        wait_due(store, "remind", request.id)
    broken, unreadable, good = requests
    # The script fails on this one (its interval is not a number) ...
    store.client.hset(store.plans.keys.state(broken.id), "remind_every", "soon")
    # ... and this one fires but cannot be read back.
    store.client.hset(store.plans.keys.state(unreadable.id), "created_ms", "yesterday")
    claimed = store.claim("remind")
    assert sorted(claimed) == sorted(r.id for r in requests)
    fired = store.fire_many("remind", store.read_specs(claimed))
    assert fired[good.id].fired and fired[good.id].request is not None
    assert not fired[broken.id].fired and "fire failed" in (fired[broken.id].error or "")
    assert not fired[unreadable.id].fired and "unreadable" in (fired[unreadable.id].error or "")
    # The good one's next reminder is on the schedule as usual.
    assert due_of(store, "remind", good.id) is not None


def test_read_specs_leaves_out_a_corrupt_spec_and_says_why(store: ApprovalStore) -> None:
    good, bad = (store.create(spec(remind_every=EVERY)) for _ in range(2))
    store.client.set(store.plans.keys.spec(bad.id), "{not json")
    corrupt: dict[str, str] = {}
    specs = store.read_specs([good.id, bad.id], corrupt)
    assert set(specs) == {good.id} and set(corrupt) == {bad.id}
    assert "stored spec is invalid" in corrupt[bad.id]
    store.unschedule("remind", [bad.id])
    assert due_of(store, "remind", bad.id) is None and due_of(store, "remind", good.id) is not None


def test_settle_many_closes_only_the_settled_and_unlists_them(store: ApprovalStore) -> None:
    tiers = [{"after": "PT0.2S", "to": [LI], "quorum": 1}]
    met, unmet = store.create(spec(escalate=tiers)), store.create(spec(escalate=tiers))
    store.decide(met.id, MAYA, "approve")
    until_server_clock_reaches(store.client, unmet.created_at + timedelta(milliseconds=200))
    errors: dict[str, str] = {}
    closed = store.settle_many([met.id, unmet.id, UNKNOWN], errors)
    assert [r.id for r in closed] == [met.id] and closed[0].status is Status.APPROVED
    assert errors == {}
    assert [r.id for r in store.pending(None)] == [unmet.id]
    # Its tier has come: no quorum-setting tier is left to come.
    assert store.tier_times({unmet.id: unmet.spec}) == {unmet.id: []}
    later = store.create(spec(escalate=[{"after": "PT1H", "to": [LI], "quorum": 1}]))
    assert store.tier_times({later.id: later.spec}) == {
        later.id: [later.created_at + timedelta(hours=1)]}


def test_concurrent_owes_are_merged_not_lost(store: ApprovalStore) -> None:
    request = store.create(spec(remind_every=EVERY, remind_limit=2))
    wait_due(store, "remind", request.id)
    fired = store.fire("remind", request.id)
    assert fired.request is not None
    assert store.owe(fired.request, Owed(thread=True, users=(MAYA,)), timedelta(0))
    assert store.owe(fired.request, Owed(thread=False, users=(FRANK, MAYA), tries=2),
                     timedelta(0))
    wait_due(store, "remind", request.id)
    taken = store.fire("remind", request.id)
    assert taken.resend == Owed(thread=True, users=(MAYA, FRANK), tries=2)


def test_an_announcements_owed_posts_are_taken_once_by_the_escalation(store: ApprovalStore) -> None:
    request = store.create(spec(escalate=[{"after": "PT0.05S", "to": [LI, OUTSIDER]},
                                          {"after": "PT1H", "to": [OPS]}]))
    wait_due(store, "escalate", request.id)
    fired = store.fire("escalate", request.id)
    assert fired.fired and fired.request is not None
    owed = Owed(thread=False, users=(LI,), to=(LI, OUTSIDER))
    assert store.owe(fired.request, owed, timedelta(0), "escalate")
    assert store.owe(fired.request, Owed(thread=True, users=(OUTSIDER,), to=(LI, OUTSIDER)),
                     timedelta(0), "escalate")
    # A reminder owes nothing here: the two are kept apart.
    assert store.fire("remind", request.id).resend is None
    wait_due(store, "escalate", request.id)
    taken = store.fire_many("escalate", store.read_specs(store.claim("escalate")))[request.id]
    assert taken.resend == Owed(thread=True, users=(LI, OUTSIDER), to=(LI, OUTSIDER))
    assert (taken.before, taken.count) == (1, 1)
    # Taken once; the next tier stays scheduled at its time.
    assert store.fire("escalate", request.id).resend is None
    assert due_of(store, "escalate", request.id) == (
        request.created_at + timedelta(hours=1)).timestamp() * 1000
    with pytest.raises(InvalidRequest, match="neither 'remind' nor 'escalate'"):
        store.owe(fired.request, owed, timedelta(0), "mail")
