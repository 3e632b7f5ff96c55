"""`approvals cancel`, and the CLI's message board: a request whose message Slack refused is
cancelled (with Slack's error in its audit) instead of waiting where nobody can see it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import typer
from slack_sdk.errors import SlackApiError

from slack_approvals.state.closing import Closer, MessageBoard
from slack_approvals.state.errors import StoreError
from slack_approvals.state.models import MAX_REASON, ApprovalRequest, CloseStatus
from slack_approvals.state.store import ApprovalStore

from .cli_support import fail, slack_refusal, visible
from .runtime import build_closer
from .settings import Settings

CANCEL_REASON = "cancelled from the command line"


def slack_error(error: Exception) -> str:
    """Slack's error code and, when it is not 200, the HTTP status; or what kept Slack away."""
    if isinstance(error, SlackApiError):
        return slack_refusal(error)
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class CancelUnposted:
    """Posts through `board`; when Slack refuses a new request's message (after the client's
    own retries), cancels the request as the system, with Slack's error as the reason."""

    board: MessageBoard
    store: ApprovalStore

    def post(self, request: ApprovalRequest) -> ApprovalRequest:
        try:
            return self.board.post(request)
        except (SlackApiError, OSError) as e:
            if request.message_ts is not None:
                raise  # already shown in Slack: only this edit failed
            why = f"Slack did not post the message: {slack_error(e)}"
            Closer(self.store, self.board).cancel(request.id, None, why[:MAX_REASON], force=True)
            raise fail(f"{why}; request {request.id} was cancelled") from e

    def refresh(self, request: ApprovalRequest) -> ApprovalRequest:
        return self.board.refresh(request)


def cancelling_unposted(closer: Closer) -> Closer:
    """The same close path, with a board that never leaves an unposted request pending."""
    return replace(closer, board=CancelUnposted(closer.board, closer.store))


def report_to_prefect(request: ApprovalRequest) -> None:
    """A decision the CLI itself records (a timeout, a cancel) becomes an `approval.decided`
    event, as the bot's do; Prefect is loaded only then, so the other commands stay quick."""
    from .launching import emit_decision_event

    emit_decision_event(request)


def cancel_command(settings: Settings, request_id: str, reason: str | None) -> None:
    """Cancel as the system, through the one close path: Redis, then the message."""
    closer = build_closer(settings, on_decision=report_to_prefect)
    try:
        result = closer.cancel(request_id.strip().lower(), None, reason or CANCEL_REASON,
                               force=True)
    except StoreError as e:
        raise fail(str(e)) from e
    if result.status is CloseStatus.UNKNOWN or result.request is None:
        raise fail(f"no approval request with id {request_id!r}")
    if result.status is CloseStatus.ALREADY_CLOSED:
        raise fail(f"{result.request.id} is already {result.request.status.value.replace('_', ' ')}")
    typer.echo(f"{result.request.id} cancelled: {visible(reason or CANCEL_REASON)}")
