"""Prefect side of slack-approvals: gates that wait for a Slack decision, and runnable flows.

    from slack_approvals.flows import approval_gate
    decision = await approval_gate("deploy", "Deploy api 2.4 to production", approvers=[...])

Give a flow with gates `**APPROVAL_HOOKS` (`@flow(name=..., **APPROVAL_HOOKS)`): when its run
fails, crashes or is cancelled, the requests its gates left open are cancelled.

The registry (flows.registry) names the flows `approvals run` and `/approvals run` can start;
flows.services is where the composition root installs the Redis and Slack clients.
"""

from .errors import ApprovalRejected, DecisionPending
from .gates import approval_gate, request_approval, wait_for_decision
from .hooks import APPROVAL_HOOKS

__all__ = [
    "APPROVAL_HOOKS",
    "ApprovalRejected",
    "DecisionPending",
    "approval_gate",
    "request_approval",
    "wait_for_decision",
]
