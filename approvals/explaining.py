"""What the approval policy decides for a flow's parameters, before anything runs: `approvals
policy explain` and `/approvals policy` both ask `flow_draft`, which builds the same Draft the
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
from slack_approvals.state.models import MAX_FACTS, Fact


def flow_draft(flow: str, params: Mapping[str, object], *, gate: str | None = None,
               requester: str | None = None, facts: Sequence[Fact] = ()) -> Draft:
    """The draft the flow's gate (`gate`, else its first) would open for these caller
    parameters; BadParameters / UnknownFlow as for `approvals run`."""
    entry = get_flow(flow)
    model = entry.parse_caller(params, requester)
    asker = getattr(model, "requester", None) if requester is None else requester
    matched = model.matched()
    return Draft(title=f"{entry.name} (explained)", facts=list(facts) or params_as_facts(matched),
                 requester=asker, flow=entry.name,
                 gate=gate or (entry.gates[0] if entry.gates else None),
                 options=dict(entry.gate_options), params=matched)


def params_as_facts(params: Mapping[str, object]) -> list[Fact]:
    """The example flows show their business parameters as the gate's facts (Environment,
    Service, Version...), so a rule matching `facts: {environment: production}` is explained
    as the gate will see it; values a fact cannot hold are left out."""
    facts = []
    for name, value in params.items():
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        if value is None or not text.strip() or len(text) > 1000 or len(name) > 60:
            continue
        facts.append(Fact(label=name, value=text))
    return facts[:MAX_FACTS]


__all__ = ["explain", "explanation_text", "flow_draft"]


def explain(policy: Policy, draft: Draft, fallback: Mapping[str, Any]) -> Settled:
    return settle(policy, draft, fallback)
