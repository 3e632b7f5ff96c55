"""The approval policy's answer for a run, as `/approvals policy` (and the CLI) show it."""

from __future__ import annotations

from slack_approvals.policy.routing import Settled

from .text import escape, group_mention, mention


def explanation_text(settled: Settled, flow: str | None, gate: str | None) -> str:
    """Who would be asked, how many must approve, where and for how long; or the rule's
    auto-approval or denial with its reason. Slack mrkdwn."""
    where = (f"`{flow}`" + (f" at gate `{gate}`" if gate else "")) if flow else "this request"
    rule = f"rule `{settled.rule}`" if settled.rule else "no rule (its defaults)"
    head = f"For {where} the approval policy `{settled.policy_hash}` applies {rule}:"
    if settled.deny is not None:
        return f"{head} *denied*: {escape(settled.deny)}"
    if settled.auto_approve is not None:
        return f"{head} *auto-approved*: {escape(settled.auto_approve)}"
    who = ", ".join([mention(u) for u in settled.approvers]
                    + [group_mention(g) for g in settled.approver_groups]
                    + [f"{escape(a)} (by mail)" for a in settled.email_approvers]
                    ) or "anyone in the channel"
    channel = settled.channel or "the default channel"
    if channel.startswith(("C", "G")) and channel[1:].isalnum() and channel.isupper():
        channel = f"<#{channel}>"
    needed = f"{settled.quorum} approval{'s' if settled.quorum != 1 else ''}"
    self_note = "the requester may approve" if settled.allow_self_approval else "not by the requester"
    hours = settled.timeout.total_seconds() / 3600
    outcome = "approved" if settled.timeout_outcome.value == "approve" else "rejected"
    return (f"{head} asks {who} in {channel}; {needed} needed ({self_note}); "
            f"unanswered after {hours:g}h it is {outcome}.")
