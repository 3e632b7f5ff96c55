"""Requests a flow run leaves open are cancelled, never left with live buttons.

    held(flow_run_id)              the requests this process's gates of a run are waiting on
    resumable_crash(state)         a crash that means "stopped to be run again"
    cancel_held(flow_run_id, why)  cancel them through the Closer (message edited, audit kept)
    close_open_requests            a Prefect flow state hook doing that on failure, crash or cancel
    APPROVAL_HOOKS                 the three hooks for a flow decorator: @flow(**APPROVAL_HOOKS)

A crash caused by a termination signal (a served run stopped by its worker or `approvals
serve` restarting) or by a runtime cancellation of the process's task is the run being put
down to be run again: its requests stay open, and the run finds them by idempotency key.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, TypedDict

from prefect.client.schemas.objects import FlowRun, State

from slack_approvals.state.models import MAX_REASON

from .services import services

log = logging.getLogger(__name__)

# State messages of the crashes that mean "stopped to be resumed", not "gone wrong".
_RESUMABLE_CRASHES = ("aborted by a termination signal", "cancelled by the runtime environment")

_lock = threading.Lock()
# flow run id -> ids of requests its gates (or its child runs' gates) wait on in this process.
_held: dict[str, set[str]] = {}


def hold(request_id: str, *flow_run_ids: str | None) -> None:
    with _lock:
        for run_id in filter(None, flow_run_ids):
            _held.setdefault(run_id, set()).add(request_id)


def release(request_id: str, *flow_run_ids: str | None) -> None:
    with _lock:
        for run_id in filter(None, flow_run_ids):
            requests = _held.get(run_id)
            if requests is not None:
                requests.discard(request_id)
                if not requests:
                    del _held[run_id]


def held(flow_run_id: str) -> set[str]:
    with _lock:
        return set(_held.get(flow_run_id, ()))


def cancel_request(request_id: str, reason: str) -> None:
    """Cancel as the system; a request already decided is left as it is."""
    services().closer.cancel(request_id, None, reason[:MAX_REASON], force=True)


def cancel_held(flow_run_id: str, reason: str) -> list[str]:
    """Cancel every request the run still holds; one that cannot be reached now is logged."""
    with _lock:
        requests = sorted(_held.pop(flow_run_id, ()))
    for request_id in requests:
        try:
            cancel_request(request_id, reason)
        except Exception:  # one failure must not keep the others open
            log.exception("could not cancel approval request %s of flow run %s", request_id,
                          flow_run_id)
    return requests


def resumable_crash(state: State[Any]) -> bool:
    """A crash that puts the run down to be run again (see the module's docstring)."""
    message = (state.message or "").lower()
    return state.is_crashed() and any(phrase in message for phrase in _RESUMABLE_CRASHES)


def _ending(flow_run: FlowRun, state: State[Any]) -> str | None:
    """How the run ended, in words for the request's audit; None when it is to be resumed."""
    name = flow_run.name
    if state.is_cancelling() or state.is_cancelled():
        return f"the flow run {name} was cancelled"
    if resumable_crash(state):
        return None
    if state.is_crashed():
        return f"the flow run {name} crashed: {state.message or ''}".rstrip(": ")
    return f"the flow run {name} failed: {state.message or 'no message'}"


def close_open_requests(flow: Any, flow_run: FlowRun, state: State[Any]) -> None:
    """A flow state hook (on_failure, on_crashed, on_cancellation)."""
    reason = _ending(flow_run, state)
    if reason is not None:
        cancel_held(str(flow_run.id), reason)


class ApprovalHooks(TypedDict):
    on_failure: list[Any]
    on_crashed: list[Any]
    on_cancellation: list[Any]


# @flow(name="my-flow", **APPROVAL_HOOKS): the flow's gates' open requests are cancelled when
# the run fails, crashes or is cancelled. Hooks of your own go in the same lists:
# @flow(on_failure=[*APPROVAL_HOOKS["on_failure"], notify], ...).
APPROVAL_HOOKS: ApprovalHooks = {
    "on_failure": [close_open_requests],
    "on_crashed": [close_open_requests],
    "on_cancellation": [close_open_requests],
}
