"""The `approval.decided` Prefect event, emitted once per final decision.

The bot emits it for decisions people make (through approvals.launching.emit_decision_event);
the flows emit it only for decisions they make themselves: a timeout a gate applies, an
auto-approval. The event id is derived from the request id, so should both sides ever emit for
the same decision, Prefect stores one event.
"""

from __future__ import annotations

import uuid

from prefect.events import Event, emit_event

from slack_approvals.state.models import ApprovalRequest, Outcome

EVENT_NAME = "approval.decided"
_EVENT_NAMESPACE = uuid.UUID("0d7c4e55-2a61-4c1f-9a43-6a51f3b0c8e2")


def event_id(request_id: str) -> uuid.UUID:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{EVENT_NAME}:{request_id}")


def decision_resource(request: ApprovalRequest) -> dict[str, str]:
    decision = request.decision
    if decision is None:
        raise ValueError(f"request {request.id} has no decision yet")
    return {
        "prefect.resource.id": f"approval.request.{request.id}",
        "prefect.resource.name": request.spec.title,
        "approval.outcome": (Outcome.APPROVE if decision.approved else Outcome.REJECT).value,
        "approval.status": decision.status.value,
        # Empty when no person decided (a timeout, an automatic decision without a user).
        "approval.decided_by": decision.decided_by or "",
    }


def emit_decided(request: ApprovalRequest) -> Event | None:
    """Send the event; None when no Prefect API is configured to receive events."""
    decision = request.decision
    resource = decision_resource(request)
    assert decision is not None
    related: list[dict[str, str]] = []
    if request.spec.flow_run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{request.spec.flow_run_id}",
                        "prefect.resource.role": "flow-run"})
    return emit_event(
        event=EVENT_NAME,
        resource=resource,
        related=related,
        occurred=decision.decided_at,
        id=event_id(request.id),
        payload={
            "request_id": request.id,
            "gate": request.spec.gate,
            "reason": decision.reason,
            "votes": [{"user": v.user, "vote": v.vote.value, "at": v.at.isoformat()}
                      for v in decision.votes],
        },
    )
