"""The policy keys of reminders, escalation and quiet hours: parsed with their lines, routed
by precedence like every other key, and carried into the request's spec."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from slack_approvals.policy.document import parse_policy
from slack_approvals.policy.errors import PolicyInvalid
from slack_approvals.policy.opening import Draft, settle, spec_of
from slack_approvals.state.hours import BusinessHours

POLICY = """\
version: 1
defaults:
  channel: "#approvals"
  approvers: [U01MAYA]
  remind_every: 4h
rules:
  - name: payments
    match: {flow: payment-approval}
    remind_every: 30m
    remind_limit: 5
    escalate:
      - {after: 4h, to: [U02FRANK]}
      - {after: 8h, to: [S01FINANCE, U03ERIN]}
    business_hours: {days: Mon-Fri, from: "09:00", to: "18:00", tz: Europe/Berlin}
"""


def test_a_rule_routes_reminders_escalation_and_business_hours() -> None:
    policy = parse_policy(POLICY, "p.yaml")
    spec = spec_of(draft := Draft(title="Pay", flow="payment-approval"), settle(policy, draft))
    assert spec.remind_every == timedelta(minutes=30) and spec.remind_limit == 5
    assert [(t.after, t.to) for t in spec.escalate] == [
        (timedelta(hours=4), ["U02FRANK"]), (timedelta(hours=8), ["S01FINANCE", "U03ERIN"])]
    assert spec.business_hours == BusinessHours(days=[0, 1, 2, 3, 4], start=time(9),
                                                end=time(18), tz="Europe/Berlin")
    other = spec_of(draft := Draft(title="Deploy", flow="deploy"), settle(policy, draft))
    assert other.remind_every == timedelta(hours=4) and other.remind_limit == 3
    assert other.escalate == [] and other.business_hours is None


def test_a_caller_names_what_no_rule_decides() -> None:
    policy = parse_policy(POLICY, "p.yaml")
    draft = Draft(title="Deploy", flow="deploy",
                  options={"remind_every": timedelta(minutes=10),
                           "escalate": [{"after": timedelta(hours=1), "to": ["U02FRANK"]}]})
    spec = spec_of(draft, settle(policy, draft))
    assert spec.remind_every == timedelta(minutes=10)  # over the defaults
    assert spec.escalate[0].to == ["U02FRANK"]


@pytest.mark.parametrize(("rule", "expected"), [
    ("    reminders: {every: 1h}\n", "`reminders` is not a key; write remind_every"),
    ("    remind_every: soon\n", "rules[0].remind_every: 'soon' is not a duration"),
    ("    escalate: [{after: 1h, to: [frank]}]\n", "rules[0].escalate[0].to[0]"),
    ("    business_hours: {days: Mon-Fri, tz: Mars/Olympus}\n", "is not a time zone"),
    ("    business_hours: {days: Someday}\n", "days are Mon, Tue"),
])
def test_bad_keys_are_reported_at_their_line(rule: str, expected: str) -> None:
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy("version: 1\nrules:\n  - name: r\n" + rule, "p.yaml")
    assert expected in str(raised.value)


def test_business_hours_open_and_next_opening() -> None:
    hours = BusinessHours.model_validate(
        {"days": "Mon-Fri", "from": "09:00", "to": "18:00", "tz": "Europe/Berlin"})
    friday_evening = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # 18:30 in Berlin
    assert not hours.is_open(friday_evening)
    assert hours.next_open(friday_evening) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    tuesday_noon = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    assert hours.is_open(tuesday_noon) and hours.next_open(tuesday_noon) == tuesday_noon
    weekend = BusinessHours.model_validate({"days": "Fri-Mon", "tz": "UTC"})
    assert weekend.days == [0, 4, 5, 6]


def test_a_tier_quorum_is_routed_and_checked_at_its_line() -> None:
    policy = parse_policy(POLICY.replace("to: [U02FRANK]}", "to: [U02FRANK], quorum: 1}"),
                          "p.yaml")
    spec = spec_of(draft := Draft(title="Pay", flow="payment-approval"), settle(policy, draft))
    assert [t.quorum for t in spec.escalate] == [1, None]
    assert [spec.quorum_with(n) for n in range(3)] == [1, 1, 1]
    bad = ("version: 1\nrules:\n  - name: r\n    approvers: [U01MAYA]\n    escalate:\n"
           "      - {after: 1h, to: [U02FRANK]}\n"
           "      - after: 2h\n        to: [U03ERIN]\n        quorum: 4\n")
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(bad, "p.yaml")
    assert raised.value.lines() == ["p.yaml:9: rules[0].escalate[1].quorum: 4 approvals needed "
                                    "from that tier on but only 3 approvers listed and no groups"]
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(bad.replace("quorum: 4", "quorum: 0"), "p.yaml")
    assert "p.yaml:9: rules[0].escalate[1].quorum: Input should be greater than or equal to 1" \
        in raised.value.lines()
    # A group's size is unknown: a quorum it could reach is not refused.
    parse_policy(bad.replace("[U03ERIN]", "[S01FINANCE]"), "p.yaml")


def test_a_tier_may_only_lower_the_quorum() -> None:
    rising = ("version: 1\nrules:\n  - name: r\n    approvers: [U01MAYA, U02FRANK]\n"
              "    quorum: 1\n    escalate:\n"
              "      - {after: 1h, to: [U03ERIN], quorum: 2}\n")
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(rising, "p.yaml")
    assert raised.value.lines() == ["p.yaml:7: rules[0].escalate[0].quorum: 2 is more than the 1 "
                                    "in force before that tier; a tier may only lower the quorum"]
    # Between tiers too, with the rule's quorum left to the caller.
    tiers = ("version: 1\nrules:\n  - name: r\n    approvers: [U01MAYA, U02FRANK]\n"
             "    escalate:\n      - {after: 1h, to: [U03ERIN], quorum: 1}\n"
             "      - {after: 2h, to: [U04ZOE], quorum: 2}\n")
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(tiers, "p.yaml")
    assert raised.value.lines() == ["p.yaml:7: rules[0].escalate[1].quorum: 2 is more than the 1 "
                                    "in force before that tier; a tier may only lower the quorum"]
    parse_policy(tiers.replace("quorum: 2}", "quorum: 1}"), "p.yaml")
