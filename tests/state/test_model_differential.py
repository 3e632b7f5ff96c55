"""Random operation sequences run against the store and against a plain-Python model of the rules.

The model below restates the rules of a request in the simplest code possible; the store and
the model must agree on every returned status, every final state and every audit event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from slack_approvals.state import ApprovalRequest, ApprovalStore, RequestNotFound, RequestSpec
from slack_approvals.state.models import ms_to_datetime
from slack_approvals.state.plans import new_request_id
from tests.conftest import Backend

from .support import until_server_clock_reaches

REQUESTER = "U00REQ"
NAMED = ["U01ANA", "U02BEN", "U03CAT"]
GROUPIE = "U04DAN"  # named nowhere; eligible only through a group
ESCALATED = "U06FAY"  # eligible only once an escalation tier has come
USERS = [REQUESTER, *NAMED, GROUPIE, "U05EVE", ESCALATED]
GROUPS = ["S01OPS", "S02SEC"]
UNKNOWN_ID = new_request_id("a request nobody created")
# Long enough never to pass during a test; short enough to wait out right after the create.
LONG = timedelta(hours=1)
TINY = timedelta(milliseconds=1)
# A tier that comes mid-sequence: only a "tier" operation waits this long. Operations run
# this close to an unreached tier's time are given up (hypothesis `assume`), not guessed at.
LATER = timedelta(milliseconds=400)
MARGIN = timedelta(milliseconds=100)

Event = tuple[str, str | None, str | None]


@dataclass(frozen=True)
class Tier:
    """One escalation tier: its people, its own quorum (None: keep the request's) and when it
    comes: `now` (right after the create), `later` (at the next "tier" operation, which waits
    for it, so approvals counted before it meet its quorum) or `never` (after the test)."""

    to: tuple[str, ...]
    quorum: int | None
    when: str

    @property
    def after(self) -> timedelta:
        return {"now": TINY, "later": LATER, "never": LONG}[self.when]


# -- the model -------------------------------------------------------------------------------


@dataclass
class Template:
    requester: str | None
    approvers: tuple[str, ...]
    groups: tuple[str, ...]
    quorum: int
    allow_self: bool
    timeout_outcome: str
    tiny: bool
    tier: Tier | None = None

    def spec(self) -> RequestSpec:
        escalate = [] if self.tier is None else [
            {"after": self.tier.after, "to": list(self.tier.to),
             "quorum": self.tier.quorum}]
        return RequestSpec.model_validate({
            "title": "Differential", "channel": "C01TEST", "requester": self.requester,
            "approvers": list(self.approvers), "approver_groups": list(self.groups),
            "quorum": self.quorum, "allow_self_approval": self.allow_self,
            "timeout_outcome": self.timeout_outcome, "timeout": TINY if self.tiny else LONG,
            "escalate": escalate,
        })


@dataclass
class Model:
    """One request as the rules say it should be."""

    t: Template
    status: str = "pending"
    approved: bool | None = None
    decided_by: str | None = None
    votes: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    posted: bool = False
    reached: bool = False  # the tier's time has come

    def __post_init__(self) -> None:
        self.events.append(("created", self.t.requester, None))
        self.reached = self.t.tier is not None and self.t.tier.when == "now"

    @property
    def overdue(self) -> bool:
        return self.t.tiny

    @property
    def tier_reached(self) -> Tier | None:
        return self.t.tier if self.reached else None

    @property
    def quorum(self) -> int:
        """The quorum in force: the reached tier's own, else the request's."""
        tier = self.tier_reached
        return tier.quorum if tier is not None and tier.quorum is not None else self.t.quorum

    @property
    def approvals(self) -> int:
        return sum(v == "approve" for v in self.votes.values())

    @property
    def settled_by_tier(self) -> bool:
        """A reached tier's own quorum is met by the approvals already counted."""
        tier = self.tier_reached
        return tier is not None and tier.quorum is not None and self.approvals >= tier.quorum

    @property
    def settled_before_deadline(self) -> bool:
        """As `settled_by_tier`, by a tier that came before the deadline."""
        tier = self.tier_reached
        timeout = TINY if self.t.tiny else LONG
        return self.settled_by_tier and tier is not None and tier.after < timeout

    def eligible(self, user: str, groups: tuple[str, ...]) -> bool:
        open_to_anyone = not self.t.approvers and not self.t.groups
        tier = self.tier_reached
        escalated = tier is not None and (user in tier.to or bool(set(groups) & set(tier.to)))
        return (open_to_anyone or user in self.t.approvers or bool(set(groups) & set(self.t.groups))
                or escalated)

    def close(self, status: str, approved: bool, by: str | None) -> None:
        self.status, self.approved, self.decided_by = status, approved, by
        self.events.append((status, by, None))

    def decide(self, user: str, vote: str, groups: tuple[str, ...]) -> str:
        if self.status != "pending":
            return "closed"
        if self.overdue:
            return "expired"
        if self.settled_by_tier:
            # Approved at the tier's time; this click only closes it so, recording nothing.
            self.close("approved", True, None)
            return "settled"
        if not self.eligible(user, groups):
            return "not_eligible"
        if vote == "approve" and user == self.t.requester and not self.t.allow_self:
            return "self_approval"
        if user in self.votes:
            return "duplicate_vote"
        self.votes[user] = vote
        self.events.append(("vote", user, vote))
        if vote == "reject":
            self.close("rejected", False, user)
            return "rejected"
        if self.approvals >= self.quorum:
            self.close("approved", True, user)
            return "approved"
        return "recorded"

    def expire(self) -> str:
        if self.status != "pending":
            return "already_closed"
        if not self.overdue:
            return "not_due"
        if self.settled_before_deadline:
            # A tier's quorum met before the deadline approved it: no timeout.
            self.close("approved", True, None)
        else:
            self.close("timed_out", self.t.timeout_outcome == "approve", None)
        return "closed_now"

    def cancel(self, user: str | None, force: bool) -> str:
        if self.status != "pending":
            return "already_closed"
        if not force and user != self.t.requester:
            return "not_requester"
        self.close("cancelled", False, user)
        return "closed_now"

    def settle(self) -> str:
        if self.status != "pending":
            return "already_closed"
        if self.overdue or not self.settled_by_tier:
            return "not_due"
        self.close("approved", True, None)
        return "closed_now"

    def resolve(self, approved: bool, by: str | None) -> str:
        if self.status != "pending":
            return "already_closed"
        self.close("approved" if approved else "rejected", approved, by)
        return "closed_now"

    def attach(self) -> bool:
        if self.posted:
            return False
        self.posted = True
        self.events.append(("posted", None, None))
        return True

    def may_decide(self, user: str, groups: tuple[str, ...]) -> bool:
        """What a user's list shows: it reads the indexes of the named approvers and groups;
        a tier's people are listed once a sweeper announces the tier, which none does here."""
        self_blocked = user == self.t.requester and not self.t.allow_self
        named = ((not self.t.approvers and not self.t.groups) or user in self.t.approvers
                 or bool(set(groups) & set(self.t.groups)))
        return (self.status == "pending" and not self.overdue and user not in self.votes
                and named and not self_blocked)


# -- operations ------------------------------------------------------------------------------


@st.composite
def templates(draw: st.DrawFn) -> Template:
    approvers = tuple(draw(st.lists(st.sampled_from([*NAMED, REQUESTER]), unique=True,
                                    max_size=4)))
    groups = tuple(draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=1)))
    quorum = draw(st.sampled_from([1, 2, 2, 3, 3]))
    requester = draw(st.sampled_from([REQUESTER, REQUESTER, NAMED[0], None]))
    allow_self = draw(st.booleans())
    if approvers and not groups:
        # Specs refuse a quorum the named approvers could never reach.
        can_approve = len(approvers) - (requester in approvers and not allow_self)
        if can_approve == 0:
            allow_self = True
            can_approve = len(approvers)
        quorum = min(quorum, can_approve)
    tier = None
    # Most requests with approvers escalate (one open to anyone has no one to escalate to).
    if approvers and draw(st.integers(0, 3)) > 0:
        to = tuple(draw(st.lists(st.sampled_from([ESCALATED, NAMED[2], REQUESTER, "S02SEC"]),
                                 unique=True, min_size=1, max_size=2)))
        # A tier may lower the quorum, never raise it.
        tier_quorum = draw(st.sampled_from([None, 1, 1, 1, 2]))
        tier_quorum = None if tier_quorum is None else min(tier_quorum, quorum)
        if tier_quorum is not None and not groups and "S02SEC" not in to:
            people = set(approvers) | {p for p in to if not p.startswith("S")}
            can_approve = len(people) - (requester in people and not allow_self)
            tier_quorum = min(tier_quorum, can_approve) or None
        tier = Tier(to=to, quorum=tier_quorum,
                    when=draw(st.sampled_from(["now", "later", "later", "never"])))
    return Template(
        requester=requester,
        approvers=approvers, groups=groups, quorum=quorum,
        allow_self=allow_self,
        timeout_outcome=draw(st.sampled_from(["reject", "approve"])),
        tiny=draw(st.integers(0, 4)) == 0,
        tier=tier,
    )


