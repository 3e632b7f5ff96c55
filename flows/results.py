"""What flows return about their gates: plain models that print and serialise well."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from slack_approvals.state.models import Decision, Status


class FrozenModel(BaseModel):
    """What a flow returns never changes after the fact."""

    model_config = ConfigDict(frozen=True)


class GateResult(FrozenModel):
    gate: str
    request_id: str
    status: Status
    approved: bool
    decided_by: str | None
    reason: str | None

    @classmethod
    def of(cls, gate: str, decision: Decision) -> GateResult:
        return cls(gate=gate, request_id=decision.request_id, status=decision.status,
                   approved=decision.approved, decided_by=decision.decided_by,
                   reason=decision.reason)
