"""The one opening path on a real store: routing recorded in the audit, the policy's text kept
under its hash, auto-approval and denial through the Closer, and explain agreeing with it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_approvals.policy.document import parse_policy
from slack_approvals.policy.opening import Draft, FixedPolicy, Opener, settle
from slack_approvals.state.closing import Closer
from slack_approvals.state.models import ApprovalRequest, Fact, Status
from slack_approvals.state.store import ApprovalStore

POLICY = parse_policy((Path(__file__).parent / "issue_policy.yaml").read_text(), "approvals-policy.yaml")
FALLBACK = {"channel": "#approvals", "approvers": ["U0SETTINGS"]}


class Board:
    """A MessageBoard that only remembers what it was asked to post."""

    def __init__(self, store: ApprovalStore) -> None:
        self.store = store
        self.posted: list[str] = []

    def post(self, request: ApprovalRequest) -> ApprovalRequest:
        self.posted.append(request.id)
        self.store.attach_message(request.id, request.spec.channel, f"{len(self.posted)}.0")
        return self.store.get(request.id)

    def refresh(self, request: ApprovalRequest) -> ApprovalRequest:
        return request


def opener(store: ApprovalStore) -> tuple[Opener, Board]:
    board = Board(store)
    return Opener(Closer(store, board), FixedPolicy(POLICY), FALLBACK), board


def payment(amount: object, **params: Any) -> Draft:
    return Draft(title=f"Pay {amount}", requester="U0REQ", flow="payment-approval", gate="payment",
                 params={"amount": amount, "currency": "USD", **params})


def test_a_routed_request_names_its_rule_and_policy_in_the_audit(store: ApprovalStore) -> None:
    open_, board = opener(store)
    opened = open_.open(payment(Decimal("50000.00")), "k1")
    request = opened.request
    assert (request.spec.approvers, request.spec.approver_groups, request.spec.quorum) == (
        ["U0ANNA", "U0BEN"], ["S0FINANCE"], 2)
    assert (request.spec.policy_rule, request.spec.policy_hash) == ("large-payments", POLICY.hash)
    created = store.audit(request.id)[0]
    assert created.event == "created"
    assert created.model_extra == {"policy_rule": "large-payments", "policy_hash": POLICY.hash}
    assert store.policy_text(POLICY.hash) == POLICY.text
    assert board.posted == [request.id]
    ttl = store.client.pttl(store.plans.keys.policy(POLICY.hash))
    assert ttl > store.plans.retention_ms  # the deadline plus the retention


def test_auto_approve_and_deny_close_through_the_closer(store: ApprovalStore) -> None:
    open_, board = opener(store)
    small = open_.open(payment(500), "k2").request
    assert small.status is Status.APPROVED and small.decision is not None
    assert small.decision.reason == "below the 1,000 USD threshold"
    assert [e.event for e in store.audit(small.id)] == ["created", "approved"]
    deny = parse_policy("version: 1\nrules:\n  - name: no-fridays\n    deny: no deploys on Friday\n", "p")
    denied = Opener(Closer(store, board), FixedPolicy(deny), FALLBACK).open(
        Draft(title="Deploy", facts=[Fact(label="day", value="Friday")]), "k3").request
    assert denied.status is Status.REJECTED and denied.decision is not None
    assert denied.decision.reason == "no deploys on Friday"
    assert board.posted == []
    # A retry finds the decided request and decides nothing again.
    assert open_.open(payment(500), "k2").request.id == small.id


def test_a_cli_request_with_facts_asks_the_rule_s_approvers(store: ApprovalStore) -> None:
    open_, _ = opener(store)
    draft = Draft(title="Migrate", facts=[Fact(label="environment", value="production")],
                  options={"approvers": ["U0ME"]})
    request = open_.open(draft).request
    assert (request.spec.approvers, request.spec.policy_rule) == (["U0CARL"], "production-changes")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2),
       currency=st.sampled_from(["USD", "EUR", "usd"]),
       payee=st.text(min_size=1, max_size=20))
def test_explain_agrees_with_what_is_opened(store: ApprovalStore, amount: Decimal, currency: str,
                                            payee: str) -> None:
    """What `policy explain` computes (settle, without writing) is what open writes."""
    open_, _ = opener(store)
    draft = payment(amount, currency=currency, payee=payee)
    explained = settle(POLICY, draft, FALLBACK).as_json()
    opened = open_.open(draft)
    spec = opened.request.spec
    assert explained == opened.settled.as_json()
    assert (explained["rule"], explained["approvers"], explained["approver_groups"],
            explained["quorum"], explained["channel"]) == (
        spec.policy_rule, spec.approvers, spec.approver_groups, spec.quorum, spec.channel)
    if explained["auto_approve"]:
        assert opened.request.decision is not None
        assert opened.request.decision.reason == explained["auto_approve"]
    else:
        assert opened.request.status is Status.PENDING