targets = st.one_of(st.integers(0, 7), st.integers(0, 7), st.just(-1))  # -1: an id that was never created
user_groups = st.lists(st.sampled_from(GROUPS), unique=True, max_size=2).map(tuple)

# Clicks come mostly from named approvers and the requester, so votes get counted, not refused.
voters = st.sampled_from([*USERS, *NAMED, *NAMED, REQUESTER])
decides = st.tuples(st.just("decide"), targets, voters,
                    st.sampled_from(["approve"] * 5 + ["reject"]), user_groups,
                    st.sampled_from([None, "ok", "because"]))
# One strategy per kind of operation; the weights below keep requests open long enough to vote.
by_kind: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "create": st.tuples(st.just("create"), templates(), st.sampled_from([None, None, "k1", "k2"])),
    "decide": decides,
    "expire": st.tuples(st.just("expire"), targets),
    "cancel": st.tuples(st.just("cancel"), targets, st.sampled_from([REQUESTER, NAMED[0], None]),
                        st.booleans()),
    "resolve": st.tuples(st.just("resolve"), targets, st.booleans(),
                         st.sampled_from([None, NAMED[1]])),
    "attach": st.tuples(st.just("attach"), targets),
    "sweep": st.tuples(st.just("sweep")),
    "settle": st.tuples(st.just("settle"), targets),
    "tier": st.tuples(st.just("tier")),
    "pending": st.tuples(st.just("pending"), st.sampled_from([None, *USERS]), user_groups),
}
WEIGHTS = {"create": 3, "decide": 12, "expire": 1, "cancel": 1, "resolve": 1, "attach": 1,
           "sweep": 1, "pending": 2, "settle": 1, "tier": 2}
