"""The policy alone: parsing with line numbers, matching, first-match order, defaults, lock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from slack_approvals.policy.builtin import builtin_policy
from slack_approvals.policy.document import Policy, check_policy, parse_policy, policy_hash
from slack_approvals.policy.errors import ApproversLocked, PolicyInvalid
from slack_approvals.policy.matching import parse_condition
from slack_approvals.policy.routing import route
from slack_approvals.state.models import Outcome

ISSUE_POLICY = (Path(__file__).parent / "issue_policy.yaml").read_text()
FLOWS = ["payment-approval", "deploy-approval"]


def issue_policy() -> Policy:
    return parse_policy(ISSUE_POLICY, "approvals-policy.yaml")


@pytest.mark.parametrize(("condition", "value", "expected"), [
    (">= 10000", Decimal("10000.00"), True),
    (">= 10000", Decimal("9999.99"), False),
    ("> 10000", "10000.01", True),
    ("< 1000", 999, True),
    ("< 1000", 1000.0, False),
    ("<= 1000", Decimal("1000"), True),
    ("== 12.5", Decimal("12.50"), True),  # numbers compare as numbers, not as text
    ("!= 12.5", "12.50", False),
    ("USD", "usd", True),  # text ignores case
    ("USD", "EUR", False),
    ("!= EUR", "USD", True),
    ("in [USD, EUR]", "eur", True),
    ("in [USD, EUR]", "GBP", False),
    ("in [1, 2.5]", Decimal("2.50"), True),
    ("< b", "a", False),  # an ordering needs two numbers: text never orders
    ("> 9", "10", True),  # both numbers: 10 > 9, not "10" < "9"
    ("> 9", "ten", False),
    ("< 1000", "$50000", False),  # as text "$50000" < "1000" would hold
    ("< 1000", "1,000,000", False),
    (True, True, True),
    (10000, Decimal("10000.00"), True),
    (["a", "b"], "B", True),
])
def test_conditions(condition: object, value: object, expected: bool) -> None:
    assert parse_condition(condition).matches(value) is expected  # type: ignore[union-attr]


def test_a_missing_value_never_matches() -> None:
    assert not parse_condition("!= x").matches(None)  # type: ignore[union-attr]
    policy = parse_policy("version: 1\nrules:\n  - name: r\n    match: {params: {amount: '!= 5'}}\n"
                          "    quorum: 1\n", "p")
    assert route(policy, params={}).rule is None


@pytest.mark.parametrize("bad", ["=> 5", "=< 5", "~= 5", "= 5", "<> 5", "in 1, 2", ">=", "in []"])
def test_bad_operators_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"operator|in \[a, b\]|needs a value|separated"):
        parse_condition(bad)


def test_the_issue_policy_routes_as_it_says() -> None:
    policy = issue_policy()
    large = route(policy, flow="payment-approval", params={"amount": Decimal("50000.00"),
                                                            "currency": "USD"}).settle()
    assert (large.rule, large.approvers, large.approver_groups, large.quorum) == (
        "large-payments", ("U0ANNA", "U0BEN"), ("S0FINANCE",), 2)
    assert large.channel == "C0APPROVALS" and large.timeout == timedelta(hours=24)
    small = route(policy, flow="Payment-Approval", params={"AMOUNT": 500}).settle()
    assert (small.rule, small.auto_approve) == ("small-payments", "below the 1,000 USD threshold")
    euro = route(policy, flow="payment-approval", params={"amount": 50000, "currency": "EUR"}).settle()
    assert (euro.rule, euro.approvers, euro.quorum) == (None, ("U0ANNA",), 1)  # defaults only
    prod = route(policy, facts={"Environment": "production"}).settle()
    assert (prod.rule, prod.approvers) == ("production-changes", ("U0CARL",))
    assert large.policy_hash == policy.hash == policy_hash(ISSUE_POLICY)


def test_first_match_wins() -> None:
    policy = parse_policy("""version: 1
rules:
  - name: first
    match: {params: {amount: "> 10"}}
    quorum: 1
  - name: second
    match: {params: {amount: "> 100"}}
    quorum: 1
""", "p")
    assert route(policy, params={"amount": 1000}).rule == "first"
    assert route(policy, params={"amount": 50}).rule == "first"
    assert route(policy, params={"amount": 5}).rule is None


def test_precedence_rule_then_caller_then_defaults_then_settings() -> None:
    policy = parse_policy("""version: 1
defaults: {channel: C0DEFAULT, timeout: 2h}
rules:
  - name: deploys
    match: {gate: deploy}
    approvers: [U0RULE]
""", "p")
    fallback = {"channel": "C0SETTINGS", "approvers": ["U0SETTINGS"]}
    caller = {"approvers": ["U0CALLER"], "channel": "C0CALLER", "quorum": 1}
    ruled = route(policy, gate="deploy").settle(caller, fallback)
    assert (ruled.approvers, ruled.channel, ruled.timeout) == (("U0RULE",), "C0CALLER", timedelta(hours=2))
    unruled = route(policy, gate="other").settle(caller, fallback)
    assert (unruled.approvers, unruled.channel) == (("U0CALLER",), "C0CALLER")
    bare = route(policy, gate="other").settle({}, fallback)
    assert (bare.approvers, bare.channel, bare.quorum) == (("U0SETTINGS",), "C0DEFAULT", 1)


def test_approvers_and_groups_travel_together() -> None:
    """A rule naming only groups does not let the caller's own approvers in beside them."""
    policy = parse_policy("version: 1\nrules:\n  - name: g\n    approver_groups: [S0FIN]\n", "p")
    settled = route(policy).settle({"approvers": ["U0ME"]})
    assert (settled.approvers, settled.approver_groups) == ((), ("S0FIN",))


