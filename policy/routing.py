"""From who asks and what is asked to who approves: `route()` and how its answer is applied.

    route(policy, flow=, gate=, requester=, params=, facts=) -> Routing
    Routing.settle(caller, fallback) -> Settled      the values a request is created with

Precedence, highest first: the matching rule's keys; what the caller named (a gate's
arguments, `approvals request` flags; never approvers under `lock: true`); the policy's
`defaults`; the fallback (the APPROVALS_* settings); the request's own defaults. Approvers and
approver groups travel together: whoever names either of them names both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from slack_approvals.state.hours import BusinessHours
from slack_approvals.state.models import EscalationTier, Outcome

from .document import ROUTING_KEYS, Policy
from .errors import ApproversLocked

WHO = ("approvers", "approver_groups", "email_approvers")
# What a request gets when nobody decides a key (the same as RequestSpec's own defaults).
BASE: Mapping[str, Any] = {"approvers": (), "approver_groups": (), "email_approvers": (), "quorum": 1,
                           "timeout": timedelta(hours=24), "timeout_outcome": Outcome.REJECT,
                           "allow_self_approval": False, "remind_every": None, "remind_limit": 3,
                           "escalate": (), "business_hours": None}
# Decided key by key, by the first layer that names each (approvers and groups go together).
# Under `lock: true` these are the policy's alone (with WHO and escalation targets).
LOCKED_FOR_CALLERS = frozenset({"allow_self_approval", "timeout_outcome", "escalate"})
ONE_BY_ONE = ("channel", "quorum", "timeout", "timeout_outcome", "allow_self_approval",
              "remind_every", "remind_limit", "escalate", "business_hours")


@dataclass(frozen=True)
class Settled:
    """The routing a request is created with, and which rule of which policy decided it."""

    rule: str | None
    policy_hash: str
    channel: str | None
    approvers: tuple[str, ...]
    approver_groups: tuple[str, ...]
    quorum: int
    timeout: timedelta
    timeout_outcome: Outcome
    allow_self_approval: bool
    auto_approve: str | None
    deny: str | None
    remind_every: timedelta | None = None
    remind_limit: int = 3
    escalate: tuple[EscalationTier, ...] = ()
    business_hours: BusinessHours | None = None
    email_approvers: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "policy_hash": self.policy_hash, "channel": self.channel,
                "approvers": list(self.approvers), "approver_groups": list(self.approver_groups),
                "email_approvers": list(self.email_approvers),
                "quorum": self.quorum, "timeout": int(self.timeout.total_seconds()),
                "timeout_outcome": self.timeout_outcome.value,
                "allow_self_approval": self.allow_self_approval,
                "auto_approve": self.auto_approve, "deny": self.deny,
                "remind_every": (None if self.remind_every is None
                                 else int(self.remind_every.total_seconds())),
                "remind_limit": self.remind_limit,
                "escalate": [{"after": int(t.after.total_seconds()), "to": t.to,
                              **({} if t.quorum is None else {"quorum": t.quorum})}
                             for t in self.escalate],
                "business_hours": (None if self.business_hours is None
                                   else self.business_hours.model_dump(mode="json", by_alias=True))}


@dataclass(frozen=True)
class Routing:
    """What the policy decided for one request, before the caller's own arguments are merged."""

    rule: str | None  # None: no rule matched, only the defaults apply
    policy_hash: str
    builtin: bool
    overrides: Mapping[str, Any] = field(default_factory=dict)  # the rule's keys
    defaults: Mapping[str, Any] = field(default_factory=dict)  # the policy's defaults
    lock: bool = False
    auto_approve: str | None = None
    deny: str | None = None

    def settle(self, caller: Mapping[str, Any] | None = None,
               fallback: Mapping[str, Any] | None = None) -> Settled:
        """Merge by precedence. `caller`: only the keys the caller named (None values are
        unnamed); `fallback`: the settings' channel and approvers."""
        caller = {k: v for k, v in (caller or {}).items() if v is not None and k in ROUTING_KEYS}
        fallback = {k: v for k, v in (fallback or {}).items() if v is not None}
        named = [str(v) for key in WHO for v in caller.get(key) or ()]
        named += [str(v) for tier in caller.get("escalate") or () for v in _tier_targets(tier)]
        if self.lock and named:
            raise ApproversLocked(named)
        layers = [self.overrides, caller, self.defaults, fallback]
        if self.lock:
            # The policy alone decides: what it sets (rule or defaults) beats the caller, and
            # a caller may not let the requester approve or make silence an approval.
            caller = {k: v for k, v in caller.items() if k not in LOCKED_FOR_CALLERS}
            layers = [self.overrides, self.defaults, caller, fallback]
        values: dict[str, Any] = {}
        for key in ONE_BY_ONE:
            values[key] = next((layer[key] for layer in layers if key in layer), BASE.get(key))
        values["escalate"] = tuple(tier if isinstance(tier, EscalationTier)
                                   else EscalationTier.model_validate(tier)
                                   for tier in values["escalate"] or ())
        who = next((layer for layer in layers if any(key in layer for key in WHO)), {})
        for key in WHO:
            values[key] = tuple(who.get(key) or ())
        return Settled(rule=self.rule, policy_hash=self.policy_hash, auto_approve=self.auto_approve,
                       deny=self.deny, **values)


def _tier_targets(tier: object) -> tuple[object, ...]:
    """The people an escalation tier names, whether parsed already or as the caller gave it."""
    if isinstance(tier, EscalationTier):
        return tuple(tier.to)
    if isinstance(tier, Mapping):
        return tuple(tier.get("to") or ())
    return ()


def route(policy: Policy, *, flow: str | None = None, gate: str | None = None,
          requester: str | None = None, params: Mapping[str, object] | None = None,
          facts: Mapping[str, object] | None = None) -> Routing:
    """The first rule whose match holds decides; no rule: the defaults alone."""
    document = policy.document
    defaults = document.defaults.decided()
    for rule in document.rules:
        if rule.match.holds(flow=flow, gate=gate, requester=requester, params=params or {},
                            facts=facts or {}):
            return Routing(rule=rule.name, policy_hash=policy.hash, builtin=policy.builtin,
                           overrides=rule.decided(), defaults=defaults,
                           lock=document.defaults.lock, auto_approve=rule.auto_approve,
                           deny=rule.deny)
    return Routing(rule=None, policy_hash=policy.hash, builtin=policy.builtin, defaults=defaults,
                   lock=document.defaults.lock)
