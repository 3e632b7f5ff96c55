"""`/approvals`: help, list, status, run and cancel, answered only to the caller."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from slack_approvals.state.errors import InvalidRequest, RequestNotFound
from slack_approvals.state.models import ApprovalRequest, CloseStatus
from slack_approvals.state.plans import check_request_id

from ..blocks import VOTED, nudges_lines, outcome_text, pending_list_blocks, progress_text
from ..deps import BotDeps
from ..explaining import explanation_text
from ..home import decidable_by
from ..launcher import LaunchError
from ..slash import USAGE, Command, CommandError, parse_command
from ..text import escape, mention, slack_date

log = logging.getLogger(__name__)

HELP = (
    "*/approvals* — approval requests from Prefect flows.\n"
    "• `list` — requests waiting for your decision\n"
    "• `status <id>` — state, votes and deadline of a request\n"
    "• `run <flow> [key=value ...]` — start a flow (`/approvals run` lists them)\n"
    "• `policy <flow> [key=value ...]` — who would be asked for such a run, before you ask\n"
    "• `cancel <id> [reason]` — cancel a request you made"
)


def _error(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": f":warning: {text}\n{USAGE}"}


def _unknown(request_id: str | None) -> CommandError:
    return CommandError(f"There is no approval request `{escape(str(request_id))}`.")


def may_see(deps: BotDeps, request: ApprovalRequest, user: str, channel: str) -> bool:
    """Its requester, its approvers (named or by group) and anyone in the channel it was
    posted in; a group Slack could not list counts as not a member."""
    spec = request.spec
    if user == spec.requester or user in spec.approvers:
        return True
    if any(user in tier.users for tier in spec.escalate):
        return True
    if channel and channel in (request.message_channel, spec.channel):
        return True
    return bool(spec.all_groups) and bool(deps.groups.membership(user, spec.all_groups)[0])


def _lookup(deps: BotDeps, request_id: str | None, user: str, channel: str) -> ApprovalRequest:
    """The request, or the same answer for an unknown id and one the caller may not see, so
    ids cannot be probed."""
    try:
        request = deps.store.get(check_request_id(request_id))
    except InvalidRequest as e:
        raise CommandError(f"`{request_id}` is not a request id (16 letters and digits).") from e
    except RequestNotFound as e:
        raise _unknown(request_id) from e
    if not may_see(deps, request, user, channel):
        raise _unknown(request_id)
    return request


def status_text(request: ApprovalRequest) -> str:
    spec = request.spec
    lines = [f"*{escape(spec.title)}* (`{request.id}`): *{request.status.value.replace('_', ' ')}*",
             f"Requested by {mention(spec.requester)} · due {slack_date(request.deadline)} · "
             f"{progress_text(request)}"]
    for vote in request.votes:
        lines.append(f"• {mention(vote.user)} {VOTED[vote.vote]} at {slack_date(vote.at)}")
    lines += nudges_lines(request)
    if request.decision is not None:
        lines.append(outcome_text(request))
    return "\n".join(lines)


def answer(command: Command, user: str, deps: BotDeps, channel: str = "") -> dict[str, Any]:
    """Everything but `run`, which answers once the flow run exists."""
    if command.name == "help":
        return {"response_type": "ephemeral", "text": HELP}
    if command.name == "list":
        mine = decidable_by(deps, user)[:10]
        if not mine:
            return {"response_type": "ephemeral", "text": "Nothing is waiting for your decision."}
        blocks = pending_list_blocks(mine, f"*Waiting for your decision* ({len(mine)})")
        return {"response_type": "ephemeral", "text": f"{len(mine)} requests wait for you",
                "blocks": [b.to_dict() for b in blocks]}
    if command.name == "status":
        request = _lookup(deps, command.request_id, user, channel)
        return {"response_type": "ephemeral", "text": status_text(request)}
    if command.name == "cancel":
        request = _lookup(deps, command.request_id, user, channel)
        result = deps.store.cancel(request.id, user, command.reason)
        if result.status is CloseStatus.NOT_REQUESTER:
            raise CommandError("Only the requester can cancel a request.")
        if result.status is CloseStatus.ALREADY_CLOSED:
            raise CommandError(f"`{request.id}` is already {request.status.value.replace('_', ' ')}.")
        if result.request is not None:
            deps.background.submit(deps.closer.announce, result.request)
        return {"response_type": "ephemeral", "text": f"Cancelled `{request.id}`."}
    raise CommandError(f"`{command.name}` is not a subcommand.")


def start_flow(command: Command, user: str, channel: str, deps: BotDeps, respond: Respond) -> None:
    assert deps.launcher is not None and command.flow is not None
    try:
        launched = deps.launcher.launch(command.flow, command.params, requested_by=user,
                                        channel=channel)
    except LaunchError as e:
        respond(**_error(str(e)))
        return
    except Exception as e:  # nobody reads this thread's future: say it here, and log it
        log.exception("could not start %s for %s", command.flow, user)
        respond(response_type="ephemeral",
                text=f":warning: Could not start `{escape(command.flow)}`: "
                     f"{escape(type(e).__name__)}: {escape(str(e))[:300]}")
        return
    link = f" <{launched.url}|open in Prefect>" if launched.url else ""
    respond(response_type="ephemeral",
            text=f":rocket: Started `{launched.flow_name}`: flow run `{launched.flow_run_id}`, "
                 f"{escape(launched.where)}.{link}"
                 + (f"\n:hourglass: {escape(launched.warning)}" if launched.warning else ""))


def explain_policy(command: Command, user: str, deps: BotDeps) -> dict[str, Any]:
    """What the approval policy would decide for `run <flow> key=value ...`: nothing starts."""
    if deps.launcher is None:
        raise CommandError("Starting flows is not enabled on this bot.")
    assert command.flow is not None
    settled = deps.launcher.explain(command.flow, command.params, requested_by=user)
    return {"response_type": "ephemeral", "text": explanation_text(settled, command.flow, None)}


def handle_command(ack: Ack, body: dict[str, Any], respond: Respond, deps: BotDeps) -> None:
    user = str(body.get("user_id", ""))
    channel = str(body.get("channel_id", ""))
    try:
        command = parse_command(str(body.get("text", "")))
        if command.name == "policy":
            ack(**explain_policy(command, user, deps))
            return
        if command.name != "run":
            ack(**answer(command, user, deps, channel))
            return
        if deps.launcher is None:
            raise CommandError("Starting flows is not enabled on this bot.")
        flows = deps.launcher.flows()
        if command.flow is None:
            listing = "\n".join(f"• `{name}` — {about}" for name, about in sorted(flows.items()))
            ack(response_type="ephemeral", text=f"Flows you can run:\n{listing}")
            return
        if command.flow not in flows:
            names = ", ".join(f"`{n}`" for n in sorted(flows))
            raise CommandError(f"There is no flow `{command.flow}`. Flows: {names}.")
        deps.launcher.check(command.flow, command.params)
    except (CommandError, LaunchError) as e:
        ack(**_error(str(e)))
        return
    ack(response_type="ephemeral", text=f"Starting `{command.flow}`…")
    deps.background.submit(start_flow, command, user, channel, deps, respond)


def register(app: App, deps: BotDeps, command_name: str) -> None:
    @app.command(command_name)
    def approvals_command(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        handle_command(ack, body, respond, deps)