def test_lock_refuses_approvers_named_by_callers() -> None:
    policy = parse_policy("version: 1\ndefaults: {lock: true, approvers: [U0ANNA]}\n", "p")
    assert route(policy).settle({}).approvers == ("U0ANNA",)
    with pytest.raises(ApproversLocked, match="U0ME"):
        route(policy).settle({"approvers": ["U0ME"]})
    with pytest.raises(ApproversLocked, match="S0MINE"):
        route(policy).settle({"approver_groups": ["S0MINE"]})
    assert route(policy).settle({"quorum": 1, "channel": "C0X"}).channel == "C0X"


def test_lock_leaves_no_way_around_the_policy() -> None:
    policy = parse_policy("version: 1\ndefaults: {lock: true, approvers: [U0ANNA, U0BEN], quorum: 2,\n"
                          "  timeout_outcome: reject, channel: C0POLICY}\n", "p")
    with pytest.raises(ApproversLocked, match="U0MALLORY"):
        route(policy).settle({"escalate": [{"after": timedelta(seconds=30), "to": ["U0MALLORY"]}]})
    settled = route(policy).settle({"quorum": 1, "channel": "C0MINE", "allow_self_approval": True,
                                    "timeout_outcome": Outcome.APPROVE})
    assert (settled.quorum, settled.channel) == (2, "C0POLICY")
    assert settled.allow_self_approval is False and settled.timeout_outcome is Outcome.REJECT


def test_wildcards_and_requesters() -> None:
    policy = parse_policy("""version: 1
rules:
  - name: departments
    match: {gate: "department:*", requester: [U0BOSS]}
    approvers: [U0ANNA]
""", "p")
    assert route(policy, gate="department:finance", requester="U0BOSS").rule == "departments"
    assert route(policy, gate="department:finance", requester="U0OTHER").rule is None
    assert route(policy, gate="deploy", requester="U0BOSS").rule is None


def test_builtin_policy_reproduces_the_payment_thresholds() -> None:
    policy = builtin_policy()
    assert route(policy, flow="payment-approval", params={"amount": Decimal("999.99")}).auto_approve
    assert route(policy, flow="payment-approval", params={"amount": Decimal("1000")}).rule is None
    assert route(policy, flow="payment-approval", params={"amount": Decimal("10000.00")}).rule is None
    assert route(policy, flow="payment-approval",
                 params={"amount": Decimal("10000.01")}).settle().quorum == 2
    settled = route(policy, flow="simple-approval").settle({"timeout_outcome": Outcome.APPROVE},
                                                           {"channel": "#approvals"})
    assert (settled.channel, settled.timeout_outcome) == ("#approvals", Outcome.APPROVE)


BAD = """version: 1
defaults:
  lock: yes
  colour: blue
rules:
  - name: big
    match:
      flow: payment-approval
      params: {amount: "=> 10000"}
    approvers: [U0ANNA]
    quorum: 2
  - name: two-of-one
    match: {gate: deploy}
    approvers: [U0ANNA]
    quorum: 2
  - name: everything
    approvers: [U0ANNA]
  - name: unreachable
    match: {flow: [deploy-approval, payments]}
    approvers: [U0BEN]
"""


def test_check_reports_each_problem_at_its_line() -> None:
    problems = check_policy(BAD, "p.yaml", FLOWS)
    assert problems == [
        "p.yaml:4: defaults: unknown key `colour`",
        "p.yaml:9: rules[0].match.params.amount: '=> 10000': `=>` is not an operator "
        "(use ==, !=, <, <=, >, >= or in [a, b])",
        "p.yaml:15: rules[1].quorum: 2 approvals needed but only 1 approvers listed and no groups",
        "p.yaml:18: rules[3] `unreachable` is never used: rule `everything` above it matches "
        "every request",
        "p.yaml:19: rules[3].match.flow: unknown flow `payments` (known: deploy-approval, payment-approval)",
    ]
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(BAD, "p.yaml")
    assert "payments" not in str(caught.value)  # the running bot accepts flows of its own


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nrules: [\n", "p.yaml:3: not valid YAML"),
    ("- a\n", "p.yaml:1: expected a mapping"),
    ("version: 2\n", "p.yaml:1: version: Input should be 1"),
    ("version: 1\nrules:\n  - match: {}\n", "p.yaml:3: rules[0]: `name` is required"),
    ("version: 1\nrules:\n  - name: r\n    reminders: {after: 1h}\n",
     "p.yaml:3: rules[0]: `reminders` is not a key; write remind_every and remind_limit"),
    ("version: 1\nrules:\n  - name: r\n    timeout: soon\n",
     "p.yaml:4: rules[0].timeout: 'soon' is not a duration"),
    ("version: 1\nrules:\n  - name: r\n    approvers: [anna]\n",
     "p.yaml:4: rules[0].approvers[0]: 'anna' is not a Slack user id"),
    ("version: 1\nrules:\n  - name: r\n    auto_approve: ok\n    deny: no\n",
     "p.yaml:3: rules[0]: a rule either"),
])
def test_check_messages(text: str, expected: str) -> None:
    problems = check_policy(text, "p.yaml", FLOWS)
    assert problems and problems[0].startswith(expected), problems


def test_the_issue_policy_checks_clean() -> None:
    assert check_policy(ISSUE_POLICY, "approvals-policy.yaml", FLOWS) == []
