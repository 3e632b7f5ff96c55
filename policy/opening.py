"""The one path by which a request is opened under the policy: gates, `approvals request` and
auto-approval all come through `Opener.open`.

    Draft           what the caller asks: title, facts, requester, the routing it names itself,
                    and what the policy matches on (flow, gate, parameters)
    PolicySource    where the policy in force comes from (a file watcher, a fixed policy)
    Opener.settle   the routing a draft would get, without writing anything (`policy explain`)
    Opener.open     route, create (idempotent), keep the policy's text under its hash, then
                    post, or auto-approve / deny through the Closer with the reason in the audit

Its only I/O goes through the store and the Closer it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from slack_approvals.state.closing import Closer
from slack_approvals.state.errors import InvalidRequest, RequestNotFound
from slack_approvals.state.models import ApprovalRequest, Fact, RequestSpec, Status

from .document import Policy
from .routing import Settled, route


class PolicySource(Protocol):
    def current(self) -> Policy:
        """The policy in force now; a request created later may see a newer one."""


@dataclass(frozen=True)
class FixedPolicy:
    policy: Policy

    def current(self) -> Policy:
        return self.policy


@dataclass(frozen=True)
class Draft:
    title: str
    summary: str = ""
    facts: Sequence[Fact] = ()
    requester: str | None = None
    # The routing keys the caller named (gate arguments, CLI flags); absent or None: unnamed.
    options: Mapping[str, Any] = field(default_factory=dict)
    flow: str | None = None
    gate: str | None = None
    params: Mapping[str, object] = field(default_factory=dict)
    flow_run_id: str | None = None

    def fact_values(self) -> dict[str, str]:
        return {fact.label: fact.value for fact in self.facts}


@dataclass(frozen=True)
class Opened:
    request: ApprovalRequest
    settled: Settled


def settle(policy: Policy, draft: Draft, fallback: Mapping[str, Any] | None = None) -> Settled:
    """The routing `draft` gets under `policy`; what explain shows and open applies."""
    routing = route(policy, flow=draft.flow, gate=draft.gate, requester=draft.requester,
                    params=draft.params, facts=draft.fact_values())
    return routing.settle(draft.options, fallback)


def spec_of(draft: Draft, settled: Settled) -> RequestSpec:
    if settled.channel is None:
        raise InvalidRequest("channel: neither the policy, the caller nor the settings name one")
    return RequestSpec(
        title=draft.title, summary=draft.summary, facts=list(draft.facts), requester=draft.requester,
        approvers=list(settled.approvers), approver_groups=list(settled.approver_groups),
        email_approvers=list(settled.email_approvers),
        quorum=settled.quorum, allow_self_approval=settled.allow_self_approval,
        channel=settled.channel, timeout=settled.timeout, timeout_outcome=settled.timeout_outcome,
        flow_run_id=draft.flow_run_id, gate=draft.gate, policy_rule=settled.rule,
        policy_hash=settled.policy_hash, remind_every=settled.remind_every,
        remind_limit=settled.remind_limit, escalate=list(settled.escalate),
        business_hours=settled.business_hours)


@dataclass(frozen=True)
class Opener:
    closer: Closer
    policy: PolicySource
    # The settings' channel and approvers: they fill only what the policy and caller leave unset.
    fallback: Mapping[str, Any] = field(default_factory=dict)

    def settle(self, draft: Draft) -> Settled:
        return settle(self.policy.current(), draft, self.fallback)

    def open(self, draft: Draft, idempotency_key: str | None = None,
             on_created: Callable[[ApprovalRequest], object] | None = None) -> Opened:
        """`on_created` sees the request once it exists, before it is posted or decided."""
        policy = self.policy.current()
        settled = settle(policy, draft, self.fallback)
        store = self.closer.store
        request = store.create(spec_of(draft, settled), idempotency_key)
        store.keep_policy(policy.hash, policy.text, request.deadline)
        if on_created is not None:
            on_created(request)
        if request.status is not Status.PENDING:
            # A retry of a request already decided: its message (if it was asked in Slack)
            # still shows the decision, whoever else was meant to edit it.
            shown = self.closer.board.post(request) if request.message_ts else request
            return Opened(shown, settled)
        if settled.deny is not None or settled.auto_approve is not None:
            approved = settled.deny is None
            reason = settled.auto_approve if approved else settled.deny
            closed = self.closer.resolve(request.id, approved=approved, reason=reason)
            if closed.request is None:
                raise RequestNotFound(request.id)
            return Opened(closed.request, settled)
        return Opened(self.closer.board.post(request), settled)
