"""What the approval policy decides for a flow's parameters, before anything runs: `approvals
policy explain` and `/approvals policy` both ask `explain_flow`, which builds the same Draft the
flow's gate would (the flow's defaults applied) and settles it by the same function as the gate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_approvals.bot.explaining import explanation_text
from slack_approvals.flows.registry import get_flow
from slack_approvals.policy.document import Policy
from slack_approvals.policy.opening import Draft, settle
from slack_approvals.policy.routing import Settled
from slack_approvals.state.models import Fact


def flow_draft(flow: str, params: Mapping[str, object], *, gate: str | None = None,
               requester: str | None = None, facts: Sequence[Fact] = ()) -> Draft:
    """The draft the flow's gate (`gate`, else its first) would open for these caller
    parameters; BadParameters / UnknownFlow as for `approvals run`."""
    entry = get_flow(flow)
    model = entry.parse_caller(params, requester)
    asker = getattr(model, "requester", None) if requester is None else requester
    return Draft(title=f"{entry.name} (explained)", facts=list(facts), requester=asker,
                 flow=entry.name, gate=gate or (entry.gates[0] if entry.gates else None),
                 params=model.matched())


__all__ = ["explain", "explanation_text", "flow_draft"]


def explain(policy: Policy, draft: Draft, fallback: Mapping[str, Any]) -> Settled:
    return settle(policy, draft, fallback)
