"""`approvals request | pending | show | audit`: the store and Slack from a shell or CI job."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from slack_approvals.core.durations import parse_duration
from slack_approvals.policy.opening import Draft, Opener, settle, spec_of
from slack_approvals.state.closing import Closer
from slack_approvals.state.errors import StoreError
from slack_approvals.state.models import ApprovalRequest, Decision, Fact, Outcome, Status

from .cli_closing import cancelling_unposted, report_to_prefect
from .cli_support import EXIT_APPROVED, EXIT_REJECTED, EXIT_TIMED_OUT, fail, visible
from .policies import fallback_of, policy_source
from .runtime import build_closer, nudger_for
from .settings import Settings
from .wiring import sync_store

console = Console()
# `approvals pending` lists at most this many, and says so when more wait.
PENDING_SHOWN = 500


def plain(text: str) -> Text:
    """Stored text for Rich: never read as markup, control characters made visible."""
    return Text(visible(text))


def parse_facts(pairs: list[str]) -> list[Fact]:
    facts = []
    for pair in pairs:
        label, sep, value = pair.partition("=")
        if not sep or not label.strip() or not value.strip():
            raise fail(f"--fact {pair!r}: expected label=value")
        facts.append(Fact(label=label, value=value))
    return facts


def exit_code(decision: Decision) -> int:
    if decision.status is Status.TIMED_OUT:
        return EXIT_TIMED_OUT
    return EXIT_APPROVED if decision.approved else EXIT_REJECTED


def wait_for(closer: Closer, request: ApprovalRequest, wait_slice: float,
             nudge: Callable[[str], object] | None = None) -> Decision:
    """Block on Redis in slices; past the deadline apply the timeout outcome ourselves, and
    between slices send the request's due reminders and escalations (`nudge`), in case no
    bot (and so no sweeper) is running."""
    while True:
        decision = closer.store.wait(request.id, wait_slice)
        if decision is not None:
            return decision
        if nudge is not None:
            nudge(request.id)
        if datetime.now(UTC) >= request.deadline:
            closed = closer.expire(request.id)
            if closed.request is not None and closed.request.decision is not None:
                return closed.request.decision
            time.sleep(0.2)  # the server clock lags ours slightly: ask again shortly


def request_command(
    settings: Settings,
    title: str, summary: str, fact: list[str], approver: list[str], group: list[str],
    quorum: int | None, channel: str | None, timeout: str | None, timeout_outcome: str | None,
    requester: str | None, allow_self_approval: bool | None, idempotency_key: str | None,
    wait: bool, *, remind_every: str | None = None, remind_limit: int | None = None,
    escalate_after: str | None = None, escalate_to: Sequence[str] = (),
    escalate_quorum: int | None = None,
    email_approvers: Sequence[str] = (),
) -> None:
    """The approval policy routes the request (`--fact k=v` is what its rules match); the
    flags fill what no matching rule decides, and under `lock: true` may not name approvers."""
    if bool(escalate_after) != bool(escalate_to):
        raise fail("--escalate-after and --escalate-to go together")
    if escalate_quorum is not None and not escalate_after:
        raise fail("--escalate-quorum needs --escalate-after and --escalate-to")
    try:
        options: dict[str, object] = {
            "approvers": approver or None, "approver_groups": group or None,
            "email_approvers": list(email_approvers) or None, "quorum": quorum,
            "channel": channel, "allow_self_approval": allow_self_approval,
            "timeout": parse_duration(timeout) if timeout is not None else None,
            "timeout_outcome": Outcome(timeout_outcome) if timeout_outcome is not None else None,
            "remind_every": parse_duration(remind_every) if remind_every is not None else None,
            "remind_limit": remind_limit,
            "escalate": ([{"after": parse_duration(escalate_after), "to": list(escalate_to),
                           "quorum": escalate_quorum}] if escalate_after else None),
        }
        draft = Draft(title=title, summary=summary, facts=parse_facts(fact),
                      requester=requester or settings.approvals_requester, options=options)
        policy = policy_source(settings)
        spec_of(draft, settle(policy.current(), draft, fallback_of(settings)))  # refuse early
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise fail(f"{where}: {str(first['msg']).removeprefix('Value error, ')}") from e
    except ValueError as e:
        raise fail(str(e)) from e
    # A request Slack would not post is cancelled, not left pending with no message.
    posting = build_closer(settings, on_decision=report_to_prefect)
    closer = cancelling_unposted(posting)
    opened = Opener(closer, policy, fallback_of(settings)).open(draft, idempotency_key)
    request = opened.request
    rule = f" by policy rule {opened.settled.rule}" if opened.settled.rule else ""
    decided_by_policy = opened.settled.auto_approve is not None or opened.settled.deny is not None
    if request.decision is not None and decided_by_policy:
        reason = f": {visible(request.decision.reason)}" if request.decision.reason else ""
        typer.echo(f"{request.id} {request.decision.status.value}{rule}{reason}")
        if wait:
            raise typer.Exit(exit_code(request.decision))
        return
    typer.echo(f"{request.id} posted to {request.message_channel} (ts {request.message_ts}){rule}")
    if not wait:
        return
    # A click may land while the message is still being posted: then it is decided already.
    nudge = None
    if request.spec.remind_every is not None or request.spec.escalate:
        nudge = nudger_for(posting).run_for
    decision = request.decision or wait_for(closer, request, settings.approvals_wait_slice_seconds,
                                            nudge)
    who = f" by {decision.decided_by}" if decision.decided_by else ""
    reason = f": {visible(decision.reason)}" if decision.reason else ""
    typer.echo(f"{request.id} {decision.status.value}{who}{reason}")
    raise typer.Exit(exit_code(decision))


def pending_command(settings: Settings, user: str | None, as_json: bool) -> None:
    requests = sync_store(settings).pending(user=user, limit=PENDING_SHOWN + 1)
    more = len(requests) > PENDING_SHOWN
    requests = requests[:PENDING_SHOWN]
    note = (f"showing only the first {PENDING_SHOWN} pending requests (soonest deadline first); "
            "more are waiting")
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in requests], indent=2))
        if more:
            typer.echo(f"note: {note}", err=True)  # stdout stays one JSON document
        return
    table = Table("id", "title", "requester", "progress", "deadline (UTC)", title="Pending requests",
                  caption=note if more else None)
    now = datetime.now(UTC)
    for r in requests:
        # The quorum in force: an escalation tier whose time has come may have lowered it.
        table.add_row(r.id, plain(r.spec.title), r.spec.requester or "-",
                      f"{len(r.approvals)}/{r.quorum_at(now)}", f"{r.deadline:%Y-%m-%d %H:%M}")
    console.print(table)


def show_command(settings: Settings, request_id: str, as_json: bool) -> None:
    try:
        request = sync_store(settings).get(request_id)
    except StoreError as e:
        raise fail(str(e)) from e
    if as_json:
        typer.echo(request.model_dump_json(indent=2))
        return
    console.print(Text.assemble((visible(request.spec.title), "bold"),
                                f" ({request.id}): {request.status.value}"))
    approvers = request.spec.approvers + request.spec.approver_groups + [
        f"{address} (by mail)" for address in request.spec.email_approvers]
    console.print(f"approvers: {', '.join(approvers) or 'anyone'}"
                  f"  quorum {request.quorum_at(datetime.now(UTC))}"
                  f"  deadline {request.deadline:%Y-%m-%d %H:%M:%S} UTC")
    for vote in request.votes:
        console.print(f"  {vote.at:%H:%M:%S} {vote.user} {vote.vote.value}")
    if request.decision:
        d = request.decision
        console.print(plain(f"decision: {d.status.value} (approved={d.approved}) by "
                            f"{d.decided_by or '-'}{' — ' + d.reason if d.reason else ''}"))


def audit_command(settings: Settings, request_id: str, as_json: bool) -> None:
    try:
        events = sync_store(settings).audit(request_id)
    except StoreError as e:
        raise fail(str(e)) from e
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json", exclude_none=True) for e in events],
                              indent=2))
        return
    table = Table("time (UTC)", "event", "user", "detail", title=f"Audit of {request_id}")
    for event in events:
        extra = event.model_extra or {}
        detail = " ".join(str(x) for x in (event.vote.value if event.vote else None,
                                            event.reason, extra.get("address")) if x)
        table.add_row(f"{event.at:%Y-%m-%d %H:%M:%S.%f}"[:-3], plain(event.event),
                      plain(event.user or "-"), plain(detail))
    console.print(table)

