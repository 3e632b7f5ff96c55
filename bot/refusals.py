"""The one sentence a clicker reads when their vote was not taken."""

from __future__ import annotations

from slack_approvals.state.models import ApprovalRequest, DecideStatus, Status

from .text import escape, mention


def refusal_text(status: DecideStatus, request: ApprovalRequest | None, request_id: str) -> str:
    title = f"*{escape(request.spec.title)}*" if request else f"`{escape(request_id)}`"
    if status is DecideStatus.UNKNOWN or request is None:
        return f"There is no approval request `{escape(request_id)}` (it may have expired)."
    if status is DecideStatus.CLOSED:
        decision = request.decision
        if decision is None:
            return f"{title} is already closed."
        if decision.status is Status.TIMED_OUT:
            return f"{title} already timed out; nothing can be voted on it now."
        return (f"{title} was already {decision.status.value} by "
                f"{mention(decision.decided_by)}; your vote was not recorded.")
    if status is DecideStatus.SETTLED:
        why = request.decision.reason if request.decision and request.decision.reason else None
        return (f"{title} was already approved"
                + (f" ({escape(why)})" if why else " by an escalation tier's lower quorum")
                + "; your vote was not recorded.")
    if status is DecideStatus.EXPIRED:
        return f"The deadline of {title} has passed; votes are no longer accepted."
    if status is DecideStatus.NOT_ELIGIBLE:
        return f"You are not one of the approvers of {title}, so your vote was not recorded."
    if status is DecideStatus.SELF_APPROVAL:
        return f"You requested {title}, so you cannot approve it yourself."
    if status is DecideStatus.DUPLICATE_VOTE:
        return f"You have already voted on {title}; a vote cannot be changed."
    raise ValueError(f"{status} is not a refusal")


# Redis did not answer in time (frozen, partitioned, restarting): nothing can be promised
# about this click, and a second click is safe (the store refuses a second vote).
STORE_UNAVAILABLE_TEXT = ("Could not record your vote: the approvals store did not answer just "
                          "now. Please try again in a moment.")
# views.open was rate-limited or failed, and Slack's 3 s budget leaves no time to retry.
MODAL_UNAVAILABLE_TEXT = ("Slack did not open the box for your reason just now, so nothing was "
                          "recorded. Please click Reject again in a moment.")


def group_lookup_failed_text(request_id: str) -> str:
    """Said instead of "not one of the approvers" when Slack could not list a user group."""
    return (f"Slack could not tell whether you are in an approver group of `{escape(request_id)}` "
            "just now, so your vote was not recorded. Please try again in a minute.")
