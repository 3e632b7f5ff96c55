"""Prefect side of slack-approvals: gates that wait for a Slack decision, and runnable flows.

    from slack_approvals.flows import approval_gate
    decision = await approval_gate("deploy", "Deploy api 2.4 to production", approvers=[...])

Give a flow with gates `**APPROVAL_HOOKS` (`@flow(name=..., **APPROVAL_HOOKS)`): when its run
fails, crashes or is cancelled, the requests its gates left open are cancelled. Give it
`persist_result=True` too: in a deployment run a gate past its hold window suspends the run,
which re-enters the flow from the top when the decision resumes it.

The registry (flows.registry) names the flows `approvals run` and `/approvals run` can start;
flows.services is where the composition root installs the Redis and Slack clients.
"""

from .errors import ApprovalRejected, DecisionPending, GatePending
from .gates import approval_gate, request_approval, suspend_until_decided, wait_for_decision
from .hooks import APPROVAL_HOOKS

__all__ = [
    "APPROVAL_HOOKS",
    "ApprovalRejected",
    "DecisionPending",
    "GatePending",
    "approval_gate",
    "request_approval",
    "suspend_until_decided",
    "wait_for_decision",
]
