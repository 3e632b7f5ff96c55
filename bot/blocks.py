"""Block Kit for requests, the reject modal, App Home and slash-command answers.

Built with `slack_sdk.models.blocks`, whose validation catches anything over Slack's limits;
user text is escaped and cut first, so a long title never makes Slack reject a message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from slack_approvals.state.models import MAX_REASON, ApprovalRequest, Outcome, Status

from .ids import (
    APPROVE_ACTION,
    REASON_BLOCK,
    REASON_INPUT,
    REJECT_ACTION,
    REJECT_MODAL,
    vote_block_id,
)
from .text import escape, fit, group_mention, mention, quote, slack_date

OUTCOME_LINES = {
    Status.APPROVED: ":white_check_mark: *Approved*",
    Status.REJECTED: ":x: *Rejected*",
    Status.TIMED_OUT: ":hourglass: *Timed out*",
    Status.CANCELLED: ":no_entry_sign: *Cancelled*",
}

VOTED = {Outcome.APPROVE: "approved", Outcome.REJECT: "rejected"}


def approvers_text(request: ApprovalRequest) -> str:
    spec = request.spec
    if spec.open_to_anyone:
        return "anyone in the channel"
    names = [mention(u) for u in spec.approvers] + [group_mention(g) for g in spec.approver_groups]
    names += [f"{escape(address)} (by mail)" for address in spec.email_approvers]
    return ", ".join(names)


def people_text(people: Sequence[str]) -> str:
    """Users and user groups, as Slack mentions."""
    return ", ".join(group_mention(p) if p.startswith("S") else mention(p) for p in people)


def progress_text(request: ApprovalRequest) -> str:
    """`n of m approvals`, m being the quorum in force now (an escalation tier may change it)."""
    quorum = request.quorum_at(datetime.now(UTC))
    noun = "approval" if quorum == 1 else "approvals"
    return f"{len(request.approvals)} of {quorum} {noun}"


def fallback_text(request: ApprovalRequest) -> str:
    """The notification and screen-reader text Slack shows when blocks cannot be."""
    title = fit(escape(request.spec.title), 200)
    if request.status is Status.PENDING:
        return f"Approval needed: {title} ({progress_text(request)})"
    label = request.status.value.replace("_", " ")
    return f"{label.capitalize()}: {title}"


def outcome_text(request: ApprovalRequest) -> str:
    decision = request.decision
    if decision is None:
        return ""
    line = OUTCOME_LINES[decision.status]
    if decision.status is Status.TIMED_OUT:
        default = "approved" if decision.approved else "rejected"
        line += f" at {slack_date(decision.decided_at)}: no decision in time, so {default} by default"
    else:
        line += f" by {mention(decision.decided_by)} at {slack_date(decision.decided_at)}"
    if decision.reason and decision.status is not Status.TIMED_OUT:
        line += "\n" + quote(fit(escape(decision.reason), 600))
    return line


def _detail_blocks(request: ApprovalRequest) -> list[Block]:
    spec = request.spec
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=fit(spec.title, 150)))]
    if spec.summary:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=fit(escape(spec.summary), 3000))))
    fields = []
    if spec.requester:
        fields.append(MarkdownTextObject(text=f"*Requested by*\n{mention(spec.requester)}"))
    for fact in spec.facts[: 10 - len(fields)]:
        label = fit(escape(fact.label), 100)
        fields.append(MarkdownTextObject(text=fit(f"*{label}*\n{escape(fact.value)}", 2000)))
    if fields:
        blocks.append(SectionBlock(fields=fields))
    context = [
        f"`{request.id}`",
        f"Approvers: {approvers_text(request)}",
        f"Due {slack_date(request.deadline)}",
        progress_text(request),
    ]
    if request.escalated_to:
        context.insert(2, f":rotating_light: Escalated to {people_text(request.escalated_to)}")
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=fit(" · ".join(context), 3000))]))
    return blocks


def vote_buttons(request: ApprovalRequest) -> ActionsBlock:
    """Both buttons carry only the request id; the listener re-checks everything against Redis."""
    confirm = ConfirmObject(
        title="Approve this request?",
        text=MarkdownTextObject(text=fit(f"You are approving *{escape(request.spec.title)}*.", 300)),
        confirm="Approve",
        deny="Cancel",
    )
    return ActionsBlock(
        block_id=vote_block_id(request.id),
        elements=[
            ButtonElement(text="Approve", action_id=APPROVE_ACTION, value=request.id,
                          style="primary", confirm=confirm),
            ButtonElement(text="Reject", action_id=REJECT_ACTION, value=request.id,
                          style="danger"),
        ],
    )


def request_blocks(request: ApprovalRequest) -> list[Block]:
    blocks = _detail_blocks(request)
    if request.status is Status.PENDING:
        if request.votes:
            approved = ", ".join(f"{mention(v.user)} {slack_date(v.at, '{time}')}"
                                 for v in request.approvals)
            blocks.append(ContextBlock(elements=[
                MarkdownTextObject(text=fit(f":ballot_box_with_check: Approved so far: {approved}",
                                            3000))]))
        blocks.append(vote_buttons(request))
    else:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=fit(outcome_text(request), 3000))))
        if request.votes:
            votes = ", ".join(f"{mention(v.user)} {VOTED[v.vote]}" for v in request.votes)
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=fit(f"Votes: {votes}",
                                                                             3000))]))
    return blocks


def request_message(request: ApprovalRequest) -> dict[str, Any]:
    """Arguments for chat.postMessage / chat.update (minus channel and ts)."""
    return {"text": fallback_text(request),
            "blocks": [b.to_dict() for b in request_blocks(request)]}


def nudges_lines(request: ApprovalRequest) -> list[str]:
    """Reminders sent and escalation tiers reached, for `/approvals status`."""
    spec = request.spec
    lines = []
    if spec.remind_every is not None:
        lines.append(f":bell: Reminders sent: {request.reminders_sent} of {spec.remind_limit}, "
                     f"every {duration_text(spec.remind_every)}")
    if spec.escalate:
        reached = request.tiers_reached
        line = f":rotating_light: Escalation: {reached} of {len(spec.escalate)} tiers reached"
        if request.escalated_to:
            line += f" (escalated to {people_text(request.escalated_to)})"
        nxt = spec.escalate[reached] if reached < len(spec.escalate) else None
        if nxt is not None and request.status is Status.PENDING:
            line += f"; next {people_text(nxt.to)} at {slack_date(request.created_at + nxt.after)}"
            if nxt.quorum is not None:
                line += f", then {nxt.quorum} approval{'' if nxt.quorum == 1 else 's'} needed"
        lines.append(line)
    return lines


def duration_text(span: timedelta) -> str:
    """2d 3h, 4h 5m, 12m, 40s: the two largest units."""
    seconds = max(int(span.total_seconds()), 0)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def nudge_message(request: ApprovalRequest, text: str) -> dict[str, Any]:
    """A reminder or escalation DM: why it came, then the request with its buttons."""
    heading = SectionBlock(text=MarkdownTextObject(text=fit(text, 3000)))
    return {"text": fit(f"{text} ({fallback_text(request)})", 3000),
            "blocks": [heading.to_dict(), *(b.to_dict() for b in request_blocks(request))]}


def modal_metadata(request_id: str, from_home: bool) -> str:
    """Which request the modal rejects, and whether App Home (not a channel) opened it."""
    return json.dumps({"request_id": request_id, "from_home": from_home})


def parse_modal_metadata(raw: str) -> tuple[str, bool]:
    """Forged or garbled metadata names no request; decide() then refuses it as unknown."""
    try:
        data = json.loads(raw)
        return str(data["request_id"]), bool(data.get("from_home", False))
    except (ValueError, KeyError, TypeError):
        return "", False


def reject_modal(request: ApprovalRequest, from_home: bool = False) -> View:
    return View(
        type="modal",
        callback_id=REJECT_MODAL,
        private_metadata=modal_metadata(request.id, from_home),
        title=PlainTextObject(text="Reject request"),
        submit=PlainTextObject(text="Reject"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(
                text=fit(f"Rejecting *{escape(request.spec.title)}* (`{request.id}`).", 3000))),
            InputBlock(
                block_id=REASON_BLOCK,
                label=PlainTextObject(text="Reason"),
                hint=PlainTextObject(text="The requester and the flow will see this."),
                element=PlainTextInputElement(action_id=REASON_INPUT, multiline=True,
                                              min_length=1, max_length=MAX_REASON),
            ),
        ],
    )


def pending_list_blocks(requests: Sequence[ApprovalRequest], heading: str,
                        now: datetime | None = None) -> list[Block]:
    """A compact card with buttons per request, for `/approvals list` and App Home: how long
    each has waited, and whether it was escalated."""
    now = datetime.now(UTC) if now is None else now
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=heading))]
    for request in requests:
        waited = f"waiting {duration_text(now - request.created_at)}"
        if request.escalated_to:
            waited += " · :rotating_light: escalated"
        line = f"*{fit(escape(request.spec.title), 150)}*"
        if request.spec.summary:
            line += f"\n{fit(escape(request.spec.summary), 300)}"
        blocks.append(DividerBlock())
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)))
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=fit(
            f"`{request.id}` · requested by {mention(request.spec.requester)} · "
            f"due {slack_date(request.deadline)} · {progress_text(request)} · {waited}",
            3000))]))
        blocks.append(vote_buttons(request))
    return blocks


def home_view(user: str, pending: Sequence[ApprovalRequest], recent: Sequence[ApprovalRequest],
              notice: str | None = None) -> View:
    # Home tabs hold 100 blocks: 4 per pending card, 1 per recent line, plus headings.
    pending = list(pending)[:15]
    recent = list(recent)[:20]
    heading = (f"*Waiting for you* ({len(pending)})" if pending
               else "*Waiting for you*\nNothing needs your decision right now.")
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Approvals"))]
    if notice:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=fit(f":warning: {notice}", 3000))))
    blocks += pending_list_blocks(pending, heading)
    blocks.append(DividerBlock())
    blocks.append(SectionBlock(text=MarkdownTextObject(text="*Your recent decisions*" if recent
                                                       else "*Your recent decisions*\nNone yet.")))
    for request in recent:
        status = request.status.value.replace("_", " ")
        mine = next((f"you {VOTED[v.vote]}" for v in request.votes if v.user == user), "")
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=fit(
            f"`{request.id}` *{escape(request.spec.title)}* · {mine} · now {status}", 3000))]))
    return View(type="home", blocks=blocks)