operations = st.sampled_from([k for k, n in WEIGHTS.items() for _ in range(n)]).flatmap(
    lambda kind: by_kind[kind])


creates = st.tuples(st.just("create"), templates(), st.sampled_from([None, None, "k1", "k2"]))
# A few requests first, so most operations meet a request rather than an unknown id.
sequences = st.builds(lambda first, rest: [*first, *rest],
                      st.lists(creates, min_size=1, max_size=3),
                      st.lists(operations, min_size=15, max_size=40))


def final_state(request: ApprovalRequest) -> tuple[Any, ...]:
    decision = request.decision
    return (
        request.status.value,
        None if decision is None else decision.approved,
        None if decision is None else decision.decided_by,
        {v.user: v.vote.value for v in request.votes},
    )


def model_state(model: Model) -> tuple[Any, ...]:
    return (model.status, model.approved, model.decided_by, model.votes)


def server_now(store: ApprovalStore) -> datetime:
    seconds, micros = store.client.time()
    return ms_to_datetime(int(seconds) * 1000 + int(micros) // 1000)


def run_sequence(store: ApprovalStore, ops: list[tuple[Any, ...]]) -> None:
    ids: list[str] = []
    models: dict[str, Model] = {}
    keyed: dict[str, str] = {}

    def target(index: int) -> str:
        return UNKNOWN_ID if index < 0 or not ids else ids[index % len(ids)]

    later: dict[str, datetime] = {}  # tiers still to come mid-sequence, by request

    for step, op in enumerate(ops):
        where = f"step {step}: {op}"
        kind = op[0]
        if later:
            assume(server_now(store) < min(later.values()) - MARGIN)
        if kind == "tier":
            if later:
                until_server_clock_reaches(store.client, max(later.values()))
            for request_id in later:
                models[request_id].reached = True
            later.clear()
            continue
        if kind == "create":
            template, key = op[1], op[2]
            request = store.create(template.spec(), key)
            if key is not None and key in keyed:
                assert request.id == keyed[key], where
                continue
            if template.tiny:
                until_server_clock_reaches(store.client, request.deadline)
            if template.tier is not None and template.tier.when == "now":
                until_server_clock_reaches(store.client, request.created_at + TINY)
            if template.tier is not None and template.tier.when == "later":
                later[request.id] = request.created_at + LATER
            assert request.id not in models, where
            models[request.id] = Model(template)
            ids.append(request.id)
            if key is not None:
                keyed[key] = request.id
        elif kind == "decide":
            request_id = target(op[1])
            _, _, user, vote, groups, reason = op
            got = store.decide(request_id, user, vote, reason, groups).status.value
            model = models.get(request_id)
            want = "unknown" if model is None else model.decide(user, vote, groups)
            assert got == want, where
        elif kind == "expire":
            request_id = target(op[1])
            got = store.expire(request_id).status.value
            model = models.get(request_id)
            assert got == ("unknown" if model is None else model.expire()), where
        elif kind == "cancel":
            request_id = target(op[1])
            user, force = op[2], op[3] or op[2] is None
            got = store.cancel(request_id, user, force=force).status.value
            model = models.get(request_id)
            assert got == ("unknown" if model is None else model.cancel(user, force)), where
        elif kind == "settle":
            request_id = target(op[1])
            got = store.settle(request_id).status.value
            model = models.get(request_id)
            assert got == ("unknown" if model is None else model.settle()), where
        elif kind == "resolve":
            request_id = target(op[1])
            got = store.resolve(request_id, approved=op[2], by=op[3]).status.value
            model = models.get(request_id)
            assert got == ("unknown" if model is None else model.resolve(op[2], op[3])), where
        elif kind == "attach":
            request_id = target(op[1])
            model = models.get(request_id)
            if model is None:
                with pytest.raises(RequestNotFound):
                    store.attach_message(request_id, "C01TEST", f"{step}.0")
            else:
                assert store.attach_message(request_id, "C01TEST", f"{step}.0") == model.attach()
        elif kind == "sweep":
            swept = {r.id for r in store.expire_due()}
            due = {i for i, m in models.items() if m.status == "pending" and m.overdue}
            for request_id in due:
                models[request_id].expire()
            assert swept == due, where
        elif kind == "pending":
            user, groups = op[1], op[2]
            listed = {r.id for r in store.pending(user, groups)}
            if user is None:
                want_ids = {i for i, m in models.items() if m.status == "pending"}
            else:
                want_ids = {i for i, m in models.items() if m.may_decide(user, groups)}
            assert listed == want_ids, where

    for request_id, model in models.items():
        assert final_state(store.get(request_id)) == model_state(model), request_id
        events = [(e.event, e.user, None if e.vote is None else e.vote.value)
                  for e in store.audit(request_id)]
        assert events == model.events, request_id


def _lowering(key: str) -> tuple[Any, ...]:
    tier = Tier((ESCALATED,), 1, "later")
    return ("create", Template(REQUESTER, (NAMED[0], NAMED[1]), (), 2, False, "reject", False,
                               tier), key)


# Random sequences seldom count an approval, then pass a tier that lowers the quorum below it,
# then vote or settle, all before the request closes otherwise: this one always does.
LOWERED_BELOW_THE_APPROVALS: list[tuple[Any, ...]] = [
    _lowering("k1"), _lowering("k2"),
    ("decide", 0, NAMED[0], "approve", (), None), ("decide", 1, NAMED[1], "approve", (), "ok"),
    ("settle", 0), ("pending", NAMED[1], ()),
    ("tier",),
    ("pending", NAMED[1], ()), ("decide", 0, NAMED[1], "reject", (), "no"), ("settle", 1),
    ("settle", 0), ("decide", 1, ESCALATED, "approve", (), None),
]


# Shrinking a failing sequence reruns it hundreds of times: give it room to finish.
@pytest.mark.timeout(400)
def test_store_agrees_with_the_model(backend: Backend) -> None:
    client = backend.sync_client()
    store = ApprovalStore(client)

    @settings(max_examples=40 if backend.name == "fake" else 25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(ops=sequences)
    @example(ops=LOWERED_BELOW_THE_APPROVALS)
    def check(ops: list[tuple[Any, ...]]) -> None:
        client.flushall()
        run_sequence(store, ops)

    try:
        check()
    finally:
        client.close()


def test_the_model_can_tell_rules_apart() -> None:
    """The model itself must refuse what the contract refuses, or agreement would prove nothing."""
    model = Model(Template(REQUESTER, (REQUESTER, NAMED[0], NAMED[1]), ("S01OPS",), 2, False,
                           "reject", False))
    assert model.decide(REQUESTER, "approve", ()) == "self_approval"
    assert model.decide("U05EVE", "approve", ()) == "not_eligible"
    assert model.decide(GROUPIE, "approve", ("S01OPS",)) == "recorded"
    assert model.decide(GROUPIE, "reject", ("S01OPS",)) == "duplicate_vote"
    assert model.expire() == "not_due"
    assert model.cancel(NAMED[0], False) == "not_requester"
    assert model.decide(NAMED[0], "approve", ()) == "approved"
    assert model.decide(NAMED[1], "approve", ()) == "closed"
    assert [e[0] for e in model.events] == ["created", "vote", "vote", "approved"]

    tiered = Model(Template(REQUESTER, (NAMED[0], NAMED[1]), (), 2, False, "reject", False,
                            Tier((ESCALATED,), 1, "later")))
    assert tiered.decide(ESCALATED, "approve", ()) == "not_eligible"
    assert tiered.decide(NAMED[0], "approve", ()) == "recorded"
    assert tiered.settle() == "not_due"
    tiered.reached = True
    # The tier lowered the quorum to the one approval already in: a reject cannot undo that.
    assert tiered.decide(NAMED[1], "reject", ()) == "settled"
    assert tiered.events[-1] == ("approved", None, None) and NAMED[1] not in tiered.votes
    plain = Model(Template(REQUESTER, (NAMED[0], NAMED[1]), (), 2, False, "reject", False,
                           Tier((ESCALATED,), None, "now")))
    assert plain.decide(ESCALATED, "approve", ()) == "recorded"
    assert plain.settle() == "not_due"
