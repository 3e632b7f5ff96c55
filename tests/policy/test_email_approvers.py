"""`email_approvers` in the policy: parsed and checked like approvers, routed with them (whoever
names approvers names all three kinds), locked with them."""

from __future__ import annotations

import pytest

from slack_approvals.policy.document import parse_policy
from slack_approvals.policy.errors import ApproversLocked, PolicyInvalid
from slack_approvals.policy.opening import Draft, settle, spec_of
from slack_approvals.state.models import Fact

POLICY = """\
version: 1
defaults: {channel: C0APPROVALS, approvers: [U0ANNA]}
rules:
  - name: audit-fees
    match: {facts: {kind: audit}}
    approvers: [U0BEN]
    email_approvers: [Controller@Example.com, auditor@firm.example]
    quorum: 3
"""


def test_a_rule_names_email_approvers() -> None:
    policy = parse_policy(POLICY)
    other = settle(policy, Draft(title="Pay the rent", requester="U0REQ"))
    assert other.email_approvers == () and other.approvers == ("U0ANNA",)

    audit = Draft(title="Pay the audit fee", facts=[Fact(label="kind", value="audit")])
    settled = settle(policy, audit)
    assert settled.email_approvers == ("controller@example.com", "auditor@firm.example")
    spec = spec_of(audit, settled)
    assert (spec.approvers, spec.quorum) == (["U0BEN"], 3)
    assert spec.email_voters == ["mailto:controller@example.com", "mailto:auditor@firm.example"]
    assert settled.as_json()["email_approvers"] == list(settled.email_approvers)


def test_a_caller_names_them_with_the_approvers() -> None:
    policy = parse_policy("version: 1\ndefaults: {channel: C0APPROVALS, approvers: [U0ANNA]}\n")
    draft = Draft(title="t", options={"email_approvers": ["ann@example.com"]})
    settled = settle(policy, draft)
    # Naming any kind of approver names them all: the defaults' Slack approver is not added.
    assert (settled.approvers, settled.email_approvers) == ((), ("ann@example.com",))


def test_lock_refuses_email_approvers_from_callers() -> None:
    policy = parse_policy("version: 1\ndefaults: {channel: C0A, approvers: [U0ANNA], lock: true}\n")
    with pytest.raises(ApproversLocked):
        settle(policy, Draft(title="t", options={"email_approvers": ["ann@example.com"]}))


@pytest.mark.parametrize(("text", "problem"), [
    ("email_approvers: [not-an-address]", "is not a mail address"),
    ("email_approvers: [a@example.com, A@example.com]", "each is named once"),
    ("email_approvers: [a@example.com]\n    approvers: [U0B]\n    quorum: 3",
     "3 approvals needed but only 2 approvers listed"),
])
def test_bad_email_approvers_are_refused_with_their_line(text: str, problem: str) -> None:
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(f"version: 1\nrules:\n  - name: r\n    {text}\n", "p.yaml")
    assert any(problem in line for line in raised.value.lines()), raised.value.lines()
