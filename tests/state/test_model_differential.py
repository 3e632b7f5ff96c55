"""Random operation sequences run against the store and against a plain-Python model of the rules.

The model below restates the rules of a request in the simplest code possible; the store and
the model must agree on every returned status, every final state and every audit event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_approvals.state import ApprovalRequest, ApprovalStore, RequestNotFound, RequestSpec
from slack_approvals.state.plans import new_request_id
from tests.conftest import Backend

from .support import until_server_clock_reaches

REQUESTER = "U00REQ"
NAMED = ["U01ANA", "U02BEN", "U03CAT"]
GROUPIE = "U04DAN"  # named nowhere; eligible only through a group
USERS = [REQUESTER, *NAMED, GROUPIE, "U05EVE"]
GROUPS = ["S01OPS", "S02SEC"]
UNKNOWN_ID = new_request_id("a request nobody created")
# Long enough never to pass during a test; short enough to wait out right after the create.
LONG = timedelta(hours=1)
TINY = timedelta(milliseconds=1)

Event = tuple[str, str | None, str | None]


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

    def spec(self) -> RequestSpec:
        return RequestSpec(
            title="Differential", channel="C01TEST", requester=self.requester,
            approvers=list(self.approvers), approver_groups=list(self.groups),
            quorum=self.quorum, allow_self_approval=self.allow_self,
            timeout_outcome=self.timeout_outcome,  # type: ignore[arg-type]
            timeout=TINY if self.tiny else LONG,
        )


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

    def __post_init__(self) -> None:
        self.events.append(("created", self.t.requester, None))

    @property
    def overdue(self) -> bool:
        return self.t.tiny

    def eligible(self, user: str, groups: tuple[str, ...]) -> bool:
        open_to_anyone = not self.t.approvers and not self.t.groups
        return open_to_anyone or user in self.t.approvers or bool(set(groups) & set(self.t.groups))

    def close(self, status: str, approved: bool, by: str | None) -> None:
        self.status, self.approved, self.decided_by = status, approved, by
        self.events.append((status, by, None))

    def decide(self, user: str, vote: str, groups: tuple[str, ...]) -> str:
        if self.status != "pending":
            return "closed"
        if self.overdue:
            return "expired"
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
        if sum(v == "approve" for v in self.votes.values()) >= self.t.quorum:
            self.close("approved", True, user)
            return "approved"
        return "recorded"

    def expire(self) -> str:
        if self.status != "pending":
            return "already_closed"
        if not self.overdue:
            return "not_due"
        self.close("timed_out", self.t.timeout_outcome == "approve", None)
        return "closed_now"

    def cancel(self, user: str | None, force: bool) -> str:
        if self.status != "pending":
            return "already_closed"
        if not force and user != self.t.requester:
            return "not_requester"
        self.close("cancelled", False, user)
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
        self_blocked = user == self.t.requester and not self.t.allow_self
        return (self.status == "pending" and not self.overdue and user not in self.votes
                and self.eligible(user, groups) and not self_blocked)


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
    return Template(
        requester=requester,
        approvers=approvers, groups=groups, quorum=quorum,
        allow_self=allow_self,
        timeout_outcome=draw(st.sampled_from(["reject", "approve"])),
        tiny=draw(st.integers(0, 4)) == 0,
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
    "pending": st.tuples(st.just("pending"), st.sampled_from([None, *USERS]), user_groups),
}
WEIGHTS = {"create": 3, "decide": 12, "expire": 1, "cancel": 1, "resolve": 1, "attach": 1,
           "sweep": 1, "pending": 2}
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


def run_sequence(store: ApprovalStore, ops: list[tuple[Any, ...]]) -> None:
    ids: list[str] = []
    models: dict[str, Model] = {}
    keyed: dict[str, str] = {}

    def target(index: int) -> str:
        return UNKNOWN_ID if index < 0 or not ids else ids[index % len(ids)]

    for step, op in enumerate(ops):
        where = f"step {step}: {op}"
        kind = op[0]
        if kind == "create":
            template, key = op[1], op[2]
            request = store.create(template.spec(), key)
            if key is not None and key in keyed:
                assert request.id == keyed[key], where
                continue
            if template.tiny:
                until_server_clock_reaches(store.client, request.deadline)
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


# Shrinking a failing sequence reruns it hundreds of times: give it room to finish.
@pytest.mark.timeout(400)
def test_store_agrees_with_the_model(backend: Backend) -> None:
    client = backend.sync_client()
    store = ApprovalStore(client)

    @settings(max_examples=40 if backend.name == "fake" else 25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(ops=sequences)
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
